"""Rollout collection throughput: frames/s with 1 and 2 Ray workers, per env, and the speed-up.

A bare loop (one env and the same policy in this process, no Ray, no compression, no files) is
the baseline; every figure is also printed as a ratio to it. Timing starts once the workers have
their envs, so Ray's start-up is not counted.

    python benchmarks/collect.py                    # CarRacing and TakeCover
    python benchmarks/collect.py --envs carracing --episodes 8 --steps 250
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ray

from dreamgym.envs import make_env
from dreamgym.rollouts import BrownianPolicy, CollectConfig, collect, episode_seed, run_episode

DEFAULT_STEPS = {"carracing": 250, "doom-takecover": 2100}


def bare_loop(env_name: str, episodes: int, steps: int) -> float:
    env = make_env(env_name, max_episode_steps=steps)
    policy = BrownianPolicy(env.action_space)
    frames = 0
    start = time.perf_counter()
    for i in range(episodes):
        frames += run_episode(env, policy, episode_seed(0, i), i).length + 1
    env.close()
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=["carracing", "doom-takecover"])
    parser.add_argument("--episodes", type=int, default=8, help="episodes per measurement")
    parser.add_argument("--steps", type=int, help="max steps per episode (default per env)")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    print(f"{'env':16} {'setup':12} {'frames/s':>10} {'vs bare':>8}")
    for env_name in args.envs:
        steps = args.steps or DEFAULT_STEPS.get(env_name, 1000)
        bare = bare_loop(env_name, args.episodes, steps)
        print(f"{env_name:16} {'bare loop':12} {bare:10,.0f} {1.0:8.2f}")
        rates = {}
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                config = CollectConfig(
                    env=env_name,
                    episodes=args.episodes,
                    out=Path(tmp) / "data",
                    workers=workers,
                    max_episode_steps=steps,
                )
                rates[workers] = collect(config, progress=False).frames_per_second
            print(
                f"{env_name:16} {f'{workers} worker(s)':12} {rates[workers]:10,.0f} "
                f"{rates[workers] / bare:8.2f}"
            )
        print(f"{env_name:16} speed-up 2 vs 1 worker: {rates[2] / rates[1]:.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
