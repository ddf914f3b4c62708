from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC

from dreamgym import worldmodels
from dreamgym.agents.evaluate import evaluate_controller
from dreamgym.agents.saved import agent_policy, load_agent
from dreamgym.agents.sb3_agent import SB3Agent, SB3AgentPolicy, train_agent
from dreamgym.agents.sb3_config import AGENT_PRESETS, AgentConfig, agent_config
from dreamgym.cli import main
from dreamgym.dreams.video import render_video
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.rollouts import CollectConfig, RolloutDataset, collect

# Debug size: 8 dreams x 16 steps per PPO rollout, 10-step dream episodes.
DEBUG = {"max_episode_steps": 10, "timesteps": 128, "checkpoint_every": 64}


@pytest.fixture(scope="module")
def agent_dir(car_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("sb3") / "agent"
    train_agent(car_bundle, out, "debug", DEBUG, "cpu", progress=False)
    return out


def snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_presets_are_declared_once_and_overrides_replace_them():
    debug = agent_config("debug", overrides={"timesteps": None, "num_envs": 4})
    assert debug.num_envs == 4 and debug.timesteps == AGENT_PRESETS["debug"]["timesteps"]
    assert agent_config(None, "carracing") == agent_config("carracing")
    assert agent_config(None, "doom-takecover").num_envs == 256
    # The measured Doom recipe: the env's preset with 20M steps, nothing else changed.
    assert agent_config("doom-takecover-20m") == agent_config(
        "doom-takecover", overrides={"timesteps": 20_000_000}
    )
    assert agent_config(None, "pusht") == AgentConfig()  # no preset of its own: the defaults
    assert agent_config("debug", overrides={"net_arch": [8, 8]}).net_arch == (8, 8)
    ppo = agent_config("carracing").algo_kwargs()
    assert ppo["n_steps"] == 128 and "buffer_size" not in ppo
    sac = agent_config("carracing", overrides={"algo": "sac"}).algo_kwargs()
    assert "n_steps" not in sac and sac["policy_kwargs"] == {"net_arch": [64, 64]}
    with pytest.raises(DreamgymError, match="agent preset must be one of .*; got 'mario'"):
        agent_config("mario")
    with pytest.raises(DreamgymError, match="algo must be one of ppo, sac, td3; got 'dqn'"):
        agent_config("debug", overrides={"algo": "dqn"})
    with pytest.raises(DreamgymError, match="unknown agent setting"):
        agent_config("debug", overrides={"epochs": 3})
    with pytest.raises(DreamgymError, match="gamma must be a finite number >= 0 and <= 1"):
        agent_config("debug", overrides={"gamma": 1.5})


def test_a_debug_agent_is_saved_beside_its_world_model_and_settings(agent_dir, car_bundle):
    meta = json.loads((agent_dir / "agent.json").read_text())
    assert meta["kind"] == "sb3" and meta["algo"] == "ppo" and meta["preset"] == "debug"
    assert meta["world_model"] == str(car_bundle.resolve()) and meta["env"] == "carracing"
    assert meta["observation_mode"] == "zh" and meta["timesteps"] == 128
    assert meta["config"]["num_envs"] == 8 and meta["config"]["temperature"] == 1.0
    # 128 steps of 8 dreams with 10-step episodes: at least 8 finished episodes seen.
    assert len(meta["episode_returns"]) >= 8
    assert list((agent_dir / "tb" / "ppo_1").glob("events.out.tfevents.*"))
    agent, loaded = load_agent(agent_dir / "agent.json")
    assert isinstance(agent, SB3Agent) and loaded["world_model"] == meta["world_model"]


def test_the_train_agent_command_trains_then_says_there_is_nothing_to_do(car_bundle, tmp_path,
                                                                         capsys):  # fmt: skip
    out = tmp_path / "agent"
    argv = ["train", "agent", "--world-model", str(car_bundle), "--out", str(out), "--preset",
            "debug", "--algo", "td3", "--timesteps", "64", "--num-envs", "4", "--net-arch", "8,8",
            "--max-steps", "10", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"trained td3 agent for 64 dream steps (zh observations) -> {out}" in printed
    meta = json.loads((out / "agent.json").read_text())
    assert meta["algo"] == "td3" and meta["config"]["net_arch"] == [8, 8]
    assert main(argv) == 0
    assert f"{out}: td3 agent already trained for 64 steps" in capsys.readouterr().out
    agent, _ = load_agent(out)
    assert agent.act(torch.zeros(2, agent.observation_size)).shape == (2, 3)


def test_the_agent_acts_as_sb3_predicts_deterministically(agent_dir, car_bundle):
    agent, _ = SB3Agent.load(agent_dir)
    model = worldmodels.load(car_bundle)
    agent.check_fits(model)
    obs = torch.randn(5, model.feature_size("zh"))
    sb3 = PPO.load(agent_dir / "agent.zip", device="cpu")
    expected, _ = sb3.predict(obs.numpy(), deterministic=True)
    actions = agent.act(obs)
    assert actions.shape == (5, 3) and actions.dtype == torch.float32
    np.testing.assert_allclose(actions.numpy(), expected, rtol=0, atol=1e-6)
    low, high = model.action_space.low, model.action_space.high
    assert (actions.numpy() >= low).all() and (actions.numpy() <= high).all()


def test_a_rerun_resumes_to_the_target_and_refuses_other_settings(agent_dir, car_bundle, tmp_path):
    out = tmp_path / "agent"
    shutil.copytree(agent_dir, out)
    first = (out / "agent.zip").read_bytes()
    _, meta = train_agent(car_bundle, out, "debug", {**DEBUG, "timesteps": 256}, "cpu", False)
    assert meta["timesteps"] == 256 and (out / "agent.zip").read_bytes() != first
    assert sorted(p.name for p in (out / "tb").iterdir()) == ["ppo_1"]  # one curve, continued
    before = snapshot(out)
    # Another checkpoint interval is no other training: accepted.
    again_settings = {**DEBUG, "timesteps": 256, "checkpoint_every": 32}
    _, again = train_agent(car_bundle, out, "debug", again_settings, "cpu", False)
    assert again["timesteps"] == 256
    unlocked = lambda files: {p: b for p, b in files.items() if p.name != ".dreamgym.lock"}  # noqa: E731
    assert unlocked(snapshot(out)) == unlocked(before)  # already there: nothing trained
    with pytest.raises(DreamgymError, match=r"other settings \(num_envs\)"):
        train_agent(car_bundle, out, "debug", {**DEBUG, "num_envs": 4}, "cpu", False)
    assert unlocked(snapshot(out)) == unlocked(before)


def test_the_agent_is_evaluated_in_the_dream_and_in_the_real_game(ray_local, agent_dir, capsys):
    dream = evaluate_controller(agent_dir, 4, "dream", max_episode_steps=10, seed=3)
    assert dream.shape == (4,) and np.isfinite(dream).all()
    np.testing.assert_array_equal(
        dream, evaluate_controller(agent_dir, 4, "dream", max_episode_steps=10, seed=3)
    )
    real = evaluate_controller(agent_dir, 2, "real", max_episode_steps=10, workers=1,
                               progress=True)  # fmt: skip
    assert real.shape == (2,) and np.isfinite(real).all()
    assert "evaluate agent (real): 2/2 ep (100%)" in capsys.readouterr().err


def test_the_agent_renders_in_the_dream_and_beside_the_real_game(agent_dir, car_bundle, tmp_path):
    agent, _ = load_agent(agent_dir)
    frames = iio.imread(render_video(car_bundle, tmp_path / "dream.mp4", agent, steps=6, size=64))
    assert frames.shape[1:] == (64, 64, 3) and 2 <= len(frames) <= 7
    compare = iio.imread(render_video(car_bundle, tmp_path / "compare.mp4", agent, compare=True,
                                      steps=6, size=64))  # fmt: skip
    assert compare.shape == (7, 64, 3 * 64, 3)


def test_the_agent_collects_real_episodes_through_its_world_model(
    ray_local, agent_dir, car_bundle, tmp_path
):
    out = tmp_path / "data"
    collect(CollectConfig(env="carracing", episodes=1, out=out, policy=str(agent_dir),
                          max_episode_steps=5), progress=False)  # fmt: skip
    dataset = RolloutDataset(out)
    assert dataset.meta["policy"] == str(agent_dir.resolve())
    episode = dataset.episode(0)
    agent, _ = load_agent(agent_dir)
    model = worldmodels.load(car_bundle)
    first = agent.act(model.features(model.encode(torch.tensor(episode.frames[:1])), "zh"))
    np.testing.assert_allclose(episode.actions[0], first[0].numpy(), rtol=0, atol=1e-5)

    noisy = agent_policy(agent_dir, noise=0.3)
    assert isinstance(noisy, SB3AgentPolicy) and noisy.label.endswith(" noise=0.3")
    frames = episode.frames[:4]
    runs = []
    for _ in range(2):
        noisy.reset(7)
        runs.append(np.stack([noisy.act(f) for f in frames]))
    np.testing.assert_array_equal(runs[0], runs[1])  # seeded per episode
    assert np.abs(runs[0] - episode.actions[:4]).max() > 0.01  # the noise moved the actions
    low, high = model.action_space.low, model.action_space.high
    assert (runs[0] >= low).all() and (runs[0] <= high).all()


def test_export_refuses_an_agent(agent_dir, car_bundle, tmp_path):
    from dreamgym.export import export_bundle

    with pytest.raises(DreamgymError, match="is an SB3 agent; export shares linear controllers"):
        export_bundle(car_bundle, tmp_path / "export", agent_dir)
    assert list(tmp_path.iterdir()) == []


def _foreign_agents(agent_dir, tmp_path):
    """Agent directories whose zip is damaged or not an SB3 model of their world model."""
    pendulum = gym.make("Pendulum-v1")
    cases = {}

    def make(name, zip_bytes=None, meta=None):
        root = tmp_path / name
        shutil.copytree(agent_dir, root, ignore=shutil.ignore_patterns("tb", "*.lock"))
        if zip_bytes is not None:
            (root / "agent.zip").write_bytes(zip_bytes)
        if meta is not None:
            (root / "agent.json").write_text(meta)
        return root

    raw = (agent_dir / "agent.zip").read_bytes()
    cases["truncated"] = (make("truncated", raw[: len(raw) // 2]), "is not a stable-baselines3")
    cases["junk"] = (make("junk", b"not a zip at all"), "is not a stable-baselines3 PPO model")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    cases["other zip"] = (make("other", (tmp_path / "other.zip").read_bytes()),
                          "is not a stable-baselines3 PPO model")  # fmt: skip
    SAC("MlpPolicy", pendulum, policy_kwargs={"net_arch": [4]}).save(tmp_path / "sac.zip")
    cases["another algo"] = (make("sac", (tmp_path / "sac.zip").read_bytes()),
                             "is not a stable-baselines3 PPO model")  # fmt: skip
    PPO("MlpPolicy", pendulum, policy_kwargs={"net_arch": [4]}).save(tmp_path / "pend.zip")
    cases["another env"] = (make("pendulum", (tmp_path / "pend.zip").read_bytes()),
                            "ppo agent does not fit the world model")  # fmt: skip
    cases["bad json"] = (make("json", meta="{not json"), "agent file")
    meta = json.loads((agent_dir / "agent.json").read_text())
    cases["other kind"] = (make("kind", meta=json.dumps({**meta, "kind": "keras"})),
                           "is of kind 'keras', not a saved SB3 agent")  # fmt: skip
    return cases


def test_a_corrupt_or_foreign_zip_is_a_one_line_error(agent_dir, tmp_path, capsys):
    for name, (root, message) in _foreign_agents(agent_dir, tmp_path).items():
        before = snapshot(tmp_path)
        argv = ["evaluate", "--controller", str(root), "--backend", "dream", "--episodes", "2",
                "--device", "cpu", "--quiet"]  # fmt: skip
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (name, err)
        assert err.startswith("dreamgym evaluate: error: ")
        assert snapshot(tmp_path) == before, name
    root, _ = _foreign_agents(agent_dir, tmp_path / "again")["junk"]
    with pytest.raises(CorruptFileError, match="ValueError"):
        SB3Agent.load(root)


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_last_checkpoint(car_bundle, tmp_path):
    out = tmp_path / "agent"
    command = [sys.executable, "-m", "dreamgym.cli", "train", "agent", "--world-model",
               str(car_bundle), "--out", str(out), "--preset", "debug", "--max-steps", "10",
               "--checkpoint-every", "128", "--device", "cpu", "--quiet"]  # fmt: skip
    proc = subprocess.Popen([*command, "--timesteps", "1000000"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "agent.json").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, "the training ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.5)  # a few more checkpoints
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = json.loads((out / "agent.json").read_text())["timesteps"]
    zipped = PPO.load(out / "agent.zip", device="cpu").num_timesteps
    assert 128 <= saved <= zipped < 1_000_000 and zipped % 128 == 0  # whole rollouts
    result = subprocess.run([*command, "--timesteps", str(zipped + 128)], capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"trained ppo agent for {zipped + 128} dream steps" in result.stdout
    assert json.loads((out / "agent.json").read_text())["timesteps"] == zipped + 128
