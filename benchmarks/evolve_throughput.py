"""Evolution throughput: seconds per CMA-ES generation (popsize 64 x 16 rollouts), per backend.

The dream backend runs all 1,024 episodes in one batched dream; the real backend runs them in real
CarRacing on 1 and 2 Ray workers. Real episodes are cut short on a CPU (``--real-steps``, default
10) so the run takes minutes; the dream is timed both at that length (the dream/real ratio) and at
the paper's full 1,000 steps. The world model has the paper's CarRacing sizes (z = 32, 256 LSTM
units), untrained, with its done head silenced so every episode runs to its cap (a generation's
worst case). On a GPU the dream is also timed at the Doom sizes (z = 64, 512 units, 2,100 steps).

    python benchmarks/evolve_throughput.py [--real-steps 10] [--dream-steps 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dreamgym.agents import ControllerSpec, DreamBackend
from dreamgym.worldmodels import VMWorldModel
from dreamgym.worldmodels.vm.mdnrnn import MDNRNN, mdnrnn_preset
from dreamgym.worldmodels.vm.vae import ConvVAE

POPSIZE, ROLLOUTS = 64, 16


def never_done_model(env: str, z: int, actions: int, device: str) -> VMWorldModel:
    config = mdnrnn_preset("paper", env, z, actions)
    mdnrnn = MDNRNN(config)
    with torch.no_grad():
        mdnrnn.done.weight.zero_()
        mdnrnn.done.bias.fill_(-20.0)
    low = [-1.0, 0.0, 0.0] if env == "carracing" else [-1.0]
    info = {"env": env, "action_low": low, "action_high": [1.0] * actions, "frame_skip": 1}
    bank = torch.randn(100, z)
    return VMWorldModel(ConvVAE(z), mdnrnn, bank, bank * 0 - 2, info, device)


def seconds_per_generation(backend, spec: ControllerSpec, sync=lambda: None) -> float:
    params = np.random.default_rng(0).normal(0, 0.1, (POPSIZE, spec.num_params))
    backend.returns(params[:2], 1, seed=0)  # warm-up
    sync()
    start = time.perf_counter()
    backend.returns(params, ROLLOUTS, seed=1)
    sync()
    return time.perf_counter() - start


def real_rows(model: VMWorldModel, spec: ControllerSpec, steps: int, dream_seconds: float) -> None:
    import ray

    from dreamgym.agents.ray_backend import RealBackend

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    real = {}
    for workers in (1, 2):
        backend = RealBackend(model, spec, workers, max_episode_steps=steps)
        real[workers] = seconds_per_generation(backend, spec)
        backend.close()
        print(
            f"real   {workers} worker(s) {steps:3} steps/episode: {real[workers]:8.2f} s/generation"
        )
    ray.shutdown()
    print(
        f"real 2 vs 1 worker speed-up: {real[1] / real[2]:.2f}x; "
        f"dream vs real (2 workers), same episode length: {real[2] / dream_seconds:.0f}x faster"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real-steps", type=int, default=10)
    parser.add_argument("--dream-steps", type=int, default=1000)
    parser.add_argument("--skip-real", action="store_true", help="no real-env rows (no Ray)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = never_done_model("carracing", 32, 3, "cpu")
    spec = ControllerSpec.for_world_model(model)
    print(
        f"generation = {POPSIZE} candidates x {ROLLOUTS} rollouts = {POPSIZE * ROLLOUTS} episodes"
    )
    short = seconds_per_generation(DreamBackend(model, spec, 1.0, args.real_steps), spec)
    print(f"dream  CPU  {args.real_steps:5} steps/episode: {short:8.2f} s/generation")
    full = seconds_per_generation(DreamBackend(model, spec, 1.0, args.dream_steps), spec)
    print(f"dream  CPU  {args.dream_steps:5} steps/episode: {full:8.2f} s/generation")
    if not args.skip_real:
        real_rows(model, spec, args.real_steps, short)
    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        for env, z, a, steps in (("carracing", 32, 3, 1000), ("doom-takecover", 64, 1, 2100)):
            gpu = never_done_model(env, z, a, "cuda")
            gspec = ControllerSpec.for_world_model(gpu)
            t = seconds_per_generation(DreamBackend(gpu, gspec, 1.0, steps), gspec, sync)
            print(f"dream  GPU  {env} {steps} steps/episode: {t:8.2f} s/generation")


if __name__ == "__main__":
    main()
