"""Protocol v2 holds for a world model that is not V+M: a few lines of tensor code go through the
dream env, the vector env, SB3, the evolution's dream backend, goal-driven dreams and the
renderer."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from dreamgym import worldmodels
from dreamgym.agents import Controller, ControllerSpec, DreamBackend
from dreamgym.dreams import DreamEnv, DreamVectorEnv
from dreamgym.dreams.video import render_video
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels.protocol import Decodes, PredictsRewardDone, rollout


@dataclass
class PointState:
    x: torch.Tensor  # (N,) position on a line
    v: torch.Tensor  # (N,) velocity


class PointModel:
    """A deterministic point on a line pushed by the action; +1 per step until it leaves [-1, 1].
    It offers heads, a decoder (a white column where the point is) and a goal cost."""

    feature_modes = ("xv", "x")
    step_options = ()

    def __init__(self, root, info, device="cpu") -> None:
        self.env, self.info, self.device = info["env"], info, torch.device(device)
        self.action_space = gym.spaces.Box(np.float32(-1), np.float32(1), (1,))

    def feature_size(self, mode=None) -> int:
        return 1 if mode == "x" else 2

    def features(self, state, mode=None) -> torch.Tensor:
        return state.x[:, None] if mode == "x" else torch.stack([state.x, state.v], 1)

    def initial_state(self, n, generator=None) -> PointState:
        x = torch.rand(n, generator=generator, device=self.device) * 0.2 - 0.1
        return PointState(x, torch.zeros(n, device=self.device))

    def step(self, state, action, generator=None, **options) -> PointState:
        v = 0.9 * state.v + 0.05 * action[:, 0]
        return PointState(state.x + v, v)

    def reward_done(self, state):
        return torch.ones_like(state.x), (state.x.abs() > 1).float()

    def decode(self, state) -> torch.Tensor:
        frames = torch.zeros(len(state.x), 64, 64, 3, dtype=torch.uint8)
        columns = ((state.x.clamp(-1, 1) + 1) * 31.5).long()
        frames[torch.arange(len(columns)), :, columns] = 255
        return frames

    def cost(self, state, goal) -> torch.Tensor:
        return (state.x - goal.x).abs()

    def encode(self, frames) -> PointState:
        columns = frames[:, 0, :, 0].float().argmax(1)
        return PointState(columns / 31.5 - 1, torch.zeros(len(frames)))

    def advance(self, state, action, frames) -> PointState:
        return PointState(self.encode(frames).x, self.step(state, action).v)


class BlindPointModel(PointModel):
    """The same dynamics without heads or a decoder: only a goal gives its dream a reward."""

    reward_done = decode = None


worldmodels.register_world_model_kind("test-point", PointModel)


@pytest.fixture
def point_bundle(tmp_path):
    root = tmp_path / "point"
    root.mkdir()
    (root / "bundle.json").write_text(json.dumps({"kind": "test-point", "env": "doom-takecover"}))
    return root


def test_a_non_vm_model_runs_in_the_dream_env_and_the_vector_env(point_bundle):
    model = worldmodels.load(point_bundle)
    assert isinstance(model, worldmodels.WorldModel) and isinstance(model, PredictsRewardDone)
    env = gym.make("Dream-DoomTakeCover-v0", world_model=str(point_bundle), render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2,) and env.render().shape == (64, 64, 3)
    steps = 0
    while True:  # full push right: leaves [-1, 1] after some steps, +1 per step
        obs, reward, terminated, truncated, _ = env.step(np.ones(1, np.float32))
        steps += 1
        assert reward == 1.0
        if terminated or truncated:
            break
    assert terminated and 5 < steps < 60 and obs[0] > 1
    vector = DreamVectorEnv(8, world_model=point_bundle, observation_mode="x")
    obs, _ = vector.reset(seed=0)
    assert obs.shape == (8, 1)
    obs, reward, *_ = vector.step(np.full((8, 1), -1, np.float32))
    assert np.allclose(reward, 1.0)


def test_evolution_and_the_renderer_take_it(point_bundle, tmp_path):
    model = worldmodels.load(point_bundle)
    spec = ControllerSpec.for_world_model(model)
    assert spec.observation_mode == "xv" and spec.input_size == 2
    # A controller that pushes against the velocity survives to the cap; one that pushes on dies.
    steady, runaway = np.array([0.0, -50.0, 0.0]), np.array([0.0, 0.0, 1.0])
    backend = DreamBackend(model, spec, max_episode_steps=100)
    returns = backend.returns(np.stack([steady, runaway]), 3, seed=0)
    assert np.allclose(returns[0], 100) and (returns[1] < 60).all()
    video = render_video(point_bundle, tmp_path / "point.gif", Controller(spec, steady), steps=10,
                         size=32)  # fmt: skip
    assert video.stat().st_size > 0


def test_goal_dreams_and_missing_capabilities(point_bundle):
    model = worldmodels.load(point_bundle)
    goal = PointState(torch.tensor([0.5]), torch.tensor([0.0]))
    env = DreamEnv(world_model=model, goal=goal, max_episode_steps=5)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.ones(1, np.float32))
    assert -0.7 < reward < -0.3  # minus the distance to x = 0.5
    blind = BlindPointModel(None, model.info)
    assert not isinstance(blind, Decodes) and not isinstance(blind, PredictsRewardDone)
    with pytest.raises(DreamgymError, match="no decoder"):
        DreamEnv(world_model=blind, goal=goal, render_mode="rgb_array")
    with pytest.raises(DreamgymError, match="predicts no reward"):
        DreamEnv(world_model=blind)
    states = rollout(blind, blind.initial_state(2), torch.ones(2, 3, 1))
    assert len(states) == 3 and (states[2].x > states[0].x).all()


def test_sb3_trains_in_its_dream(point_bundle):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from dreamgym.dreams.sb3 import DreamSB3VecEnv

    sb3_check_env(DreamEnv(point_bundle), warn=False)
    venv = DreamSB3VecEnv(4, world_model=point_bundle)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    actions, _ = model.predict(venv.reset(), deterministic=True)
    assert actions.shape == (4, 1) and venv.action_space.contains(actions[0])
