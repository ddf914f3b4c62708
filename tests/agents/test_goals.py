"""Held-out goals: which episodes the pairs come from (validation, user data, collected,
training), the collected set's seeds, and success by how far the goal moves the block."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dreamgym.agents.goal_pairs import PAIRS_PER_EPISODE, goal_pairs, pair_set
from dreamgym.agents.goals import by_displacement, displacement_bins
from dreamgym.rollouts import RolloutDataset
from dreamgym.rollouts.collect import episode_seed
from dreamgym.rollouts.store import read_manifest
from dreamgym.worldmodels.bundle import read_info

PLAN = ["--episodes", "3", "--preset", "debug", "--goal-offset", "10", "--budget", "10",
        "--videos", "0", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def latent(pusht_data, tmp_path_factory):
    """A debug latent model of Push-T trained on ``pusht_data`` (4 episodes, 1 held out)."""
    from dreamgym.worldmodels.latent.train import train_latent

    out = tmp_path_factory.mktemp("goals") / "latent"
    train_latent(pusht_data, out, preset="debug", device="cpu", progress=False, goal_offset=10,
                 proprio=True, epochs=1)  # fmt: skip
    return out


def without_validation(latent, root):
    """A copy of the bundle as an older one without recorded validation episodes."""
    shutil.copytree(latent, root)
    info = json.loads((root / "bundle.json").read_text())
    del info["training"]["validation"]
    (root / "bundle.json").write_text(json.dumps(info))
    return root


def plan(world_model, out, *extra):
    from dreamgym.cli import main

    assert main(["plan", "--world-model", str(world_model), "--out", str(out), *PLAN,
                 *extra]) == 0  # fmt: skip
    return json.loads((out / "plan.json").read_text())


def seeds(root):
    return {int(e["seed"]) for e in read_manifest(root).values()}


def test_the_bundle_records_its_split_and_how_its_data_was_collected(latent, pusht_data):
    training = read_info(latent)["training"]
    assert training["validation"]["data"] == str(pusht_data.resolve())
    assert len(training["validation"]["episodes"]) == 1  # 5% of 4 episodes, at least one
    meta = RolloutDataset(pusht_data).meta
    assert training["collection"] == [{"policy": "weak-expert", "seed": meta["seed"],
                                       "max_episode_steps": 60, "min_length": 0,
                                       "episodes": 4}]  # fmt: skip


def test_plan_defaults_to_the_trainers_validation_episodes(latent, tmp_path, capsys):
    report = plan(latent, tmp_path / "plan", "--no-baselines")
    held = read_info(latent)["training"]["validation"]["episodes"]
    assert report["pair_set"]["kind"] == "validation" and report["pair_set"]["held_out"]
    assert report["pair_set"]["episodes"] == held
    assert {r["episode"] for r in report["policies"]["planner"]["results"]} == set(held)
    out = capsys.readouterr().out
    assert "pairs: validation (the trainer's 1 validation episode of " in out
    assert "warning" not in out
    assert "Pair set: **validation** (held out)" in (tmp_path / "plan" / "plan.md").read_text()


def test_without_validation_episodes_plan_collects_held_out_ones_and_says_so(
    latent, pusht_data, tmp_path, capsys
):
    old = without_validation(latent, tmp_path / "old")
    report = plan(old, tmp_path / "plan", "--no-baselines")
    pairs = report["pair_set"]
    assert pairs["kind"] == "collected" and pairs["held_out"]
    assert pairs["note"].startswith(
        "the bundle records no validation episodes: 1 held-out episode "
    )
    assert "pairs: collected (the bundle records no validation episodes" in capsys.readouterr().out
    held_out = tmp_path / "plan" / "held-out-seed99"  # the pair seed, not the training data's 0
    assert pairs["data"] == str(held_out.resolve())
    assert len(RolloutDataset(held_out)) == 1 == -(-3 // PAIRS_PER_EPISODE)
    assert seeds(held_out).isdisjoint(seeds(pusht_data))


def test_the_collected_set_is_the_same_for_the_same_seed_and_outside_the_training_seeds(
    latent, tmp_path
):
    info = read_info(latent)
    # A bundle without its training data at hand (as a shipped one), whose data was collected
    # with the pair seed: only what the bundle records tells the training seeds.
    missing = str(tmp_path / "gone")
    info["training"].update(data=missing, datasets=[missing], validation=None)
    info["training"]["collection"][0]["seed"] = 99
    sets = [pair_set(info, 6, 10, seed=99, collect_to=tmp_path / name) for name in "ab"]
    assert sets[0].data.name == "held-out-seed100"  # the next seed up from the training data's
    assert len(RolloutDataset(sets[0].data)) == 2 and seeds(sets[0].data) == seeds(sets[1].data)
    assert seeds(sets[0].data).isdisjoint({episode_seed(99, i) for i in range(4)})
    assert RolloutDataset(sets[0].data).meta["policy"] == "weak-expert"
    drawn = [goal_pairs(RolloutDataset(s.data), 6, 10, 99, s.episodes, (2, 3)) for s in sets]
    for a, b in zip(*drawn, strict=True):
        assert (a.episode, a.start, a.displacement) == (b.episode, b.start, b.displacement)
        np.testing.assert_array_equal(a.goal_state, b.goal_state)
    other = pair_set(info, 6, 10, seed=7, collect_to=tmp_path / "c")
    assert seeds(other.data).isdisjoint(seeds(sets[0].data))


def test_with_too_few_validation_episodes_and_nowhere_to_collect_it_falls_back_to_training(
    latent, pusht_data
):
    chosen = pair_set(read_info(latent), pairs=PAIRS_PER_EPISODE + 1, offset=10)
    assert chosen.kind == "training" and not chosen.held_out
    assert chosen.data == pusht_data.resolve() and chosen.episodes is None
    assert chosen.note.startswith(
        "too few validation episodes with 10 steps for 6 pairs (1; one per 5 pairs needed); "
        "nowhere to collect held-out episodes: pairs from the training episodes"
    )
    assert pair_set(read_info(latent), pairs=PAIRS_PER_EPISODE, offset=10).kind == "validation"


def test_data_is_honoured_and_the_training_data_is_labelled_as_such(latent, pusht_data,
                                                                     tmp_path, capsys):  # fmt: skip
    info = read_info(latent)
    del info["training"]["validation"]
    other = pair_set(info, 3, 10, collect_to=tmp_path / "held").data
    report = plan(latent, tmp_path / "user", "--data", str(other), "--no-baselines")
    assert report["pair_set"]["kind"] == "user data" and report["data"] == str(other)
    assert "warning" not in capsys.readouterr().out
    report = plan(latent, tmp_path / "training", "--data", str(pusht_data), "--no-baselines")
    assert report["pair_set"]["kind"] == "training" and not report["pair_set"]["held_out"]
    out = capsys.readouterr().out
    assert "warning: planning on training pairs" in out
    assert "warning: the goals come from the training episodes" in out
    assert (
        "training pairs: goals the model trained on"
        in (tmp_path / "training" / "plan.md").read_text()
    )


def test_success_is_broken_down_by_how_far_the_block_moves():
    moved = [0.0, 14.99, 15.0, 30.0, 49.99, 50.0, 120.0]
    reached = [True, False, True, True, False, False, True]
    bins = by_displacement(moved, reached, (15.0, 50.0))
    assert [b["range"] for b in bins] == ["below 15 px", "15-50 px", "50 px and more"]
    assert [(b["pairs"], b["successes"]) for b in bins] == [(2, 1), (3, 2), (2, 1)]
    assert [(b["low"], b["high"]) for b in displacement_bins((15.0, 50.0))] == [
        (None, 15.0), (15.0, 50.0), (50.0, None)]  # fmt: skip


def test_the_report_breaks_every_policy_down_by_the_blocks_move(latent, pusht_data, tmp_path):
    report = plan(latent, tmp_path / "plan", "--data", str(pusht_data), "--episodes", "8")
    moved = [r["displacement"] for r in report["policies"]["planner"]["results"]]
    assert report["difficulty"]["median_displacement"] == pytest.approx(np.median(moved))
    assert sum(b["pairs"] for b in report["difficulty"]["bins"]) == 8
    data = RolloutDataset(pusht_data)
    for policy in report["policies"].values():
        bins = policy["by_displacement"]
        assert sum(b["pairs"] for b in bins) == 8
        assert sum(b["successes"] for b in bins) == policy["successes"]
        assert [b["pairs"] for b in bins] == [b["pairs"] for b in report["difficulty"]["bins"]]
        for r in policy["results"]:
            state = data.episode(r["episode"]).state
            block = state[r["start"] + 10][2:4] - state[r["start"]][2:4]
            assert r["displacement"] == pytest.approx(float(np.linalg.norm(block)))
    assert report["policies"]["oracle"]["successes"] == 8
    table = (tmp_path / "plan" / "plan.md").read_text()
    assert "| policy | reached (95% CI) | below 15 px | 15-50 px | 50 px and more |" in table
    assert "| oracle | 8/8 = 1.00" in table
