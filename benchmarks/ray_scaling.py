"""Ray scaling: the same work on 1 and 2 Ray actors, and the speed-up (2 actors / 1 actor).

Three workloads, all with the shipped Doom TakeCover model and controller (``pretrained:``):

- ``evaluate``: N real episodes of the controller (``evaluate_agent``, one task per episode);
- ``real generation``: one CMA-ES generation's P x R real episodes (``RealBackend``, one task
  per episode), the controller's parameters perturbed per candidate;
- ``dream generation``: one generation's P x R dream episodes, in this process (the default,
  all threads) and sharded over 1 and 2 CPU actors (``ShardedDreamBackend``).

Ray starts once with 2 CPUs. ``evaluate`` counts its actors' start-up (it builds them per call);
the generations are timed after their backends' actors are ready.

    python benchmarks/ray_scaling.py [--episodes 16] [--dream-steps 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import ray
import torch

from dreamgym import worldmodels
from dreamgym.agents import Controller
from dreamgym.agents.backends import DreamBackend
from dreamgym.agents.evaluate import evaluate_agent
from dreamgym.agents.ray_backend import RealBackend
from dreamgym.agents.ray_dream import ShardedDreamBackend
from dreamgym.common.pretrained import resolve_path

MODEL = "pretrained:doom-takecover"


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=16, help="real episodes (evaluate)")
    parser.add_argument("--popsize", type=int, default=8, help="real generation: candidates")
    parser.add_argument("--rollouts", type=int, default=2, help="real generation: rollouts")
    parser.add_argument("--dream-steps", type=int, default=300, help="dream episode cap")
    parser.add_argument("--skip", nargs="*", default=[], choices=["evaluate", "real", "dream"])
    args = parser.parse_args()
    bundle = str(resolve_path(MODEL))
    model = worldmodels.load(bundle)
    agent, _ = Controller.load(resolve_path(MODEL) / "controller")
    spec = agent.spec
    rng = np.random.default_rng(0)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    print(f"{'workload':34} {'1 actor':>9} {'2 actors':>9} {'speed-up':>9}")

    if "evaluate" not in args.skip:
        seconds = {}
        for workers in (1, 2):
            seconds[workers], returns = timed(
                lambda w=workers: evaluate_agent(agent, model, args.episodes, "real", workers=w)
            )
        label = f"evaluate, {args.episodes} real episodes"
        print(f"{label:34} {seconds[1]:8.1f}s {seconds[2]:8.1f}s {seconds[1] / seconds[2]:8.2f}x"
              f"   (mean return {np.mean(returns):.0f})")  # fmt: skip

    if "real" not in args.skip:
        params = agent.get_params() + rng.normal(0, 0.05, (args.popsize, spec.num_params))
        seconds = {}
        for workers in (1, 2):
            backend = RealBackend(model, spec, workers)

            def generation(b=backend):
                return b.returns(params, args.rollouts, seed=1)

            seconds[workers], _ = timed(generation)
            backend.close()
        label = f"real generation, {args.popsize} x {args.rollouts}"
        print(f"{label:34} {seconds[1]:8.1f}s {seconds[2]:8.1f}s {seconds[1] / seconds[2]:8.2f}x")

    if "dream" not in args.skip:
        popsize, rollouts = 64, 16
        params = agent.get_params() + rng.normal(0, 0.05, (popsize, spec.num_params))
        here = DreamBackend(model, spec, 1.15, args.dream_steps)
        in_process, _ = timed(lambda: here.returns(params, rollouts, seed=1))
        seconds = {}
        for workers in (1, 2):
            sharded = ShardedDreamBackend(bundle, spec, 1.15, args.dream_steps, workers=workers)
            seconds[workers], _ = timed(lambda s=sharded: s.returns(params, rollouts, seed=1))
            sharded.close()
        label = f"dream generation, {popsize} x {rollouts}"
        threads = torch.get_num_threads()
        print(f"{label:34} {seconds[1]:8.1f}s {seconds[2]:8.1f}s {seconds[1] / seconds[2]:8.2f}x"
              f"   (in this process, {threads} threads: {in_process:.1f}s)")  # fmt: skip
    ray.shutdown()


if __name__ == "__main__":
    main()
