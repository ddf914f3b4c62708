"""The ``dreamgym`` command: one subcommand per capability, each a thin layer over the library
(one module per command; ``common`` holds the flags they share)."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from dreamgym.cli import (
    collect,
    envs,
    evaluate,
    evolve,
    export,
    fidelity,
    pipeline,
    plan,
    render,
    train,
)
from dreamgym.errors import DreamgymError


def build_parser() -> argparse.ArgumentParser:
    """The ``dreamgym`` command's parser: one subcommand per module of this package."""
    from dreamgym import __version__

    parser = argparse.ArgumentParser(
        prog="dreamgym", description="Train agents inside learned world models ('dreams')."
    )
    parser.add_argument("--version", action="version", version=f"dreamgym {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs.add_parser(commands)
    collect.add_parser(commands)
    train.add_parser(commands)
    evolve.add_parser(commands)
    evaluate.add_parser(commands)
    render.add_parser(commands)
    pipeline.add_parser(commands)
    fidelity.add_parser(commands)
    export.add_parser(commands)
    plan.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dreamgym`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if isinstance(getattr(args, "env", None), str):
        from dreamgym.envs.registry import canonical_env_name

        args.env = canonical_env_name(args.env)  # "CarRacing", "Real-CarRacing-v0" work too
    # Warnings (an episode skipped, a cache rebuilt) as one line each, like the errors.
    formatwarning = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: (
        f"dreamgym {args.command}: warning: {message}\n"
    )
    threads = getattr(args, "threads", None)
    try:
        if threads is not None:
            from dreamgym.common.threads import set_threads

            set_threads(threads)
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
    finally:  # the process as it was, for callers of main() in Python
        warnings.formatwarning = formatwarning
        if threads is not None:
            from dreamgym.common.threads import set_threads

            set_threads(None)
    return 0


__all__ = ["build_parser", "main"]
