"""Torch threads: each kind of work at one thread against torch's default (one per core), in
the same process, idle or beside busy processes (``--load K``: K pure-Python spinners, the other
jobs of a shared machine).

The work, each a fixed amount timed whole (the best of ``--repeats``, after a warm-up):

- ``render``: 50 steps of the single dream with frames (``DreamEnv``, rgb_array, the shipped
  CarRacing model), one step and one decoded frame at a time: ``dreamgym render``'s loop.
- ``act in real env``: the shipped CarRacing controller acting through its world model on 50
  recorded real frames, one per step (V encodes, M advances, the controller reads): ``evaluate
  --backend real``, ``collect --policy CONTROLLER`` and fidelity's controllers, per Ray worker.
- ``dream N=100``: 50 steps of 100 dreams: ``evaluate --backend dream``.
- ``dream N=1024``: 10 steps of 1,024 dreams (64 candidates x 16 rollouts): ``evolve
  --backend dream``.
- ``plan``: one CEM plan of the ``cpu`` planner preset at 3 iterations (100 samples) on a
  ``cpu``-preset latent model of Push-T (untrained weights: the cost does not depend on them):
  ``dreamgym plan``, every env step.
- ``train V``: 2 paper-size ConvVAE training steps on batches of 100 frames: ``train``.

The ratio is the default's time over one thread's: above 1, one thread is faster.

    python benchmarks/threads.py [--load K] [--repeats R]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable

import numpy as np
import torch

from dreamgym import worldmodels
from dreamgym.agents.controller import Controller
from dreamgym.agents.planning import Planner, planner_preset
from dreamgym.dreams import DreamEnv, DreamVectorEnv
from dreamgym.dreams.agent import WorldModelPolicy
from dreamgym.envs import make_env
from dreamgym.worldmodels.latent.model import LatentNet, latent_world_model
from dreamgym.worldmodels.latent.presets import latent_preset
from dreamgym.worldmodels.vm.vae import ConvVAE, vae_loss


def spin() -> None:
    while True:
        pass


def render_work() -> Callable[[], None]:
    env = DreamEnv("pretrained:carracing", render_mode="rgb_array")
    action = np.array([0.0, 0.5, 0.0], np.float32)

    def work() -> None:
        env.reset(seed=0)
        for _ in range(50):
            env.step(action)
            env.render()

    return work


def act_work() -> Callable[[], None]:
    agent, _ = Controller.load("pretrained:carracing")
    policy = WorldModelPolicy(agent, worldmodels.load("pretrained:carracing"))
    env = make_env("carracing")
    frames = [env.reset(seed=0)[0]]
    for _ in range(49):
        frames.append(env.step(np.array([0.0, 0.3, 0.0], np.float32))[0])
    env.close()

    def work() -> None:
        policy.reset(0)
        for frame in frames:
            policy.act(frame)

    return work


def dream_work(n: int, steps: int) -> Callable[[], None]:
    env = DreamVectorEnv(n, world_model="pretrained:carracing", output="torch")
    actions = torch.zeros(n, 3)

    def work() -> None:
        env.reset(seed=0)
        for _ in range(steps):
            env.step(actions)

    return work


def plan_work() -> Callable[[], None]:
    torch.manual_seed(0)
    net = LatentNet(latent_preset("cpu", action_size=2, proprio_size=4))
    frames = torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8)
    info = {"env": "pusht", "action_low": [-1.0, -1.0], "action_high": [1.0, 1.0]}
    model = latent_world_model(net, None, frames, torch.randn(8, 4), info, "cpu", None, 1.0)
    planner = Planner(model, planner_preset("cpu", iterations=3, execute=1), seed=0)
    state = model.initial_state(1, torch.Generator().manual_seed(0))
    goal = model.initial_state(1, torch.Generator().manual_seed(1))
    return lambda: planner.plan(state, goal)


def train_work() -> Callable[[], None]:
    torch.manual_seed(0)
    vae = ConvVAE(32)
    optimizer = torch.optim.Adam(vae.parameters(), 1e-4)
    x = torch.rand(100, 3, 64, 64)

    def work() -> None:
        for _ in range(2):
            recon, mu, logvar = vae(x)
            loss = vae_loss(x, recon, mu, logvar, 0.5)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return work


def seconds(work: Callable[[], None], threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", type=int, default=0, help="busy processes beside (default 0)")
    parser.add_argument("--repeats", type=int, default=1, help="timings per setting (best kept)")
    args = parser.parse_args()
    default = torch.get_num_threads()
    works = {
        "render": render_work(),
        "act in real env": act_work(),
        "dream N=100": dream_work(100, 50),
        "dream N=1024": dream_work(1024, 10),
        "plan": plan_work(),
        "train V": train_work(),
    }
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.load)]
    for process in spinners:
        process.start()
    try:
        print(f"torch default threads {default}, {args.load} busy process(es) beside")
        print(f"{'work':16} {'1 thread (s)':>13} {f'{default} threads (s)':>15} {'ratio':>6}")
        for name, work in works.items():
            work()  # warm-up
            one = min(seconds(work, 1) for _ in range(args.repeats))
            many = min(seconds(work, default) for _ in range(args.repeats))
            print(f"{name:16} {one:13.3f} {many:15.3f} {many / one:6.2f}", flush=True)
    finally:
        for process in spinners:
            process.kill()


if __name__ == "__main__":
    main()
