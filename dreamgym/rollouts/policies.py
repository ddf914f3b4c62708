"""Data-collection policies: random, brownian, held-random (for 1-10 steps or the whole episode),
the scripted ones of :mod:`dreamgym.rollouts.scripted` by name, and any controller object or
file.

A policy is any object with ``act(obs) -> action``; an optional ``reset(seed)`` is called at the
start of every episode with the episode's seed, so seeded policies make collection reproducible,
and an optional ``observe_info(info)`` gets the env's info before each ``act`` (a policy that
needs the env's state, such as the weak expert, reads it there). Policies are pickled to the Ray
workers, so they must be picklable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from dreamgym.common.pretrained import CONTROLLER_DIR, resolve_path
from dreamgym.common.resolve import resolve_callable
from dreamgym.errors import DreamgymError


@runtime_checkable
class Policy(Protocol):
    """What the collector needs from a policy."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The action for observation ``obs`` (a 64x64x3 uint8 frame)."""
        ...


class _SeededPolicy:
    """Base for the built-in random policies: a Box action space and a per-episode generator."""

    observes = False  # act() ignores the frame: a dream can drive it without decoding frames

    def __init__(self, action_space: gym.spaces.Box) -> None:
        if not isinstance(action_space, gym.spaces.Box):
            raise DreamgymError(f"random policies need a Box action space, got {action_space}")
        self.low = action_space.low.astype(np.float32)
        self.high = action_space.high.astype(np.float32)
        self.rng = np.random.default_rng(0)
        self.action: np.ndarray | None = None  # the last action; None before an episode's first

    def reset(self, seed: int) -> None:
        # A stream separate from the env's, derived from the same episode seed.
        self.rng = np.random.default_rng([seed, 1])
        self.action = None

    def _uniform(self) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


