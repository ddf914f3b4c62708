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


# The defaults the CLI owns: the device's spelling, presets that only the CLI names, and how many
# videos `plan` films (the library films none unless asked).
CLI_DEFAULTS = {
    ("*", "device"): "auto",
    ("evolve", "preset"): "paper",
    ("pipeline", "preset"): "debug",
    ("plan", "preset"): "cpu",
    ("plan", "videos"): 3,
}


def test_bare_commands_leave_the_library_its_defaults():
    for name, parser in commands(build_parser()).items():
        for action in parser._actions:
            if action.dest in ("help", "version") or action.required:
                continue
            if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
                continue
            expected = CLI_DEFAULTS.get((name, action.dest), CLI_DEFAULTS.get(("*", action.dest)))
            assert action.default == expected, (name, action.option_strings, action.default)


def library_defaults():
    from dreamgym.agents.evaluate import evaluate_controller
    from dreamgym.agents.plan_report import plan_report
    from dreamgym.agents.run import EvolveSettings
    from dreamgym.dreams.video import render_video
    from dreamgym.export import export_run
    from dreamgym.fidelity import FidelityConfig
    from dreamgym.pipeline import Pipeline
    from dreamgym.rollouts import CollectConfig
    from dreamgym.worldmodels.latent.train import LatentTrainer
    from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
    from dreamgym.worldmodels.vm.train_vae import VAETrainer

    def signature(function, name):
        return inspect.signature(function).parameters[name].default

    def field(cls, name):
        return cls.__dataclass_fields__[name].default

    return {
        ("collect", "--policy"): field(CollectConfig, "policy"),
        ("collect", "--workers"): field(CollectConfig, "workers"),
        ("collect", "--seed"): field(CollectConfig, "seed"),
        ("collect", "--min-length"): field(CollectConfig, "min_length"),
        ("collect", "--frame-skip"): field(CollectConfig, "frame_skip"),
        ("evolve", "--backend"): field(EvolveSettings, "backend"),
        ("evaluate", "--episodes"): signature(evaluate_controller, "episodes"),
        ("evaluate", "--backend"): signature(evaluate_controller, "backend"),
        ("evaluate", "--workers"): signature(evaluate_controller, "workers"),
        ("evaluate", "--seed"): signature(evaluate_controller, "seed"),
        ("render", "--policy"): signature(render_video, "policy"),
        ("render", "--steps"): signature(render_video, "steps"),
        ("render", "--seed"): signature(render_video, "seed"),
        ("render", "--size"): signature(render_video, "size"),
        ("pipeline", "--workers"): signature(Pipeline, "workers"),
        ("fidelity", "--episodes"): field(FidelityConfig, "dream_episodes"),
        ("fidelity", "--real-episodes"): field(FidelityConfig, "real_episodes"),
        ("fidelity", "--held-out"): field(FidelityConfig, "held_out"),
        ("fidelity", "--horizon"): field(FidelityConfig, "horizon"),
        ("fidelity", "--seed"): field(FidelityConfig, "seed"),
        ("fidelity", "--workers"): field(FidelityConfig, "workers"),
        ("plan", "--episodes"): signature(plan_report, "pairs"),
        ("plan", "--goal-offset"): signature(plan_report, "offset"),
        ("plan", "--pair-seed"): signature(plan_report, "pair_seed"),
        ("plan", "--budget"): signature(plan_report, "budget"),
        ("plan", "--seed"): signature(plan_report, "seed"),
        ("export", "--hardware"): signature(export_run, "hardware"),
        ("export", "--commit"): signature(export_run, "commit"),
        ("train vae", "--preset"): signature(VAETrainer, "preset"),
        ("train mdnrnn", "--preset"): signature(MDNRNNTrainer, "preset"),
        ("train latent", "--preset"): signature(LatentTrainer, "preset"),
    }


def test_help_states_the_library_defaults():
    leaves = commands(build_parser())
    for (name, flag), value in library_defaults().items():
        assert value is not None and value is not inspect.Parameter.empty, (name, flag)
        help_text = " ".join(option(leaves[name], flag).help.split())
        assert f"(default: {value}" in help_text, (name, flag, help_text)
