"""``dreamgym pipeline``: the whole World Models recipe in one resumable command."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from dreamgym.cli.common import default, given, parents
from dreamgym.errors import DreamgymError
from dreamgym.presets import preset, preset_names


def add_parser(commands) -> None:
    from dreamgym.agents.backends import ENSEMBLE_FITNESS
    from dreamgym.pipeline import Pipeline

    pipeline = commands.add_parser(
        "pipeline",
        parents=parents("address", "device", "quiet", "threads"),
        help="collect -> train V -> train M -> evolve -> evaluate -> render, resumable",
        description="The whole World Models recipe in one command. Re-running it resumes at the "
        "first unfinished stage. The debug preset takes minutes on 2 CPU cores.",
    )
    pipeline.add_argument("--env", required=True, help="carracing | doom-takecover | ...")
    pipeline.add_argument(
        "--preset", default="debug",
        help=f"{' | '.join(preset_names('pipeline'))} (default: debug; cpu-driver is CarRacing's)",
    )  # fmt: skip
    pipeline.add_argument("--out", required=True, help="run directory")
    pipeline.add_argument(
        "--iterations",
        type=int,
        help="rounds of the paper's iterative training after the first evolution: collect with "
        "the controller (+ noise), continue M on all data, evolve again (default: the preset's)",
    )
    pipeline.add_argument(
        "--seed", type=int,
        help="base seed of the data, training and evolution: an independent run (default: 0)",
    )  # fmt: skip
    pipeline.add_argument(
        "--agent", choices=["cmaes", "ppo", "sac", "td3"],
        help="the final agent: the paper's linear controller evolved with CMA-ES (default), or "
        "an SB3 agent trained in the final dream (docs/agents.md)",
    )  # fmt: skip
    pipeline.add_argument(
        "--candidates", type=int, metavar="K",
        help="train K controllers (or agents) in the final dream with seeds one apart and keep "
        "the one that scores best in --select-episodes real episodes (default: the preset's)",
    )  # fmt: skip
    pipeline.add_argument(
        "--select-episodes", type=int, metavar="N",
        help="real episodes that score each candidate, on seeds the evaluation does not use "
        "(default: the preset's)",
    )  # fmt: skip
    pipeline.add_argument(
        "--ensemble-fitness", choices=ENSEMBLE_FITNESS,
        help="with a preset whose final dream is an ensemble of Ms: each dream episode draws its "
        "M (mean), every candidate is scored in the M where it does worst (worst), or every M's "
        "done head judges each step, the highest end probability ruling (pessimistic) "
        "(default: the preset's)",
    )  # fmt: skip
    pipeline.add_argument(
        "--extra-policy", action="append", metavar="NAME:EPISODES",
        help="also collect EPISODES episodes of the built-in policy NAME beside the preset's "
        "(e.g. hold:120; M trains on them, the baseline scores them; repeatable; replaces the "
        "preset's extra policies)",
    )  # fmt: skip
    pipeline.add_argument("--workers", type=int, help=f"Ray workers {default(Pipeline, 'workers')}")
    pipeline.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.envs import get_env_spec
    from dreamgym.pipeline import Pipeline

    get_env_spec(args.env)  # an unknown env fails before anything is written
    config = preset("pipeline", args.preset, env=args.env)
    if args.iterations is not None:
        if args.iterations < 0:
            raise DreamgymError(f"--iterations must be >= 0, got {args.iterations}")
        config = dataclasses.replace(config, iterations=args.iterations)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.agent is not None:
        config = dataclasses.replace(config, agent=args.agent)
    if args.candidates is not None:
        config = dataclasses.replace(config, candidates=args.candidates)
    if args.select_episodes is not None:
        config = dataclasses.replace(config, select_episodes=args.select_episodes)
    if args.ensemble_fitness is not None:
        config = dataclasses.replace(config, ensemble_fitness=args.ensemble_fitness)
    if config.candidates > 1 and config.select_episodes < 1 and args.select_episodes is None:
        raise DreamgymError(
            f"--candidates {config.candidates} needs --select-episodes N (the real episodes that "
            f"score each candidate); preset {args.preset!r} has none"
        )
    if args.extra_policy:
        config = dataclasses.replace(config, extra_policies=_extra_policies(args.extra_policy))
    pipeline = Pipeline(config, args.out, address=args.address, device=args.device,
                        progress=not args.quiet, **given(workers=args.workers))  # fmt: skip
    report = pipeline.run()
    scores, base = report["stages"]["evaluate"], report["stages"]["baseline"]
    print(
        f"pipeline done: dream {scores['dream']['mean']:.1f} +- {scores['dream']['std']:.1f}, "
        f"real {scores['real']['mean']:.1f} +- {scores['real']['std']:.1f} (collection policy "
        f"{base['mean']:.1f} +- {base['std']:.1f}); report in {Path(args.out) / 'report.md'}"
    )
    from dreamgym.dreams.registration import dream_id

    out, gym_id = Path(args.out), dream_id(args.env)
    print("next steps:")
    print(f"  watch the dream: {out / 'videos' / 'dream.mp4'} (also compare.mp4, temperatures.mp4)")
    if gym_id is not None:
        print(f"  play in it: gym.make({gym_id!r}, world_model={str(pipeline.bundle())!r})")
    if args.preset == "debug":
        print("  a dream worth training in: --preset small (tens of minutes) or cpu (about an "
              "hour on 2 cores), with another --out")  # fmt: skip


def _extra_policies(values: list[str]) -> dict[str, int]:
    """``["hold:120"]`` -> ``{"hold": 120}`` (the Pipeline checks the names and counts)."""
    policies = {}
    for value in values:
        name, _, episodes = value.partition(":")
        if not name or not episodes.strip().lstrip("-").isdigit():
            raise DreamgymError(
                f"--extra-policy must be NAME:EPISODES (e.g. hold:120), got {value!r}"
            )
        policies[name] = int(episodes)
    return policies
