"""A planner's goal-reaching report on disk (``dreamgym plan``): pairs held out from the world
model's training, the planner beside the random policy and a replay oracle on them, and
``plan.json``, ``plan.md`` and videos (agent | goal) in one directory; the report in a few
lines (:func:`summary_lines`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.agents.goal_pairs import BUDGET, GOAL_OFFSET, PAIR_SEED, PAIRS, pair_set
from dreamgym.agents.goals import OraclePolicy, UniformPolicy, evaluate_goal_reaching
from dreamgym.agents.planning import Planner, PlannerConfig, PlannerPolicy
from dreamgym.common import validate
from dreamgym.common.device import resolve_device
from dreamgym.common.io import atomic_write_bytes, atomic_write_json
from dreamgym.common.pretrained import describe, output_beside, resolve_path
from dreamgym.errors import DreamgymError


@dataclass(frozen=True)
class PlanReport:
    """What :func:`plan_report` measured and wrote.

    Attributes:
        report: the contents of ``plan.json`` (see ``evaluate_goal_reaching``, plus the
            planner's settings and seed under ``"planner"`` and the world model's absolute
            path, or ``pretrained:NAME``, under ``"world_model"``).
        out: the report directory.
        videos: the videos written (agent | goal), per policy the first pairs.
    """

    report: dict[str, Any]
    out: Path
    videos: list[Path]

    @property
    def files(self) -> list[Path]:
        """``plan.json`` and ``plan.md``."""
        return [self.out / "plan.json", self.out / "plan.md"]


def plan_report(
    world_model: str | Path,
    config: PlannerConfig,
    out: str | Path | None = None,
    *,
    data: str | Path | None = None,
    pairs: int = PAIRS,
    offset: int = GOAL_OFFSET,
    pair_seed: int = PAIR_SEED,
    budget: int = BUDGET,
    seed: int = 0,
    proprio_weight: float | None = None,
    videos: int = 0,
    baselines: bool = True,
    workers: int | None = None,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> PlanReport:
    """Measure how often planning with ``config`` in ``world_model`` reaches recorded goals in
    the real env, and write the report.

    Args:
        world_model: a bundle with a goal cost, or ``pretrained:NAME``.
        config: the planner's settings (``dreamgym.presets.preset("planner", ...)``).
        out: the report directory (default: ``WORLD_MODEL/plan``; ``./NAME/plan`` for
            ``pretrained:NAME``).
        data: held-out episodes with states (default: see ``goal_pairs.pair_set``).
        pairs, offset, pair_seed: the start/goal pairs, their goals' steps ahead, their seed.
        budget: env steps per pair.
        seed: the planner's seed (pair k plans with ``seed + k``).
        proprio_weight: the proprio term's weight in a latent model's goal cost (None: the
            model's).
        videos: pairs filmed per policy.
        baselines: also score the random policy and the replay oracle.
        workers: Ray workers collecting held-out episodes (default: ``pair_set``'s).
        device: the torch device of the world model.
        progress: called with a line after each pair.
        warn: called with a line when the pairs are the model's training pairs.

    Raises:
        DreamgymError: a bad value, a world model without a goal cost, or a proprio weight for
            a model without proprio; each before anything is written.
    """
    from dreamgym.dreams.video import write_video
    from dreamgym.rollouts import RolloutDataset
    from dreamgym.worldmodels import load

    if proprio_weight is not None:
        validate.real("proprio weight", proprio_weight, 0.0)
    validate.integer("budget", budget)
    model = load(world_model, resolve_device(device))
    Planner(model, config)  # refuses a model without a goal cost before any work
    if proprio_weight is not None:
        if not hasattr(model, "proprio_weight"):
            raise DreamgymError("a proprio weight needs a latent world model trained with proprio")
        model.proprio_weight = proprio_weight
    out = Path(out or output_beside(world_model, "plan"))
    chosen = pair_set(model.info, pairs=pairs, offset=offset, seed=pair_seed, data=data,
                      collect_to=out, progress=progress is not None,
                      **({} if workers is None else {"workers": workers}))  # fmt: skip
    if not chosen.held_out and warn is not None:
        warn(f"planning on training pairs ({chosen.note})")
    dataset = RolloutDataset(chosen.data)
    low, high = model.action_space.low, model.action_space.high
    real = len(model.info["action_low"])

    policies = {"planner": lambda k, pair: PlannerPolicy(
        model, config, pair.goal_frame, seed=seed + k, budget=budget,
        goal_proprio=pair.goal_proprio)}  # fmt: skip
    if baselines:
        policies["random"] = lambda k, pair: UniformPolicy(low[:real], high[:real], seed + k)
        policies["oracle"] = lambda k, pair: OraclePolicy(
            dataset.episode(pair.episode).actions[pair.start : pair.start + pair.offset]
        )
    report = evaluate_goal_reaching(model.env, chosen, policies, pairs=pairs, offset=offset,
                                    budget=budget, seed=pair_seed, videos=videos,
                                    progress=progress)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, result in report["policies"].items():
        for k, r in enumerate(result["results"]):
            frames = r.pop("frames")
            if frames:
                goal = dataset.episode(r["episode"]).frames[r["start"] + offset]
                written.append(write_video([np.concatenate([f, goal], axis=1) for f in frames],
                                           out / f"{name}-{k}.mp4", fps=10))  # fmt: skip
    report["planner"] = {**dataclasses.asdict(config), "seed": seed,
                         "proprio_weight": getattr(model, "proprio_weight", None)}  # fmt: skip
    report["world_model"] = describe(resolve_path(world_model).resolve())
    atomic_write_json(out / "plan.json", report)
    title = f"Goal reaching: {model.env}, {model.info.get('source', world_model)}"
    atomic_write_bytes(out / "plan.md", markdown(report, title).encode())
    return PlanReport(report, out, written)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report in a few lines for the terminal: the pair set (a warning for training
    pairs), their difficulty, and per policy the success rate and its breakdown."""
    pairs = report["pair_set"]
    lines = [f"pairs: {pairs['kind']} ({pairs['note']})"]
    if not pairs["held_out"]:
        lines.insert(0, "warning: the goals come from the training episodes, so the success rate "
                     "is on goals the model trained on, not held-out ones")  # fmt: skip
    if report["difficulty"] is not None:
        bins = ", ".join(f"{b['range']}: {b['pairs']}" for b in report["difficulty"]["bins"])
        lines.append(f"difficulty: the object's median move from start to goal is "
                     f"{report['difficulty']['median_displacement']:.0f} px ({bins})")  # fmt: skip
    for name, result in report["policies"].items():
        low, high = result["interval"]
        line = (f"{name}: {result['successes']}/{report['pairs']} reached = "
                f"{result['rate']:.2f} (95% CI {low:.2f}-{high:.2f}), "
                f"{result['seconds_per_step']:.2f} s per env step")  # fmt: skip
        if result["by_displacement"] is not None:
            line += "; by move: " + ", ".join(f"{b['range']} {b['successes']}/{b['pairs']}"
                                              for b in result["by_displacement"])  # fmt: skip
        lines.append(line)
    return lines


def markdown(report: dict[str, Any], title: str) -> str:
    """``plan.md``: the protocol, the pair set, its difficulty and a table of the policies."""
    return "\n".join([f"# {title}", "", *report_lines(report)]) + "\n"


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report in markdown lines: the protocol, the pair set (held out or not, and where
    its episodes come from), its difficulty and :func:`policy_table`."""
    pairs = report["pair_set"]
    held = "held out" if pairs["held_out"] else "**training pairs: goals the model trained on**"
    text = [f"{report['pairs']} start/goal pairs (seed {report['seed']}), goals {report['offset']} "
            f"env steps ahead, {report['budget']} env steps per pair.", "",
            f"Pair set: **{pairs['kind']}** ({held}): {pairs['note']}.", ""]  # fmt: skip
    bins = [] if report["difficulty"] is None else report["difficulty"]["bins"]
    if report["difficulty"] is not None:
        counts = ", ".join(f"{b['range']}: {b['pairs']}" for b in bins)
        median = report["difficulty"]["median_displacement"]
        text += [f"Difficulty: the object's median move from start to goal is {median:.0f} px "
                 f"({counts}).", ""]  # fmt: skip
    return text + policy_table(report)


def policy_table(report: dict[str, Any]) -> list[str]:
    """The markdown table of a report's policies: successes with their 95% interval, successes
    by how far the object moves (where the env has a goal object), seconds per env step."""
    bins = [] if report["difficulty"] is None else report["difficulty"]["bins"]
    text = ["| policy | reached (95% CI) | " + "".join(f"{b['range']} | " for b in bins)
            + "s per env step |",
            "|---|---:|" + "---:|" * len(bins) + "---:|"]  # fmt: skip
    for name, result in report["policies"].items():
        low, high = result["interval"]
        cells = [f"{result['successes']}/{report['pairs']} = {result['rate']:.2f} "
                 f"({low:.2f}-{high:.2f})"]  # fmt: skip
        cells += [f"{b['successes']}/{b['pairs']}" for b in result["by_displacement"] or []]
        cells.append(f"{result['seconds_per_step']:.2f}")
        text.append(f"| {name} | " + " | ".join(cells) + " |")
    return text
