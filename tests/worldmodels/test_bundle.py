from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from dreamgym import worldmodels
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.rollouts import RolloutDataset
from dreamgym.worldmodels import VMState, WorldModel, state_index, state_where
from dreamgym.worldmodels.protocol import Decodes, HasGoalCost, PredictsRewardDone, rollout
from dreamgym.worldmodels.vm.train_vae import VAETrainer


def dream(model, seed: int, steps: int = 5):
    g = torch.Generator().manual_seed(seed)
    state = model.initial_state(4, g)
    out = []
    for t in range(steps):
        action = torch.full((4, 3), 0.1 * t)
        state = model.step(state, action, g, temperature=1.0)
        reward, done = model.reward_done(state)
        out.append((model.features(state).clone(), reward.clone(), done.clone()))
    return out


def test_bundle_loads_and_offers_the_protocol(car_bundle):
    model = worldmodels.load(car_bundle)
    assert isinstance(model, WorldModel)
    assert model.env == "carracing" and model.action_space.shape == (3,)
    info = json.loads((car_bundle / "bundle.json").read_text())
    assert info["kind"] == "vae-mdnrnn" and info["z_size"] == 32
    state = model.initial_state(6, torch.Generator().manual_seed(0))
    assert state.z.shape == (6, 32) and state.h.shape == (6, 64) and state.first.all()
    assert isinstance(model, PredictsRewardDone) and isinstance(model, Decodes)
    assert not isinstance(model, HasGoalCost)
    assert [x.abs().sum() for x in model.reward_done(state)] == [0, 0]  # nothing predicted yet
    state = model.step(state, torch.zeros(6, 3), temperature=1.0)
    reward, done = model.reward_done(state)
    assert reward.shape == done.shape == (6,) and ((done >= 0) & (done <= 1)).all()
    assert not state.first.any()
    assert model.feature_modes[0] == "zh" and model.step_options == (
        "temperature",
        "dropout",
        "ensemble",
    )
    assert model.features(state).shape == (6, model.feature_size("zh")) == (6, 96)
    assert model.features(state, "z").shape == (6, 32)
    assert model.features(state, "zch").shape == (6, 160)
    frames = model.decode(state)
    assert frames.shape == (6, 64, 64, 3) and frames.dtype == torch.uint8
    with pytest.raises(DreamgymError, match="observation mode"):
        model.features(state, "hz")
    actions = torch.rand(6, 4, 3, generator=torch.Generator().manual_seed(1))
    imagined = rollout(model, state, actions, torch.Generator().manual_seed(0), temperature=1.0)
    g, stepped = torch.Generator().manual_seed(0), state
    for t in range(4):
        stepped = model.step(stepped, actions[:, t], g, temperature=1.0)
        assert torch.equal(imagined[t].z, stepped.z)


def test_reset_bank_holds_the_recorded_first_frames(car_data, car_bundle):
    model = worldmodels.load(car_bundle)
    dataset = RolloutDataset(car_data)
    first = torch.from_numpy(np.stack([dataset.episode(i).frames[0] for i in range(len(dataset))]))
    torch.testing.assert_close(model.initial_mu, model.encode(first).z)


def test_same_seed_same_dream_and_load_twice_identical(car_bundle):
    a = dream(worldmodels.load(car_bundle), seed=3)
    b = dream(worldmodels.load(car_bundle), seed=3)
    c = dream(worldmodels.load(car_bundle), seed=4)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            assert torch.equal(u, v)
    assert not torch.equal(a[-1][0], c[-1][0])


def test_encode_and_advance_follow_a_real_episode(car_data, car_bundle):
    model = worldmodels.load(car_bundle)
    episode = RolloutDataset(car_data).episode(0)
    frames = torch.from_numpy(episode.frames)
    state = model.encode(frames[:1])
    for t in range(3):
        state = model.advance(
            state, torch.from_numpy(episode.actions[t : t + 1]), frames[t + 1 :][:1]
        )
    torch.testing.assert_close(state.z, model.encode(frames[3:4]).z)
    assert state.h.abs().sum() > 0


