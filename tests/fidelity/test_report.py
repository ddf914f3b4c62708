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
from dreamgym.fidelity.measure import expected_ends, follow_real_episodes
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
    # It decodes the real frames themselves: no blur, and it predicts better than copying.
    assert report["openloop"]["frame_error_recon_mean"] == 0.0
    assert report["openloop"]["frame_error_mean_frame_mean"] > 0.0
    assert report["verdicts"][-1].startswith("open loop") and report["verdicts"][-1].endswith("OK")
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
        # The line leads with the quantity that decided it.
        lead = {"return": "dream return", "survival": "dream survival", None: "dream survival"}
        assert s["verdict"].startswith(f"{s['name']}: {lead[s['decided_by']]} ")
        assert (s["decided_by"] is None) == s["ok"] == s["verdict"].endswith("OK")
    assert printed.splitlines()[-1] == f"real episodes in {out / 'real'}"
    wrote = f"wrote {out / 'fidelity.md'}, {out / 'fidelity.json'}, {out / 'survival.png'}"
    assert wrote in printed
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


def test_the_ends_a_dream_expects_along_real_episodes(doom_data):
    """A dream that foresees every death expects exactly the real episodes' own endings (1 for a
    death, 0 for the cap); one whose done head says half as much expects half; and the
    survival row says so per real death."""

    class Following(ReplayWorldModel):  # follows the real episode by count, not by its frames
        def advance(self, state, action, frames):
            return self.step(state, action)

    model = Following(doom_data, {"env": "doom-takecover", "data": str(doom_data)})
    dataset = RolloutDataset(doom_data)
    episodes = [dataset.episode(i) for i in range(len(dataset))]
    real = np.array([float(e.terminated) for e in episodes])
    np.testing.assert_array_equal(expected_ends(model, episodes), real)
    np.testing.assert_allclose(expected_ends(model, episodes, lambda p: p / 2), real / 2)

    ends = {"expected_ends": np.array([0.25, 0.5]), "real_terminated": [True, True]}
    row = _survival_row("controller", [100], [100.0], [50, 60], [50.0, 60.0], **ends)
    assert row["ends_along_real"] == {"expected": 0.75, "observed": 2}
    assert row["verdict"].endswith("; the dream expects 0.38 ends per real death along them "
                                   "(0.8 for 2): EXPLOITABLE")  # fmt: skip
    row = _survival_row("probe", [100], [100.0], [100], [100.0], expected_ends=np.array([0.1]))
    assert "the dream expects 0.1 ends along them, the game had none: OK" in row["verdict"]
    assert _survival_row("probe", [100], [100.0], [100], [100.0])["ends_along_real"] is None


def _survival_row(name, dream_lengths, dream_returns, real_lengths, real_returns,
                  expected_ends=None, real_terminated=None):  # fmt: skip
    from dreamgym.fidelity.measure import DreamEpisodes
    from dreamgym.fidelity.summary import survival_entry

    dream = DreamEpisodes(np.array(dream_lengths), np.array(dream_returns, np.float64),
                          np.zeros(len(dream_lengths), bool))  # fmt: skip
    if real_terminated is None:
        real_terminated = np.zeros(len(real_lengths), bool)
    return survival_entry(name, dream, np.array(real_lengths), np.array(real_returns),
                          np.array(real_terminated), "probe", expected_ends)  # fmt: skip


