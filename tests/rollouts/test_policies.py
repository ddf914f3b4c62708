from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from dreamgym.errors import DreamgymError
from dreamgym.rollouts.policies import (
    BrownianPolicy,
    HoldPolicy,
    RandomPolicy,
    RepeatPolicy,
    load_policy_file,
    register_policy_file_kind,
    resolve_policy,
)
from dreamgym.rollouts.scripted import RoadDriverPolicy

CAR_SPACE = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.ones(3, np.float32))


def actions(policy, seed: int, steps: int) -> np.ndarray:
    policy.reset(seed)
    obs = np.zeros((64, 64, 3), np.uint8)
    return np.stack([policy.act(obs) for _ in range(steps)])


@pytest.mark.parametrize(
    "cls", [RandomPolicy, BrownianPolicy, RepeatPolicy, HoldPolicy, RoadDriverPolicy]
)
def test_builtin_policies_are_seeded_and_stay_in_the_space(cls):
    a = actions(cls(CAR_SPACE), seed=3, steps=500)
    b = actions(cls(CAR_SPACE), seed=3, steps=500)
    c = actions(cls(CAR_SPACE), seed=4, steps=500)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32
    assert all(CAR_SPACE.contains(x) for x in a)


def test_road_driver_steers_toward_the_road_and_varies_its_speed():
    policy = RoadDriverPolicy(CAR_SPACE, steer_noise=0.0, drift=0.0)
    policy.reset(0)
    frame = np.full((64, 64, 3), (100, 200, 100), np.uint8)  # grass
    frame[:, 40:52] = 105  # a grey road right of the car (column 31.5)
    assert policy.act(frame)[0] > 0.5
    frame = np.full((64, 64, 3), (100, 200, 100), np.uint8)
    frame[:, 8:20] = 105
    assert policy.act(frame)[0] < -0.5
    grass = np.full((64, 64, 3), (100, 200, 100), np.uint8)
    assert policy.act(grass)[0] == -0.5  # no road in view: turn toward where it was last
    gas = actions(RoadDriverPolicy(CAR_SPACE), seed=1, steps=2000)[:, 1].astype(np.float64)
    assert {0.0, 0.1, 0.3} <= set(np.round(gas, 2).tolist())  # standing, crawling, driving
    with pytest.raises(DreamgymError, match="steer, gas, brake"):
        RoadDriverPolicy(gym.spaces.Box(-1, 1, (2,), np.float32))


def test_road_driver_drives_a_real_track():
    from dreamgym.envs import make_env

    env = make_env("carracing", max_episode_steps=300)
    policy = RoadDriverPolicy(env.action_space)
    obs, _ = env.reset(seed=5)
    policy.reset(5)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
        total += reward
        done = terminated or truncated
    env.close()
    assert total > 30  # tiles visited: it moves along the road (standing scores -30)


def test_brownian_increments_have_variance_dt():
    space = gym.spaces.Box(-100.0, 100.0, (1,), np.float32)  # wide, so clipping never happens
    a = actions(BrownianPolicy(space, dt=1 / 50), seed=0, steps=20_000)
    steps = np.diff(a[:, 0])
    assert steps.var() == pytest.approx(1 / 50, rel=0.05)
    assert abs(steps.mean()) < 0.01


def test_repeat_policy_holds_actions_for_1_to_10_steps():
    a = actions(RepeatPolicy(CAR_SPACE), seed=0, steps=5000)
    changes = np.flatnonzero(np.any(np.diff(a, axis=0) != 0, axis=1)) + 1
    runs = np.diff(np.concatenate([[0], changes]))
    assert runs.min() >= 1 and runs.max() == 10
    assert 4.5 < runs.mean() < 6.5  # uniform on 1..10 has mean 5.5


def test_hold_policy_holds_one_action_per_episode():
    policy = resolve_policy("hold", CAR_SPACE)
    assert isinstance(policy, HoldPolicy)
    held = [actions(policy, seed=s, steps=300) for s in range(30)]
    assert all((a == a[0]).all() for a in held)  # one action all episode long
    firsts = np.stack([a[0] for a in held])
    assert len({tuple(f) for f in firsts}) == 30  # a new one each episode
    assert firsts[:, 0].min() < -0.5 and firsts[:, 0].max() > 0.5  # hard steering both ways


class ConstantPolicy:
    def __init__(self, value: float) -> None:
        self.value = value

    def act(self, obs):
        return np.full(1, self.value, np.float32)


def test_policy_files_dispatch_on_their_kind(tmp_path):
    register_policy_file_kind("constant", lambda path, meta: ConstantPolicy(meta["value"]))
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"kind": "constant", "value": 0.5}))
    assert load_policy_file(tmp_path).act(None)[0] == 0.5
    assert resolve_policy(str(path), CAR_SPACE).act(None)[0] == 0.5
    path.write_text(json.dumps({"kind": "mystery"}))
    with pytest.raises(DreamgymError, match="kind 'mystery'; known kinds: .*constant"):
        load_policy_file(path)
    path.write_text("{not json")
    with pytest.raises(DreamgymError, match="not valid JSON"):
        load_policy_file(path)


def test_resolve_policy_errors():
    with pytest.raises(DreamgymError, match="unknown policy 'nope'; expected one of random"):
        resolve_policy("nope", CAR_SPACE)
    with pytest.raises(DreamgymError, match="has no act"):
        resolve_policy(object(), CAR_SPACE)
    assert isinstance(resolve_policy("brownian", CAR_SPACE), BrownianPolicy)
