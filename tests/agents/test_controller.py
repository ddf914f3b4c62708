from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamgym import worldmodels
from dreamgym.agents import Controller, ControllerPolicy, ControllerSpec
from dreamgym.agents.controller import batched_actions
from dreamgym.envs import make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import CollectConfig, collect, load_episode, run_episode

CAR = ControllerSpec("carracing", 288, (-1.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def test_paper_parameter_counts():
    assert CAR.num_params == 867
    doom = ControllerSpec("doom-takecover", 64 + 512 + 512, (-1.0,), (1.0,), "zch", bias=False)
    assert doom.num_params == 1088


def test_carracing_action_mapping():
    controller = Controller(CAR)
    params = np.zeros(867, np.float32)
    params[-3:] = [10.0, -10.0, -10.0]  # bias: tanh -> (1, -1, -1)
    controller.set_params(params)
    steer, gas, brake = controller.act(torch.zeros(288)).tolist()
    assert steer == pytest.approx(1.0) and gas == pytest.approx(0.0) and brake == 0.0
    params[-3:] = [0.0, 10.0, 0.5]
    controller.set_params(params)
    steer, gas, brake = controller.act(torch.zeros(288)).tolist()
    assert steer == 0.0 and gas == pytest.approx(1.0) and brake == pytest.approx(np.tanh(0.5))
    out = Controller(CAR, np.random.default_rng(0).normal(0, 3, 867)).act(torch.randn(500, 288))
    assert (out[:, 0].abs() <= 1).all() and ((out[:, 1:] >= 0) & (out[:, 1:] <= 1)).all()


def test_other_boxes_map_affinely():
    spec = ControllerSpec("doom-takecover", 4, (-1.0,), (1.0,))
    controller = Controller(spec, np.array([0, 0, 0, 0, 0.3], np.float32))
    assert controller.act(torch.zeros(4)).item() == pytest.approx(np.tanh(0.3))


def test_batched_actions_equal_one_controller_at_a_time():
    rng = np.random.default_rng(1)
    params = torch.tensor(rng.normal(size=(5, 867)), dtype=torch.float32)
    obs = torch.randn(5, 288)
    batched = batched_actions(CAR, params, obs)
    for i in range(5):
        torch.testing.assert_close(batched[i], Controller(CAR, params[i]).act(obs[i]))


def test_wrong_parameter_count_is_refused():
    with pytest.raises(DreamgymError, match="has 10 values; this controller .* has 867"):
        Controller(CAR, np.zeros(10))


def test_save_load_and_fit_checks(car_bundle, doom_bundle, tmp_path):
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    assert spec.input_size == 32 + 64 and spec.num_params == 3 * 97
    controller = Controller(spec, np.arange(spec.num_params, dtype=np.float32) / 100)
    controller.save(tmp_path / "c", world_model=car_bundle)
    loaded, meta = Controller.load(tmp_path / "c")
    assert loaded.spec == spec and np.array_equal(loaded.get_params(), controller.get_params())
    assert meta["kind"] == "linear-controller"
    loaded.check_fits(model)
    with pytest.raises(DreamgymError, match="controller does not fit the world model"):
        loaded.check_fits(worldmodels.load(doom_bundle))
    with pytest.raises(DreamgymError, match="controller '.*/nowhere' does not exist"):
        Controller.load(tmp_path / "nowhere")


def test_controller_drives_the_real_env_and_collects_data(ray_local, car_bundle, tmp_path):
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    params = np.random.default_rng(0).normal(0, 0.5, spec.num_params).astype(np.float32)
    Controller(spec, params).save(tmp_path / "ctrl", world_model=car_bundle)
    env = make_env("carracing", max_episode_steps=15)
    policy = ControllerPolicy(Controller(spec, params), model)
    direct = run_episode(env, policy, seed=7)
    assert direct.length == 15 and np.isfinite(direct.actions).all()

    out = tmp_path / "data"
    collect(
        CollectConfig(
            env="carracing",
            episodes=2,
            out=out,
            workers=2,
            max_episode_steps=15,
            policy=str(tmp_path / "ctrl" / "controller.json"),
        ),
        progress=False,
    )
    for index in range(2):
        episode = load_episode(out / f"episode_{index:06d}.npz")
        again = run_episode(env, policy, seed=episode.seed)
        np.testing.assert_allclose(episode.actions, again.actions, atol=1e-6)
