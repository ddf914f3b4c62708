"""``dreamgym export``: small float16 copies of world models and controllers, to share."""

from __future__ import annotations

import argparse

from dreamgym.cli.common import default, given


def add_parser(commands) -> None:
    from dreamgym.export import export_run

    export = commands.add_parser(
        "export",
        help="write a small float16 copy of a world model and its controller, to share",
        description="Writes the world model's weights in float16 without training state, the "
        "controller beside it (relocatable), and a MODEL_CARD.md: for a pipeline run (--run) "
        "its data, scores, fidelity, float16 agreement and checksums; for a latent world model "
        "(--world-model) its data, preset, goal reaching from a `dreamgym plan` report (--plan), "
        "how closely float16 plans like float32, and checksums. dreamgym's pretrained models "
        "are made this way.",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a finished pipeline run directory")
    source.add_argument("--world-model", help="a world-model bundle directory")
    export.add_argument("--controller", help="with --world-model: a controller to include")
    export.add_argument("--plan", help="with a latent --world-model: the `dreamgym plan` report "
                        "directory (or plan.json) of that model, for the model card")  # fmt: skip
    export.add_argument("--out", required=True, help="a new or empty directory")
    export.add_argument("--name", help="with a model card: the model's short name (default: "
                        "OUT's name)")  # fmt: skip
    export.add_argument(
        "--hardware",
        help=f"with a model card: the training machine {default(export_run, 'hardware')}",
    )
    export.add_argument(
        "--commit",
        help=f"with a model card: the dreamgym commit {default(export_run, 'commit')}",
    )
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.errors import DreamgymError
    from dreamgym.export import export_bundle, export_run
    from dreamgym.export_latent import export_latent
    from dreamgym.worldmodels.bundle import read_info

    card = given(hardware=args.hardware, commit=args.commit)
    if args.run:
        if args.plan or args.controller:
            flag = "--plan" if args.plan else "--controller"
            raise DreamgymError(f"{flag} goes with --world-model; --run exports the run's own")
        out = export_run(args.run, args.out, name=args.name, **card)
    elif read_info(args.world_model).get("kind") == "latent":
        out = export_latent(args.world_model, args.out, plan=args.plan,
                            controller=args.controller, name=args.name, **card)  # fmt: skip
    else:
        if args.plan:
            raise DreamgymError(f"--plan needs a latent world model; {args.world_model!r} is a "
                                f"{read_info(args.world_model).get('kind')!r} bundle")  # fmt: skip
        out = export_bundle(args.world_model, args.out, controller=args.controller)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"exported to {out} ({size / 2**20:.1f} MiB)")
