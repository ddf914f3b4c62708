"""A planner's goal-reaching report on disk (``dreamgym plan``): pairs held out from the world
model's training, the planner beside the random policy and a replay oracle on them, and
``plan.json``, ``plan.md`` and videos (agent | goal) in one directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.agents.goals import (
    BUDGET,
    GOAL_OFFSET,
    PAIR_SEED,
    PAIRS,
    OraclePolicy,
    UniformPolicy,
    evaluate_goal_reaching,
    markdown,
    pair_set,
)
from dreamgym.agents.planning import Planner, PlannerConfig, PlannerPolicy
from dreamgym.common import validate
from dreamgym.common.device import resolve_device
from dreamgym.common.io import atomic_write_bytes, atomic_write_json
from dreamgym.common.pretrained import output_beside
from dreamgym.errors import DreamgymError


@dataclass(frozen=True)
class PlanReport:
    """What :func:`plan_report` measured and wrote.

    Attributes:
        report: the contents of ``plan.json`` (see ``evaluate_goal_reaching``, plus the
            planner's settings under ``"planner"``).
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
        data: held-out episodes with states (default: see ``goals.pair_set``).
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
    report["planner"] = {**dataclasses.asdict(config),
                         "proprio_weight": getattr(model, "proprio_weight", None)}  # fmt: skip
    atomic_write_json(out / "plan.json", report)
    title = f"Goal reaching: {model.env}, {model.info.get('source', world_model)}"
    atomic_write_bytes(out / "plan.md", markdown(report, title).encode())
    return PlanReport(report, out, written)
