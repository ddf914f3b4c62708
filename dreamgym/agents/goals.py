"""Goal reaching measured the DINO-WM way: start/goal pairs from recorded episodes, a step budget,
and the env's own success rule, for a planner beside the random policy and a replay oracle.

A pair is a random recorded episode and offset t (fixed seed): the start is the state reached by
replaying the episode's first t recorded actions from its seed (replay is exact; resetting to a
saved state is not, in gym-pusht), the goal is the recorded frame and state ``goal_offset`` env
steps later. A policy then has ``budget`` env steps; success is judged on the final state by
the env spec's ``goal_success`` rule (Push-T: agent and block within 20 px, block angle within
pi/9).
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.common import validate
from dreamgym.common.threads import torch_threads
from dreamgym.envs import get_env_spec, make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset


@dataclass(frozen=True)
class GoalPair:
    """A start (episode ``episode`` after ``start`` recorded steps) and the goal reached
    ``offset`` recorded steps later."""

    episode: int
    start: int
    offset: int
    goal_frame: np.ndarray  # (H, W, 3) uint8
    goal_state: np.ndarray  # the env's recorded state
    goal_proprio: np.ndarray | None  # the recorded proprioception, when episodes record it


def goal_pairs(
    data: RolloutDataset, n: int = 50, offset: int = 25, seed: int = 99
) -> list[GoalPair]:
    """``n`` start/goal pairs drawn with ``seed`` from episodes that record states.

    Raises:
        DreamgymError: the data records no states, or no episode is long enough.
    """
    lengths = data.lengths
    eligible = np.flatnonzero(lengths >= offset)
    if len(eligible) == 0:
        raise DreamgymError(f"no episode in {str(data.root)!r} has {offset} steps for a goal")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        i = int(rng.choice(eligible))
        episode = data.episode(i)
        if episode.state is None:
            raise DreamgymError(
                f"episodes of {str(data.root)!r} record no states (info['state']); goals need them"
            )
        t = int(rng.integers(0, episode.length - offset + 1))
        proprio = None if episode.proprio is None else episode.proprio[t + offset]
        pairs.append(
            GoalPair(i, t, offset, episode.frames[t + offset], episode.state[t + offset], proprio)
        )
    return pairs


def success_rule(env: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The env spec's ``goal_success`` function."""
    name = get_env_spec(env).goal_success
    if name is None:
        raise DreamgymError(f"env {env!r} has no goal-success rule; goal reaching needs one")
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


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


def reach(env_name: str, data: RolloutDataset, pair: GoalPair, policy, budget: int,
          keep_frames: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run ``policy`` for ``budget`` env steps from ``pair``'s start: the final state, success,
    the policy's seconds and steps, and (``keep_frames``) the frames seen. A policy with an
    ``observe_info(info)`` method sees the env's info before each action, as in ``play``."""
    episode = data.episode(pair.episode)
    env = make_env(env_name, max_episode_steps=pair.start + budget + 1,
                   frame_skip=int(data.meta.get("frame_skip", 1)))  # fmt: skip
    observe_info = getattr(policy, "observe_info", None)
    try:
        frame, info = env.reset(seed=int(episode.seed))
        for action in episode.actions[: pair.start]:
            frame, _, _, _, info = env.step(action)
        if not np.allclose(info["state"], episode.state[pair.start], atol=1e-6):
            raise DreamgymError(
                f"replaying episode {pair.episode} of {str(data.root)!r} did not reproduce its "
                "recorded state: the env is not deterministic for its seed"
            )
        frames = [frame] if keep_frames else []
        steps, start = 0, time.perf_counter()
        for _ in range(budget):
            if callable(observe_info):
                observe_info(info)
            frame, _, terminated, truncated, info = env.step(policy.act(frame))
            steps += 1
            if keep_frames:
                frames.append(frame)
            if terminated or truncated:
                break
        seconds = time.perf_counter() - start
    finally:
        env.close()
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
    data: str | Path,
    policies: dict[str, Callable[[int, GoalPair], Any]],
    pairs: int = 50,
    offset: int = 25,
    budget: int = 50,
    seed: int = 99,
    videos: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Success rates of several policies on the same start/goal pairs.

    Args:
        env: the real env's name.
        data: recorded episodes with states (the pairs come from them).
        policies: name -> ``make(pair_index, pair)`` returning a fresh policy for that pair.
        pairs, offset, budget, seed: the protocol (DINO-WM: 50 pairs, 25, 50, seed 99).
        videos: keep the frames of the first ``videos`` pairs (per policy) under ``"frames"``.
        progress: called with a line after each pair.

    Returns:
        per policy: successes, rate, 95% Wilson interval, seconds per env step, per-pair results.
    """
    for name, value in (("pairs", pairs), ("goal offset", offset), ("budget", budget)):
        validate.integer(name, value)
    dataset = RolloutDataset(data)
    chosen = goal_pairs(dataset, pairs, offset, seed)
    report: dict[str, Any] = {"env": env, "data": str(Path(data).resolve()), "pairs": pairs,
                              "offset": offset, "budget": budget, "seed": seed,
                              "policies": {}}  # fmt: skip
    for name, make in policies.items():
        results = []
        for k, pair in enumerate(chosen):
            policy = make(k, pair)
            result = reach(env, dataset, pair, policy, budget, keep_frames=k < videos)
            results.append({"episode": pair.episode, "start": pair.start, **result})
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
            "results": results,
        }  # fmt: skip
    return report
