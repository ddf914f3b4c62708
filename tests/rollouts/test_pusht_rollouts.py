"""Push-T data: the weak-expert and pusher policies, the optional per-frame arrays, and
collection."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from dreamgym.cli import main
from dreamgym.envs import REAL_ENVS, make_env
from dreamgym.envs.pusht import replay_states
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import (
    DatasetUnion,
    PusherPolicy,
    RandomPolicy,
    RolloutDataset,
    WeakExpertPolicy,
    load_episode,
    run_episode,
)
from dreamgym.rollouts.episode import EPISODE_KEYS, Episode, _npz_bytes
from dreamgym.rollouts.policies import resolve_policy

MOVES = gym.spaces.Box(-1, 1, (2,), np.float32)


def block_paths(policy, episodes: int = 10, steps: int = 50) -> np.ndarray:
    """Distance the block travels in each of ``episodes`` Push-T episodes under ``policy``."""
    env = make_env("pusht", max_episode_steps=steps)
    paths = []
    for seed in range(episodes):
        block = run_episode(env, policy, seed).state[:, 2:4]
        paths.append(np.linalg.norm(np.diff(block, axis=0), axis=1).sum())
    env.close()
    return np.array(paths)


def test_weak_expert_pushes_the_block():
    expert = block_paths(resolve_policy(REAL_ENVS["pusht"].collection_policy, MOVES))
    uniform = block_paths(RandomPolicy(MOVES))
    # Measured (10 episodes of 50 steps): 173 px per episode, every block moved; uniform
    # moves: 30 px, 4 of 10 blocks moved.
    assert (expert > 1).all()
    assert expert.mean() > 3 * uniform.mean()


def test_weak_expert_is_seeded_and_keeps_targets_near_the_block():
    space = gym.spaces.Box(-1, 1, (10,), np.float32)  # a block of 5 moves
    state = np.array([100.0, 400.0, 300.0, 300.0, 1.0])

    def actions(seed: int) -> np.ndarray:
        policy = WeakExpertPolicy(space)
        policy.reset(seed)
        out = []
        for _ in range(200):
            policy.observe_info({"state": state})
            out.append(policy.act(np.zeros((64, 64, 3), np.uint8)))
        return np.stack(out)

    a, b, c = actions(1), actions(1), actions(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and all(space.contains(x) for x in a)
    # Each move starts where the previous one aimed, and every target lies in the 200 px box
    # around the block (the agent starts 200 px away, one full move from the box's edge).
    targets = state[:2] + 100 * np.cumsum(a.reshape(200, 5, 2), axis=1)
    assert np.abs(targets - state[2:4]).max() <= 100 + 1e-3
    assert np.abs(targets - state[2:4]).max() > 99  # the moves do reach the box's edges


def test_weak_expert_without_state_moves_uniformly():
    policy = WeakExpertPolicy(MOVES)
    uniform = RandomPolicy(MOVES)
    policy.reset(4)
    uniform.reset(4)
    blank = np.zeros((64, 64, 3), np.uint8)
    for _ in range(5):
        np.testing.assert_array_equal(policy.act(blank), uniform.act(blank))
    policy.observe_info({})
    np.testing.assert_array_equal(policy.act(blank), uniform.act(blank))
    with pytest.raises(DreamgymError, match="the weak expert needs Push-T's relative moves"):
        WeakExpertPolicy(gym.spaces.Box(-1, 1, (3,), np.float32))


def test_pusher_pushes_the_t_onto_its_goal():
    env = make_env("pusht")
    episodes = [run_episode(env, resolve_policy("pusher", MOVES), seed) for seed in range(5)]
    env.close()
    # Measured (seeds 0-4, 300-step cap): all 5 reach gym-pusht's success (95% coverage) in
    # 88-194 steps; the weak expert reaches none in 300.
    assert sum(e.terminated for e in episodes) >= 4
    assert all(e.rewards[-1] == 1.0 for e in episodes if e.terminated)
    assert all(e.length < 300 for e in episodes if e.terminated)


@pytest.mark.parametrize("seed, move", [(0, (0, 0, 0.8)), (3, (0, 0, -0.8)), (4, (60, -40, 0))])
def test_pusher_turns_and_moves_the_t_to_a_target_pose(seed, move):
    env = make_env("pusht")
    policy = PusherPolicy(MOVES, noise=0.0, detour=0.0)
    policy.reset(seed)
    obs, info = env.reset(seed=seed)
    target = info["state"][2:5] + np.array(move)
    for _ in range(100):
        policy.observe_info({**info, "goal_pose": target})
        obs, _, _, _, info = env.step(policy.act(obs))
    env.close()
    block = info["state"][2:5]
    # Measured: within 2.5 px and 0.005 rad of the target after 100 steps.
    assert np.linalg.norm(block[:2] - target[:2]) < 10
    assert abs((block[2] - target[2] + np.pi) % (2 * np.pi) - np.pi) < 0.1


def test_pusher_is_seeded_and_the_random_targets_keep_the_block_moving():
    env = make_env("pusht", max_episode_steps=100)
    policy = resolve_policy("pusher-random", MOVES)
    a, b = run_episode(env, policy, 0), run_episode(env, policy, 0)
    c = run_episode(env, policy, 1)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.actions[:20], c.actions[:20])
    assert a.actions.dtype == np.float32 and all(MOVES.contains(x) for x in a.actions)
    # Measured: the block travels 602 and 449 px in these 100 steps (the weak expert's: 390
    # and 490 px).
    for episode in (a, c):
        assert np.linalg.norm(np.diff(episode.state[:, 2:4], axis=0), axis=1).sum() > 200
    # An action block of 5 moves: each pair a move of its own, all in the space.
    blocks = gym.spaces.Box(-1, 1, (10,), np.float32)
    policy = PusherPolicy(blocks)
    policy.reset(0)
    policy.observe_info({"state": np.array([100.0, 400.0, 300.0, 300.0, 1.0])})
    action = policy.act(np.zeros((64, 64, 3), np.uint8))
    assert blocks.contains(action) and len(set(action.round(6).tolist())) > 2
    env.close()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "middle"}, "pusher target must be one of goal, random; got 'middle'"),
        ({"noise": -0.1}, "pusher noise must be a finite number >= 0 and <= 1, got -0.1"),
        ({"detour": "often"}, "pusher detour must be a finite number >= 0 and <= 1, got 'often'"),
        ({"standoff": 500}, "pusher standoff must be a finite number >= 0 and <= 100, got 500"),
    ],
)
def test_pusher_bad_parameters_are_one_line_errors(kwargs, message):
    with pytest.raises(DreamgymError) as error:
        PusherPolicy(MOVES, **kwargs)
    assert str(error.value) == message


def test_pusher_without_state_moves_uniformly_and_refuses_other_spaces(ray_local, tmp_path, capsys):
    policy, uniform = PusherPolicy(MOVES), RandomPolicy(MOVES)
    policy.reset(4)
    uniform.reset(4)
    blank = np.zeros((64, 64, 3), np.uint8)
    np.testing.assert_array_equal(policy.act(blank), uniform.act(blank))
    out = tmp_path / "car"
    args = ["collect", "--env", "carracing", "--episodes", "1", "--out", str(out),
            "--policy", "pusher", "--quiet"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the pusher needs Push-T's relative moves, Box(-1, 1, (2k,)), got Box(" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_old_episode_files_without_the_optional_arrays_load(tmp_path):
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    arrays = {
        "frames": frames,
        "actions": np.zeros((3, 2), np.float32),
        "rewards": np.zeros(3, np.float32),
        "terminated": np.bool_(False),
        "truncated": np.bool_(True),
        "seed": np.int64(7),
        "index": np.int64(2),
    }
    assert tuple(arrays) == EPISODE_KEYS
    old = tmp_path / "episode_000002.npz"
    old.write_bytes(_npz_bytes(arrays))  # exactly what the format wrote before
    episode = load_episode(old)
    assert episode.proprio is None and episode.state is None and episode.seed == 7
    assert episode.to_bytes() == old.read_bytes()  # envs without the info write the same bytes

    episode.proprio = np.zeros((4, 4), np.float32)
    episode.state = np.ones((4, 5))
    episode.save(tmp_path / "new.npz")
    again = load_episode(tmp_path / "new.npz")
    np.testing.assert_array_equal(again.state, episode.state)
    assert again.proprio.dtype == np.float32 and again.state.dtype == np.float64
    bad = Episode(frames, arrays["actions"], arrays["rewards"], False, True, 7, 2,
                  proprio=np.zeros((3, 4), np.float32))  # fmt: skip
    bad.save(tmp_path / "bad.npz")
    with pytest.raises(DreamgymError, match=r"proprio of shape \(3, 4\), expected \(4, n\)"):
        load_episode(tmp_path / "bad.npz")


def test_collect_pusht_keeps_proprio_and_state(ray_local, tmp_path):
    out = tmp_path / "pusht"
    args = ["collect", "--env", "pusht", "--episodes", "2", "--out", str(out),
            "--policy", "weak-expert", "--max-steps", "20", "--quiet"]  # fmt: skip
    assert main(args) == 0
    data = RolloutDataset(out)
    assert data.action_dim == 2 and data.num_frames == 42
    info = data.frame_info()
    assert info["proprio"].shape == (42, 4) and info["proprio"].dtype == np.float32
    assert info["state"].shape == (42, 5) and info["state"].dtype == np.float64
    episode = data.episode(1)
    np.testing.assert_array_equal(info["state"][21:], episode.state)
    # The episode is reproducible from its seed and actions: goals can be built by replay.
    np.testing.assert_array_equal(replay_states(episode.seed, episode.actions), episode.state)

    batch = data.sample_sequences(3, 25, np.random.default_rng(0))
    assert batch.proprio.shape == (3, 26, 4) and batch.state.shape == (3, 26, 5)
    assert (batch.state[:, 21:] == 0).all()  # padding past the 20-step episodes
    assert not (batch.state[:, :21] == 0).any()
    union = DatasetUnion([data])
    np.testing.assert_array_equal(union.frame_info()["proprio"], info["proprio"])


def test_collect_pusht_with_the_pusher(ray_local, tmp_path):
    out = tmp_path / "pusher"
    args = ["collect", "--env", "pusht", "--episodes", "2", "--out", str(out),
            "--policy", "pusher", "--max-steps", "30", "--quiet"]  # fmt: skip
    assert main(args) == 0
    data = RolloutDataset(out)
    assert data.meta["policy"] == "pusher" and len(data) == 2
    for i in range(2):
        episode = data.episode(i)
        np.testing.assert_array_equal(replay_states(episode.seed, episode.actions), episode.state)
        # The pusher's own actions for this episode's seed: the data are its, reproducibly.
        env = make_env("pusht", max_episode_steps=30)
        again = run_episode(env, resolve_policy("pusher", MOVES), episode.seed)
        env.close()
        np.testing.assert_array_equal(again.actions, episode.actions)
