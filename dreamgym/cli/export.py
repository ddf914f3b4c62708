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
        "controller beside it (relocatable), and for a pipeline run (--run) a MODEL_CARD.md "
        "with its data, scores, fidelity, float16 agreement and checksums. dreamgym's "
        "pretrained models are made this way.",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a finished pipeline run directory")
    source.add_argument("--world-model", help="a world-model bundle directory")
    export.add_argument("--controller", help="with --world-model: a controller to include")
    export.add_argument("--out", required=True, help="a new or empty directory")
    export.add_argument("--name", help="with --run: the model's short name (default: OUT's name)")
    export.add_argument(
        "--hardware", help=f"with --run: the training machine {default(export_run, 'hardware')}"
    )
    export.add_argument(
        "--commit", help=f"with --run: the dreamgym commit {default(export_run, 'commit')}"
    )
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.export import export_bundle, export_run

    if args.run:
        out = export_run(args.run, args.out, name=args.name,
                         **given(hardware=args.hardware, commit=args.commit))  # fmt: skip
    else:
        out = export_bundle(args.world_model, args.out, controller=args.controller)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"exported to {out} ({size / 2**20:.1f} MiB)")
