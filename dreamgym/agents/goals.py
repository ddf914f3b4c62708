"""Goal reaching measured the DINO-WM way: start/goal pairs from recorded episodes
(:mod:`dreamgym.agents.goal_pairs`), a step budget, and the env's own success rule, for a planner
beside the random policy and a replay oracle.

A policy has ``budget`` env steps from a pair's start; success is judged on the final state by
the env spec's ``goal_success`` rule (Push-T: agent and block within 20 px, block angle within
pi/9). Success is broken down by how far the goal moves the object (the env spec's
``goal_object``: Push-T's block), since that decides how hard a pair is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.agents.goal_pairs import (
    BUDGET,
    GOAL_OFFSET,
    PAIR_SEED,
    PAIRS,
    GoalPair,
    PairSet,
    goal_pairs,
)
from dreamgym.common import validate
from dreamgym.common.resolve import resolve_callable
from dreamgym.common.threads import torch_threads
from dreamgym.envs import get_env_spec, make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset
from dreamgym.rollouts.episode import play


def displacement_bins(edges: Sequence[float], unit: str = "px") -> list[dict[str, Any]]:
    """The bins that ``edges`` cut displacements into, each with its ``range`` label and
    ``low``/``high`` bounds (low included, high excluded; None: unbounded)."""
    bounds = [None, *edges, None]
    bins = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        if low is None:
            label = f"below {high:g} {unit}"
        elif high is None:
            label = f"{low:g} {unit} and more"
        else:
            label = f"{low:g}-{high:g} {unit}"
        bins.append({"range": label, "low": low, "high": high})
    return bins


def by_displacement(
    displacements: Sequence[float], successes: Sequence[bool], edges: Sequence[float]
) -> list[dict[str, Any]]:
    """Pairs and successes per displacement bin (:func:`displacement_bins` of ``edges``)."""
    where = np.searchsorted(np.asarray(edges, np.float64), np.asarray(displacements), "right")
    reached = np.asarray(successes, bool)
    return [{**b, "pairs": int((where == k).sum()), "successes": int(reached[where == k].sum())}
            for k, b in enumerate(displacement_bins(edges))]  # fmt: skip


def success_rule(env: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The env spec's ``goal_success`` function."""
    name = get_env_spec(env).goal_success
    if name is None:
        raise DreamgymError(f"env {env!r} has no goal-success rule; goal reaching needs one")
    return resolve_callable(name, f"env {env!r}'s goal_success")


class OraclePolicy:
    """Replays the recorded actions from the start to the goal, then holds still (action 0)."""

    label = "replay of the recorded actions (oracle)"

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = list(np.asarray(actions, np.float32))
        self.still = np.zeros_like(self.actions[0])

    def act(self, frame: np.ndarray) -> np.ndarray:
        return self.actions.pop(0) if self.actions else self.still


