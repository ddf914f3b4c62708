"""``dreamgym plan``: goals reached by planning in a world model, measured the DINO-WM way."""

from __future__ import annotations

import argparse

from dreamgym.cli.common import (
    add_config_flags,
    config_values,
    default,
    given,
    parents,
    preset_values,
)
from dreamgym.presets import preset, preset_names


def add_parser(commands) -> None:
    from dreamgym.agents.plan_report import plan_report
    from dreamgym.agents.planning import (
        ENERGIES,
        PLANNER_FLAGS,
        PLANNER_RENAME,
        PLANNERS,
        PlannerConfig,
    )

    plan = commands.add_parser(
        "plan",
        parents=parents("device", "quiet", "threads"),
        help="reach goals by planning in a world model (CEM or MPPI + MPC), measured the "
        "DINO-WM way",
        description="Draws start/goal pairs from held-out recorded episodes (the goal: the "
        "state GOAL_OFFSET recorded steps later), plans with CEM or MPPI in the world model, "
        "acts in the real env for BUDGET steps, and reports the success rate beside the random "
        "policy and a replay oracle on the same pairs, overall and by how far the goal moves "
        "the block. Writes plan.json, plan.md and videos (agent | goal).",
    )
    plan.add_argument("--world-model", required=True, help="a bundle with a goal cost")
    plan.add_argument("--data", help="held-out episodes with states (default: the trainer's "
                      "validation episodes when there are enough and at hand, else episodes "
                      "that plan collects into OUT like the first training dataset, with a seed "
                      "outside the training data's)")  # fmt: skip
    plan.add_argument(
        "--episodes", type=int, help=f"start/goal pairs {default(plan_report, 'pairs')}"
    )
    plan.add_argument("--preset", default="cpu", choices=preset_names("planner"),
                      help="planner preset (default: cpu)")  # fmt: skip
    add_config_flags(plan, PlannerConfig, PLANNER_FLAGS, rename=PLANNER_RENAME,
                     choices={"method": PLANNERS, "energy": ENERGIES},
                     default=preset_values("planner"))  # fmt: skip
    plan.add_argument("--proprio-weight", type=float,
                      help="weight of the proprio term in a latent model's goal cost (default: 1, "
                      "DINO-WM's objective; docs/planning.md measures others)")  # fmt: skip
    plan.add_argument(
        "--budget",
        type=int,
        help=f"env steps per pair {default(plan_report, 'budget')}",
    )
    plan.add_argument(
        "--goal-offset", type=int, help=f"goal steps ahead {default(plan_report, 'offset')}"
    )
    plan.add_argument(
        "--pair-seed", type=int, help=f"seed of the pairs {default(plan_report, 'pair_seed')}"
    )
    plan.add_argument("--seed", type=int, help=f"planner seed {default(plan_report, 'seed')}")
    plan.add_argument("--videos", type=int, default=3, help="pairs filmed per policy")
    plan.add_argument("--workers", type=int, help="Ray workers collecting held-out episodes")
    plan.add_argument("--no-baselines", action="store_true", help="skip random and oracle")
    plan.add_argument("--out", help="report directory (default: WORLD_MODEL/plan)")
    plan.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.agents.plan_report import plan_report, summary_lines
    from dreamgym.agents.planning import PLANNER_FLAGS, PLANNER_RENAME, PlannerConfig

    values = config_values(args, PlannerConfig, PLANNER_FLAGS, PLANNER_RENAME)
    config = preset("planner", args.preset, **values)
    result = plan_report(
        args.world_model, config, args.out, data=args.data, proprio_weight=args.proprio_weight,
        videos=args.videos, baselines=not args.no_baselines, device=args.device,
        progress=None if args.quiet else (lambda line: print(line, flush=True)),
        warn=lambda line: print(f"warning: {line}", flush=True),
        **given(pairs=args.episodes, offset=args.goal_offset, pair_seed=args.pair_seed,
                budget=args.budget, seed=args.seed, workers=args.workers),
    )  # fmt: skip
    for line in summary_lines(result.report):
        print(line)
    print(f"report in {result.files[0]} and {result.files[1]}")
    if result.videos:
        print(f"videos (agent | goal): {', '.join(str(v) for v in result.videos)}")