class RandomPolicy(_SeededPolicy):
    """A fresh uniform action from the action space every step."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self._uniform()


class BrownianPolicy(_SeededPolicy):
    """Brownian motion in action space: a_{t+1} = clip(a_t + sqrt(dt) * N(0, 1)).

    The first action is uniform; ``dt`` = 1/50 as in the ctallec/world-models PyTorch port.
    """

    def __init__(self, action_space: gym.spaces.Box, dt: float = 1.0 / 50.0) -> None:
        super().__init__(action_space)
        self.dt = dt

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.action is None:
            self.action = self._uniform()
        else:
            step = np.sqrt(self.dt) * self.rng.standard_normal(self.low.shape)
            self.action = np.clip(self.action + step, self.low, self.high).astype(np.float32)
        return self.action.copy()


class RepeatPolicy(_SeededPolicy):
    """A uniform random action held for a random 1 to ``max_hold`` steps (the Doom recipe)."""

    def __init__(self, action_space: gym.spaces.Box, max_hold: int = 10) -> None:
        super().__init__(action_space)
        self.max_hold = max_hold
        self.left = 0

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.left = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.left == 0:
            self.action = self._uniform()
            self.left = int(self.rng.integers(1, self.max_hold + 1))
        self.left -= 1
        return self.action.copy()


class HoldPolicy(_SeededPolicy):
    """One uniform random action held for the whole episode.

    The episodes of the fidelity report's probes (an agent that keeps strafing, a car that keeps
    steering), which ``repeat`` and ``brownian`` never show: a dream trained without them can
    forgive holding an action, and evolution finds that first. On Doom, 80 such episodes beside
    a seed's data closed its "strafe left" hole (docs/evolution.md).
    """

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.action is None:
            self.action = self._uniform()
        return self.action.copy()


class ConstantPolicy:
    """The same action at every step (a fidelity probe: "keep strafing left").

    Args:
        action: the action, inside ``action_space``.
        action_space: the env's Box action space.
        name: a label (for reports and dataset metadata).
    """

    observes = False

    def __init__(self, action, action_space: gym.spaces.Box, name: str = "") -> None:
        self.action = np.asarray(action, dtype=np.float32)
        if not action_space.contains(self.action):
            raise DreamgymError(
                f"constant action {self.action.tolist()} is not in the action space {action_space}"
            )
        self.name = name or f"constant {self.action.tolist()}"

    @property
    def label(self) -> str:
        return f"constant:{self.action.tolist()}"

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.action.copy()


# Built-in policies by name: a class, or "module:name" imported on first use (the scripted ones
# of dreamgym.rollouts.scripted, which build on _SeededPolicy here).
BUILTIN_POLICIES: dict[str, Callable[[gym.spaces.Box], Policy] | str] = {
    "random": RandomPolicy,
    "brownian": BrownianPolicy,
    "repeat": RepeatPolicy,
    "hold": HoldPolicy,
    "weak-expert": "dreamgym.rollouts.scripted:WeakExpertPolicy",
    "pusher": "dreamgym.rollouts.scripted:PusherPolicy",
    "pusher-random": "dreamgym.rollouts.scripted:random_pusher",
    "road-driver": "dreamgym.rollouts.scripted:RoadDriverPolicy",
}

PolicyLoader = Callable[[Path, dict[str, Any]], Policy]
# Loaders by kind: a function, or "module:function" imported on first use (as Gymnasium's entry
# points), so that this layer names the agents' formats without importing the layers above it.
_FILE_LOADERS: dict[str, PolicyLoader | str] = {
    "linear-controller": "dreamgym.agents.controller:load_controller_policy",
    "sb3": "dreamgym.agents.sb3_agent:load_sb3_policy",
}


def register_policy_file_kind(kind: str, loader: PolicyLoader) -> None:
    """Teach :func:`load_policy_file` a saved-policy format.

    A saved policy is a JSON file (or a directory holding ``policy.json``, ``controller.json``
    or ``agent.json``) whose ``"kind"`` field names the loader; the loader gets the JSON file's
    path and its parsed content. dreamgym's own controllers are kind ``linear-controller``, its
    SB3 agents kind ``sb3``.
    """
    _FILE_LOADERS[kind] = loader


def load_policy_file(path: str | Path) -> Policy:
    """Load a saved policy (see :func:`register_policy_file_kind`).

    Raises:
        DreamgymError: when the file is missing, is not JSON, or has an unknown kind.
    """
    path = resolve_path(path, CONTROLLER_DIR)
    if path.is_dir():
        names = ("policy.json", "controller.json", "agent.json")
        path = next((path / n for n in names if (path / n).exists()), path / "policy.json")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DreamgymError(f"policy file {str(path)!r} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DreamgymError(f"policy file {str(path)!r} is not valid JSON: {exc}") from None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind not in _FILE_LOADERS:
        known = ", ".join(sorted(_FILE_LOADERS)) or "none registered"
        raise DreamgymError(f"policy file {str(path)!r} has kind {kind!r}; known kinds: {known}")
    loader = _FILE_LOADERS[kind]
    if isinstance(loader, str):
        loader = resolve_callable(loader, f"the loader of policy-file kind {kind!r}")
    return loader(path, meta)


PolicyArg = str | Policy


def resolve_policy(policy: PolicyArg, action_space: gym.spaces.Space) -> Policy:
    """Turn a policy argument into a policy object for ``action_space``.

    Args:
        policy: a built-in name (a key of :data:`BUILTIN_POLICIES`: ``random``, ``brownian``,
            ``repeat``, ``weak-expert``, ``pusher``, ...), the path of a saved policy file, or a
            policy object (returned unchanged).
        action_space: the env's action space, for the built-in policies.

    Raises:
        DreamgymError: for an unknown name or a bad policy file.
    """
    if not isinstance(policy, str):
        if not callable(getattr(policy, "act", None)):
            raise DreamgymError(f"policy object {policy!r} has no act(obs) method")
        return policy
    if policy in BUILTIN_POLICIES:
        make = BUILTIN_POLICIES[policy]
        if isinstance(make, str):
            make = resolve_callable(make, f"the built-in policy {policy!r}")
        return make(action_space)
    if Path(policy).exists():
        return load_policy_file(policy)
    raise DreamgymError(
        f"unknown policy {policy!r}; expected one of {', '.join(BUILTIN_POLICIES)} "
        "or the path of a saved policy file"
    )
