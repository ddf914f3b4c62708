"""Latent world models: training windows/s, latent-dream steps/s beside the MDN-RNN dream, and
the time of one CEM plan, for the ``cpu`` preset (pooled pixels, the convolutional predictor),
the ``cpu`` preset with bf16 autocast in training (its ratio to fp32 is printed), the
``cpu-vit`` preset (with its tiny ViT, with the fixed ``pixels`` encoder, and with the
rollout loss over 5 imagined steps) and the ``paper`` preset.

Training runs the real trainer for one short epoch on a few Push-T episodes collected here
(windows/s as the trainer reports it). The dream step is the latent model's ``step`` on N states
(the cost of ``Dream-PushT-v0`` and of a planner's imagination), compared with the V+M dream
(paper-size CarRacing M) stepping the same N in this process. The ``paper`` preset's DINOv2 has
random weights of the right shape (the cost does not depend on them). On a CPU the ``paper``
preset's training and plans are skipped unless ``--paper-on-cpu`` (DINO-WM's size is for a GPU:
one of its CEM plans is hours of CPU).

    python benchmarks/latent_throughput.py [--device cpu|cuda] [--paper-on-cpu] [--data DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from dream_throughput import paper_sized_model, rate
from safetensors.torch import save_file

from dreamgym.agents.planning import Planner, planner_preset
from dreamgym.dreams import DreamVectorEnv
from dreamgym.rollouts import CollectConfig, collect
from dreamgym.worldmodels import load
from dreamgym.worldmodels.latent.encoders import VisionTransformer, dinov2_vits14
from dreamgym.worldmodels.latent.train import train_latent


def push_t_data(root: Path) -> Path:
    data = root / "data"
    collect(CollectConfig(env="pusht", episodes=4, out=data, policy="weak-expert", workers=1,
                          max_episode_steps=100), progress=False)  # fmt: skip
    return data


def random_dinov2(root: Path) -> Path:
    path = root / "dinov2.safetensors"
    torch.manual_seed(0)
    save_file(VisionTransformer(dinov2_vits14(518)).state_dict(), str(path))
    return path


def train_rate(data: Path, out: Path, preset: str, device: str, windows: int, **extra) -> float:
    trainer = train_latent(data, out, preset=preset, device=device, progress=False, epochs=1,
                           windows_per_epoch=windows, val_windows=8, **extra)  # fmt: skip
    return trainer.history[-1]["windows_per_second"]


def dream_rate(model, n: int, sync) -> float:
    state = model.initial_state(n, torch.Generator(model.device).manual_seed(0))
    action = torch.zeros(n, model.action_space.shape[0], device=model.device)

    def step():
        nonlocal state
        state = model.step(state, action)

    return rate(step, n, sync=sync)


def vm_rate(device: str, n: int, sync) -> float:
    env = DreamVectorEnv(n, world_model=paper_sized_model(device), output="torch")
    env.reset(seed=0)
    actions = torch.zeros(n, 3, device=device)
    return rate(lambda: env.step(actions), n, sync=sync)


def plan_seconds(model, preset: str, sync) -> float:
    planner = Planner(model, planner_preset(preset, execute=1), seed=0)
    state = model.initial_state(1, torch.Generator(model.device).manual_seed(0))
    goal = model.initial_state(1, torch.Generator(model.device).manual_seed(1))
    planner.plan(state, goal)  # warm-up
    sync()
    start = time.perf_counter()
    planner.plan(state, goal)
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--paper-on-cpu", action="store_true", help="also run paper on a CPU")
    parser.add_argument("--data", help="Push-T episodes to train on (default: collect 4 here)")
    args = parser.parse_args()
    device = args.device
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    paper = device != "cpu" or args.paper_on_cpu
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = Path(args.data) if args.data else push_t_data(root)
        # (label, preset, overrides)
        rows = [
            ("cpu", "cpu", {}),
            ("cpu/bf16", "cpu", {"bf16": True}),
            ("cpu-vit", "cpu-vit", {}),
            ("cpu-vit/pixels", "cpu-vit", {"encoder": "pixels"}),
            ("cpu-vit/roll5", "cpu-vit", {"rollout": 5}),
        ]
        if paper:
            rows.append(("paper", "paper", {"dinov2_weights": str(random_dinov2(root))}))
        # N = a CEM iteration's candidates (DINO-WM: 300), the batch a planner imagines.
        n = 300
        base = vm_rate(device, n, sync)
        print(f"device {device}; V+M dream (paper-size CarRacing M), N={n}: {base:,.0f} steps/s")
        print(f"{'preset':15} {'train windows/s':>16} {'dream steps/s':>14} {'vs V+M':>7} "
              f"{'plan (s)':>9} {'planner':>8}")  # fmt: skip
        rates = {}
        for label, preset, extra in rows:
            windows = 256 if device != "cpu" else (8 if preset == "paper" else 640)
            out = root / label.replace("/", "-")
            train = rates[label] = train_rate(data, out, preset, device, windows, **extra)
            model = load(out, device)
            dream = dream_rate(model, n, sync)
            planner = "dino-wm" if preset == "paper" or device != "cpu" else "cpu"
            plan = plan_seconds(model, planner, sync)
            print(f"{label:15} {train:16,.1f} {dream:14,.0f} {dream / base:7.2f} {plan:9.2f} "
                  f"{planner:>8}")  # fmt: skip
        print(
            f"bf16 autocast trains the cpu preset {rates['cpu/bf16'] / rates['cpu']:.2f}x as "
            "fast as fp32"
        )


if __name__ == "__main__":
    main()