class UniformPolicy:
    """Uniform random actions in the env's action box, seeded per pair."""

    label = "random"

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int) -> None:
        self.low, self.high = low, high
        self.rng = np.random.default_rng(seed)

    def act(self, frame: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


class _FromStart:
    """Replays the recorded actions up to a pair's start, then hands over to ``policy``: the
    real-episode loop (``play``) drives the env from its seed, and the policy takes over at the
    start, after the replay is checked to have reached the recorded state.

    From the handover on, a policy with an ``observe_info(info)`` method sees the env's info
    before each action, as in ``play``."""

    def __init__(self, actions: np.ndarray, policy, check: Callable[[dict], None]) -> None:
        self.prefix, self.policy, self.check = list(actions), policy, check
        self.info: dict[str, Any] = {}
        self.first_frame: np.ndarray | None = None
        self.start: float | None = None  # when the policy took over (perf_counter)

    def observe_info(self, info: dict[str, Any]) -> None:
        self.info = info

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self.prefix:
            return self.prefix.pop(0)
        if self.start is None:
            self.check(self.info)
            self.first_frame, self.start = frame, time.perf_counter()
        observe_info = getattr(self.policy, "observe_info", None)
        if callable(observe_info):
            observe_info(self.info)
        return self.policy.act(frame)


def reach(env_name: str, data: RolloutDataset, pair: GoalPair, policy, budget: int,
          keep_frames: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run ``policy`` for ``budget`` env steps from ``pair``'s start: the final state, success,
    the policy's seconds and steps, and (``keep_frames``) the frames seen. A policy with an
    ``observe_info(info)`` method sees the env's info before each action, as in ``play``."""
    episode = data.episode(pair.episode)
    env = make_env(env_name, max_episode_steps=pair.start + budget + 1,
                   frame_skip=int(data.meta.get("frame_skip", 1)))  # fmt: skip

    def check(info: dict[str, Any] | None) -> None:
        if info is None or not np.allclose(info["state"], episode.state[pair.start], atol=1e-6):
            raise DreamgymError(
                f"replaying episode {pair.episode} of {str(data.root)!r} did not reproduce its "
                "recorded state: the env is not deterministic for its seed"
            )

    driver = _FromStart(episode.actions[: pair.start], policy, check)
    frames, steps = [], 0
    try:
        for step in play(env, driver, int(episode.seed)):
            if driver.start is None:
                continue  # a replayed step
            steps += 1
            if keep_frames:
                frames.append(step.next_obs)
            info = step.next_info
            if steps == budget:
                break
        if driver.start is None:  # the episode ended before the start: not the recorded one
            check(None)
        seconds = time.perf_counter() - driver.start
    finally:
        env.close()
    if keep_frames:
        frames.insert(0, driver.first_frame)
    state = np.asarray(info["state"])
    ok = bool(success_rule(env_name)(state, pair.goal_state))
    return {"success": ok, "final_state": state.tolist(), "seconds": seconds, "steps": steps,
            "frames": frames}  # fmt: skip


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch_threads("inference")
def evaluate_goal_reaching(
    env: str,
    data: str | Path | PairSet,
    policies: dict[str, Callable[[int, GoalPair], Any]],
    pairs: int = PAIRS,
    offset: int = GOAL_OFFSET,
    budget: int = BUDGET,
    seed: int = PAIR_SEED,
    videos: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Success rates of several policies on the same start/goal pairs.

    Args:
        env: the real env's name.
        data: where the pairs come from (:func:`pair_set`), or recorded episodes with states
            (then every episode, as ``user data``).
        policies: name -> ``make(pair_index, pair)`` returning a fresh policy for that pair.
        pairs, offset, budget, seed: the protocol (DINO-WM: 50 pairs, 25, 50, seed 99).
        videos: keep the frames of the first ``videos`` pairs (per policy) under ``"frames"``.
        progress: called with a line after each pair.

    Returns:
        the protocol and the pair set (``pair_set``); the pairs' ``difficulty`` (the median of
        how far each goal moves the env's goal object, and the pairs per bin of that move, where
        the env spec names one); per policy: successes, rate, 95% Wilson interval, seconds per
        env step, successes per bin (``by_displacement``) and per-pair results.
    """
    for name, value in (("pairs", pairs), ("goal offset", offset), ("budget", budget)):
        validate.integer(name, value)
    if not isinstance(data, PairSet):
        root = Path(data).resolve()
        data = PairSet("user data", root, None, f"episodes of {str(root)!r}")
    dataset = RolloutDataset(data.data)
    spec = get_env_spec(env)
    chosen = goal_pairs(dataset, pairs, offset, seed, data.episodes, spec.goal_object)
    moved = [p.displacement for p in chosen]
    difficulty = None
    if spec.goal_object is not None:
        difficulty = {"median_displacement": float(np.median(moved)),
                      "bins": [{k: b[k] for k in ("range", "low", "high", "pairs")}
                               for b in by_displacement(moved, [False] * len(moved),
                                                        spec.goal_object_bins)]}  # fmt: skip
    report: dict[str, Any] = {"env": env, "data": str(data.data), "pair_set": data.to_json(),
                              "pairs": pairs, "offset": offset, "budget": budget, "seed": seed,
                              "difficulty": difficulty, "policies": {}}  # fmt: skip
    for name, make in policies.items():
        results = []
        for k, pair in enumerate(chosen):
            policy = make(k, pair)
            result = reach(env, dataset, pair, policy, budget, keep_frames=k < videos)
            results.append({"episode": pair.episode, "start": pair.start,
                            "displacement": pair.displacement, **result})  # fmt: skip
            if progress is not None:
                done = sum(r["success"] for r in results)
                verdict = "reached" if result["success"] else "missed"
                progress(f"{name}: pair {k + 1}/{len(chosen)} {verdict} ({done} reached so far)")
        successes = sum(r["success"] for r in results)
        low, high = wilson_interval(successes, len(results))
        report["policies"][name] = {
            "successes": successes, "rate": successes / len(results), "interval": [low, high],
            "seconds_per_step": sum(r["seconds"] for r in results)
                                / max(1, sum(r["steps"] for r in results)),
            "by_displacement": None if difficulty is None else by_displacement(
                moved, [r["success"] for r in results], spec.goal_object_bins),
            "results": results,
        }  # fmt: skip
    return report
