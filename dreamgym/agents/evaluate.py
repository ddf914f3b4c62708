"""Evaluating an agent the paper's way: mean +- std of its return over many episodes, in the dream
(one batched dream) or in the real game (episodes spread over Ray actors).

Any agent over a world model works (:class:`~dreamgym.dreams.agent.DreamAgent`: the linear
controller, a planner, a wrapped SB3 model); :func:`evaluate_controller` loads a saved controller
(or SB3 agent) and its world model first. Episode ``i`` of an evaluation with ``seed`` always uses
the same env seed, so a re-run, or a run with another number of workers, gives the same returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreamgym import worldmodels
from dreamgym.agents.backends import BACKENDS
from dreamgym.agents.controller import Controller
from dreamgym.agents.saved import load_agent
from dreamgym.common import validate
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.threads import torch_threads
from dreamgym.dreams.agent import DreamAgent, check_agent_fits
from dreamgym.dreams.core import DreamCore, resolve_temperature, run_episodes
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import WorldModel


def check_dropout(backend: str, dropout: float | None) -> None:
    """DreamgymError unless ``dropout`` is None or a dropout rate for the dream backend (the
    real env has no M to drop units from)."""
    if dropout is None:
        return
    if backend != "dream":
        raise DreamgymError(f"dropout {dropout:g} is the dream's; the {backend} env has none")
    validate.fraction("dropout", dropout)


@torch_threads("inference")
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
    done_mode: str | None = None,
    progress: bool = False,
    label: str | None = None,
    dropout: float | None = None,
) -> np.ndarray:
    """Returns (episodes,) of ``agent`` in the real env (``episodes`` tasks over ``workers`` Ray
    actors, with a progress bar named ``label`` if ``progress``; default ``evaluate (real)``) or
    in ``model``'s dream (one batch; ``dropout``: its inference dropout, a fresh mask per
    episode, default the model's own).

    Raises:
        DreamgymError: bad arguments, or an agent that does not fit the world model.
    """
    validate.integer("episodes", episodes)
    validate.choice("backend", backend, BACKENDS)
    check_dropout(backend, dropout)
    check_agent_fits(agent, model)
    if backend == "dream":
        core = DreamCore(model, episodes, resolve_temperature(model.env, temperature),
                         agent.observation_mode, done_mode, max_episode_steps,
                         dropout=dropout)  # fmt: skip
        core.seed(np.random.default_rng(seed))
        returns, _, _ = run_episodes(core, lambda obs: agent.act(obs).to(core.device))
        return returns.cpu().numpy().astype(np.float64)
    import ray

    from dreamgym.agents.ray_backend import EpisodeActor, rollout_seed
    from dreamgym.common.cluster import ActorPool, ray_session

    with ray_session(address, workers):
        actor_class = ray.remote(num_cpus=1)(EpisodeActor)
        args = (ray.put(agent), ray.put(model), max_episode_steps)
        pool = ActorPool(lambda: actor_class.remote(*args), workers)
        try:
            results = np.full(episodes, np.nan)
            for i in range(episodes):
                env_seed = rollout_seed(seed, 0, i)  # the real backend's seeds for one candidate
                pool.submit(lambda actor, s=env_seed: actor.run.remote([s]), i)
            bar = progress_bar(total=episodes, desc=label or f"evaluate ({backend})", unit="ep",
                               disable=not progress)  # fmt: skip
            while pool.pending:
                i, returns = pool.next()
                results[i] = returns[0]
                bar.update(1)
                bar.set_postfix(mean=f"{np.nanmean(results):.1f}")
            bar.close()
            return results
        finally:
            pool.close()


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
    done_mode: str | None = None,
    progress: bool = False,
    label: str | None = None,
    dropout: float | None = None,
) -> np.ndarray:
    """:func:`evaluate_agent` for a saved controller or SB3 agent.

    Args:
        controller: the controller's directory (``controller.json`` + ``.safetensors``), its
            ``controller.json``, ``pretrained:NAME``, or an SB3 agent's directory
            (``agent.json`` + ``agent.zip``, see :mod:`dreamgym.agents.sb3_agent`).
        world_model: the bundle it reads frames with; default the one it was trained for.
        device: where the dream runs (the real env's workers use the CPU).
        label: the progress bar's name (default ``evaluate controller (BACKEND)``, or
            ``evaluate agent (BACKEND)`` for an SB3 agent).

    Raises:
        DreamgymError: bad arguments, or a controller that does not fit the world model.
    """
    agent, meta = load_agent(controller)
    kind = "controller" if isinstance(agent, Controller) else "agent"
    bundle = world_model or meta.get("world_model")
    if bundle is None:
        raise DreamgymError(f"{kind} {str(controller)!r} names no world model; pass one")
    model = worldmodels.load(bundle, device if backend == "dream" else "cpu")
    return evaluate_agent(
        agent,
        model,
        episodes=episodes,
        backend=backend,
        temperature=temperature,
        max_episode_steps=max_episode_steps,
        workers=workers,
        address=address,
        seed=seed,
        done_mode=done_mode,
        progress=progress,
        label=label or f"evaluate {kind} ({backend})",
        dropout=dropout,
    )
