from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from helpers import model_with_heads, run
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dreamgym
from dreamgym.dreams import DreamEnv, DreamVectorEnv
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import bundle, state_index
from dreamgym.worldmodels.bundle import find_bundle

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*Box observation space.*infinity"),
    pytest.mark.filterwarnings("ignore:We recommend you to use a symmetric"),
]


@pytest.fixture
def bundles(car_bundle, doom_bundle):
    return {"Dream-CarRacing-v0": car_bundle, "Dream-DoomTakeCover-v0": doom_bundle}


@pytest.mark.parametrize("env_id", ["Dream-CarRacing-v0", "Dream-DoomTakeCover-v0"])
def test_registered_dreams_pass_gymnasium_and_sb3_check_env(env_id, bundles):
    env = gym.make(env_id, world_model=str(bundles[env_id]), render_mode="rgb_array")
    check_env(env.unwrapped)
    sb3_check_env(gym.make(env_id, world_model=str(bundles[env_id])).unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8


def test_paper_defaults(car_bundle, doom_bundle):
    car = gym.make("Dream-CarRacing-v0", world_model=str(car_bundle)).unwrapped
    doom = gym.make("Dream-DoomTakeCover-v0", world_model=str(doom_bundle)).unwrapped
    assert (car.temperature, doom.temperature) == (1.0, 1.15)
    # The cap is the bundle's: the episodes it was trained on (the test data: 40 and 60 steps);
    # bundles trained on full episodes (the shipped ones) give the paper's 1,000 and 2,100.
    assert (car.core.max_episode_steps, doom.core.max_episode_steps) == (40, 60)
    shipped = [
        gym.make(f"Dream-{name}-v0", world_model=f"pretrained:{bundle}").unwrapped
        for name, bundle in [("CarRacing", "carracing"), ("DoomTakeCover", "doom-takecover")]
    ]
    assert [env.core.max_episode_steps for env in shipped] == [1000, 2100]
    assert DreamEnv(car_bundle, max_episode_steps=500).core.max_episode_steps == 500
    assert car.observation_space.shape == (32 + 64,)  # [z, h]; debug M has 64 units
    assert car.action_space == dreamgym.make_env("carracing").action_space
    assert doom.action_space.shape == (1,)
    assert DreamEnv(car_bundle, observation_mode="zch").observation_space.shape == (32 + 128,)


def test_same_seed_same_trajectory(car_bundle):
    actions = np.random.default_rng(0).uniform([-1, 0, 0], [1, 1, 1], (30, 3)).astype(np.float32)
    a = run(DreamEnv(car_bundle), 5, actions)
    b = run(DreamEnv(car_bundle), 5, actions)
    c = run(DreamEnv(car_bundle), 6, actions)
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1:], b[1:], strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:4] == y[1:4]
    assert not np.array_equal(a[-1][0], c[-1][0])


def test_done_threshold_reward_head_and_truncation(car_bundle):
    ends = DreamEnv(model_with_heads(car_bundle, done_bias=3.0, reward_bias=0.25))
    ends.reset(seed=0)
    _, reward, terminated, truncated, _ = ends.step(np.zeros(3, np.float32))
    assert (reward, terminated, truncated) == (0.25, True, False)

    lasts = DreamEnv(model_with_heads(car_bundle, done_bias=-3.0), max_episode_steps=7)
    lasts.reset(seed=0)
    flags = [lasts.step(np.zeros(3, np.float32))[2:4] for _ in range(7)]
    assert flags == [(False, False)] * 6 + [(False, True)]

    # done probability sigmoid(0.2) = 0.55: "threshold" always ends, "sample" ends ~55% of runs.
    sampled = DreamEnv(model_with_heads(car_bundle, done_bias=0.2), done_mode="sample")
    outcomes = []
    for seed in range(200):
        sampled.reset(seed=seed)
        outcomes.append(sampled.step(np.zeros(3, np.float32))[2])
    assert 0.45 < np.mean(outcomes) < 0.65

    # "calibrated" draws from the probability shifted by the bundle's fitted logit offset:
    # a bundle without a calibration is refused.
    model = model_with_heads(car_bundle, done_bias=0.2)
    with pytest.raises(ValueError, match="needs a bundle with a done calibration"):
        DreamEnv(model, done_mode="calibrated")
    model.info = {**model.info, "done_calibration": {"logit_offset": -3.2}}
    calibrated = DreamEnv(model, done_mode="calibrated")
    outcomes = []
    for seed in range(200):
        calibrated.reset(seed=seed)
        outcomes.append(calibrated.step(np.zeros(3, np.float32))[2])
    assert 0.0 < np.mean(outcomes) < 0.1  # sigmoid(-3.0) = 0.047


