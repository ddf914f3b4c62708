"""Data-collection policies: random, brownian, held-random, Push-T's weak expert, CarRacing's
road driver, and any controller object or file.

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

    def reset(self, seed: int) -> None:
        # A stream separate from the env's, derived from the same episode seed.
        self.rng = np.random.default_rng([seed, 1])

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
        self.action: np.ndarray | None = None

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.action = None

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
        self.action = self._uniform()
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


# Pixels per unit of a Push-T relative move (dreamgym.envs.pusht.ACTION_SCALE; that module is
# not imported here, as it loads gym-pusht's physics and drawing libraries).
PUSHT_MOVE_SCALE = 100.0


class WeakExpertPolicy(_SeededPolicy):
    """Push-T's collection policy (stable-worldmodel's "weak expert"): uniform relative moves of
    up to 100 px, with each target kept within 100 px (per axis) of the block so that the agent
    keeps pushing it.

    Each pair of the action is ``a`` ~ U[-1, 1]^2 (target ``p + 100 a`` from the agent position
    ``p``); the target is clipped to the box of half-side ``reach`` around the block and ``a`` is
    recomputed from it (clipped to [-1, 1]). With several pairs (an action block) each later pair
    starts from the previous pair's target. The state comes from ``info["state"]``
    (:meth:`observe_info`); without one (e.g. driven inside a dream, where there is no info) the
    moves stay uniform.

    Args:
        action_space: the env's action space, ``Box(-1, 1, (2k,))``.
        reach: half-side in pixels of the box around the block that targets are kept in.
    """

    def __init__(self, action_space: gym.spaces.Box, reach: float = 100.0) -> None:
        super().__init__(action_space)
        shape = action_space.shape
        if len(shape) != 1 or shape[0] % 2 or (self.low != -1).any() or (self.high != 1).any():
            raise DreamgymError(
                f"the weak expert needs Push-T's relative moves, Box(-1, 1, (2k,)), got "
                f"{action_space}"
            )
        self.reach = float(reach)
        self.state: np.ndarray | None = None

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.state = None

    def observe_info(self, info: dict[str, Any]) -> None:
        """Remember the agent and block positions of ``info["state"]`` (when there is one)."""
        state = info.get("state")
        self.state = None if state is None else np.asarray(state, np.float64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        moves = self._uniform().reshape(-1, 2)
        if self.state is None:
            return moves.reshape(-1)
        position, block = self.state[:2], self.state[2:4]
        for move in moves:
            target = position + PUSHT_MOVE_SCALE * move
            target = np.clip(target, block - self.reach, block + self.reach)
            move[:] = np.clip((target - position) / PUSHT_MOVE_SCALE, -1.0, 1.0)
            position = position + PUSHT_MOVE_SCALE * move
        return moves.reshape(-1)


class RoadDriverPolicy(_SeededPolicy):
    """CarRacing's driving collection policy: a crude road follower with a changing speed.

    It steers toward the centroid of the grey road pixels a few rows ahead of the car in the 64x64
    frame and holds a gas level drawn from ``gas_levels`` for a random 20-120 steps, so its
    episodes show the car standing (gas 0, sometimes braking), crawling and driving at several
    speeds on the road, which a world model needs to learn that only motion along the road pays
    (the frame hides the speed). Steering carries slowly varying noise, and with probability
    ``drift`` per step the car swerves for 5-25 steps, leaves the road and finds it again (with no
    road in view it turns slowly toward the side that showed road last). It is a collection
    policy, not an agent: it scores well below a trained controller on most tracks.

    Args:
        action_space: CarRacing's ``Box([-1, 0, 0], [1, 1, 1])``.
        gas_levels: the gas values a segment holds.
        steer_noise: scale of the steering noise (an AR(1) process, coefficient 0.9).
        drift: probability per step of starting a swerve.
    """

    def __init__(
        self,
        action_space: gym.spaces.Box,
        gas_levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.1, 0.15, 0.2, 0.3),
        steer_noise: float = 0.08,
        drift: float = 0.01,
    ) -> None:
        super().__init__(action_space)
        if action_space.shape != (3,):
            raise DreamgymError(
                f"the road driver needs CarRacing's (steer, gas, brake) actions, got {action_space}"
            )
        self.gas_levels = np.asarray(gas_levels, np.float32)
        self.steer_noise, self.drift = float(steer_noise), float(drift)
        self.reset(0)

    observes = True  # it steers by the frame

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.gas, self.left, self.noise = 0.0, 0, 0.0
        self.swerve, self.swerve_left, self.last_side = 0.0, 0, 1.0

    def _steer_to_road(self, obs: np.ndarray) -> float:
        frame = obs.astype(np.int16)
        r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
        road = (abs(r - g) < 20) & (abs(g - b) < 20) & (r > 70) & (r < 170)
        # Rows 26-41 lie ahead of the car (which sits near row 52); nearer rows if none there.
        for rows in (slice(26, 42), slice(42, 56), slice(0, 64)):
            cols = np.nonzero(road[rows])[1]
            if len(cols) >= 3:
                offset = (cols.mean() - 31.5) / 10.0
                self.last_side = 1.0 if offset >= 0 else -1.0
                return float(np.clip(offset, -1.0, 1.0))
        return 0.5 * self.last_side

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.left <= 0:
            self.gas = float(self.rng.choice(self.gas_levels))
            self.left = int(self.rng.integers(20, 121))
        self.left -= 1
        self.noise = 0.9 * self.noise + self.steer_noise * float(self.rng.standard_normal())
        if self.swerve_left > 0:
            self.swerve_left -= 1
            steer = self.swerve
        else:
            if self.rng.random() < self.drift:
                self.swerve_left = int(self.rng.integers(5, 26))
                self.swerve = float(self.rng.choice([-1.0, 1.0]) * self.rng.uniform(0.3, 1.0))
            steer = self._steer_to_road(obs) + self.noise
        brake = 0.3 if self.gas == 0.0 and self.rng.random() < 0.3 else 0.0
        return np.array([np.clip(steer, -1.0, 1.0), self.gas, brake], np.float32)


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


BUILTIN_POLICIES: dict[str, type[_SeededPolicy]] = {
    "random": RandomPolicy,
    "brownian": BrownianPolicy,
    "repeat": RepeatPolicy,
    "weak-expert": WeakExpertPolicy,
    "road-driver": RoadDriverPolicy,
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
        policy: a built-in name (``random``, ``brownian``, ``repeat``, ``weak-expert``), the path
            of a saved policy file, or a policy object (returned unchanged).
        action_space: the env's action space, for the built-in policies.

    Raises:
        DreamgymError: for an unknown name or a bad policy file.
    """
    if not isinstance(policy, str):
        if not callable(getattr(policy, "act", None)):
            raise DreamgymError(f"policy object {policy!r} has no act(obs) method")
        return policy
    if policy in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[policy](action_space)
    if Path(policy).exists():
        return load_policy_file(policy)
    raise DreamgymError(
        f"unknown policy {policy!r}; expected one of {', '.join(BUILTIN_POLICIES)} "
        "or the path of a saved policy file"
    )
