"""The flags that set a config's fields are declared from the config: each has its field's type
and the help its docstring gives, so a documented field becomes a correct flag and the CLI's
help cannot drift from the library's."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass

import pytest
from test_cli_defaults import commands, option

from dreamgym.cli import build_parser, main
from dreamgym.cli import evolve as evolve_cli
from dreamgym.cli import train as train_cli
from dreamgym.cli.common import add_config_flags, config_values, field_help
from dreamgym.errors import DreamgymError


def converted():
    """Each command's config, the fields that its flags set, and the flags named otherwise."""
    from dreamgym.agents.evolution import EvolutionConfig
    from dreamgym.agents.planning import PLANNER_FLAGS, PLANNER_RENAME, PlannerConfig
    from dreamgym.agents.sb3_config import AgentConfig
    from dreamgym.worldmodels.latent.config import LatentConfig
    from dreamgym.worldmodels.vm.mdnrnn import MDNRNNConfig
    from dreamgym.worldmodels.vm.vae import VAEConfig

    return {
        "train vae": (VAEConfig, train_cli.VAE_FLAGS, {}),
        "train mdnrnn": (MDNRNNConfig, train_cli.MDNRNN_FLAGS, {}),
        "train latent": (LatentConfig, train_cli.LATENT_FLAGS, {}),
        "train agent": (AgentConfig, train_cli.AGENT_FLAGS, train_cli.AGENT_RENAME),
        "evolve": (EvolutionConfig, evolve_cli.EVOLUTION_FLAGS, {}),
        "plan": (PlannerConfig, PLANNER_FLAGS, PLANNER_RENAME),
    }


def expected_type(annotation):
    """The value a flag of a field of type ``annotation`` parses to (bool: an on/off flag)."""
    if typing.get_origin(annotation) is tuple:
        return tuple
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return kinds[0]


def test_every_config_field_is_documented_once():
    for config, _, _ in converted().values():
        assert set(field_help(config)) == {f.name for f in dataclasses.fields(config)}, config


def test_config_flags_take_the_fields_type_and_help():
    leaves = commands(build_parser())
    for name, (config, fields, rename) in converted().items():
        helps, hints = field_help(config), typing.get_type_hints(config)
        assert fields, name
        for field in fields:
            flag = rename.get(field, "--" + field.replace("_", "-"))
            action = option(leaves[name], flag)
            assert action is not None and action.dest == field, (name, flag)
            assert action.default is None, (name, flag)  # the preset's or the config's value
            assert " ".join(action.help.split()).startswith(helps[field].replace("%", "%%"))
            assert "(default:" in action.help, (name, flag)
            kind = expected_type(hints[field])
            if kind is bool:
                assert action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction)
            elif kind is tuple:
                assert action.type is str and action.metavar == "N,N,..."
            else:
                assert action.type is kind, (name, flag, action.type)


@pytest.mark.parametrize(
    ("argv", "dest", "value"),
    [
        (["train", "mdnrnn", "--seq-len", "7"], "seq_len", 7),
        (["train", "mdnrnn", "--dream-dropout", "0.1"], "dream_dropout", 0.1),
        (["train", "vae", "--z-size", "16"], "z_size", 16),
        (["train", "latent", "--encoder", "pixels"], "encoder", "pixels"),
        (["train", "latent", "--no-proprio"], "proprio", False),
        (["train", "latent", "--decoder"], "decoder", True),
        (["train", "latent"], "decoder", None),
        (["train", "agent", "--lr", "0.001"], "learning_rate", 0.001),
        (["train", "agent", "--max-steps", "9"], "max_episode_steps", 9),
        (["evolve", "--sigma0", "0.5"], "sigma0", 0.5),
        (["plan", "--planner", "mppi"], "method", "mppi"),
        (["plan", "--temperature", "0.2"], "temperature", 0.2),
    ],
)
def test_config_flags_parse_to_the_fields_values(argv, dest, value):
    required = {"train": ["--out", "o"], "vae": ["--data", "d"], "latent": ["--data", "d"],
                "mdnrnn": ["--data", "d", "--vae", "v"], "agent": ["--world-model", "w"],
                "evolve": ["--world-model", "w", "--generations", "1"],
                "plan": ["--world-model", "w"]}  # fmt: skip
    extra = [*required[argv[0]], *required.get(argv[1], [])]
    args = build_parser().parse_args([*argv, *extra])
    assert getattr(args, dest) == value and type(getattr(args, dest)) is type(value)


