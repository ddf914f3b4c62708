from __future__ import annotations

import numpy as np
from helpers import model_with_heads
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv

from dreamgym.dreams.sb3 import DreamSB3VecEnv


def test_ppo_trains_on_the_batched_dream(car_bundle):
    venv = DreamSB3VecEnv(num_envs=32, world_model=car_bundle, max_episode_steps=10)
    assert isinstance(venv, VecEnv)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=64, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=512)
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
