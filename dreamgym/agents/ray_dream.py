"""The dream backend spread over a Ray cluster: each actor runs one batched dream on its own device.

A generation's P candidates are cut into as many contiguous shards as there are actors; a shard's
P_s x R episodes run in one :class:`~dreamgym.agents.backends.DreamBackend` on one actor (a GPU
each when the cluster has one per actor, else CPU threads), and the driver gathers the fitnesses.
The world model travels once, as its bundle's bytes through the object store, so nodes need no
shared filesystem. Shard ``s`` of ``k`` draws its dream noise from ``derive_seed(seed, s)`` (from
``seed`` itself when ``k == 1``, which makes one actor reproduce the in-process backend exactly),
so a shard re-run after its actor died gives the same fitnesses, and a run that lost an actor
equals one that did not. A different number of actors draws different noise, like another seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import ray
import torch

from dreamgym.agents.backends import DreamBackend
from dreamgym.agents.controller import ControllerSpec
from dreamgym.agents.ray_backend import PooledBackend
from dreamgym.common.cluster import ActorPool
from dreamgym.common.seeding import derive_seed
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import bundle


class DreamShardActor:
    """Ray actor body: the world model on this actor's device and a :class:`DreamBackend`."""

    def __init__(
        self,
        files: dict[str, bytes],
        spec: ControllerSpec,
        temperature: float,
        max_episode_steps: int | None,
        done_mode: str | None,
        threads: int,
        dropout: float | None = None,
        ensemble: bool = True,
        ensemble_fitness: str = "mean",
    ) -> None:
        torch.set_num_threads(threads)
        device = "cuda" if ray.get_gpu_ids() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES
        model = bundle.load_packed(files, device)
        self.backend = DreamBackend(model, spec, temperature, max_episode_steps, done_mode,
                                    dropout, ensemble, ensemble_fitness)  # fmt: skip

    def ready(self) -> str:
        return str(self.backend.model.device)

    def returns(self, params: np.ndarray, rollouts: int, seed: int) -> np.ndarray:
        return self.backend.returns(params, rollouts, seed)


def shard_seed(seed: int, shard: int, shards: int) -> int:
    """The dream seed of one shard of a generation evaluated with ``seed``."""
    return seed if shards == 1 else derive_seed(seed, shard)


def actor_resources(workers: int) -> tuple[dict[str, float], int]:
    """Ray resources per actor and its torch threads: a GPU each when the cluster has one per
    actor; else an equal share of the smallest node's CPUs (at least one), so that every actor
    can be placed on any node."""
    if ray.cluster_resources().get("GPU", 0) >= workers:
        return {"num_cpus": 1, "num_gpus": 1}, 1
    node_cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    node_cpus = [c for c in node_cpus if c >= 1] or [1]
    per_node = math.ceil(workers / len(node_cpus))
    threads = max(1, int(min(node_cpus)) // per_node)
    return {"num_cpus": threads}, threads


class ShardedDreamBackend(PooledBackend):
    """Evaluates controllers in dreams on ``workers`` Ray actors (see the module docstring).

    Args:
        world_model: the bundle directory (sent to the actors as bytes).
        spec: the controllers' shape.
        temperature, max_episode_steps, done_mode, dropout, ensemble, ensemble_fitness: as
            for :class:`DreamBackend`.
        workers: number of actors; None: one per GPU of the cluster, at least one.
        address: Ray cluster to join; None starts a local Ray.
    """

    def __init__(
        self,
        world_model: str | Path,
        spec: ControllerSpec,
        temperature: float,
        max_episode_steps: int | None = None,
        done_mode: str | None = None,
        workers: int | None = None,
        address: str | None = None,
        dropout: float | None = None,
        ensemble: bool = True,
        ensemble_fitness: str = "mean",
    ) -> None:
        files = bundle.pack(world_model)

        def make_pool() -> ActorPool:
            n = workers
            if n is None:
                n = max(1, int(ray.cluster_resources().get("GPU", 0)))
            if n < 1:
                raise DreamgymError(f"workers must be >= 1, got {n}")
            options, threads = actor_resources(n)
            actor_class = ray.remote(**options)(DreamShardActor)
            args = (ray.put(files), spec, temperature, max_episode_steps, done_mode, threads,
                    dropout, ensemble, ensemble_fitness)  # fmt: skip
            self.workers = n
            return ActorPool(lambda: actor_class.remote(*args), n, per_actor=1)

        self._open(address, workers, make_pool)

    def returns(self, params: np.ndarray, rollouts: int, seed: int) -> np.ndarray:
        params = np.asarray(params, dtype=np.float32)
        shards = np.array_split(np.arange(len(params)), min(self.workers, len(params)))
        results = np.full((len(params), rollouts), np.nan)
        for s, rows in enumerate(shards):
            x, shard_s = params[rows], shard_seed(seed, s, len(shards))
            self.pool.submit(lambda actor, x=x, q=shard_s: actor.returns.remote(x, rollouts, q),
                             rows)  # fmt: skip
        return self._gather(results)
