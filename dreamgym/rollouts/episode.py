"""One episode: running it in a real env, and its file format (one compressed .npz per episode).

File ``episode_000042.npz`` holds:

========== ================== ============================================================
key        dtype, shape       meaning
========== ================== ============================================================
frames     uint8 (T+1,64,64,3) observations o_0 .. o_T (the final observation included)
actions    float32 (T, A)     a_t taken after seeing o_t
rewards    float32 (T,)       r_t received for a_t
terminated bool ()            the episode ended in a terminal state (a "done" for M)
truncated  bool ()            the episode was cut by a time limit (not a "done")
seed       int64 ()           the env/policy seed that reproduces the episode
index      int64 ()           the episode's index in its dataset
proprio    float32 (T+1, 4)   optional: the env's ``info["proprio"]`` with each frame
state      float64 (T+1, 5)   optional: the env's ``info["state"]`` with each frame
========== ================== ============================================================

The optional arrays are written when the env reports them in every info (Push-T: agent
position and velocity; agent and block pose); files without them load with ``None``.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from dreamgym.common.io import atomic_write_bytes
from dreamgym.errors import CorruptFileError
from dreamgym.rollouts.policies import Policy

COMPRESS_LEVEL = 1
EPISODE_KEYS = ("frames", "actions", "rewards", "terminated", "truncated", "seed", "index")
# Optional per-frame arrays taken from the env's info, with their dtypes.
FRAME_INFO_KEYS = {"proprio": np.float32, "state": np.float64}


def episode_filename(index: int) -> str:
    """The file name of episode ``index`` in a dataset directory."""
    return f"episode_{index:06d}.npz"


@dataclass
class Episode:
    """One recorded episode (see the module docstring for the arrays)."""

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    seed: int
    index: int
    proprio: np.ndarray | None = None
    state: np.ndarray | None = None

    @property
    def length(self) -> int:
        """Number of steps T (there are T + 1 frames)."""
        return len(self.actions)

    @property
    def total_reward(self) -> float:
        """The undiscounted return."""
        return float(self.rewards.sum(dtype=np.float64))

    @property
    def dones(self) -> np.ndarray:
        """(T,) bool: True only at the last step of a terminated episode (truncation is no done)."""
        dones = np.zeros(self.length, dtype=bool)
        if self.terminated and self.length:
            dones[-1] = True
        return dones

    def to_bytes(self) -> bytes:
        """The episode as the bytes of a compressed .npz file (byte-identical for equal data)."""
        arrays = {
            "frames": self.frames,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": np.bool_(self.terminated),
            "truncated": np.bool_(self.truncated),
            "seed": np.int64(self.seed),
            "index": np.int64(self.index),
        }
        for key in FRAME_INFO_KEYS:
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        return _npz_bytes(arrays)

    def save(self, path: str | Path) -> Path:
        """Write the episode to ``path`` atomically."""
        return atomic_write_bytes(path, self.to_bytes())


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz that ``np.load`` reads, with fixed zip timestamps.

    ``np.savez_compressed`` stamps each member with the current time, so two runs producing the
    same data would write different bytes; fixed stamps make "same seed, same files" literal.
    Deflate level 1 compresses frames about 3x faster than numpy's default (level 6) for about
    30% more bytes; at level 6 compression, not ViZDoom, would bound Doom collection.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(
                info,
                member.getvalue(),
                compress_type=zipfile.ZIP_DEFLATED,
                compresslevel=COMPRESS_LEVEL,
            )
    return buffer.getvalue()


def load_episode(path: str | Path) -> Episode:
    """Read and validate an episode file.

    Raises:
        CorruptFileError: naming the file, when it is truncated, unreadable or malformed.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in EPISODE_KEYS if k not in data.files]
            if missing:
                raise CorruptFileError(f"episode file {str(path)!r} lacks arrays {missing}")
            arrays = {k: data[k] for k in (*EPISODE_KEYS, *FRAME_INFO_KEYS) if k in data.files}
    except CorruptFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as exc:
        raise CorruptFileError(
            f"episode file {str(path)!r} is corrupt or truncated: {exc}"
        ) from exc
    frames, actions, rewards = arrays["frames"], arrays["actions"], arrays["rewards"]
    steps = len(actions)
    if (
        frames.dtype != np.uint8
        or frames.ndim != 4
        or frames.shape[0] != steps + 1
        or actions.ndim != 2
        or rewards.shape != (steps,)
    ):
        raise CorruptFileError(
            f"episode file {str(path)!r} has inconsistent shapes: frames {frames.shape} "
            f"{frames.dtype}, actions {actions.shape}, rewards {rewards.shape}"
        )
    for key in FRAME_INFO_KEYS:
        if key in arrays and (arrays[key].ndim != 2 or len(arrays[key]) != steps + 1):
            raise CorruptFileError(
                f"episode file {str(path)!r} has {key} of shape {arrays[key].shape}, expected "
                f"({steps + 1}, n): one row per frame"
            )
    return Episode(
        frames=frames,
        actions=actions,
        rewards=rewards,
        terminated=bool(arrays["terminated"]),
        truncated=bool(arrays["truncated"]),
        seed=int(arrays["seed"]),
        index=int(arrays["index"]),
        proprio=arrays.get("proprio"),
        state=arrays.get("state"),
    )


