"""Bad input and damaged data: one-line errors (exit status 2) that name the culprit, and nothing
written or changed. Cases of one kind live beside their feature's tests; these span the CLI."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from helpers import damage_member

from dreamgym.cli import main
from dreamgym.common.io import DirectoryLock
from dreamgym.dreams import DreamEnv
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(capsys, argv, message) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    return err


def test_collect_into_a_directory_that_is_not_a_dataset(car_bundle, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(car_bundle, run)  # e.g. a pipeline run or a bundle
    before = snapshot(run)
    one_line_error(capsys, ["collect", "--env", "carracing", "--episodes", "1", "--out",
                            str(run)], "holds no rollout dataset")  # fmt: skip
    assert snapshot(run) == before


def test_a_second_writer_is_refused_naming_the_holder(car_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(car_data, data)
    with DirectoryLock(data):
        before = snapshot(data)
        err = one_line_error(capsys, ["collect", "--env", "carracing", "--episodes", "9",
                                      "--max-steps", "40", "--out", str(data)],
                             "is being written by another dreamgym process")  # fmt: skip
        assert "pid" in err
        assert snapshot(data) == before
    with DirectoryLock(data):  # released: free again
        pass


def test_render_into_an_unwritable_place(car_bundle, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    one_line_error(capsys, ["render", "--world-model", str(car_bundle), "--out",
                            str(blocker / "videos" / "dream.mp4")], "not writable")  # fmt: skip
    assert blocker.read_text() == "not a directory"


def test_collect_sets_damaged_episodes_aside_and_collects_them_again(car_data, tmp_path):
    from dreamgym.rollouts import CollectConfig, collect

    data = tmp_path / "data"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    meta = RolloutDataset(data).meta
    victim = data / "episode_000002.npz"
    intact = victim.read_bytes()
    victim.write_bytes(intact[: len(intact) // 2])
    config = CollectConfig(env="carracing", episodes=len(RolloutDataset(data, True)) + 1,
                           out=data, workers=1, max_episode_steps=meta["max_episode_steps"],
                           policy=meta["policy"], seed=meta["seed"])  # fmt: skip
    with pytest.warns(UserWarning, match="episode_000002.npz"):
        collect(config, progress=False)
    assert (data / "damaged" / "episode_000002.npz").stat().st_size == len(intact) // 2
    again = RolloutDataset(data)
    assert len(again) == config.episodes
    # The same index and seed give the same episode as the one that was damaged.
    assert victim.exists()
    np.testing.assert_array_equal(
        np.load(victim)["actions"], np.load(io.BytesIO(intact))["actions"]
    )


@pytest.mark.parametrize("value", ["1.2", True, None, [1.0]])
def test_a_temperature_must_be_a_number(car_bundle, value):
    if value is None:
        DreamEnv(world_model=car_bundle, temperature=value)  # None: the env's default
        return
    with pytest.raises(DreamgymError, match="temperature must be a finite number > 0, got"):
        DreamEnv(world_model=car_bundle, temperature=value)


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_an_episode_cap_must_be_a_positive_integer(car_bundle, value):
    with pytest.raises(DreamgymError, match="max_episode_steps must be an integer >= 1"):
        DreamEnv(world_model=car_bundle, max_episode_steps=value)


def test_dream_ids_show_their_cap_and_envs_shows_true_bounds(capsys):
    assert gym.spec("Dream-CarRacing-v0").max_episode_steps == 1000
    assert gym.spec("Dream-DoomTakeCover-v0").max_episode_steps == 2100
    assert main(["envs"]) == 0
    car = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("carr"))
    assert "low [-1, 0, 0] high [1, 1, 1]" in car


# The CLI misuses of the issue that filed these checks (and the ones that already held): each
# is exit status 2 with one line naming the culprit, and leaves every file as it was.
# BUNDLE, CONTROLLER, DATA and OUT are filled in per test.
CASES = [
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--temperature", "0"], "temperature must be a finite number > 0, got 0.0"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--temperature", "-1"], "got -1.0"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--temperature", "nan"], "temperature must be a finite number"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--temperature", "inf"], "temperature must be a finite number"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--max-steps", "-4"], "max_episode_steps must be an integer >= 1, got -4"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--popsize", "1"], "popsize (CMA-ES needs 2) must be an integer >= 2"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "DATA"], "is not a world-model bundle"),
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--workers", "0"], "workers must be an integer >= 1, got 0"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--address", "127.0.0.1:1"], "could not connect to the Ray cluster at '127.0.0.1:1'"),  # noqa: E501
    (["collect", "--env", "carracing", "--episodes", "2", "--address", "127.0.0.1:1", "--out", "OUT/d"], "could not connect to the Ray cluster"),  # noqa: E501
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--done-mode", "calibrated"], "needs a bundle with a done calibration"),  # noqa: E501
    (["evaluate", "--controller", "CONTROLLER", "--backend", "dream", "--temperature", "0"], "temperature must be a finite number > 0"),  # noqa: E501
    (["evaluate", "--controller", "CONTROLLER", "--episodes", "0"], "episodes must be an integer >= 1, got 0"),  # noqa: E501
    (["evaluate", "--controller", "CONTROLLER", "--dropout", "0.1"], "dropout 0.1 is the dream's; the real env has none"),  # noqa: E501
    (["evaluate", "--controller", "CONTROLLER", "--backend", "dream", "--dropout", "1.5"], "dropout must be"),  # noqa: E501
    (["evaluate", "--controller", "OUT/nothing"], "does not exist"),
    (["evaluate", "--controller", "pretrained:mario"], "no pretrained model 'pretrained:mario'"),
    (["render", "--world-model", "BUNDLE", "--temperatures", "1.0,0,-2", "--out", "OUT/t.mp4"], "temperature must be a finite number > 0"),  # noqa: E501
    (["collect", "--env", "carracing", "--episodes", "0", "--out", "OUT/d"], "episodes must be an integer >= 1, got 0"),  # noqa: E501
    (["collect", "--env", "carracing", "--episodes", "2", "--workers", "0", "--out", "OUT/d"], "workers must be an integer >= 1, got 0"),  # noqa: E501
    (["collect", "--env", "mario", "--episodes", "2", "--out", "OUT/d"], "mario"),
    (["train", "vae", "--data", "OUT/missing", "--out", "OUT/v"], "missing"),
    (["train", "vae", "--data", "DATA", "--out", "OUT/v", "--epochs", "0"], "epochs must be an integer >= 1, got 0"),  # noqa: E501
    (["train", "vae", "--data", "DATA", "--out", "OUT/v", "--lr", "-1"], "lr must be a finite number > 0"),  # noqa: E501
    (["fidelity", "--world-model", "BUNDLE", "--episodes", "0"], "dream_episodes must be an integer >= 1, got 0"),  # noqa: E501
    (["plan", "--world-model", "BUNDLE", "--data", "DATA"], "planning needs a world model with a goal cost"),  # noqa: E501
    (["plan", "--world-model", "BUNDLE", "--data", "DATA", "--proprio-weight", "-1"], "proprio weight must be a finite number >= 0"),  # noqa: E501
    (["plan", "--world-model", "BUNDLE", "--budget", "0"], "budget must be an integer >= 1, got 0"),  # noqa: E501
    (["export", "--world-model", "BUNDLE", "--out", "DATA"], "is not empty"),
    (["evolve", "--generations", "1", "--world-model", "BUNDLE", "--dropout", "1.5"], "dropout must be a finite number >= 0 and <= 0.9, got 1.5"),  # noqa: E501
    (["train", "mdnrnn", "--data", "DATA", "--vae", "BUNDLE", "--out", "OUT/m", "--dropout", "-0.1"], "dropout must be a finite number >= 0"),  # noqa: E501
    (["train", "mdnrnn", "--data", "DATA", "--vae", "BUNDLE", "--out", "OUT/m", "--members", "0"], "members must be an integer >= 1, got 0"),  # noqa: E501
    (["pipeline", "--env", "doom-takecover", "--preset", "cpu-driver", "--out", "OUT/p"], "unknown pipeline preset 'cpu-driver' for doom-takecover"),  # noqa: E501
    (["pipeline", "--env", "doom-takecover", "--extra-policy", "hold", "--out", "OUT/p"], "--extra-policy must be NAME:EPISODES (e.g. hold:120), got 'hold'"),  # noqa: E501
    (["pipeline", "--env", "doom-takecover", "--extra-policy", "repeat:5", "--out", "OUT/p"], "extra policy must be one of"),  # noqa: E501
    (["pipeline", "--env", "doom-takecover", "--candidates", "3", "--out", "OUT/p"], "--candidates 3 needs --select-episodes N (the real episodes that score each candidate); preset 'debug' has none"),  # noqa: E501
    (["pipeline", "--env", "doom-takecover", "--candidates", "0", "--out", "OUT/p"], "candidates must be an integer >= 1, got 0"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "OUT/a", "--timesteps", "0"], "timesteps must be an integer >= 1, got 0"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "OUT/a", "--num-envs", "-2"], "num_envs must be an integer >= 1, got -2"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "OUT/a", "--lr", "0"], "learning_rate must be a finite number > 0, got 0.0"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "OUT/a", "--net-arch", "64,x"], "--net-arch must be comma-separated integers, e.g. 64,64, got '64,x'"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "OUT/a", "--temperature", "0"], "temperature must be a finite number > 0"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "OUT/a", "--observation", "pixels"], "observation mode must be one of"),  # noqa: E501
    (["train", "agent", "--world-model", "DATA", "--out", "OUT/a"], "is not a world-model bundle"),  # noqa: E501
    (["train", "agent", "--world-model", "BUNDLE", "--out", "DATA"], "is not an agent directory (it holds"),  # noqa: E501
    (["evaluate", "--controller", "DATA"], "is not a saved controller or agent"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_cli_misuse_is_one_line_and_changes_nothing(argv, message, car_bundle, car_data, tmp_path,
                                                    capsys):  # fmt: skip
    bundle, data = tmp_path / "bundle", tmp_path / "data"
    shutil.copytree(car_bundle, bundle, ignore=shutil.ignore_patterns("tb"))
    shutil.copytree(car_data, data)
    controller = tmp_path / "controller"
    from dreamgym import worldmodels
    from dreamgym.agents import Controller, ControllerSpec

    spec = ControllerSpec.for_world_model(worldmodels.load(bundle))
    Controller(spec).save(controller, world_model=bundle)
    names = {"BUNDLE": bundle, "DATA": data, "CONTROLLER": controller, "OUT": tmp_path / "out"}
    argv = [next((a.replace(k, str(v)) for k, v in names.items() if a.startswith(k)), a)
            for a in argv]  # fmt: skip
    before = snapshot(tmp_path)
    one_line_error(capsys, argv, message)
    assert snapshot(tmp_path) == before


def test_env_names_in_any_case_or_as_gym_ids_and_a_version(tmp_path, capsys, car_data):
    from dreamgym.envs.registry import canonical_env_name

    assert canonical_env_name("CarRacing") == canonical_env_name("Real-CarRacing-v0") == "carracing"
    assert canonical_env_name("CarRacing-v3") == "carracing"  # Gymnasium's own id
    assert canonical_env_name("VizdoomTakeCover-v0") == "doom-takecover"  # ViZDoom's
    assert canonical_env_name("doom_takecover") == "doom-takecover"
    assert canonical_env_name("mario") == "mario"  # unknown: the registry names the choices
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("dreamgym ")
    data = tmp_path / "data"
    shutil.copytree(car_data, data)
    before = snapshot(data)
    argv = ["collect", "--env", "CarRacing", "--episodes", "4", "--out", str(data),
            "--max-steps", "40", "--workers", "2"]  # fmt: skip
    assert main(argv) == 0  # the same dataset: nothing to do (only the lock's holder changes)
    unlocked = lambda files: {p: b for p, b in files.items() if p.name != ".dreamgym.lock"}  # noqa: E731
    assert unlocked(snapshot(data)) == unlocked(before)


def test_train_skips_an_episode_whose_data_is_corrupt_only_when_asked(car_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    damage_member(data / "episode_000002.npz")  # the zip directory stays valid
    out = tmp_path / "vae"
    argv = ["train", "vae", "--data", str(data), "--out", str(out), "--preset", "debug",
            "--epochs", "1", "--device", "cpu", "--quiet"]  # fmt: skip
    one_line_error(capsys, argv, "episode_000002.npz")
    assert not out.exists()
    result = subprocess.run([sys.executable, "-m", "dreamgym.cli", *argv, "--skip-corrupt"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0 and "trained vae epochs 1-1" in result.stdout, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "episode_000002.npz" in line]
    assert line.startswith("dreamgym train: warning: skipping episode file")
