"""``dreamgym evaluate``: a saved controller's or agent's returns over many episodes."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamgym.cli.common import default, given, or_default, parents
from dreamgym.common.pretrained import output_beside


def add_parser(commands) -> None:
    from dreamgym.agents.evaluate import evaluate_controller

    evaluate = commands.add_parser(
        "evaluate",
        parents=parents("temperature", "done_mode", "address", "device", "quiet", "threads"),
        help="mean +- std return of a saved controller or agent over many episodes",
        description="Scores a saved controller (a directory, or pretrained:NAME) or SB3 agent "
        "(a `dreamgym train agent` directory) over many "
        "episodes in the real env (episodes spread over Ray workers) or in the dream, prints "
        "mean +- std and writes every episode's return to JSON.",
    )
    evaluate.add_argument("--controller", required=True,
                          help="controller directory, pretrained:NAME, or agent "
                          "directory")  # fmt: skip
    evaluate.add_argument(
        "--episodes", type=int, help=f"episodes {default(evaluate_controller, 'episodes')}"
    )
    evaluate.add_argument("--backend", choices=["dream", "real"],
                          help="the real env or the dream "
                          + default(evaluate_controller, "backend"))  # fmt: skip
    evaluate.add_argument("--world-model", help="default: the one the controller was trained for")
    evaluate.add_argument("--max-steps", type=int, help="episode cap (default: the env's)")
    evaluate.add_argument(
        "--workers",
        type=int,
        help=f"Ray workers (real env) {default(evaluate_controller, 'workers')}",
    )
    evaluate.add_argument("--dropout", type=float,
                          help="the dream's inference dropout in M, a fresh mask per episode "
                          "(dream backend; default: the bundle's)")  # fmt: skip
    evaluate.add_argument(
        "--seed", type=int, help=f"seed of the episodes {default(evaluate_controller, 'seed')}"
    )
    evaluate.add_argument(
        "--out",
        help="where the JSON of per-episode returns goes: a file, or a directory to write "
        "evaluation-BACKEND.json in (default: CONTROLLER/evaluation-BACKEND.json; "
        "./NAME/evaluation-BACKEND.json for pretrained:NAME)",
    )
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.agents.evaluate import check_dropout, evaluate_controller
    from dreamgym.agents.saved import load_agent
    from dreamgym.common.io import atomic_write_json, check_writable_dir
    from dreamgym.common.pretrained import resolve_controller

    load_agent(args.controller)  # a missing controller is named before anything is made
    backend = or_default(args.backend, evaluate_controller, "backend")
    check_dropout(backend, args.dropout)  # before OUT is made
    seed = or_default(args.seed, evaluate_controller, "seed")
    name = f"evaluation-{backend}.json"
    out = Path(args.out) if args.out else output_beside(resolve_controller(args.controller), name)
    if out.is_dir():
        out = out / name
    check_writable_dir(out.parent)  # before the episodes, so that none are run for nothing
    returns = evaluate_controller(
        args.controller, backend=backend, world_model=args.world_model,
        temperature=args.temperature, max_episode_steps=args.max_steps, address=args.address,
        seed=seed, device=args.device, done_mode=args.done_mode, progress=not args.quiet,
        dropout=args.dropout, **given(episodes=args.episodes, workers=args.workers),
    )  # fmt: skip
    atomic_write_json(out, {"backend": backend, "episodes": len(returns),
                            "mean": float(returns.mean()), "std": float(returns.std()),
                            "returns": returns.tolist(), "seed": seed})  # fmt: skip
    print(f"{backend}: {returns.mean():.1f} +- {returns.std():.1f} over {len(returns)} "
          "episodes")  # fmt: skip
    print(f"wrote {out}" + ("" if args.out else " (choose where with --out)"))
