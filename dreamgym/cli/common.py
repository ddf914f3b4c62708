"""What the commands share: the shared flags (parent parsers) and the library's defaults."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any


def library_default(owner: Any, name: str) -> Any:
    """The default the library declares for ``name``: a dataclass field's or a parameter's.

    The CLI's flags default to None and pass nothing then, so that this stays the only one."""
    if dataclasses.is_dataclass(owner):
        return next(f.default for f in dataclasses.fields(owner) if f.name == name)
    return inspect.signature(owner).parameters[name].default


def default(owner: Any, name: str) -> str:
    """``(default: VALUE)`` for a flag's help, VALUE read from the library."""
    return f"(default: {library_default(owner, name)})"


def or_default(value: Any, owner: Any, name: str) -> Any:
    """``value``, or the library's default when the flag was not given."""
    return library_default(owner, name) if value is None else value


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments whose flags were given: the others keep the library's defaults."""
    return {k: v for k, v in values.items() if v is not None}


def shared_flags() -> dict[str, argparse.ArgumentParser]:
    """Flags that several commands share, each declared once: argparse parent parsers, passed as
    ``parents=[...]`` to the commands that take them."""

    def parent(*args: str, **kwargs) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument(*args, **kwargs)
        return parser

    return {
        "device": parent("--device", default="auto",
                         help="torch device of this process: auto | cpu | cuda[:N] "
                         "(default: %(default)s)"),
        "quiet": parent("--quiet", action="store_true", help="no progress bars"),
        # Not on collect, envs and export: collect runs torch in its Ray workers only.
        "threads": parent("--threads", type=int, metavar="N",
                          help="torch threads of this process (default: chosen for the kind of "
                          "work, as the README's 'Threads' says; Ray workers keep theirs)"),
        "address": parent("--address",
                          help="Ray cluster to join, e.g. 'auto' after `ray start --head`, or "
                          "HOST:PORT (default: a local Ray)"),
        "temperature": parent("--temperature", type=float,
                              help="dream tau (default: the env's, e.g. 1.0; Doom 1.15)"),
        "done_mode": parent(
            "--done-mode",
            choices=["threshold", "sample", "calibrated"],
            help="dream episode end: done probability > 0.5 (the paper), drawn from it, or drawn "
            "from it recalibrated on held-out episodes (default: calibrated when the bundle has "
            "a calibration, else threshold)",
        ),
    }  # fmt: skip


def parents(*names: str) -> list[argparse.ArgumentParser]:
    """The parent parsers of the shared flags ``names`` (keys of :func:`shared_flags`)."""
    shared = shared_flags()
    return [shared[name] for name in names]
