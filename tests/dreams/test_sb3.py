from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import model_with_heads
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from dreamgym.dreams.sb3 import DreamSB3VecEnv


def test_ppo_trains_on_the_batched_dream(car_bundle, tmp_path):
    venv = DreamSB3VecEnv(num_envs=32, world_model=car_bundle, max_episode_steps=10)
    assert isinstance(venv, VecEnv)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=64, n_epochs=1, seed=0, verbose=0,
                tensorboard_log=str(tmp_path / "ppo"))  # fmt: skip
    sb3_folders = set(Path(tempfile.gettempdir()).glob("SB3-*"))
    model.learn(total_timesteps=512)
    # The README's way (a tensorboard_log) leaves no SB3 folder in the temp directory...
    assert set(Path(tempfile.gettempdir()).glob("SB3-*")) == sb3_folders
    assert list((tmp_path / "ppo").glob("PPO_1/events.out.tfevents.*"))
    # ...and SB3 saw every finished episode: 10 steps each, 32 dreams, 16 steps per dream.
    episodes = list(model.ep_info_buffer)
    assert len(episodes) >= 32 and {e["l"] for e in episodes} <= set(range(1, 11))
    buffer = model.rollout_buffer
    assert buffer.observations.shape == (8 * 32, 96)  # flattened by the last update
    for array in (
        buffer.observations,
        buffer.rewards,
        buffer.values,
        buffer.log_probs,
        buffer.advantages,
        buffer.returns,
    ):
        assert np.isfinite(array).all()


def test_same_step_reset_hands_back_terminal_observations(car_bundle):
    model = model_with_heads(car_bundle, done_bias=-5.0)  # episodes end by truncation only
    venv = DreamSB3VecEnv(num_envs=4, world_model=model, max_episode_steps=3)
    venv.seed(0)
    obs = venv.reset()
    assert obs.shape == (4, 96)
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.zeros((4, 3), np.float32))
    assert dones.all() and rewards.dtype == np.float32
    for info in infos:
        assert info["terminal_observation"].shape == (96,)
        assert info["TimeLimit.truncated"]
    assert not np.array_equal(obs[0], infos[0]["terminal_observation"])


def test_finished_episodes_report_their_return_and_length(car_bundle):
    # Episodes end by truncation only, and every step is worth 0.5.
    model = model_with_heads(car_bundle, done_bias=-5.0, reward_bias=0.5)
    venv = DreamSB3VecEnv(num_envs=2, world_model=model, max_episode_steps=3)
    venv.seed(0)
    venv.reset()
    seen = []
    for step in range(1, 7):
        _, rewards, dones, infos = venv.step(np.zeros((2, 3), np.float32))
        np.testing.assert_allclose(rewards, 0.5, rtol=1e-6)
        assert dones.all() if step % 3 == 0 else not dones.any()
        seen += [info["episode"] for info in infos if "episode" in info]
    assert [(e["r"], e["l"]) for e in seen] == [(pytest.approx(1.5), 3)] * 4
    assert all(isinstance(e["t"], float) for e in seen)
    venv.step(np.zeros((2, 3), np.float32))
    venv.reset()  # a reset mid-episode starts the counts again
    for _ in range(3):
        _, _, dones, infos = venv.step(np.zeros((2, 3), np.float32))
    assert dones.all() and (infos[1]["episode"]["r"], infos[1]["episode"]["l"]) == (
        pytest.approx(1.5),
        3,
    )
