"""Every preset is declared once, beside its config, and found through ``dreamgym.presets``; the
CLI offers exactly the presets the library declares."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from dreamgym.agents.evolution import EvolutionConfig
from dreamgym.agents.planning import PlannerConfig
from dreamgym.agents.sb3_config import AgentConfig
from dreamgym.cli import build_parser
from dreamgym.envs import list_envs
from dreamgym.errors import DreamgymError
from dreamgym.pipeline_config import PipelineConfig
from dreamgym.presets import KINDS, preset, preset_names
from dreamgym.worldmodels.latent.config import LatentConfig
from dreamgym.worldmodels.vm.mdnrnn import MDNRNNConfig
from dreamgym.worldmodels.vm.vae import VAEConfig

# What each kind needs to know, and the config it makes.
CONTEXT = {
    "vae": ({"env": "doom-takecover"}, VAEConfig),
    "mdnrnn": ({"env": "doom-takecover", "z_size": 64, "action_size": 1}, MDNRNNConfig),
    "latent": ({"action_size": 2, "proprio_size": 4}, LatentConfig),
    "evolution": ({}, EvolutionConfig),
    "planner": ({}, PlannerConfig),
    "agent": ({"env": "carracing"}, AgentConfig),
    "pipeline": ({"env": "carracing"}, PipelineConfig),
}


def test_every_preset_of_every_kind_resolves():
    assert set(KINDS) == set(CONTEXT)
    for kind in KINDS:
        context, config_type = CONTEXT[kind]
        names = preset_names(kind, context.get("env")) if kind == "pipeline" else preset_names(kind)
        assert names and len(set(names)) == len(names), kind
        for name in names:
            assert type(preset(kind, name, **context)) is config_type, (kind, name)
    for spec in list_envs():  # each env's own pipeline recipes too
        for name in preset_names("pipeline", spec.name):
            assert preset("pipeline", name, env=spec.name).preset == name


def test_presets_keep_their_meaning():
    # A few settings that define the presets' recipes (a name never changes meaning).
    assert preset("vae", "paper", env="doom-takecover").z_size == 64
    assert preset("vae", "small", env="carracing") == VAEConfig(epochs=5, batch_size=64, lr=3e-4)
    doom = preset("mdnrnn", "paper", env="doom-takecover", z_size=64, action_size=1)
    assert (doom.hidden_size, doom.seq_len, doom.lr_decay, doom.restart_flag) == (
        512, 500, 0.99999, True)  # fmt: skip
    small = preset("mdnrnn", "small", env="doom-takecover", z_size=64, action_size=1)
    assert (small.hidden_size, small.lr_decay, small.restart_flag) == (256, 1.0, True)
    assert preset("evolution", "paper") == EvolutionConfig()
    assert preset("evolution", "debug").popsize == 8
    assert preset("planner", "dino-wm") == PlannerConfig()
    assert preset("latent", "cpu", action_size=2).predictor == "conv"
    assert preset("agent", None, env="doom-takecover").num_envs == 256
    assert preset("pipeline", "paper", env="doom-takecover").generations == 200
    assert preset("pipeline", "paper", env="doom-takecover").observation_mode == "zch"


def test_settings_replace_the_presets_and_are_checked():
    assert preset("evolution", "small", popsize=5, seed=None) == dataclasses.replace(
        preset("evolution", "small"), popsize=5)  # fmt: skip
    assert preset("latent", "debug", action_size=2, epochs=7).epochs == 7
    assert preset("pipeline", "debug", env="carracing", iterations=2).iterations == 2
    assert preset("agent", "debug", timesteps=64).timesteps == 64
    with pytest.raises(DreamgymError, match="unknown vae setting.*zsize"):
        preset("vae", "debug", env="carracing", zsize=3)
    with pytest.raises(DreamgymError, match="popsize"):
        preset("evolution", "debug", popsize=1)
    with pytest.raises(DreamgymError, match="planner elites"):
        preset("planner", "debug", elites=1000)
    with pytest.raises(DreamgymError, match="mdnrnn presets need z_size, action_size"):
        preset("mdnrnn", "paper", env="carracing")


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_name_is_a_one_line_error_naming_the_choices(kind):
    context, _ = CONTEXT[kind]
    with pytest.raises(DreamgymError) as error:
        preset(kind, "huge", **context)
    message = str(error.value)
    assert "\n" not in message and "'huge'" in message
    choices = preset_names(kind, context.get("env")) if kind == "pipeline" else preset_names(kind)
    assert all(name in message for name in choices), message


def test_an_unknown_kind_is_a_one_line_error():
    with pytest.raises(DreamgymError, match="preset kind must be one of vae, .*; got 'ppo'"):
        preset_names("ppo")


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def subcommand(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        parser = next(
            a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        ).choices[name]
    return parser


def test_the_cli_offers_exactly_the_library_presets():
    parser = build_parser()
    commands = {("train", "vae"): "vae", ("train", "mdnrnn"): "mdnrnn",
                ("train", "latent"): "latent", ("train", "agent"): "agent",
                ("evolve",): "evolution", ("plan",): "planner"}  # fmt: skip
    for names, kind in commands.items():
        action = option(subcommand(parser, *names), "--preset")
        assert list(action.choices) == preset_names(kind), names
        if action.default is not None:
            assert action.default in preset_names(kind)
    # The pipeline's presets depend on the env (checked when it is known): its help lists them.
    action = option(subcommand(parser, "pipeline"), "--preset")
    assert action.choices is None
    assert " | ".join(preset_names("pipeline")) in action.help
    assert action.default in preset_names("pipeline")
