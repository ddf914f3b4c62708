from __future__ import annotations

import threading

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster
from ray_options import QUIET, start_local_ray

from dreamgym import worldmodels
from dreamgym.agents import Controller, ControllerPolicy, ControllerSpec
from dreamgym.agents.backends import DreamBackend
from dreamgym.agents.ray_backend import RealBackend, rollout_seed
from dreamgym.agents.ray_dream import ShardedDreamBackend
from dreamgym.envs import make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import run_episode


def candidates(spec: ControllerSpec, n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.3, (n, spec.num_params)).astype(np.float32)


@pytest.mark.slow
def test_real_backend_runs_real_episodes_per_candidate(ray_local, car_bundle):
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    params = candidates(spec, 3)
    backend = RealBackend(model, spec, workers=2, max_episode_steps=12)
    try:
        returns = backend.returns(params, 2, seed=5)
        assert returns.shape == (3, 2) and np.isfinite(returns).all()
        np.testing.assert_array_equal(returns, backend.returns(params, 2, seed=5))
    finally:
        backend.close()
    env = make_env("carracing", max_episode_steps=12)
    policy = ControllerPolicy(Controller(spec, params[2]), model)
    expected = run_episode(env, policy, rollout_seed(5, 2, 1)).total_reward
    assert returns[2, 1] == pytest.approx(expected, rel=1e-5)


def test_unreachable_cluster_is_a_clear_error(car_bundle):
    model = worldmodels.load(car_bundle)
    was_running = ray.is_initialized()
    ray.shutdown()
    try:
        with pytest.raises(DreamgymError, match="could not connect to the Ray cluster"):
            RealBackend(model, ControllerSpec.for_world_model(model), address="127.0.0.1:1")
    finally:
        if was_running:
            start_local_ray()


@pytest.fixture
def two_node_cluster():
    was_running = ray.is_initialized()
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, **QUIET)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()
    if was_running:
        start_local_ray()


@pytest.mark.slow
def test_losing_a_node_mid_generation_loses_no_candidate(two_node_cluster, car_bundle):
    cluster, nodes = two_node_cluster
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    params = candidates(spec, 6)
    backend = RealBackend(model, spec, workers=2, max_episode_steps=150)
    assert len(backend.actors) == 2  # one per worker node: the head has no CPU
    try:
        killer = threading.Timer(1.5, cluster.remove_node, args=(nodes[0],))
        killer.start()
        returns = backend.returns(params, 2, seed=3)
        killer.join()
        assert np.isfinite(returns).all() and returns.shape == (6, 2)
        assert len(backend.actors) == 1, "an actor should have died with its node"
        # Every candidate got exactly its fitness: the same work, on the surviving node alone.
        np.testing.assert_array_equal(returns, backend.returns(params, 2, seed=3))
    finally:
        backend.close()


@pytest.mark.slow
def test_sharded_dream_backend_matches_in_process_and_reruns_a_lost_shard(ray_local, car_bundle):
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    params = candidates(spec, 5)
    here = DreamBackend(model, spec, 1.0, 40).returns(params, 3, seed=4)
    one = ShardedDreamBackend(car_bundle, spec, 1.0, 40, workers=1)
    try:
        np.testing.assert_array_equal(one.returns(params, 3, seed=4), here)
    finally:
        one.close()
    two = ShardedDreamBackend(car_bundle, spec, 1.0, 40, workers=2)
    try:
        first = two.returns(params, 3, seed=4)
        assert first.shape == (5, 3) and np.isfinite(first).all()
        assert not np.array_equal(first, here)  # shard 1 draws its own noise
        ray.kill(two.actors[0])  # its shard is lost and re-run by a replacement
        np.testing.assert_array_equal(two.returns(params, 3, seed=4), first)
        assert len(two.actors) + len(two.pool.joining) == 2  # a replacement was started
    finally:
        two.close()
