"""Dream throughput: steps/s of the real env, the single DreamEnv, and the batched dream.

Every figure is also a ratio to the real env (CarRacing, 64x64 frames) measured in this process,
and the vector dream is compared with a bare batched M step (LSTM cell + mixture head + sampling
on tensors, no env logic) to show the env's own overhead. The world model has the paper's
CarRacing sizes (z = 32, 256 LSTM units); its weights are untrained unless --world-model is given,
which does not change the cost of a step.

    python benchmarks/dream_throughput.py [--world-model BUNDLE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dreamgym import worldmodels
from dreamgym.dreams import DreamEnv, DreamVectorEnv
from dreamgym.envs import make_env
from dreamgym.worldmodels.vm.mdnrnn import MDNRNN, mdnrnn_preset, sample_mdn
from dreamgym.worldmodels.vm.vae import ConvVAE

INFO = {"env": "carracing", "action_low": [-1.0, 0.0, 0.0], "action_high": [1.0, 1.0, 1.0]}


def paper_sized_model(device: str) -> worldmodels.VMWorldModel:
    config = mdnrnn_preset("paper", "carracing", 32, 3)
    bank = torch.randn(100, 32)
    return worldmodels.VMWorldModel(ConvVAE(32), MDNRNN(config), bank, bank * 0 - 2, INFO, device)


def rate(step, n_per_call: int, seconds: float = 2.0, sync=lambda: None) -> float:
    step()
    sync()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        calls += 1
    sync()
    return calls * n_per_call / (time.perf_counter() - start)


def real_env_rate() -> float:
    env = make_env("carracing")
    env.reset(seed=0)
    action = np.array([0.0, 0.3, 0.0], np.float32)

    def step():
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    return rate(step, 1)


def bare_m_rate(model, n: int, device: str, sync) -> float:
    m = model.mdnrnn
    g = torch.Generator(device).manual_seed(0)
    z, a = torch.randn(n, 32, device=device), torch.zeros(n, 3, device=device)
    h = c = torch.zeros(n, m.config.hidden_size, device=device)

    @torch.no_grad()
    def step():
        nonlocal z, h, c
        heads, (h, c) = m.step(z, a, None, (h, c))
        z = sample_mdn(heads["logits"], heads["mu"], heads["logsigma"], 1.0, g)

    return rate(step, n, sync=sync)


def bare_m_graph_rate(model, n: int) -> float:
    """The bare M step replayed from a CUDA graph (one launch per step instead of ~30)."""
    m = model.mdnrnn
    z, a = torch.randn(n, 32, device="cuda"), torch.zeros(n, 3, device="cuda")
    h, c = (torch.zeros(n, m.config.hidden_size, device="cuda") for _ in range(2))

    @torch.no_grad()
    def step():
        heads, (h_next, c_next) = m.step(z, a, None, (h, c))
        z.copy_(sample_mdn(heads["logits"], heads["mu"], heads["logsigma"], 1.0))
        h.copy_(h_next)
        c.copy_(c_next)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return rate(graph.replay, n, sync=torch.cuda.synchronize)


def vector_rate(model, n: int, output: str, sync) -> float:
    env = DreamVectorEnv(n, world_model=model, output=output)
    env.reset(seed=0)
    actions = (
        torch.zeros(n, 3, device=model.device)
        if output == "torch"
        else np.zeros((n, 3), np.float32)
    )
    return rate(lambda: env.step(actions), n, sync=sync)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world-model", help="a CarRacing bundle (default: untrained, paper-size)")
    args = parser.parse_args()
    torch.manual_seed(0)
    load = (
        (lambda d: worldmodels.load(args.world_model, d)) if args.world_model else paper_sized_model
    )
    real = real_env_rate()
    print(f"{'setup':38} {'steps/s':>12} {'vs real env':>12}")
    print(f"{'real CarRacing (64x64 frames)':38} {real:12,.0f} {1.0:12.1f}")
    cpu = load("cpu")
    single = DreamEnv(cpu)
    single.reset(seed=0)
    action = np.zeros(3, np.float32)
    r = rate(lambda: single.step(action), 1)
    print(f"{'DreamEnv (single, CPU)':38} {r:12,.0f} {r / real:12.1f}")
    for n in (64, 1024):
        r = vector_rate(cpu, n, "numpy", lambda: None)
        print(f"{f'DreamVectorEnv N={n} (CPU)':38} {r:12,.0f} {r / real:12.1f}")
    bare = bare_m_rate(cpu, 1024, "cpu", lambda: None)
    print(f"{'bare batched M step N=1024 (CPU)':38} {bare:12,.0f} {bare / real:12.1f}")
    if torch.cuda.is_available():
        gpu = load("cuda")
        for n in (1024, 16384):
            r = vector_rate(gpu, n, "torch", torch.cuda.synchronize)
            print(f"{f'DreamVectorEnv N={n} (GPU, torch out)':38} {r:12,.0f} {r / real:12.1f}")
        for n in (1024, 16384, 65536):
            bare = bare_m_rate(gpu, n, "cuda", torch.cuda.synchronize)
            print(f"{f'bare batched M step N={n} (GPU)':38} {bare:12,.0f} {bare / real:12.1f}")
            graphed = bare_m_graph_rate(gpu, n)
            label = f"same, CUDA graph N={n} (GPU)"
            print(f"{label:38} {graphed:12,.0f} {graphed / real:12.1f}")


if __name__ == "__main__":
    main()
