"""The CLI declares each option and default once: shared flags come from parent parsers, and the
defaults that the library owns are the library's, never a second literal."""

from __future__ import annotations

import argparse
import inspect

import pytest

from dreamgym.cli import build_parser

SHARED = {"--device", "--quiet", "--threads", "--address", "--temperature", "--done-mode"}
OWN = {("plan", "--temperature")}  # MPPI's temperature, not the dream's


def commands(parser: argparse.ArgumentParser, name: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every leaf command's parser, by its name (``train vae``)."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return {name: parser}
    found = {}
    for sub, child in subparsers[0].choices.items():
        found.update(commands(child, f"{name} {sub}".strip()))
    return found


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_shared_flags_are_declared_once_and_listed_by_help(capsys):
    leaves = commands(build_parser())
    assert "train vae" in leaves and "plan" in leaves
    for flag in SHARED:
        takers = {name: option(p, flag) for name, p in leaves.items()
                  if option(p, flag) and (name, flag) not in OWN}  # fmt: skip
        assert len(takers) >= 2, flag
        # One declaration: every command's action has the same options, default and help.
        described = {(a.default, a.help, a.type, str(a.choices)) for a in takers.values()}
        assert len(described) == 1, (flag, described)
        for name in takers:
            with pytest.raises(SystemExit):
                build_parser().parse_args([*name.split(), "--help"])
            assert flag in capsys.readouterr().out, (name, flag)


def test_shared_flags_parse_as_before():
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--controller", "c", "--quiet", "--device", "cpu",
                              "--threads", "2", "--address", "auto"])  # fmt: skip
    assert (args.quiet, args.device, args.threads, args.address) == (True, "cpu", 2, "auto")
    args = parser.parse_args(["train", "vae", "--data", "d", "--out", "o"])
    assert (args.quiet, args.device, args.threads) == (False, "auto", None)
    args = parser.parse_args(["collect", "--env", "carracing", "--episodes", "1", "--out", "o"])
    assert not args.quiet and args.address is None and not hasattr(args, "threads")
    assert inspect.isfunction(args.func)
