"""Reading rollout datasets: frames for V, (frames, actions, rewards, dones) sequences for M.

This is the only code that opens episode files for reading. Small datasets can be read episode by
episode; for training, :meth:`RolloutDataset.frames` decompresses every frame once into a
memory-mapped ``.npy`` cache inside the dataset directory (rebuilt when the episodes change), so a
10,000-episode set never has to fit in RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym._io import temporary_name
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.rollouts import store
from dreamgym.rollouts.episode import Episode, check_episode_file, load_episode

CACHE_DIR = "cache"


@dataclass
class SequenceBatch:
    """A batch of B windows of L steps, zero-padded past the end of short episodes.

    Attributes:
        frames: uint8 (B, L + 1, 64, 64, 3): o_t .. o_{t+L}.
        actions: float32 (B, L, A).
        rewards: float32 (B, L).
        dones: bool (B, L): True at the last step of a terminated episode.
        mask: bool (B, L): False on padding steps.
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    mask: np.ndarray


class RolloutDataset:
    """The kept episodes of a dataset directory written by :func:`dreamgym.rollouts.collect`.

    Args:
        root: the dataset directory.
        skip_corrupt: leave corrupt or truncated episode files out with a warning instead of
            raising :class:`~dreamgym.errors.CorruptFileError`.

    Raises:
        DreamgymError: when ``root`` is not a dataset directory or holds no episode.
        CorruptFileError: naming the first truncated or corrupt episode file (unless skipped).
    """

    def __init__(self, root: str | os.PathLike, skip_corrupt: bool = False) -> None:
        self.root = Path(root)
        self.skip_corrupt = skip_corrupt
        meta = store.read_meta(self.root) if self.root.is_dir() else None
        if meta is None:
            raise DreamgymError(
                f"{str(self.root)!r} is not a rollout dataset (no {store.META_FILE}); "
                "create one with `dreamgym collect`"
            )
        self.meta: dict[str, Any] = meta
        manifest = store.read_manifest(self.root, skip_corrupt=skip_corrupt)
        entries = []
        for entry in manifest.values():
            if not entry["kept"]:
                continue
            try:
                check_episode_file(self.root / entry["file"])
            except CorruptFileError as exc:
                self._skip_or_raise(exc)
                continue
            entries.append(entry)
        if not entries:
            raise DreamgymError(f"dataset {str(self.root)!r} holds no episodes")
        self._set_entries(entries)
        self._frames: np.ndarray | None = None
        self._steps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _skip_or_raise(self, exc: CorruptFileError) -> None:
        if not self.skip_corrupt:
            raise exc
        warnings.warn(f"skipping {exc}", stacklevel=3)

    def _set_entries(self, entries: list[dict]) -> None:
        self.entries = entries
        self.lengths = np.array([e["length"] for e in entries], dtype=np.int64)
        # Episode i's frames are rows frame_offsets[i] .. frame_offsets[i] + lengths[i] (T+1 rows).
        self.frame_offsets = np.concatenate([[0], np.cumsum(self.lengths + 1)])[:-1]

    @property
    def env(self) -> str:
        """The real env the data comes from."""
        return self.meta["env"]

    @property
    def action_dim(self) -> int:
        return len(self.meta["action_low"])

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def num_frames(self) -> int:
        """Total number of frames (each episode has length + 1)."""
        return int((self.lengths + 1).sum())

    @property
    def num_steps(self) -> int:
        return int(self.lengths.sum())

    def episode(self, i: int) -> Episode:
        """The i-th kept episode, fully loaded (frames in RAM)."""
        return load_episode(self.root / self.entries[i]["file"])

    def cache_key(self) -> str:
        """Identifies the exact episode files read (index, length, size, mtime): caches built
        from them are valid while it is unchanged."""
        parts = []
        for entry in self.entries:
            stat = (self.root / entry["file"]).stat()
            parts.append([entry["index"], entry["length"], stat.st_size, stat.st_mtime_ns])
        return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]

    def _cache_path(self) -> Path:
        return self.root / CACHE_DIR / f"frames-{self.cache_key()}.npy"

    def frames(self) -> np.ndarray:
        """Every frame of every episode as one read-only (N, 64, 64, 3) uint8 memory map.

        Built on first use under ``root/cache/`` (atomically), reused while the episodes are
        unchanged. Raises CorruptFileError naming a file whose data cannot be decompressed.
        """
        if self._frames is None:
            path = self._cache_path()
            if not path.exists():
                path = self._build_frame_cache()
            self._frames = np.load(path, mmap_mode="r")
        return self._frames

    def _build_frame_cache(self) -> Path:
        (self.root / CACHE_DIR).mkdir(exist_ok=True)
        for stale in (self.root / CACHE_DIR).glob("frames-*.npy"):
            stale.unlink()
        while True:
            path = self._cache_path()
            corrupt = self._write_frames(path)
            if corrupt is None:
                return path
            self._set_entries(self.entries[:corrupt] + self.entries[corrupt + 1 :])
            if not self.entries:
                raise DreamgymError(f"dataset {str(self.root)!r} holds no readable episodes")

    def _write_frames(self, path: Path) -> int | None:
        """Write the frame cache; returns the position of a skipped corrupt episode, if any."""
        tmp = temporary_name(path)
        shape = (self.num_frames, *self.meta["observation_shape"])
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        try:
            for i, offset in enumerate(self.frame_offsets):
                try:
                    frames = self.episode(i).frames
                except CorruptFileError as exc:
                    self._skip_or_raise(exc)
                    tmp.unlink()
                    return i
                array[offset : offset + len(frames)] = frames
            array.flush()
            del array
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return None

    def sample_frames(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """A (batch_size, 64, 64, 3) uint8 batch of frames drawn uniformly with replacement."""
        rows = np.sort(rng.integers(0, self.num_frames, size=batch_size))
        return np.asarray(self.frames()[rows])

    def step_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actions, rewards and dones of every episode, concatenated (small: kept in RAM)."""
        if self._steps is None:
            actions, rewards, dones = [], [], []
            for i in range(len(self)):
                episode = self.episode(i)
                actions.append(episode.actions)
                rewards.append(episode.rewards)
                dones.append(episode.dones)
            self._steps = (np.concatenate(actions), np.concatenate(rewards), np.concatenate(dones))
        return self._steps

    def sample_sequences(
        self, batch_size: int, length: int, rng: np.random.Generator
    ) -> SequenceBatch:
        """B windows of ``length`` steps, each from a random episode at a random start.

        Episodes shorter than ``length`` give a window from step 0, zero-padded and masked; no
        window crosses an episode boundary.
        """
        if length < 1:
            raise DreamgymError(f"sequence length must be >= 1, got {length}")
        frames = self.frames()
        actions, rewards, dones = self.step_arrays()
        step_offsets = self.frame_offsets - np.arange(len(self))  # each episode has one frame more
        batch = SequenceBatch(
            frames=np.zeros((batch_size, length + 1, *frames.shape[1:]), np.uint8),
            actions=np.zeros((batch_size, length, actions.shape[1]), np.float32),
            rewards=np.zeros((batch_size, length), np.float32),
            dones=np.zeros((batch_size, length), bool),
            mask=np.zeros((batch_size, length), bool),
        )
        episodes = rng.integers(0, len(self), size=batch_size)
        for b, i in enumerate(episodes):
            steps = min(length, int(self.lengths[i]))
            start = int(rng.integers(0, self.lengths[i] - steps + 1))
            f0, s0 = self.frame_offsets[i] + start, step_offsets[i] + start
            batch.frames[b, : steps + 1] = frames[f0 : f0 + steps + 1]
            batch.actions[b, :steps] = actions[s0 : s0 + steps]
            batch.rewards[b, :steps] = rewards[s0 : s0 + steps]
            batch.dones[b, :steps] = dones[s0 : s0 + steps]
            batch.mask[b, :steps] = True
        return batch
