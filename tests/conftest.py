"""Shared fixtures: one local Ray instance for the whole session, small real datasets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import ray
from ray_options import start_local_ray

from dreamgym.rollouts import CollectConfig, collect

os.environ.setdefault("RAY_ACCEPT_CLUSTER_AUTO_SHUTDOWN", "1")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance with 2 CPUs, shared by every in-process test that needs Ray."""
    start_local_ray()
    session = ray._private.worker.global_worker.node.get_session_dir_path()
    yield
    ray.shutdown()
    shutil.rmtree(session, ignore_errors=True)  # as dreamgym's own local Ray does


@pytest.fixture(scope="session")
def car_data(ray_local, tmp_path_factory) -> Path:
    """Four short real CarRacing episodes (40 steps), collected by 2 Ray workers."""
    out = tmp_path_factory.mktemp("car") / "data"
    collect(
        CollectConfig(env="carracing", episodes=4, out=out, workers=2, max_episode_steps=40),
        progress=False,
    )
    return out


def train_tiny_bundle(data: Path, out: Path, vae_epochs: int, mdnrnn_epochs: int) -> Path:
    """V then M with the debug presets, into one bundle directory."""
    from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
    from dreamgym.worldmodels.vm.train_vae import VAETrainer

    VAETrainer(data, out, preset="debug", overrides={"epochs": vae_epochs}, device="cpu").fit(False)
    MDNRNNTrainer(
        data, out, out, preset="debug", overrides={"epochs": mdnrnn_epochs}, device="cpu"
    ).fit(False)
    return out


@pytest.fixture(scope="session")
def car_bundle(car_data, tmp_path_factory) -> Path:
    """A tiny V+M world-model bundle (debug presets) trained on ``car_data``."""
    return train_tiny_bundle(car_data, tmp_path_factory.mktemp("bundle") / "car", 2, 3)


@pytest.fixture(scope="session")
def car_ensemble(car_data, car_bundle, tmp_path_factory) -> Path:
    """An ensemble of three Ms (debug preset, 2 epochs each) on ``car_bundle``'s V."""
    from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer

    out = tmp_path_factory.mktemp("ensemble")
    MDNRNNTrainer(car_data, car_bundle, out, preset="debug", overrides={"epochs": 2},
                  device="cpu", members=3).fit(False)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def doom_data(ray_local, tmp_path_factory) -> Path:
    """Three short real TakeCover episodes (up to 60 steps), the Doom recipe's held actions."""
    out = tmp_path_factory.mktemp("doom") / "data"
    collect(
        CollectConfig(
            env="doom-takecover",
            episodes=3,
            out=out,
            policy="repeat",
            workers=2,
            max_episode_steps=60,
        ),
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def doom_bundle(doom_data, tmp_path_factory) -> Path:
    """A tiny V+M bundle for TakeCover (debug presets)."""
    return train_tiny_bundle(doom_data, tmp_path_factory.mktemp("bundle") / "doom", 1, 2)


@pytest.fixture(scope="session")
def pusht_data(ray_local, tmp_path_factory) -> Path:
    """Four short real Push-T episodes (60 steps) of the weak expert, with proprio and state."""
    out = tmp_path_factory.mktemp("pusht") / "data"
    collect(
        CollectConfig(env="pusht", episodes=4, out=out, policy="weak-expert", workers=2,
                      max_episode_steps=60),
        progress=False,
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def pusht_latent(pusht_data, tmp_path_factory) -> Path:
    """A debug latent Push-T model as the shipped one is made: trained on two datasets of other
    policies (``pusht_data``'s 4 weak-expert episodes, copied to ``RUN/data``, and 2 pusher-random
    episodes of base seed 1000 in ``RUN/data-pusher``), into ``RUN/latent`` (1 epoch, proprio,
    goals 25 steps ahead)."""
    from dreamgym.worldmodels.latent.train import train_latent

    run = tmp_path_factory.mktemp("pusht-run")
    shutil.copytree(pusht_data, run / "data")
    collect(
        CollectConfig(env="pusht", episodes=2, out=run / "data-pusher", policy="pusher-random",
                      seed=1000, max_episode_steps=60),
        progress=False,
    )  # fmt: skip
    train_latent([run / "data", run / "data-pusher"], run / "latent", preset="debug",
                 device="cpu", progress=False, proprio=True, epochs=1)  # fmt: skip
    return run / "latent"


@pytest.fixture(scope="session", autouse=True)
def no_leftovers_in_the_temp_dir():
    """Remove what the session leaves in the system temp dir: the quickstart notebook's work
    folder and stable-baselines3's (empty) default log folders."""
    import shutil
    import tempfile

    root = Path(tempfile.gettempdir())
    prefixes = ("dreamgym-quickstart-", "SB3-")
    before = {p for p in root.iterdir() if p.name.startswith(prefixes)}
    yield
    for path in root.iterdir():
        if path.name.startswith(prefixes) and path not in before:
            shutil.rmtree(path, ignore_errors=True)
