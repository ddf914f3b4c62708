"""Cost of scoring "ends within 10 steps" by the dream's own chance in a fidelity report.

Follows the held-out real episodes of a V+M bundle (teacher forcing, open loop: the report's
pass) without and with the k-step imagination (8 dreams of 10 steps from every step), in this
process, and prints both times and their ratio.

    python benchmarks/fidelity_done.py --world-model runs/doom-cpu3/worldmodel-1 [--episodes 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dreamgym import worldmodels
from dreamgym.dreams.core import end_probability, resolve_done_mode
from dreamgym.fidelity.measure import follow_real_episodes
from dreamgym.rollouts import RolloutDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-model", required=True)
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = worldmodels.load(args.world_model, "cpu")
    validation = model.info["training"]["validation"]
    dataset = RolloutDataset(validation["data"])
    episodes = [dataset.episode(int(i)) for i in validation["episodes"][: args.episodes]]
    ends = end_probability(model, resolve_done_mode(model, None))
    steps = sum(e.length for e in episodes)
    times = {}
    for name, ks in (("report pass, next-step score only", ()), ("with the 10-step chance", (10,))):
        start = time.perf_counter()
        follow_real_episodes(model, episodes, 1.0, done_k=ks, end_probability=ends)
        times[name] = time.perf_counter() - start
        print(f"{name}: {times[name]:.1f} s for {len(episodes)} episodes, {steps:,} steps "
              f"({steps / times[name]:,.0f} steps/s)")  # fmt: skip
    base, new = times.values()
    print(
        f"ratio: {new / base:.2f}x the report pass without it; "
        f"deaths: {int(np.sum([e.terminated for e in episodes]))}"
    )


if __name__ == "__main__":
    main()