def check_episode_file(path: Path) -> None:
    """Cheaply check that an episode file is a complete .npz (its zip directory reads).

    Raises:
        CorruptFileError: naming the file when it is truncated or not a zip archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(
            f"episode file {str(path)!r} is corrupt or truncated: {exc}"
        ) from exc
    missing = [k for k in EPISODE_KEYS if f"{k}.npy" not in names]
    if missing:
        raise CorruptFileError(f"episode file {str(path)!r} lacks arrays {missing}")


class Step(NamedTuple):
    """One step of a real episode; ``info`` came with ``obs``, ``next_info`` with ``next_obs``."""

    obs: np.ndarray
    action: np.ndarray
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    next_info: dict[str, Any]


def play(env: gym.Env, policy: Policy, seed: int) -> Iterator[Step]:
    """The one real-episode loop (collection, the real backend, videos): reset ``env`` and
    ``policy`` with ``seed``, then yield each :class:`Step` until the episode ends.

    A policy with an ``observe_info(info)`` method gets the env's info after the reset and after
    every step, each time before it acts on the observation that came with it.
    """
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset(seed)
    observe_info = getattr(policy, "observe_info", None)
    obs, info = env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        if callable(observe_info):
            observe_info(info)
        action = np.asarray(policy.act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, next_info = env.step(action)
        yield Step(
            obs, action, float(reward), next_obs, bool(terminated), bool(truncated), info, next_info
        )
        obs, info = next_obs, next_info


def run_episode(env: gym.Env, policy: Policy, seed: int, index: int = 0) -> Episode:
    """Run one episode of ``env`` driven by ``policy``, both seeded with ``seed``."""
    steps = list(play(env, policy, seed))
    frames = [steps[0].obs] + [step.next_obs for step in steps]
    infos = [steps[0].info] + [step.next_info for step in steps]
    frame_info = {
        key: np.stack([info[key] for info in infos]).astype(dtype)
        for key, dtype in FRAME_INFO_KEYS.items()
        if all(key in info for info in infos)
    }
    action_dim = env.action_space.shape[0]
    return Episode(
        frames=np.stack(frames).astype(np.uint8, copy=False),
        actions=np.asarray([s.action for s in steps], np.float32).reshape(len(steps), action_dim),
        rewards=np.asarray([s.reward for s in steps], dtype=np.float32),
        terminated=steps[-1].terminated,
        truncated=steps[-1].truncated,
        seed=int(seed),
        index=int(index),
        **frame_info,
    )