def test_evolve_flags_replace_the_presets_settings():
    from dreamgym.agents.evolution import EvolutionConfig
    from dreamgym.presets import preset

    argv = ["evolve", "--world-model", "w", "--generations", "1", "--preset", "small",
            "--popsize", "6", "--sigma0", "0.3"]  # fmt: skip
    args = build_parser().parse_args(argv)
    values = config_values(args, EvolutionConfig, evolve_cli.EVOLUTION_FLAGS)
    assert preset("evolution", args.preset, **values) == dataclasses.replace(
        preset("evolution", "small"), popsize=6, sigma0=0.3)  # fmt: skip


def test_a_config_flag_of_the_wrong_type_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "mdnrnn", "--data", "d", "--vae", "v", "--out", "o", "--seq-len", "x"])
    assert exit_.value.code == 2 and "--seq-len: invalid int value: 'x'" in capsys.readouterr().err


def test_train_latent_flags_reach_the_trained_config(pusht_data, tmp_path, capsys):
    import json

    out = tmp_path / "latent"
    assert main(["train", "latent", "--data", str(pusht_data), "--out", str(out), "--preset",
                 "debug", "--encoder", "pixels", "--pixel-grid", "4", "--predictor", "conv",
                 "--frameskip", "2", "--history", "2", "--proprio", "--reward-head",
                 "--epochs", "1", "--seed", "3", "--device", "cpu", "--quiet"]) == 0  # fmt: skip
    assert "trained latent epochs 1-1" in capsys.readouterr().out
    saved = json.loads((out / "latent-config.json").read_text())
    assert {k: saved[k] for k in ("encoder", "pixel_grid", "predictor", "frameskip", "history",
                                  "proprio", "reward_head", "decoder", "epochs", "seed")} == {
        "encoder": "pixels", "pixel_grid": 4, "predictor": "conv", "frameskip": 2, "history": 2,
        "proprio": True, "reward_head": True, "decoder": False, "epochs": 1, "seed": 3,
    }  # fmt: skip


@dataclass
class Toy:
    """A config for the helper.

    Attributes:
        steps: how many steps (paper: 5).
        rate, decay: the optimizer's; a rate of 5%
            is common.
        sizes: layer sizes.
        flag: on or off.
        maybe: on, off or None: decided later (default: None).
    """

    steps: int = 5
    rate: float = 0.1
    decay: float = 0.0
    sizes: tuple[int, ...] = (8,)
    flag: bool = False
    maybe: bool | None = None


def test_field_help_reads_the_attributes_section():
    assert field_help(Toy) == {
        "steps": "how many steps (paper: 5)", "rate": "the optimizer's; a rate of 5% is common",
        "decay": "the optimizer's; a rate of 5% is common", "sizes": "layer sizes",
        "flag": "on or off", "maybe": "on, off or None: decided later (default: None)",
    }  # fmt: skip


def test_add_config_flags_declares_and_config_values_reads():
    parser = argparse.ArgumentParser()
    fields = ("steps", "rate", "sizes", "flag", "maybe")
    declared = add_config_flags(parser, Toy, fields, rename={"rate": "--lr"},
                                default=lambda name: f"{name}'s")  # fmt: skip
    assert declared == fields
    help_text = " ".join(parser.format_help().split())
    assert "--steps STEPS how many steps (paper: 5) (default: steps's)" in help_text
    assert "--lr LR the optimizer's; a rate of 5% is common (default: rate's)" in help_text
    assert "--maybe, --no-maybe on, off or None: decided later (default: None)" in help_text
    args = parser.parse_args(["--steps", "3", "--lr", "0.5", "--sizes", "4,4", "--no-maybe"])
    values = config_values(args, Toy, fields, rename={"rate": "--lr"})
    assert values == {"steps": 3, "rate": 0.5, "sizes": (4, 4), "flag": None, "maybe": False}
    assert config_values(parser.parse_args([]), Toy, fields) == dict.fromkeys(fields)
    with pytest.raises(DreamgymError, match=r"^--sizes must be comma-separated integers, e\.g\. "
                       r"64,64, got '4,x'$"):  # fmt: skip
        config_values(parser.parse_args(["--sizes", "4,x"]), Toy, fields)


def test_undocumented_fields_and_untyped_flags_are_refused_at_declaration():
    @dataclass
    class Undocumented:
        """No attributes here."""

        steps: int = 1

    with pytest.raises(TypeError, match="no 'Attributes:' section"):
        add_config_flags(argparse.ArgumentParser(), Undocumented, ("steps",))
    with pytest.raises(TypeError, match=r"Toy\.missing is not described"):
        add_config_flags(argparse.ArgumentParser(), Toy, ("missing",))