def test_state_helpers_mix_and_slice():
    a = VMState(torch.zeros(3, 2), torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(3, dtype=bool),
                torch.zeros(3), torch.zeros(3), torch.zeros(3, 2), torch.zeros(3, 4),
                torch.zeros(3, dtype=torch.long))  # fmt: skip
    b = VMState(torch.ones(3, 2), torch.ones(3, 4), torch.ones(3, 4), torch.ones(3, dtype=bool),
                torch.ones(3), torch.ones(3), torch.ones(3, 2), torch.ones(3, 4),
                torch.ones(3, dtype=torch.long))  # fmt: skip
    mixed = state_where(torch.tensor([True, False, True]), a, b)
    assert mixed.z[:, 0].tolist() == [0, 1, 0] and mixed.first.tolist() == [False, True, False]
    assert state_index(mixed, torch.tensor([1])).h.tolist() == [[1, 1, 1, 1]]


def copy_bundle(car_bundle, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(car_bundle, out, ignore=shutil.ignore_patterns("tb", "latents.safetensors"))
    return out


def test_mismatches_and_missing_files_are_named(car_data, car_bundle, tmp_path):
    bundle = copy_bundle(car_bundle, tmp_path)
    info = json.loads((bundle / "bundle.json").read_text())
    info["action_low"], info["action_high"] = [-1.0], [1.0]
    (bundle / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(CorruptFileError, match="M has action_size=3 but the env has 1"):
        worldmodels.load(bundle)

    bundle = copy_bundle(car_bundle, tmp_path / "z")
    small = tmp_path / "small-v"
    VAETrainer(car_data, small, preset="debug", overrides={"epochs": 1, "z_size": 16}).fit(False)
    shutil.copy(small / "vae.safetensors", bundle / "vae.safetensors")
    with pytest.raises(CorruptFileError, match="V has z_size=16 but M has z_size=32"):
        worldmodels.load(bundle)

    bundle = copy_bundle(car_bundle, tmp_path / "missing")
    (bundle / "mdnrnn.safetensors").unlink()
    with pytest.raises(DreamgymError, match="mdnrnn.safetensors' is missing"):
        worldmodels.load(bundle)


def test_corrupt_safetensors_is_named(car_bundle, tmp_path):
    bundle = copy_bundle(car_bundle, tmp_path)
    path = bundle / "mdnrnn.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match="mdnrnn.safetensors"):
        worldmodels.load(bundle)


def test_not_a_bundle(tmp_path, car_bundle):
    with pytest.raises(DreamgymError, match="not a world-model bundle.*dreamgym train vae"):
        worldmodels.load(tmp_path)
    run = tmp_path / "run"  # a pipeline run: the bundle sits one level down
    shutil.copytree(car_bundle, run / "worldmodel")
    with pytest.raises(DreamgymError, match="bundles one level down.*run/worldmodel"):
        worldmodels.load(run)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_trains_v_then_m_into_one_bundle_and_resumes(car_data, tmp_path):
    run = tmp_path / "run"
    train_v = ["train", "vae", "--data", str(car_data), "--out", str(run), "--preset", "debug",
               "--epochs", "1", "--quiet"]  # fmt: skip
    vae = run_cli(*train_v)
    assert vae.returncode == 0, vae.stderr
    assert "trained vae epochs 1-1" in vae.stdout
    again = run_cli(*train_v)  # the same command again: nothing left to train
    assert "already trained for 1 epochs" in again.stdout
    m = run_cli(
        "train",
        "mdnrnn",
        "--data",
        str(car_data),
        "--vae",
        str(run),
        "--out",
        str(run),
        "--preset",
        "debug",
        "--epochs",
        "2",
        "--quiet",
    )
    assert m.returncode == 0, m.stderr
    assert worldmodels.load(run).env == "carracing"
    bad = run_cli("train", "vae", "--data", str(tmp_path / "nope"), "--out", str(run))
    assert bad.returncode == 2 and "not a rollout dataset" in bad.stderr
    assert "Traceback" not in bad.stderr
