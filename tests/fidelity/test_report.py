"""Fidelity reports end to end: a perfect replaying dream is judged faithful; a real tiny bundle
goes through the CLI with probes and a controller, in the dream and in the real game."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamgym import worldmodels
from dreamgym.agents import Controller, ControllerSpec
from dreamgym.cli import main
from dreamgym.fidelity import FidelityConfig, FidelityReport, metrics
from dreamgym.fidelity.measure import follow_real_episodes
from dreamgym.rollouts import RolloutDataset


@dataclass
class ReplayState:
    episode: torch.Tensor  # (N,) long
    t: torch.Tensor  # (N,) long


class ReplayWorldModel:
    """A perfect "dream" of a dataset: it replays recorded real episodes, whatever the actions.

    Implements the world-model protocol with a few tensor ops; its latent is the frame averaged
    over 8 x 8 pixel blocks.
    """

    def __init__(self, root: Path, info: dict, device="cpu") -> None:
        dataset = RolloutDataset(info["data"])
        episodes = [dataset.episode(i) for i in range(len(dataset))]
        self.env, self.info, self.device = info["env"], info, torch.device(device)
        self.action_space = gym.spaces.Box(np.float32(-1), np.float32(1), (1,))
        self.lengths = torch.tensor([e.length for e in episodes])
        self.terminated = torch.tensor([e.terminated for e in episodes])
        t_max = int(self.lengths.max())
        self.frames = torch.zeros(len(episodes), t_max + 1, 64, 64, 3, dtype=torch.uint8)
        self.rewards = torch.zeros(len(episodes), t_max)
        self.where: dict[bytes, tuple[int, int]] = {}
        for i, e in enumerate(episodes):
            self.frames[i, : e.length + 1] = torch.from_numpy(e.frames)
            self.rewards[i, : e.length] = torch.from_numpy(e.rewards)
            for t, frame in enumerate(e.frames):
                self.where.setdefault(frame.tobytes(), (i, t))

    feature_modes = ("pooled",)
    step_options = ()

    def feature_size(self, mode=None) -> int:
        return 192

    def initial_state(self, n, generator=None) -> ReplayState:
        pick = torch.randint(len(self.lengths), (n,), generator=generator)
        return ReplayState(pick, torch.zeros(n, dtype=torch.long))

    def step(self, state, action, generator=None, **options):
        return ReplayState(state.episode, torch.minimum(state.t + 1, self.lengths[state.episode]))

    def reward_done(self, state):
        e, t = state.episode, state.t
        reward = torch.where(t > 0, self.rewards[e, (t - 1).clamp(min=0)], 0.0)
        return reward, ((t > 0) & (t == self.lengths[e]) & self.terminated[e]).float()

    def features(self, state, mode=None) -> torch.Tensor:
        frames = self.frames[state.episode, state.t].float() / 255
        return frames.view(-1, 8, 8, 8, 8, 3).mean((2, 4)).reshape(len(frames), -1)

    def decode(self, state) -> torch.Tensor:
        return self.frames[state.episode, state.t]

    def encode(self, frames) -> ReplayState:
        found = [self.where[f.numpy().tobytes()] for f in frames]
        return ReplayState(*(torch.tensor(x) for x in zip(*found, strict=True)))

    def advance(self, state, action, frames) -> ReplayState:
        return self.encode(frames)


worldmodels.register_world_model_kind("test-replay", ReplayWorldModel)


def test_a_replaying_dream_is_faithful(doom_data, tmp_path):
    bundle = tmp_path / "replay"
    bundle.mkdir()
    meta = RolloutDataset(doom_data).meta
    (bundle / "bundle.json").write_text(json.dumps({
        "kind": "test-replay", "env": "doom-takecover", "data": str(doom_data),
        "max_episode_steps": meta["max_episode_steps"], "frame_skip": 1,
    }))  # fmt: skip
    config = FidelityConfig(dream_episodes=300, held_out=3, horizon=20, probes=False)
    report = FidelityReport(bundle, data=doom_data, config=config, progress=False).run()
    (survival,) = report["survival"]
    assert survival["ok"], survival["verdict"]
    assert survival["ks_length"] < 0.25
    assert report["reward"]["episode_mae"] == pytest.approx(0.0, abs=1e-4)
    if report["done"]["deaths"]:
        assert report["done"]["auroc_k1"] == 1.0
        # The replay foresees every death: its 10-step chance is 1 exactly within 10 steps of
        # one. The next-step probability alone misses the 9 steps before each death.
        assert report["done"]["auroc_k10"] == 1.0
        assert report["done"]["auroc_k10_next_step_score"] < 1.0
        assert report["done"]["fires_at_death"] == 1.0
    assert report["done"]["false_alarms"] == 0.0
    assert any("reward head" in v and v.endswith("OK") for v in report["verdicts"])
    for name in ("fidelity.json", "fidelity.md", "survival.png", "reliability.png", "openloop.png"):
        assert (bundle / "fidelity" / name).stat().st_size > 0


@pytest.mark.slow
def test_fidelity_cli_with_probes_and_a_controller(doom_bundle, doom_data, tmp_path, ray_local,
                                                   capsys):  # fmt: skip
    model = worldmodels.load(doom_bundle)
    controller = Controller(ControllerSpec.for_world_model(model), np.full(
        ControllerSpec.for_world_model(model).num_params, 0.05, np.float32))  # fmt: skip
    controller.save(tmp_path / "c", doom_bundle)
    out = tmp_path / "report"
    status = main([
        "fidelity", "--world-model", str(doom_bundle), "--data", str(doom_data),
        "--controller", str(tmp_path / "c"), "--episodes", "16", "--real-episodes", "2",
        "--held-out", "3", "--horizon", "10", "--max-steps", "30", "--out", str(out), "--quiet",
        "--workers", "1",
    ])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "fidelity.json").read_text())
    names = [s["name"] for s in report["survival"]]
    assert names[0] == "repeat (collection policy)"
    assert [s["kind"] for s in report["survival"]] == ["collection"] + ["probe"] * 3 + [
        "controller"
    ]
    for s in report["survival"]:
        assert 1 <= s["dream"]["length"]["mean"] <= 30 and 1 <= s["real"]["length"]["mean"] <= 30
        assert s["verdict"] in printed
    assert len(report["verdicts"]) == 5 + 4
    assert report["openloop"]["horizons"] == 10
    assert (out / "real" / "probe-strafe-left").is_dir()
    # Re-running finds the real episodes already collected (resumable) and gives the same report.
    assert main(["fidelity", "--world-model", str(doom_bundle), "--data", str(doom_data),
                 "--controller", str(tmp_path / "c"), "--episodes", "16", "--real-episodes",
                 "2", "--held-out", "3", "--horizon", "10", "--max-steps", "30", "--out",
                 str(out), "--quiet"]) == 0  # fmt: skip
    again = json.loads((out / "fidelity.json").read_text())
    assert again["survival"] == report["survival"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--episodes", "0"], "dream_episodes must be an integer >= 1"),
        (["--temperature", "-1"], "temperature"),
        (["--policy", "nonsense"], "not a built-in one"),
    ],
)
def test_fidelity_bad_input(doom_bundle, doom_data, tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    status = main(["fidelity", "--world-model", str(doom_bundle), "--data", str(doom_data),
                   "--out", str(out), *extra])  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_the_chance_of_ending_within_k_steps_is_the_dreams_own(doom_data):
    """A dream that foresees every death (the replay, each episode ending in one) scores each
    step by whether a death lies within 10 steps: AUROC 1. The next-step probability alone
    ranks only the last step of each episode above the rest."""

    class Following(ReplayWorldModel):  # follows the real episode by count, not by its frames
        def advance(self, state, action, frames):  # (a frame can repeat within an episode)
            return self.step(state, action)

    model = Following(doom_data, {"env": "doom-takecover", "data": str(doom_data)})
    model.terminated[:] = True
    dataset = RolloutDataset(doom_data)
    episodes = [replace(dataset.episode(i), terminated=True) for i in range(len(dataset))]
    follow = follow_real_episodes(model, episodes, 1.0, horizon=5, done_k=[10])
    lengths, terminated = np.array([e.length for e in episodes]), np.ones(len(episodes), bool)
    labels = np.concatenate(metrics.ends_within(lengths, terminated, 10))
    within = np.concatenate(follow.ends_within[10])
    np.testing.assert_array_equal(within, labels.astype(np.float32))
    assert metrics.auroc(within, labels) == 1.0
    assert metrics.auroc(np.concatenate(follow.done_prob), labels) < 0.6
