"""``dreamgym fidelity``: whether a dream can be trusted, against held-out real episodes."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamgym.cli.common import default, given, parents
from dreamgym.common.pretrained import output_beside


def add_parser(commands) -> None:
    from dreamgym.fidelity import FidelityConfig

    fidelity = commands.add_parser(
        "fidelity",
        parents=parents("temperature", "done_mode", "address", "device", "quiet", "threads"),
        help="measure whether a dream can be trusted, against held-out real episodes",
        description="Compares the dream with held-out real episodes: survival under the "
        "collection policy, probe policies (constant actions) and controllers (dream vs real), "
        "the done head's discrimination and calibration, the reward head, and open-loop "
        "prediction. Prints one verdict per check; writes fidelity.md/.json and plots.",
    )
    fidelity.add_argument(
        "--world-model", required=True, help="world-model bundle directory, or pretrained:NAME"
    )
    fidelity.add_argument(
        "--data",
        help="held-out real episodes (default: the bundle's validation episodes; when they are "
        "not on this machine, --held-out episodes collected into OUT/real/held-out)",
    )
    fidelity.add_argument("--policy", help="the data's collection policy (default: the data's)")
    fidelity.add_argument(
        "--controller",
        action="append",
        help="a saved controller or agent to compare, or pretrained:NAME (repeatable)",
    )
    fidelity.add_argument(
        "--episodes",
        type=int,
        help="dream episodes per policy " + default(FidelityConfig, "dream_episodes"),
    )
    fidelity.add_argument(
        "--real-episodes",
        type=int,
        help="real episodes per probe or controller " + default(FidelityConfig, "real_episodes"),
    )
    fidelity.add_argument(
        "--held-out",
        type=int,
        help=f"held-out episodes followed {default(FidelityConfig, 'held_out')}",
    )
    fidelity.add_argument(
        "--horizon", type=int, help=f"open-loop horizon {default(FidelityConfig, 'horizon')}"
    )
    fidelity.add_argument("--no-probes", action="store_true", help="skip the probe policies")
    fidelity.add_argument("--max-steps", type=int, help="episode cap (default: the bundle's)")
    fidelity.add_argument("--seed", type=int, help=default(FidelityConfig, "seed"))
    fidelity.add_argument(
        "--workers",
        type=int,
        help=f"Ray workers (real episodes) {default(FidelityConfig, 'workers')}",
    )
    fidelity.add_argument(
        "--out",
        help="report directory (default: WORLD_MODEL/fidelity; ./NAME/fidelity for "
        "pretrained:NAME)",
    )
    fidelity.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.fidelity import FidelityConfig, FidelityReport

    config = FidelityConfig(
        temperature=args.temperature, done_mode=args.done_mode, probes=not args.no_probes,
        max_episode_steps=args.max_steps, address=args.address,
        **given(dream_episodes=args.episodes, real_episodes=args.real_episodes,
                 held_out=args.held_out, horizon=args.horizon, seed=args.seed,
                 workers=args.workers),
    )  # fmt: skip
    out = Path(args.out or output_beside(args.world_model, "fidelity"))
    fidelity = FidelityReport(args.world_model, out, data=args.data, policy=args.policy,
                              controllers=args.controller or (), config=config,
                              device=args.device, progress=not args.quiet)  # fmt: skip
    report = fidelity.run()
    print("\n".join(report["verdicts"]))
    held_out = report["held_out"]
    if held_out["source"] == "collected":
        print(f"held-out real episodes: {report['held_out_episodes']} collected by this "
              f"report ({held_out['reason']}; policy {held_out['policy']}, seed "
              f"{held_out['seed']})")  # fmt: skip
    print("wrote " + ", ".join(str(f) for f in fidelity.files))
    print(f"real episodes in {out / 'real'}")