def test_render_decodes_the_current_latent(car_bundle):
    env = DreamEnv(car_bundle, render_mode="rgb_array", render_size=256)
    env.reset(seed=0)
    env.step(np.zeros(3, np.float32))
    frame = env.render()
    assert frame.shape == (256, 256, 3)
    expected = env.world_model.decode(env.core.state)[0].numpy()
    np.testing.assert_array_equal(frame[::4, ::4], expected)
    assert DreamEnv(car_bundle).render() is None


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(2, np.float32), r"shape \(2,\); expected \(3,\)"),
        (np.array([np.nan, 0, 0], np.float32), r"action \[nan, 0.0, 0.0\] is not in the action"),
        (np.array([0, 2, 0], np.float32), r"action \[0.0, 2.0, 0.0\] is not in the action space"),
        (np.array([0, 0, np.inf], np.float32), "expected finite values within its bounds"),
        ("left", "action 'left' is not numeric"),
    ],
)
def test_invalid_actions_raise_value_error(car_bundle, action, message):
    env = DreamEnv(car_bundle)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), "hot"])
def test_bad_temperature(car_bundle, tau):
    with pytest.raises(ValueError, match="temperature must be a"):
        DreamEnv(car_bundle, temperature=tau)


def test_higher_temperature_spreads_next_z_more(car_bundle):
    spreads = []
    for tau in (0.25, 1.0, 2.0):
        env = DreamVectorEnv(4000, world_model=car_bundle, temperature=tau, observation_mode="z")
        env.reset(seed=0)
        env.core.state = state_index(env.core.state, torch.zeros(4000, dtype=torch.long))
        obs, *_ = env.step(np.zeros((4000, 3), np.float32))
        spreads.append(obs.std(axis=0).mean())
    assert spreads[0] < spreads[1] < spreads[2]


def test_world_model_lookup_and_errors(car_bundle, doom_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path))
    with pytest.raises(DreamgymError) as doom:
        find_bundle("doom-basic")  # no bundle of the user's and none shipped
    assert "no world model for 'doom-basic'" in str(doom.value)
    assert "--policy repeat" in str(doom.value)  # Doom's collection policy
    assert "dreamgym train vae" in str(doom.value) and "train latent" not in str(doom.value)
    shutil.copytree(car_bundle, tmp_path / "runs" / "car", ignore=shutil.ignore_patterns("tb"))
    env = gym.make("Dream-CarRacing-v0")
    assert env.unwrapped.world_model.env == "carracing"
    with pytest.raises(DreamgymError, match="models 'doom-takecover', not 'carracing'"):
        gym.make("Dream-CarRacing-v0", world_model=str(doom_bundle))


def test_a_push_t_dream_without_a_model_names_the_latent_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path))
    # Whether or not a Push-T model is shipped, the recipe is the one for a user without one.
    monkeypatch.setattr(bundle, "pretrained_for_env", lambda env: None)
    with pytest.raises(DreamgymError) as error:
        gym.make("Dream-PushT-v0")
    lines = str(error.value).splitlines()
    assert lines[0].startswith("no world model for 'pusht'")
    out = tmp_path / "runs" / "pusht"
    assert lines[1:] == [
        f"  dreamgym collect --env pusht --policy weak-expert --episodes 100 --workers 2 "
        f"--out {out}/data",
        f"  dreamgym train latent --data {out}/data --out {out}",
    ]


def test_register_dream_for_another_bundle(doom_bundle):
    dreamgym.register_dream(
        "Dream-TestTakeCover-v0", "doom-takecover", world_model=doom_bundle, temperature=1.3
    )
    env = gym.make("Dream-TestTakeCover-v0")
    assert env.unwrapped.temperature == 1.3
    vec = gym.make_vec(
        "Dream-TestTakeCover-v0", num_envs=3, vectorization_mode="vector_entry_point"
    )
    assert vec.num_envs == 3 and vec.temperature == 1.3
