"""``dreamgym evolve``: a linear controller evolved with CMA-ES, in the dream or the real env."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamgym.cli.common import (
    add_config_flags,
    config_values,
    default,
    or_default,
    parents,
    preset_values,
)
from dreamgym.common.pretrained import output_beside
from dreamgym.presets import preset, preset_names

# The fields of EvolutionConfig that flags set (their types and help: EvolutionConfig's).
EVOLUTION_FLAGS = ("popsize", "rollouts", "sigma0", "eval_every", "eval_rollouts", "seed")


def add_parser(commands) -> None:
    from dreamgym.agents.backends import ENSEMBLE_FITNESS
    from dreamgym.agents.evolution import EVOLUTION_PRESETS, EvolutionConfig
    from dreamgym.agents.run import EvolveSettings

    evolve = commands.add_parser(
        "evolve",
        parents=parents("temperature", "done_mode", "address", "device", "quiet", "threads"),
        help="evolve a linear controller with CMA-ES, in the dream or the real env (resumable)",
        description="CMA-ES over the paper's linear controller. Re-running the same command "
        "resumes after the last finished generation.",
    )
    evolve.add_argument("--world-model", required=True, help="world-model bundle directory")
    evolve.add_argument(
        "--backend",
        choices=["dream", "real"],
        help="where candidates are scored: the dream or the real env "
        f"{default(EvolveSettings, 'backend')}",
    )
    evolve.add_argument(
        "--generations",
        type=int,
        required=True,
        help="generations to reach (a resumed run continues to this many)",
    )
    evolve.add_argument(
        "--preset",
        choices=preset_names("evolution"),
        default="paper",
        help="ES settings (default: %(default)s; "
        + "; ".join(
            f"{name}: popsize {c.popsize}, {c.rollouts} rollouts, sigma0 {c.sigma0}"
            for name, c in EVOLUTION_PRESETS.items()
        )
        + ")",
    )
    add_config_flags(evolve, EvolutionConfig, EVOLUTION_FLAGS, default=preset_values("evolution"))
    evolve.add_argument(
        "--observation",
        help="controller input: one of the world model's feature modes (V+M: zh = [z, h], the "
        "default; z; zch = [z, c, h])",
    )
    evolve.add_argument("--no-bias", action="store_true", help="controller without bias")
    evolve.add_argument(
        "--init",
        help="warm start: a saved controller directory whose parameters the search starts from",
    )
    evolve.add_argument("--max-steps", type=int, help="episode cap (default: the real env's)")
    evolve.add_argument("--dropout", type=float,
                        help="the dream's inference dropout in M, a fresh mask per episode "
                        "(default: the bundle's)")  # fmt: skip
    evolve.add_argument(
        "--ensemble-fitness", choices=ENSEMBLE_FITNESS,
        help="with a bundle of several Ms: mean (each dream episode draws its M), worst (every "
        "candidate plays its rollouts in every M and is scored in the one where it does worst; "
        "K x the episodes) or pessimistic (each episode draws its M, and every M's done head "
        "judges its steps, the highest end probability ruling) "
        f"{default(EvolveSettings, 'ensemble_fitness')}",
    )  # fmt: skip
    evolve.add_argument("--out", help="run directory (default: WORLD_MODEL/evolve-BACKEND)")
    evolve.add_argument(
        "--workers", type=int,
        help="Ray actors: the real backend's episodes (default 2); with the dream backend, "
        "shards each generation's dream over this many actors (default: one process; with "
        "--address, one actor per GPU of the cluster)",
    )  # fmt: skip
    evolve.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.agents.evolution import EvolutionConfig
    from dreamgym.agents.run import EvolveSettings, evolve

    config = preset("evolution", args.preset,
                    **config_values(args, EvolutionConfig, EVOLUTION_FLAGS))  # fmt: skip
    backend = or_default(args.backend, EvolveSettings, "backend")
    settings = EvolveSettings(
        world_model=args.world_model,
        backend=backend,
        temperature=args.temperature,
        observation_mode=args.observation,
        bias=not args.no_bias,
        max_episode_steps=args.max_steps,
        done_mode=args.done_mode,
        init=args.init,
        evolution=config,
        dropout=args.dropout,
        ensemble_fitness=or_default(args.ensemble_fitness, EvolveSettings, "ensemble_fitness"),
    )
    out = Path(args.out or output_beside(args.world_model, f"evolve-{backend}"))
    evolution = evolve(settings, out, args.generations, workers=args.workers,
                       address=args.address, device=args.device,
                       progress=not args.quiet)  # fmt: skip
    print(
        f"evolved {evolution.generation} generations ({backend} backend): best candidate "
        f"fitness {evolution.best_fitness:.2f}; controllers in {out / 'best'} and {out / 'mean'}"
    )
