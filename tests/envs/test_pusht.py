from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gym_pusht.envs import PushTEnv
from gymnasium.utils.env_checker import check_env

from dreamgym.envs import make_env
from dreamgym.envs.pusht import PushT, replay_states, success
from dreamgym.errors import DreamgymError

MOVES = np.array(
    [[0.0, 0.0], [0.6, -0.3], [1.0, 1.0], [-0.2, 0.9], [1.0, 0.0], [0.0, 0.0]], np.float32
)


@pytest.mark.parametrize("kwargs", [{}, {"action_block": 5}])
def test_passes_gymnasium_check_env_with_its_render_modes(kwargs):
    env = gym.make("Real-PushT-v0", **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("size", [64, 96])
def test_frames_proprio_and_state_have_the_documented_shapes(size):
    env = PushT(size=size)
    obs, info = env.reset(seed=0)
    obs2, reward, terminated, truncated, info2 = env.step(np.array([0.5, 0.5], np.float32))
    for frame, i in ((obs, info), (obs2, info2)):
        assert frame.shape == (size, size, 3) and frame.dtype == np.uint8
        assert env.observation_space.contains(frame)
        assert i["proprio"].shape == (4,) and i["proprio"].dtype == np.float32
        assert i["state"].shape == (5,) and i["state"].dtype == np.float64
        np.testing.assert_array_equal(i["proprio"][:2], i["state"][:2].astype(np.float32))
    assert isinstance(reward, float) and not truncated
    assert env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    assert env.render() is None
    env.close()


def test_relative_moves_set_the_target_from_the_agent_position():
    """Action a drives gym-pusht to the target agent + 100 a, clipped to the table: frames and
    states equal gym-pusht's own, stepped with those absolute targets."""
    env = PushT()
    raw = PushTEnv(obs_type="pixels", observation_width=64, observation_height=64)
    obs, info = env.reset(seed=3)
    raw_obs, raw_info = raw.reset(seed=3)
    np.testing.assert_array_equal(obs, raw_obs)
    start = info["state"][:2].copy()
    clipped = False
    for move in MOVES:
        unclipped = raw_info["pos_agent"] + 100 * move.astype(np.float64)
        target = np.clip(unclipped, 0, 512)
        clipped |= bool((target != unclipped).any())
        raw_obs, raw_reward, *_, raw_info = raw.step(target)
        obs, reward, *_, info = env.step(move)
        np.testing.assert_array_equal(obs, raw_obs)
        np.testing.assert_array_equal(info["state"][:2], raw_info["pos_agent"])
        assert reward == raw_reward
    assert clipped  # the moves reach past the table's edge once
    # Action 0 from rest keeps the target at the agent: it does not move.
    env.reset(seed=3)
    _, _, _, _, info = env.step(np.zeros(2, np.float32))
    np.testing.assert_array_equal(info["state"][:2], start)
    np.testing.assert_array_equal(info["proprio"][2:], [0, 0])
    env.close()


def test_action_block_applies_its_moves_in_turn():
    block = PushT(action_block=3)
    single = PushT()
    assert PushT(action_block=5).action_space == gym.spaces.Box(-1, 1, (10,), np.float32)
    block.reset(seed=5)
    single.reset(seed=5)
    moves = MOVES[:3]
    obs, reward, _, _, info = block.step(moves.reshape(-1))
    steps = [single.step(move) for move in moves]
    np.testing.assert_array_equal(obs, steps[-1][0])
    np.testing.assert_array_equal(info["state"], steps[-1][4]["state"])
    assert reward == pytest.approx(sum(step[1] for step in steps))
    with pytest.raises(DreamgymError, match=r"shape \(6,\), got \(2,\)"):
        block.step(np.zeros(2, np.float32))


def test_a_block_ends_at_the_move_that_covers_the_goal():
    env = PushT(action_block=5)
    # gym-pusht's reset_to_state turns the block about its centre of gravity, (0, 45) in the
    # block's frame, after placing it: place it off by that turn to land on the goal pose.
    angle = np.pi / 4
    offset = 45 * np.array([np.sin(angle), 1 - np.cos(angle)])
    start = [50.0, 50.0, *(np.array([256.0, 256.0]) - offset), angle]
    env.reset(seed=0, options={"reset_to_state": start})
    _, reward, terminated, truncated, info = env.step(np.zeros(10, np.float32))
    assert terminated and not truncated and info["coverage"] > 0.95
    assert reward == 1.0  # one move's reward: the other four are skipped


def rollout(env: gym.Env, seed: int) -> tuple[np.ndarray, np.ndarray]:
    obs, info = env.reset(seed=seed)
    frames, states = [obs], [info["state"]]
    for move in MOVES:
        obs, _, _, _, info = env.step(move)
        frames.append(obs)
        states.append(info["state"])
    return np.stack(frames), np.stack(states)


def test_same_seed_same_episode():
    env = make_env("pusht")
    assert env.spec.max_episode_steps == 300
    a_frames, a_states = rollout(env, 7)
    b_frames, b_states = rollout(env, 7)
    c_frames, c_states = rollout(env, 8)
    np.testing.assert_array_equal(a_frames, b_frames)
    np.testing.assert_array_equal(a_states, b_states)
    assert not np.array_equal(a_states, c_states)
    env.close()


def test_success_is_dino_wm_rule():
    goal = np.array([100.0, 100.0, 256.0, 256.0, 0.0])
    cases = [
        (goal, True),
        (goal + [19, 0, 0, 0, 0], True),
        (goal + [0, 0, 0, 19.9, 0], True),
        (goal + [20, 0, 0, 0, 0], False),
        # Agent and block 15 px off each: 21.2 px together, which DINO-WM counts as a failure.
        (goal + [15, 0, 15, 0, 0], False),
        (goal + [0, 0, 0, 0, np.pi / 9 - 0.01], True),
        (goal + [0, 0, 0, 0, np.pi / 9 + 0.01], False),
        (goal + [0, 0, 0, 0, 2 * np.pi - 0.1], True),  # wrapped: 0.1 rad off
        (goal + [0, 0, 0, 0, np.pi], False),
    ]
    states = np.stack([state for state, _ in cases])
    expected = [ok for _, ok in cases]
    assert success(states, goal).tolist() == expected
    assert success(states, np.broadcast_to(goal, states.shape)).tolist() == expected
    assert success(states.reshape(3, 3, 5), goal).shape == (3, 3)
    assert success(goal, goal).shape == ()
    with pytest.raises(DreamgymError, match="must end in 5 numbers"):
        success(np.zeros(4), goal)


def test_replay_reproduces_the_states_of_an_episode():
    env = PushT(action_block=2)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (12, 4)).astype(np.float32)
    _, info = env.reset(seed=11)
    states = [info["state"]] + [env.step(a)[4]["state"] for a in actions]
    env.close()
    np.testing.assert_array_equal(replay_states(11, actions, action_block=2), np.stack(states))
    with pytest.raises(DreamgymError, match=r"shape \(T, 2\) for action_block=1, got \(12, 4\)"):
        replay_states(11, actions)


def test_render_and_bad_arguments():
    env = make_env("pusht", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.zeros(2, np.float32))
    view = env.render()
    assert view.shape == (680, 680, 3) and view.dtype == np.uint8
    env.close()
    with pytest.raises(DreamgymError, match="size must be an integer >= 1, got 0"):
        PushT(size=0)
    with pytest.raises(DreamgymError, match="action_block must be an integer >= 1, got 2.5"):
        PushT(action_block=2.5)
    with pytest.raises(DreamgymError, match="render_mode must be None or 'rgb_array'"):
        PushT(render_mode="human")