def test_each_verdict_leads_with_the_quantity_that_decided_it():
    """The issue's two contradictory lines: a probe whose survival matches but whose return
    does not, and a done head whose ECE passes but whose summed deaths do not."""
    from dreamgym.fidelity import THRESHOLDS, verdicts

    gas = _survival_row("probe 'full gas'", [100, 100], [1.0, 1.2], [100, 100], [84.0, 84.2])
    assert gas["decided_by"] == "return" and not gas["ok"]
    assert gas["verdict"] == (
        "probe 'full gas': dream return 1.1 vs 84.1 real (need within +-25%); survival 1.00x "
        "real (100 vs 100 steps): TOO HARSH"
    )
    long = _survival_row("probe 'left'", [300, 300], [10.0, 10.0], [100, 100], [10.0, 10.0])
    assert long["decided_by"] == "survival"
    assert long["verdict"].startswith("probe 'left': dream survival 3.00x real (300 vs 100 "
                                      "steps) (need within +-25%); return")  # fmt: skip
    assert long["verdict"].endswith("EXPLOITABLE")
    same = _survival_row("idle", [100, 100], [5.0, 5.0], [100, 100], [5.0, 5.0])
    assert same["ok"] and same["decided_by"] is None and same["verdict"].endswith("OK")

    nan = float("nan")
    report = {
        "thresholds": THRESHOLDS, "survival": [gas],
        "done": {"deaths": 0, "steps": 8000, "ece": 0.011, "predicted_deaths": 0.83,
                 "observed_deaths": 0.0},
        "reward": {"episode_mae": 14.4, "episode_bias": -14.4, "real_return_mean": -40.2},
        "openloop": {"horizons": 100, "latent_error_mean": 0.4, "latent_error_copy_mean": 1.1,
                     "frame_error_recon_mean": 0.003, "frame_error_mean_frame_mean": 0.01,
                     "frame_error_mean": nan},
    }  # fmt: skip
    lines = verdicts(report)
    assert lines[2] == ("done calibration: 0.83 deaths per episode predicted along real episodes "
                        "vs 0.00 observed (need within +-25%); ECE 0.011 (need <= 0.05): "
                        "MISCALIBRATED")  # fmt: skip
    assert lines[3] == ("reward head: episode-sum error 14.4 (need <= 10.1, 25% of the real mean "
                        "return -40.2; bias -14.4): OFF")  # fmt: skip
    assert lines[4].startswith("open loop (1..100 steps): latent error 0.400 vs 1.100 copying")
    assert lines[4].endswith("(need below both): OK")
    report["done"].update(ece=0.2, predicted_deaths=1.0, observed_deaths=1.0)
    assert verdicts(report)[2].startswith("done calibration: ECE 0.200 (need <= 0.05); ")


def _blur_loader(root, info, device):
    """The real V+M of a bundle whose V decodes every frame to one blur: the per-pixel mean
    frame of its training data (the best a constant can do)."""
    from dreamgym.worldmodels.vm.model import load_vm

    model = load_vm(root, info, device)
    frames = RolloutDataset(info["training"]["data"]).frames()
    blur = torch.from_numpy(frames.mean(0).round().astype(np.uint8))
    model.decode = lambda state: blur.expand(len(state.z), *blur.shape).clone()
    return model


worldmodels.register_world_model_kind("test-blur", _blur_loader)


def test_a_v_that_decodes_everything_to_one_blur_is_not_ok(doom_bundle, doom_data, tmp_path):
    import shutil

    bundle = tmp_path / "blur"
    shutil.copytree(doom_bundle, bundle, ignore=shutil.ignore_patterns("tb", "fidelity"))
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "kind": "test-blur"}))
    config = FidelityConfig(dream_episodes=8, held_out=3, horizon=10, probes=False,
                            max_episode_steps=30)  # fmt: skip
    report = FidelityReport(bundle, data=doom_data, config=config, progress=False).run()
    o = report["openloop"]
    assert o["frame_error_recon_mean"] >= o["frame_error_mean_frame_mean"] > 0
    line = report["verdicts"][-1]
    assert line.startswith("open loop (1..10 steps): V's reconstruction error ")
    assert "(need below it); latent error" in line
    assert line.endswith("V NO BETTER THAN A BLUR") and not report["ok"]
    # The real V of the same bundle is judged on its own reconstructions.
    real = FidelityReport(doom_bundle, tmp_path / "real", data=doom_data, config=config,
                          progress=False).run()  # fmt: skip
    assert real["openloop"]["frame_error_recon_mean"] != o["frame_error_recon_mean"]


