"""The goal-conditioned Push-T dream from a latent world model trained on real Push-T episodes:
training lowers the validation loss, ``Dream-PushT-v0`` passes Gymnasium's and SB3's checks, it
renders with a decoder, and the goal cost compares what Push-T's success does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from dreamgym import worldmodels
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset
from dreamgym.worldmodels.latent.train import train_latent


def test_the_push_t_dream_from_a_latent_model(pusht_data, tmp_path):
    run = train_latent(pusht_data, tmp_path / "latent", preset="debug", device="cpu",
                       progress=False, goal_offset=10)  # fmt: skip
    assert run.history[-1]["val/loss"] < run.history[0]["val/loss"]
    env = gym.make("Dream-PushT-v0", world_model=str(tmp_path / "latent"))
    assert env.spec.max_episode_steps == 10
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    size = env.unwrapped.world_model.feature_size()
    assert obs.shape == (2 * size,) and info["world_model"] == str((tmp_path / "latent").resolve())
    steps, terminated, truncated = 0, False, False
    still = np.zeros(env.action_space.shape, np.float32)
    while not (terminated or truncated):
        obs, reward, terminated, truncated, _ = env.step(still)
        assert reward <= 0
        steps += 1
    assert steps <= 10


def test_the_push_t_dream_renders_with_a_decoder(pusht_data, tmp_path):
    train_latent(pusht_data, tmp_path / "latent", preset="debug", device="cpu", progress=False,
                 goal_offset=10, decoder=True, epochs=1)  # fmt: skip
    env = gym.make("Dream-PushT-v0", world_model=str(tmp_path / "latent"),
                   render_mode="rgb_array")  # fmt: skip
    check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    env.step(np.zeros(env.action_space.shape, np.float32))
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8


def test_the_push_t_goal_cost_compares_the_agents_position_not_its_velocity(pusht_data, tmp_path):
    train_latent(pusht_data, tmp_path / "latent", preset="debug", device="cpu", progress=False,
                 goal_offset=10, proprio=True, epochs=1)  # fmt: skip
    model = worldmodels.load(tmp_path / "latent")
    assert model.goal_proprio == [0, 1]  # the env spec's: agent x, y of (x, y, vx, vy)
    frames = torch.from_numpy(RolloutDataset(pusht_data).episode(0).frames[:1])
    proprio = torch.tensor([[200.0, 300.0, 0.0, 0.0]])
    goal = model.encode(frames, proprio)
    moving = model.encode(frames, proprio + torch.tensor([0.0, 0.0, 150.0, -80.0]))
    elsewhere = model.encode(frames, proprio + torch.tensor([30.0, 0.0, 0.0, 0.0]))
    assert float(model.cost(moving, goal)) == 0.0
    far = float(model.cost(elsewhere, goal))
    assert far > 0.0
    model.proprio_weight = 4.0
    assert float(model.cost(elsewhere, goal)) == pytest.approx(4 * far)
    # V-JEPA 2-AC's energy: mean absolute distances, tokens and the goal's proprio components.
    other = model.encode(torch.from_numpy(RolloutDataset(pusht_data).episode(1).frames[:1]),
                         proprio + torch.tensor([30.0, -10.0, 5.0, 0.0]))  # fmt: skip
    tokens = (other.tokens[:, -1] - goal.tokens[:, -1]).abs().mean()
    agent = (other.proprio[:, -1, :2] - goal.proprio[:, -1, :2]).abs().mean()
    assert float(model.cost(other, goal, energy="l1")) == pytest.approx(float(tokens + 4 * agent))
    with pytest.raises(DreamgymError, match="energy must be one of"):
        model.cost(other, goal, energy="l2")
