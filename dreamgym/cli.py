"""The ``dreamgym`` command: one subcommand per capability, each a thin layer over the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dreamgym.errors import DreamgymError


def _cmd_envs(args: argparse.Namespace) -> None:
    from dreamgym.envs import list_envs, make_env

    rows = [("name", "gym id", "action space", "observation", "max steps", "description")]
    for spec in list_envs():
        env = make_env(spec.name)
        try:
            action = env.action_space
            rows.append(
                (
                    spec.name,
                    spec.gym_id,
                    f"Box{action.shape} [{action.low.min():g}, {action.high.max():g}]",
                    f"{env.observation_space.shape} {env.observation_space.dtype}",
                    str(spec.max_episode_steps),
                    spec.description,
                )
            )
        finally:
            env.close()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


def _cmd_collect(args: argparse.Namespace) -> None:
    import numpy as np

    from dreamgym.rollouts import CollectConfig, collect

    config = CollectConfig(
        env=args.env,
        episodes=args.episodes,
        out=Path(args.out),
        policy=args.policy,
        workers=args.workers,
        seed=args.seed,
        max_episode_steps=args.max_steps,
        min_length=args.min_length,
        frame_skip=args.frame_skip,
        address=args.address,
    )
    result = collect(config, progress=not args.quiet)
    if result.new_episodes == 0 and result.dropped == 0:
        print(f"{args.out} already holds {result.episodes} episodes; nothing to do")
        return
    returns = np.asarray(result.returns)
    print(
        f"collected {result.new_episodes} episodes ({result.dropped} dropped as too short) in "
        f"{result.seconds:.1f} s at {result.frames_per_second:,.0f} frames/s with "
        f"{result.workers} worker(s); {args.out} holds {result.episodes} episodes"
        + (f"; mean return {returns.mean():.1f} +- {returns.std():.1f}" if len(returns) else "")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dreamgym", description="Train agents inside learned world models ('dreams')."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = commands.add_parser("envs", help="list the real environments and their spaces")
    envs.set_defaults(func=_cmd_envs)

    collect = commands.add_parser(
        "collect",
        help="collect episodes from a real env on Ray (resumable)",
        description="Collect episodes from a real environment in parallel on Ray. Each episode "
        "is written atomically to DATA/episode_NNNNNN.npz; re-running the same command after a "
        "kill completes the missing episodes.",
    )
    collect.add_argument("--env", required=True, help="real env name (see `dreamgym envs`)")
    collect.add_argument("--episodes", type=int, required=True, help="episodes the dataset holds")
    collect.add_argument("--out", required=True, help="dataset directory")
    collect.add_argument(
        "--policy",
        default="brownian",
        help="random | brownian | repeat (random action held 1-10 steps) | a saved policy file "
        "(default: brownian)",
    )
    collect.add_argument("--workers", type=int, default=1, help="Ray workers (default: 1)")
    collect.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    collect.add_argument("--max-steps", type=int, help="time limit per episode (default: env's)")
    collect.add_argument(
        "--min-length",
        type=int,
        default=0,
        help="drop episodes with fewer steps (the Doom recipe drops <= 100 frames: 101)",
    )
    collect.add_argument("--frame-skip", type=int, default=1, help="repeat each action N frames")
    collect.add_argument(
        "--address",
        help="Ray cluster to join, e.g. 'auto' after `ray start --head` (default: a local Ray)",
    )
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(func=_cmd_collect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dreamgym`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except DreamgymError as exc:
        print(f"dreamgym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"dreamgym {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
