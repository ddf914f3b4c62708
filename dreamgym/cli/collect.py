"""``dreamgym collect``: episodes from a real env, on Ray."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamgym.cli.common import default, given, or_default, parents
from dreamgym.errors import DreamgymError


def add_parser(commands) -> None:
    from dreamgym.rollouts import CollectConfig
    from dreamgym.rollouts.policies import BUILTIN_POLICIES

    collect = commands.add_parser(
        "collect",
        parents=parents("address", "quiet"),
        help="collect episodes from a real env on Ray (resumable)",
        description="Collect episodes from a real environment in parallel on Ray. Each episode "
        "is written atomically to DATA/episode_NNNNNN.npz; re-running the same command after a "
        "kill completes the missing episodes.",
    )
    collect.add_argument("--env", required=True, help="real env name (see `dreamgym envs`)")
    collect.add_argument("--episodes", type=int, required=True, help="episodes the dataset holds")
    collect.add_argument("--out", required=True, help="dataset directory")
    collect.add_argument(
        "--policy",
        help=f"a built-in policy ({' | '.join(BUILTIN_POLICIES)}; repeat: a random action held "
        "1-10 steps, hold: one held all episode) or a saved policy file, controller or agent "
        f"directory {default(CollectConfig, 'policy')}",
    )
    collect.add_argument(
        "--policy-noise",
        type=float,
        metavar="SIGMA",
        help="with a saved controller as --policy: add Gaussian noise of this std to its tanh "
        "outputs (clipped to [-1, 1]) for exploration, seeded per episode (an agent: to its "
        "actions scaled to [-1, 1])",
    )
    collect.add_argument(
        "--workers", type=int, help=f"Ray workers {default(CollectConfig, 'workers')}"
    )
    collect.add_argument("--seed", type=int, help=f"base seed {default(CollectConfig, 'seed')}")
    collect.add_argument("--max-steps", type=int, help="time limit per episode (default: env's)")
    collect.add_argument(
        "--min-length",
        type=int,
        help="drop episodes with fewer steps (the Doom recipe drops <= 100 frames: 101) "
        + default(CollectConfig, "min_length"),
    )
    collect.add_argument(
        "--frame-skip",
        type=int,
        help=f"repeat each action N frames {default(CollectConfig, 'frame_skip')}",
    )
    collect.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from dreamgym.rollouts import CollectConfig, collect
    from dreamgym.rollouts.policies import BUILTIN_POLICIES

    policy = args.policy
    if args.policy_noise is not None:
        from dreamgym.agents.saved import agent_policy

        policy = or_default(policy, CollectConfig, "policy")
        if policy in BUILTIN_POLICIES:
            raise DreamgymError(
                f"--policy-noise applies to a saved controller or agent, not to {policy!r}"
            )
        policy = agent_policy(policy, args.policy_noise)
    config = CollectConfig(
        env=args.env,
        episodes=args.episodes,
        out=Path(args.out),
        max_episode_steps=args.max_steps,
        address=args.address,
        **given(policy=policy, workers=args.workers, seed=args.seed,
                 min_length=args.min_length, frame_skip=args.frame_skip),
    )  # fmt: skip
    result = collect(config, progress=not args.quiet)
    if result.new_episodes == 0 and result.dropped == 0:
        print(f"{args.out} already holds {result.episodes} episodes; nothing to do")
        return
    returns = np.asarray(result.returns)
    print(
        f"collected {result.new_episodes} episodes ({result.dropped} dropped as too short) in "
        f"{result.seconds:.1f} s at {result.frames_per_second:,.0f} frames/s with "
        f"{result.workers} worker(s); {args.out} holds {result.episodes} episodes"
        + (f"; mean return {returns.mean():.1f} +- {returns.std():.1f}" if len(returns) else "")
    )
