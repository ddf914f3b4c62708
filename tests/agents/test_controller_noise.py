"""Exploration noise for collecting data with a controller (the paper's iterative training)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from dreamgym import worldmodels
from dreamgym.agents import Controller, ControllerPolicy, ControllerSpec
from dreamgym.agents.controller import controller_policy
from dreamgym.cli import main
from dreamgym.envs import make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import CollectConfig, collect, load_episode, run_episode


@pytest.fixture(scope="module")
def saved_controller(car_bundle, tmp_path_factory):
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    params = np.random.default_rng(0).normal(0, 0.5, spec.num_params).astype(np.float32)
    return Controller(spec, params).save(tmp_path_factory.mktemp("ctrl") / "c", car_bundle)


def test_noisy_controller_is_seeded_and_stays_in_bounds(saved_controller, car_bundle):
    env = make_env("carracing", max_episode_steps=12)
    low, high = env.action_space.low, env.action_space.high
    noisy = controller_policy(saved_controller, noise=0.3)
    a = run_episode(env, noisy, seed=3).actions
    np.testing.assert_array_equal(a, run_episode(env, noisy, seed=3).actions)
    assert not np.array_equal(a, run_episode(env, noisy, seed=4).actions)
    clean = run_episode(env, controller_policy(saved_controller), seed=3).actions
    assert not np.allclose(a, clean)
    controller, _ = Controller.load(saved_controller)
    direct = ControllerPolicy(controller, worldmodels.load(car_bundle))
    np.testing.assert_array_equal(clean, run_episode(env, direct, seed=3).actions)
    wild = run_episode(env, controller_policy(saved_controller, noise=5.0), seed=3).actions
    assert ((wild >= low) & (wild <= high)).all()
    assert (wild == low).any() and (wild == high).any()  # clipped outputs reach the bounds
    shipped = pickle.loads(pickle.dumps(noisy))
    np.testing.assert_array_equal(a, run_episode(env, shipped, seed=3).actions)
    assert noisy.label == f"{saved_controller.resolve()} noise=0.3"
    assert controller_policy(saved_controller).label == str(saved_controller.resolve())
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(DreamgymError, match="policy noise must be a finite number >= 0"):
            ControllerPolicy(controller, worldmodels.load(car_bundle), noise=bad)


def test_collect_with_a_noisy_controller(ray_local, saved_controller, tmp_path):
    out = tmp_path / "data"
    policy = controller_policy(saved_controller, noise=0.2)
    config = CollectConfig(
        env="carracing", episodes=2, out=out, policy=policy, workers=2, max_episode_steps=10
    )
    collect(config, progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["policy"] == f"{saved_controller.resolve()} noise=0.2"
    env = make_env("carracing", max_episode_steps=10)
    for index in range(2):
        episode = load_episode(out / f"episode_{index:06d}.npz")
        again = run_episode(env, policy, seed=episode.seed)
        np.testing.assert_allclose(episode.actions, again.actions, atol=1e-6)


def test_cli_policy_noise_needs_a_controller(saved_controller, tmp_path, capsys):
    out = tmp_path / "data"
    base = ["collect", "--env", "carracing", "--episodes", "1", "--out", str(out), "--quiet"]
    assert main([*base, "--policy-noise", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--policy-noise applies to a saved controller or agent, not to 'brownian'" in err
    assert len(err.strip().splitlines()) == 1
    other = tmp_path / "policy.json"
    other.write_text(json.dumps({"kind": "something-else"}))
    assert main([*base, "--policy", str(other), "--policy-noise", "0.1"]) == 2
    assert "is not a saved controller" in capsys.readouterr().err
    assert main([*base, "--policy", str(saved_controller), "--policy-noise", "-1"]) == 2
    assert "policy noise must be a finite number >= 0, got -1.0" in capsys.readouterr().err
    assert not out.exists()
