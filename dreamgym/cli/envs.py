"""``dreamgym envs``: the real environments and their spaces."""

from __future__ import annotations

import argparse


def add_parser(commands) -> None:
    envs = commands.add_parser(
        "envs",
        help="list the real environments and their spaces",
        description="The real environments dreamgym can collect from, train on and dream of: "
        "their names (for --env), Gymnasium ids, action spaces, frames and episode caps.",
    )
    envs.set_defaults(func=run)


def _box(space) -> str:
    """``Box(3,) low [-1, 0, 0] high [1, 1, 1]``, or one range when every dimension shares it."""
    low, high = space.low.tolist(), space.high.tolist()
    if len(set(low)) == 1 and len(set(high)) == 1:
        return f"Box{space.shape} [{low[0]:g}, {high[0]:g}]"
    fmt = lambda xs: "[" + ", ".join(f"{x:g}" for x in xs) + "]"  # noqa: E731
    return f"Box{space.shape} low {fmt(low)} high {fmt(high)}"


def run(args: argparse.Namespace) -> None:
    from dreamgym.envs import list_envs, make_env

    rows = [("name", "gym id", "action space", "observation", "max steps", "description")]
    for spec in list_envs():
        env = make_env(spec.name)
        try:
            action = env.action_space
            rows.append(
                (
                    spec.name,
                    spec.gym_id,
                    _box(action),
                    f"{env.observation_space.shape} {env.observation_space.dtype}",
                    str(spec.max_episode_steps),
                    spec.description,
                )
            )
        finally:
            env.close()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
