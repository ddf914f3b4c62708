"""The real-env evaluation backend: controllers play the real game on Ray actors.

Each actor loads the world model once (its weights travel through Ray's object store once) and
keeps one real env. A generation's P x R episodes are the tasks, dealt to whichever actor is
free, so every worker stays busy to the end of the generation; a task carries its candidate's
parameters (a few kilobytes). Episode seeds derive from the generation seed, the candidate and
the rollout, so a task re-run anywhere gives the same return. When an actor dies (its process
killed, its node lost), its tasks are put back in the queue and a replacement actor is started;
the replacement joins once Ray has placed it, so a cluster that shrank keeps working with the
actors it still has.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import ray

from dreamgym.agents.controller import Controller, ControllerSpec
from dreamgym.common.cluster import ActorPool, connect_ray, disconnect_ray
from dreamgym.common.seeding import derive_seed
from dreamgym.common.threads import use_threads
from dreamgym.dreams.agent import DreamAgent, WorldModelPolicy
from dreamgym.envs import make_env
from dreamgym.rollouts.episode import play
from dreamgym.worldmodels import WorldModel

IN_FLIGHT_PER_ACTOR = 2


def rollout_seed(seed: int, candidate: int, rollout: int) -> int:
    return derive_seed(seed, candidate, rollout)


class EpisodeActor:
    """Ray actor body: one real env (with the world model's frame skip) and an agent acting
    through the world model; used by the evolution's real backend and by ``evaluate``."""

    def __init__(self, agent: DreamAgent, model: WorldModel, max_episode_steps: int | None) -> None:
        use_threads("inference")
        self.env = make_env(model.env, max_episode_steps=max_episode_steps,
                            frame_skip=model.info.get("frame_skip", 1))  # fmt: skip
        self.policy = WorldModelPolicy(agent, model)

    def ready(self) -> bool:
        return True

    def run(self, seeds: list[int], params: np.ndarray | None = None) -> np.ndarray:
        """Returns of one episode per seed; ``params`` first replace a controller's."""
        if params is not None:
            self.policy.agent.set_params(params)
        returns = [sum(step[2] for step in play(self.env, self.policy, seed)) for seed in seeds]
        return np.asarray(returns)


class PooledBackend:
    """Base of the backends whose episodes run on an :class:`ActorPool` they own, on a Ray they
    joined or started (and shut down on :meth:`close`, or when building the pool fails)."""

    pool: ActorPool
    started_ray: bool

    def _open(self, address: str | None, workers: int | None,
              make_pool: Callable[[], ActorPool]) -> None:  # fmt: skip
        self.started_ray = connect_ray(address, workers or 1)
        try:
            self.pool = make_pool()
        except BaseException:
            disconnect_ray(self.started_ray)
            raise

    def _gather(self, results: np.ndarray) -> np.ndarray:
        """Every submitted task's result, written at the index it was submitted with."""
        while self.pool.pending:
            index, value = self.pool.next()
            results[index] = value
        return results

    @property
    def actors(self) -> list:
        """The live actors (a lost one's replacement joins once Ray has placed it)."""
        return self.pool.actors

    def close(self) -> None:
        self.pool.close()
        disconnect_ray(self.started_ray)


class RealBackend(PooledBackend):
    """Evaluates controllers in the real env on ``workers`` Ray actors.

    Args:
        model: the world model (V encodes frames, M tracks memory).
        spec: the controllers' shape.
        workers: number of actors (one env each).
        address: Ray cluster to join (``"auto"``); None starts a local Ray.
        max_episode_steps: episode cap (default: the real env's).
    """

    def __init__(
        self,
        model: WorldModel,
        spec: ControllerSpec,
        workers: int = 2,
        address: str | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        def make_pool() -> ActorPool:
            actor_class = ray.remote(num_cpus=1)(EpisodeActor)
            args = (Controller(spec), ray.put(model), max_episode_steps)
            return ActorPool(lambda: actor_class.remote(*args), workers, IN_FLIGHT_PER_ACTOR)

        self._open(address, workers, make_pool)

    def returns(self, params: np.ndarray, rollouts: int, seed: int) -> np.ndarray:
        params = np.asarray(params, dtype=np.float32)
        for p in range(len(params)):  # the pool deals the P x R episodes as actors free up
            for r in range(rollouts):
                seeds = [rollout_seed(seed, p, r)]
                self.pool.submit(lambda actor, x=params[p], s=seeds: actor.run.remote(s, x),
                                 (p, slice(r, r + 1)))  # fmt: skip
        return self._gather(np.full((len(params), rollouts), np.nan))
