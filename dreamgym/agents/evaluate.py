"""Evaluating an agent the paper's way: mean +- std of its return over many episodes, in the dream
(one batched dream) or in the real game (episodes spread over Ray actors).

Any agent over a world model works (:class:`~dreamgym.dreams.agent.DreamAgent`: the linear
controller, a planner, a wrapped SB3 model); :func:`evaluate_controller` loads a saved controller
and its world model first. Episode ``i`` of an evaluation with ``seed`` always uses the same env
seed, so a re-run, or a run with another number of workers, gives the same returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dreamgym import worldmodels
from dreamgym.agents.controller import Controller
from dreamgym.common.seeding import derive_seed
from dreamgym.dreams.agent import DreamAgent, WorldModelPolicy, check_agent_fits
from dreamgym.dreams.core import DreamCore, resolve_temperature, run_episodes
from dreamgym.envs import make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts.episode import play
from dreamgym.worldmodels import WorldModel

BACKENDS = ("dream", "real")


class EpisodeActor:
    """Ray actor body: one real env and the agent acting through the world model."""

    def __init__(self, agent: DreamAgent, model: WorldModel, max_episode_steps: int | None) -> None:
        torch.set_num_threads(1)
        self.env = make_env(model.env, max_episode_steps=max_episode_steps,
                            frame_skip=model.info.get("frame_skip", 1))  # fmt: skip
        self.policy = WorldModelPolicy(agent, model)

    def ready(self) -> bool:
        return True

    def run(self, seed: int) -> float:
        return sum(step[2] for step in play(self.env, self.policy, seed))


def episode_seed(seed: int, episode: int) -> int:
    """The real env's seed for episode ``episode`` (the evolution's for candidate 0)."""
    return derive_seed(seed, 0, episode)


def evaluate_agent(
    agent: DreamAgent,
    model: WorldModel,
    episodes: int = 100,
    backend: str = "real",
    temperature: float | None = None,
    max_episode_steps: int | None = None,
    workers: int = 2,
    address: str | None = None,
    seed: int = 0,
    done_mode: str = "threshold",
) -> np.ndarray:
    """Returns (episodes,) of ``agent`` in the real env (``episodes`` tasks over ``workers`` Ray
    actors) or in ``model``'s dream (one batch).

    Raises:
        DreamgymError: bad arguments, or an agent that does not fit the world model.
    """
    if episodes < 1:
        raise DreamgymError(f"episodes must be >= 1, got {episodes}")
    if backend not in BACKENDS:
        raise DreamgymError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_agent_fits(agent, model)
    if backend == "dream":
        core = DreamCore(model, episodes, resolve_temperature(model.env, temperature),
                         agent.observation_mode, done_mode, max_episode_steps)  # fmt: skip
        core.seed(np.random.default_rng(seed))
        returns, _, _ = run_episodes(core, lambda obs: agent.act(obs).to(core.device))
        return returns.cpu().numpy().astype(np.float64)
    import ray

    from dreamgym.common.cluster import ActorPool, connect_ray

    started = connect_ray(address, workers)
    actor_class = ray.remote(num_cpus=1)(EpisodeActor)
    args = (ray.put(agent), ray.put(model), max_episode_steps)
    pool = ActorPool(lambda: actor_class.remote(*args), workers)
    try:
        results = np.full(episodes, np.nan)
        for i in range(episodes):
            env_seed = episode_seed(seed, i)
            pool.submit(lambda actor, s=env_seed: actor.run.remote(s), i)
        while pool.pending:
            i, total = pool.next()
            results[i] = total
        return results
    finally:
        pool.close()
        if started:
            ray.shutdown()


def evaluate_controller(
    controller: str | Path,
    episodes: int = 100,
    backend: str = "real",
    world_model: str | Path | None = None,
    temperature: float | None = None,
    max_episode_steps: int | None = None,
    workers: int = 2,
    address: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    done_mode: str = "threshold",
) -> np.ndarray:
    """:func:`evaluate_agent` for a saved controller.

    Args:
        controller: the controller's directory (``controller.json`` + ``.safetensors``).
        world_model: the bundle it reads frames with; default the one it was trained for.
        device: where the dream runs (the real env's workers use the CPU).

    Raises:
        DreamgymError: bad arguments, or a controller that does not fit the world model.
    """
    agent, meta = Controller.load(controller)
    bundle = world_model or meta.get("world_model")
    if bundle is None:
        raise DreamgymError(f"controller {str(controller)!r} names no world model; pass one")
    model = worldmodels.load(bundle, device if backend == "dream" else "cpu")
    return evaluate_agent(agent, model, episodes, backend, temperature, max_episode_steps,
                          workers, address, seed, done_mode)  # fmt: skip
