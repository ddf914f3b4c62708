from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from helpers import model_with_heads

from dreamgym.dreams import DreamEnv, DreamVectorEnv


def actions_for(n: int, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([-1, 0, 0], [1, 1, 1], (steps, n, 3)).astype(np.float32)


def test_make_vec_returns_the_native_batched_env(car_bundle):
    envs = gym.make_vec(
        "Dream-CarRacing-v0",
        num_envs=16,
        vectorization_mode="vector_entry_point",
        world_model=str(car_bundle),
    )
    assert isinstance(envs.unwrapped, DreamVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (16, 96) and obs.dtype == np.float32
    obs, reward, terminated, truncated, _ = envs.step(envs.action_space.sample())
    assert reward.shape == terminated.shape == truncated.shape == (16,)
    assert terminated.dtype == truncated.dtype == bool


def test_same_seed_same_batch_trajectory(car_bundle):
    def play(seed):
        env = DreamVectorEnv(8, world_model=car_bundle, max_episode_steps=6)
        out = [env.reset(seed=seed)[0]]
        for a in actions_for(8, 15):
            out.extend(env.step(a)[:4])
        return out

    for x, y in zip(play(1), play(1), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(play(1)[-4], play(2)[-4])


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_one_env_vector_reproduces_the_single_env_across_episodes(car_bundle, mode):
    actions = actions_for(1, 20)
    single = DreamEnv(car_bundle, max_episode_steps=6)
    vector = DreamVectorEnv(1, world_model=car_bundle, max_episode_steps=6, autoreset_mode=mode)
    obs = single.reset(seed=3)[0]
    v_obs = vector.reset(seed=3)[0]
    np.testing.assert_array_equal(obs, v_obs[0])
    pending_reset = False
    for a in actions:
        if pending_reset and mode == AutoresetMode.NEXT_STEP:
            obs = single.reset()[0]
            v_obs, v_reward, v_term, v_trunc, _ = vector.step(a)
            assert (v_reward[0], v_term[0], v_trunc[0]) == (0.0, False, False)
            np.testing.assert_array_equal(obs, v_obs[0])
            pending_reset = False
            continue
        obs, reward, terminated, truncated, _ = single.step(a[0])
        v_obs, v_reward, v_term, v_trunc, info = vector.step(a)
        assert (reward, terminated, truncated) == (v_reward[0], v_term[0], v_trunc[0])
        if terminated or truncated:
            if mode == AutoresetMode.SAME_STEP:
                assert info["_final_obs"][0]
                np.testing.assert_array_equal(obs, info["final_obs"][0])
                obs = single.reset()[0]
            else:
                pending_reset = True
        np.testing.assert_array_equal(obs, v_obs[0])


def test_autoreset_resets_only_finished_envs(car_bundle):
    model = model_with_heads(car_bundle, done_bias=-5.0)
    env = DreamVectorEnv(
        4,
        world_model=model,
        max_episode_steps=3,
        autoreset_mode=AutoresetMode.SAME_STEP,
        output="torch",
    )
    obs, _ = env.reset(seed=0)
    assert torch.is_tensor(obs)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(torch.zeros(4, 3))
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all() and (env.core.elapsed == 0).all()
    assert not torch.equal(obs, info["final_obs"])


def test_render_grid_and_list(car_bundle):
    env = DreamVectorEnv(5, world_model=car_bundle, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (2 * 64, 3 * 64, 3)
    env.render_grid = False
    frames = env.render()
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3)


def test_invalid_batch_actions_name_the_env(car_bundle):
    env = DreamVectorEnv(4, world_model=car_bundle)
    env.reset(seed=0)
    bad = np.zeros((4, 3), np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"\(env 3\) is not in the action space"):
        env.step(bad)
    with pytest.raises(ValueError, match=r"shape \(3, 3\); expected \(4, 3\)"):
        env.step(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="one int for the whole batch"):
        env.reset(seed=[1, 2, 3, 4])
