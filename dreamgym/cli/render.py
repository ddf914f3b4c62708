"""``dreamgym render``: dreams to video."""

from __future__ import annotations

import argparse

from dreamgym.cli.common import default, given, parents
from dreamgym.errors import DreamgymError


def add_parser(commands) -> None:
    from dreamgym.dreams.video import render_video

    render = commands.add_parser(
        "render",
        parents=parents("temperature", "device", "quiet", "threads"),
        help="render a dream (or real vs dream, or several temperatures) to mp4/gif",
        description="Decode a dream episode with V into a video. --compare shows a real episode, "
        "V's reconstruction of it and the dream's rollout of the same actions side by side; "
        "--temperatures dreams one start at several temperatures.",
    )
    render.add_argument("--world-model", required=True, help="world-model bundle directory")
    render.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    render.add_argument("--controller",
                        help="controller or agent directory (default: --policy)")  # fmt: skip
    render.add_argument(
        "--policy", help=f"random | brownian | repeat {default(render_video, 'policy')}"
    )
    render.add_argument("--compare", action="store_true", help="real | V reconstruction | dream")
    render.add_argument("--temperatures", help="e.g. 0.5,1.0,1.15,1.3")
    render.add_argument(
        "--steps", type=int, help=f"episode length cap {default(render_video, 'steps')}"
    )
    render.add_argument("--seed", type=int, help=default(render_video, "seed"))
    render.add_argument("--size", type=int,
                        help=f"frame side in pixels {default(render_video, 'size')}")  # fmt: skip
    render.add_argument("--fps", type=int, help="default: the real env's")
    render.add_argument("--no-overlay", action="store_true", help="no captions")
    render.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from dreamgym.dreams.video import render_video

    temperatures = None
    if args.temperatures:
        try:
            temperatures = [float(t) for t in args.temperatures.split(",")]
        except ValueError:
            raise DreamgymError(
                f"--temperatures must be comma-separated numbers, got {args.temperatures!r}"
            ) from None
    agent = None
    if args.controller:
        from dreamgym.agents.saved import load_agent

        agent, _ = load_agent(args.controller)
    path = render_video(
        args.world_model, args.out, agent=agent, temperature=args.temperature,
        compare=args.compare, temperatures=temperatures, fps=args.fps,
        overlay=not args.no_overlay, device=args.device, progress=not args.quiet,
        **given(steps=args.steps, seed=args.seed, size=args.size, policy=args.policy),
    )  # fmt: skip
    print(f"wrote {path}")
