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
========== ================== ============================================================
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from dreamgym.common.io import atomic_write_bytes
from dreamgym.errors import CorruptFileError
from dreamgym.rollouts.policies import Policy

COMPRESS_LEVEL = 1
EPISODE_KEYS = ("frames", "actions", "rewards", "terminated", "truncated", "seed", "index")


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
        return _npz_bytes(
            {
                "frames": self.frames,
                "actions": self.actions,
                "rewards": self.rewards,
                "terminated": np.bool_(self.terminated),
                "truncated": np.bool_(self.truncated),
                "seed": np.int64(self.seed),
                "index": np.int64(self.index),
            }
        )

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
            arrays = {k: data[k] for k in EPISODE_KEYS}
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
    return Episode(
        frames=frames,
        actions=actions,
        rewards=rewards,
        terminated=bool(arrays["terminated"]),
        truncated=bool(arrays["truncated"]),
        seed=int(arrays["seed"]),
        index=int(arrays["index"]),
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


Step = tuple[np.ndarray, np.ndarray, float, np.ndarray, bool, bool]


def play(env: gym.Env, policy: Policy, seed: int) -> Iterator[Step]:
    """The one real-episode loop (collection, the real backend, videos): reset ``env`` and
    ``policy`` with ``seed``, then yield each step's (observation, action, reward, next
    observation, terminated, truncated) until the episode ends."""
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset(seed)
    obs, _ = env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        action = np.asarray(policy.act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        yield obs, action, float(reward), next_obs, bool(terminated), bool(truncated)
        obs = next_obs


def run_episode(env: gym.Env, policy: Policy, seed: int, index: int = 0) -> Episode:
    """Run one episode of ``env`` driven by ``policy``, both seeded with ``seed``."""
    steps = list(play(env, policy, seed))
    frames = [steps[0][0]] + [step[3] for step in steps]
    action_dim = env.action_space.shape[0]
    return Episode(
        frames=np.stack(frames).astype(np.uint8, copy=False),
        actions=np.asarray([s[1] for s in steps], dtype=np.float32).reshape(len(steps), action_dim),
        rewards=np.asarray([s[2] for s in steps], dtype=np.float32),
        terminated=steps[-1][4],
        truncated=steps[-1][5],
        seed=int(seed),
        index=int(index),
    )