def test_survival_plot_shows_returns_side_by_side_when_every_episode_hits_the_cap(
    car_bundle, car_data, tmp_path
):
    """CarRacing episodes only end at the cap: the lengths say nothing, the returns do."""
    from dreamgym.fidelity.plots import plot_survival

    config = FidelityConfig(dream_episodes=8, held_out=3, horizon=5, probes=False,
                            max_episode_steps=20)  # fmt: skip
    report = FidelityReport(car_bundle, tmp_path / "f", data=car_data, config=config,
                            progress=False).run()  # fmt: skip
    (row,) = report["survival"]
    assert set(row["lengths"]["dream"] + row["lengths"]["real"]) == {20}
    assert len(row["returns"]["dream"]) == 8 and len(row["returns"]["real"]) == 3
    (ax,) = plot_survival(report).axes
    assert ax.get_xlabel() == "episode return"
    assert "every episode ran to the 20-step cap" in ax.get_title()
    real_bars, dream_bars = ax.containers
    for a, b in zip(real_bars.patches, dream_bars.patches, strict=True):  # never one on the other
        assert a.get_x() + a.get_width() <= b.get_x() + 1e-9
    assert (tmp_path / "f" / "survival.png").stat().st_size > 0


def test_shipped_model_fidelity_collects_its_own_held_out_episodes(tmp_path, ray_local, capsys,
                                                                   monkeypatch):  # fmt: skip
    """`pretrained:NAME` as world model and as controller, no --data: the report collects
    held-out real episodes itself, from a seed no training data uses, the same on every run."""
    from dreamgym.fidelity.report import HELD_OUT_SEED

    monkeypatch.chdir(tmp_path)
    argv = ["fidelity", "--world-model", "pretrained:doom-takecover", "--controller",
            "pretrained:doom-takecover", "--episodes", "4", "--real-episodes", "1",
            "--held-out", "2", "--horizon", "5", "--max-steps", "15", "--no-probes",
            "--workers", "1"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    out = Path("doom-takecover") / "fidelity"
    assert "no --data was given: collecting 2 held-out real episodes of the repeat policy " \
           f"(seed {HELD_OUT_SEED})" in captured.out  # fmt: skip
    assert "fidelity held-out real episodes: 2/2 ep (100%)" in captured.err
    assert "fidelity controller pretrained:doom-takecover (real): 1/1 ep" in captured.err
    report = json.loads((out / "fidelity.json").read_text())
    assert report["held_out"] == {
        "source": "collected", "policy": "repeat", "seed": HELD_OUT_SEED,
        "reason": "the bundle's training data ('data') is not here",
    }  # fmt: skip
    assert report["world_model"] == "pretrained:doom-takecover"
    assert report["survival"][1]["name"] == "controller pretrained:doom-takecover"
    assert "collected by this report" in (out / "fidelity.md").read_text()
    seeds = [json.loads(x)["seed"] for x in (out / "real" / "held-out" / "manifest.jsonl")
             .read_text().splitlines()]  # fmt: skip
    from dreamgym.rollouts.collect import episode_seed

    assert seeds == [episode_seed(HELD_OUT_SEED, i) for i in range(2)]
    # A controller named by its controller.json is the same controller.
    again = tmp_path / "again"
    argv += ["--out", str(again), "--quiet", "--controller",
             str(Path(__file__).parents[2] / "dreamgym/pretrained/doom-takecover/controller/"
                 "controller.json")]  # fmt: skip
    assert main(argv) == 0
    twice = json.loads((again / "fidelity.json").read_text())
    assert twice["data"] != report["data"]
    assert [json.loads(x)["seed"] for x in (again / "real" / "held-out" / "manifest.jsonl")
            .read_text().splitlines()] == seeds  # fmt: skip
    names = [s["name"] for s in twice["survival"][1:]]
    assert names == ["controller pretrained:doom-takecover"] * 2
    assert twice["survival"][1]["lengths"]["real"] == twice["survival"][2]["lengths"]["real"]


def test_fidelity_errors_about_data_and_controllers_say_what_to_pass(doom_bundle, tmp_path,
                                                                     capsys):  # fmt: skip
    status = main(["fidelity", "--world-model", str(doom_bundle), "--data",
                   str(tmp_path / "nowhere"), "--out", str(tmp_path / "never")])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert "is not a rollout dataset" in err and "pass --data DIR" in err
    status = main(["fidelity", "--world-model", str(doom_bundle), "--controller",
                   str(tmp_path), "--out", str(tmp_path / "never")])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and f"controller {str(tmp_path)!r} is not a saved controller" in err
    assert not (tmp_path / "never").exists()
