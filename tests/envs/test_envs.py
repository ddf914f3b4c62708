from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import vizdoom as vzd
from gymnasium.envs.box2d.car_racing import CarRacing
from gymnasium.utils.env_checker import check_env

import dreamgym
from dreamgym.envs import REAL_ENVS, list_envs, make_env
from dreamgym.envs.carracing import CarRacing64
from dreamgym.envs.doom import Doom64, action_to_buttons


def rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    frames, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.stack(frames), np.array(rewards)


@pytest.mark.parametrize("name", sorted(REAL_ENVS))
def test_every_real_env_passes_gymnasium_check_env(name):
    env = gym.make(REAL_ENVS[name].gym_id)
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    env.close()


@pytest.mark.parametrize("name", ["carracing", "doom-takecover"])
def test_same_seed_same_frames(name):
    env = make_env(name)
    a_frames, a_rewards = rollout(env, seed=7, steps=60)
    b_frames, b_rewards = rollout(env, seed=7, steps=60)
    c_frames, _ = rollout(env, seed=8, steps=60)
    env.close()
    assert a_frames.shape[1:] == (64, 64, 3)
    np.testing.assert_array_equal(a_frames, b_frames)
    np.testing.assert_array_equal(a_rewards, b_rewards)
    n = min(len(a_frames), len(c_frames))
    assert not np.array_equal(a_frames[:n], c_frames[:n])


def test_doom_episode_does_not_depend_on_earlier_episodes():
    fresh = make_env("doom-takecover")
    expected, _ = rollout(fresh, seed=3, steps=80)
    fresh.close()
    used = make_env("doom-takecover")
    rollout(used, seed=11, steps=200)
    got, _ = rollout(used, seed=3, steps=80)
    used.close()
    np.testing.assert_array_equal(expected, got)


def test_carracing_observation_is_cropped_and_resized_frame():
    env = CarRacing64()
    reference = CarRacing(continuous=True)
    obs, _ = env.reset(seed=1)
    raw, _ = reference.reset(seed=1)
    action = np.array([0.3, 0.5, 0.0], np.float32)
    for _ in range(30):
        obs, *_ = env.step(action)
        raw, *_ = reference.step(action)
    np.testing.assert_array_equal(obs, CarRacing64.preprocess(raw))
    # The dashboard (rows 84:96, mostly black) is gone: the bottom rows are track and grass.
    assert raw[88:].mean() < 40 < obs[-4:].mean()
    env.close()
    reference.close()


@pytest.mark.parametrize(
    ("action", "buttons"),
    [
        (-1.0, [True, False]),
        (-0.34, [True, False]),
        (-1 / 3, [False, False]),
        (0.0, [False, False]),
        (1 / 3, [False, False]),
        (0.34, [False, True]),
        (1.0, [False, True]),
    ],
)
def test_takecover_axis_mapping(action, buttons):
    assert action_to_buttons(np.array([action], np.float32), 2) == buttons


def test_extra_dimensions_press_further_buttons():
    assert action_to_buttons(np.array([0.9, 0.2], np.float32), 3) == [False, True, True]
    assert action_to_buttons(np.array([-0.9, -0.2], np.float32), 3) == [True, False, False]


def test_takecover_strafes_in_the_mapped_direction():
    # TakeCover's room runs along the y axis: strafing left increases y.
    def y_after(action: float) -> float:
        env = Doom64(frame_skip=4)
        env.reset(seed=0)
        for _ in range(10):
            env.step(np.array([action], np.float32))
        y = env._game.get_game_variable(vzd.GameVariable.POSITION_Y)
        env.close()
        return y

    left, still, right = y_after(-1.0), y_after(0.0), y_after(1.0)
    assert left > still + 50 and right < still - 50


def test_takecover_rewards_one_per_tic_and_frame_skip():
    env = make_env("doom-takecover", frame_skip=4)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(1, np.float32))
    assert reward == 4.0
    assert env.action_space == gym.spaces.Box(-1, 1, (1,), np.float32)


def test_time_limit_truncates():
    env = make_env("carracing", max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(3, np.float32))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_unknown_env_lists_known_names():
    with pytest.raises(dreamgym.DreamgymError, match="known environments: carracing, doom-basic"):
        make_env("pong")


def test_scenario_without_left_right_pair_is_refused():
    with pytest.raises(ValueError, match="left/right pair"):
        Doom64(scenario="cig")
    with pytest.raises(ValueError, match="unknown ViZDoom scenario 'nope'; known: .*take_cover"):
        Doom64(scenario="nope")


def test_list_envs_names_both_paper_envs():
    names = [spec.name for spec in list_envs()]
    assert "carracing" in names and "doom-takecover" in names


@pytest.fixture
def short_car():
    """A user's env added in one call: CarRacing with 50-step episodes and its own facts."""
    from dreamgym.envs import PaperDefaults, RealEnvSpec, register_real_env

    spec = RealEnvSpec(
        "short-car", "Real-ShortCar-v0", "dreamgym.envs.carracing:CarRacing64", 50,
        render_fps=12, paper=PaperDefaults(z_size=16, temperature=0.9),
        pipeline_presets={"debug": {"episodes": 3, "max_steps": 20}},
    )  # fmt: skip
    register_real_env(spec)
    yield spec
    REAL_ENVS.pop("short-car")
    gym.registry.pop("Real-ShortCar-v0")


def test_a_registered_env_brings_its_facts_everywhere(short_car):
    from dreamgym.agents.controller import ControllerSpec, to_actions
    from dreamgym.dreams.core import resolve_temperature
    from dreamgym.envs import register_real_env
    from dreamgym.errors import DreamgymError
    from dreamgym.pipeline_config import pipeline_preset
    from dreamgym.worldmodels.vm.vae import vae_preset

    env = make_env("short-car")
    assert env.spec.max_episode_steps == 50 and env.observation_space.shape == (64, 64, 3)
    assert vae_preset("paper", "short-car").z_size == 16
    assert resolve_temperature("short-car", None) == 0.9
    config = pipeline_preset("debug", "short-car")
    assert (config.episodes, config.max_steps, config.policy) == (3, 20, "brownian")
    # No action mapping of its own: tanh outputs map linearly onto the bounds.
    spec = ControllerSpec("short-car", 4, (-1.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert to_actions(spec, torch.tensor([[-1.0, 0.0, 1.0]])).tolist() == [[-1.0, 0.5, 1.0]]
    with pytest.raises(DreamgymError, match="already registered"):
        register_real_env(short_car)


def test_paper_facts_per_env():
    from dreamgym.agents.controller import ControllerSpec, to_actions
    from dreamgym.pipeline_config import pipeline_preset

    car, doom = REAL_ENVS["carracing"], REAL_ENVS["doom-takecover"]
    assert (car.paper.z_size, doom.paper.z_size) == (32, 64)
    assert (car.paper.temperature, doom.paper.temperature) == (1.0, 1.15)
    assert (car.render_fps, doom.render_fps) == (50, 35)
    paper = pipeline_preset("paper", "doom-takecover")
    assert (paper.observation_mode, paper.bias, paper.generations) == ("zch", False, 200)
    spec = ControllerSpec("carracing", 4, (-1.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    actions = to_actions(spec, torch.tensor([[0.5, 0.0, -0.5]]))
    assert actions.tolist() == [[0.5, 0.5, 0.0]]  # gas (x + 1) / 2, brake clipped at 0
