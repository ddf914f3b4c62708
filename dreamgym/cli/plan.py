"""``dreamgym plan``: goals reached by planning in a world model, measured the DINO-WM way."""

from __future__ import annotations

import argparse

from dreamgym.cli.common import default, given, parents
from dreamgym.presets import preset, preset_names


def add_parser(commands) -> None:
    from dreamgym.agents.plan_report import plan_report

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
                      "validation episodes when there are enough, else episodes that plan "
                      "collects into OUT with a seed outside the training data's)")  # fmt: skip
    plan.add_argument(
        "--episodes", type=int, help=f"start/goal pairs {default(plan_report, 'pairs')}"
    )
    plan.add_argument("--planner", choices=["cem", "mppi"],
                      help="cem or mppi (default: the preset's, cem)")  # fmt: skip
    plan.add_argument("--preset", default="cpu", choices=preset_names("planner"),
                      help="planner preset (default: cpu)")  # fmt: skip
    plan.add_argument("--samples", type=int, help="override the preset's samples")
    plan.add_argument("--iterations", type=int, help="override the preset's iterations")
    plan.add_argument("--horizon", type=int, help="override the preset's horizon")
    plan.add_argument("--execute", type=int, help="plan steps executed before replanning")
    plan.add_argument("--temperature", type=float,
                      help="MPPI's lambda, in standard deviations of the costs (default: "
                      "0.1)")  # fmt: skip
    plan.add_argument("--energy", choices=["mse", "l1"],
                      help="the goal cost's distance: mse (DINO-WM) or l1 (V-JEPA 2-AC; the "
                      "vjepa2-ac preset's) (default: the preset's, else the model's)")  # fmt: skip
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

    config = preset("planner", args.preset, method=args.planner, samples=args.samples,
                    iterations=args.iterations, horizon=args.horizon, execute=args.execute,
                    temperature=args.temperature, energy=args.energy)  # fmt: skip
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
