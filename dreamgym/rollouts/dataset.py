"""Reading rollout datasets: frames for V, (frames, actions, rewards, dones) sequences for M.

This is the only code that opens episode files for reading. Small datasets can be read episode by
episode; for training, :meth:`RolloutDataset.frames` decompresses every frame once into a
memory-mapped ``.npy`` cache inside the dataset directory (or under ``$DREAMGYM_HOME/cache`` for
a read-only dataset; rebuilt when the episodes change or the cache is damaged), so a 10,000-episode
set never has to fit in RAM. :class:`DatasetUnion` reads several datasets of one env
as one (M trained on all the data of the paper's iterative procedure) without copying any frame.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.common.io import atomic_write_json, dreamgym_home, temporary_name
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.rollouts import store
from dreamgym.rollouts.episode import FRAME_INFO_KEYS, Episode, check_episode_file, load_episode

CACHE_DIR = "cache"
CACHE_VARIABLE = "DREAMGYM_CACHE"
# The dataset.json settings that datasets read together (a DatasetUnion) must share.
UNION_KEYS = ("env", "observation_shape", "action_low", "action_high", "frame_skip")


@dataclass
class SequenceBatch:
    """A batch of B windows of L steps, zero-padded past the end of short episodes.

    Attributes:
        frames: uint8 (B, L + 1, 64, 64, 3): o_t .. o_{t+L}.
        actions: float32 (B, L, A).
        rewards: float32 (B, L).
        dones: bool (B, L): True at the last step of a terminated episode.
        mask: bool (B, L): False on padding steps.
        proprio: float32 (B, L + 1, 4) with the frames, when the dataset has it (Push-T).
        state: float64 (B, L + 1, 5) with the frames, when the dataset has it (Push-T).
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    mask: np.ndarray
    proprio: np.ndarray | None = None
    state: np.ndarray | None = None


@dataclass
class Windows:
    """Row indices of B windows of L steps (see :meth:`RolloutDataset.windows`).

    Attributes:
        frame_rows: (B, L + 1) rows of o_t .. o_{t+L} in ``frames()`` (and in any per-frame
            array aligned with it, such as V's latents).
        frame_mask: (B, L + 1) False on padding.
        step_rows: (B, L) rows of a_t, r_t, done_t in ``step_arrays()``.
        step_mask: (B, L) False on padding.
        first_step: (B,) True where the window starts at its episode's first step.
    """

    frame_rows: np.ndarray
    frame_mask: np.ndarray
    step_rows: np.ndarray
    step_mask: np.ndarray
    first_step: np.ndarray


class _EpisodeIndex:
    """What a dataset and a union of datasets share: episode positions and where their frames
    and steps lie. Subclasses provide ``meta``, ``entries``, ``lengths`` and ``frame_offsets``."""

    meta: dict[str, Any]
    entries: list[dict]
    lengths: np.ndarray
    frame_offsets: np.ndarray

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

    def windows(
        self, episodes: np.ndarray, length: int, rng: np.random.Generator | None = None
    ) -> Windows:
        """Where B windows of ``length`` steps lie, one per episode position in ``episodes``.

        A window starts at a random step (``rng``) or at step 0 (no ``rng``) and never crosses
        its episode's end; episodes shorter than ``length`` give a window from step 0 whose tail
        is masked out (padded rows point at the window's first row).
        """
        if length < 1:
            raise DreamgymError(f"sequence length must be >= 1, got {length}")
        episodes = np.asarray(episodes)
        lengths = self.lengths[episodes]
        steps = np.minimum(lengths, length)
        start = np.zeros(len(episodes), dtype=np.int64)
        if rng is not None:
            start = np.floor(rng.random(len(episodes)) * (lengths - steps + 1)).astype(np.int64)
        t = np.arange(length + 1)
        frame_mask = t[None] <= steps[:, None]  # (B, L + 1)
        first = self.frame_offsets[episodes][:, None] + start[:, None]
        step_mask = frame_mask[:, 1:]
        return Windows(
            frame_rows=first + np.where(frame_mask, t, 0),
            frame_mask=frame_mask,
            # Episode i's steps sit i rows before its frames (each episode has one more frame).
            step_rows=first - episodes[:, None] + np.where(step_mask, t[:-1], 0),
            step_mask=step_mask,
            first_step=start == 0,
        )


class RolloutDataset(_EpisodeIndex):
    """The kept episodes of a dataset directory written by :func:`dreamgym.rollouts.collect`.

    Args:
        root: the dataset directory.
        skip_corrupt: leave corrupt or truncated episode files out with a warning instead of
            raising :class:`~dreamgym.errors.CorruptFileError`. Every episode is then read at
            once (:meth:`read_all`), so that one whose data cannot be decompressed is left out
            of everything (frames, steps, the cache) before any row is handed out; the files
            left out are noted beside the frame cache, so that a dataset read again is not
            read twice over.

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
        self._frame_info: dict[str, np.ndarray] = {}
        if skip_corrupt:
            self._skip_noted()
            self.read_all()

    def _skip_or_raise(self, exc: CorruptFileError) -> None:
        if not self.skip_corrupt:
            raise exc
        warnings.warn(f"skipping {exc}", stacklevel=3)

    def read_all(self) -> None:
        """Read every episode now (the frame cache, the step and per-frame arrays), so that a
        corrupt one is found before any row is handed out: raised as a CorruptFileError naming
        it, or, with ``skip_corrupt``, left out of everything with one warning naming it.

        Trainers call it before they write anything.
        """
        full = self.cache_key()
        before = {entry["file"] for entry in self.entries}
        while True:
            self.frames()  # built (reading the small arrays on the way) or reused
            count = len(self.entries)
            self.frame_info()  # read unless they came with the frames; may leave one out
            if len(self.entries) == count:
                break
        skipped = sorted(before - {entry["file"] for entry in self.entries})
        if skipped:
            note = self.cache_dir() / f"skipped-{full}.json"
            for stale in self.cache_dir().glob("skipped-*.json"):
                stale.unlink()
            atomic_write_json(note, {"skipped": skipped})

    def _skip_noted(self) -> None:
        """Leave out, with a warning each, the files that an earlier :meth:`read_all` of these
        very episode files found corrupt (the note is keyed by their sizes and times)."""
        note = self.cache_dir() / f"skipped-{self.cache_key()}.json"
        try:
            skipped = set(json.loads(note.read_text())["skipped"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        for name in sorted(skipped):
            warnings.warn(f"skipping episode file {str(self.root / name)!r}, found corrupt when "
                          f"the dataset was last read (noted in {str(note)!r})",
                          stacklevel=3)  # fmt: skip
        self._drop(lambda entry: entry["file"] in skipped)

    def _drop(self, corrupt) -> None:
        """Leave out the entries for which ``corrupt(entry)`` holds."""
        kept = [entry for entry in self.entries if not corrupt(entry)]
        if not kept:
            raise DreamgymError(f"dataset {str(self.root)!r} holds no readable episodes")
        self._set_entries(kept)

    def _set_entries(self, entries: list[dict]) -> None:
        self.entries = entries
        self.lengths = np.array([e["length"] for e in entries], dtype=np.int64)
        # Episode i's frames are rows frame_offsets[i] .. frame_offsets[i] + lengths[i] (T+1 rows).
        self.frame_offsets = np.concatenate([[0], np.cumsum(self.lengths + 1)])[:-1]

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

    def cache_dir(self) -> Path:
        """Where the frame cache lives: under ``$DREAMGYM_CACHE`` when set, else ``root/cache/``,
        else, for a read-only dataset (a shared one, say), under ``$DREAMGYM_HOME/cache/``; the
        last two are per dataset (a digest of its path names the folder)."""
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:16]
        if os.environ.get(CACHE_VARIABLE):
            return Path(os.environ[CACHE_VARIABLE]).expanduser() / digest
        local = self.root / CACHE_DIR
        if os.access(self.root, os.W_OK) and (not local.exists() or os.access(local, os.W_OK)):
            return local
        return dreamgym_home() / CACHE_DIR / digest

    def _cache_path(self) -> Path:
        return self.cache_dir() / f"frames-{self.cache_key()}.npy"

    def frames(self) -> np.ndarray:
        """Every frame of every episode as one read-only (N, 64, 64, 3) uint8 memory map.

        Built on first use under ``root/cache/`` (atomically), reused while the episodes are
        unchanged. Raises CorruptFileError naming a file whose data cannot be decompressed.
        """
        if self._frames is None:
            path = self._cache_path()
            if not path.exists():
                path = self._build_frame_cache()
            try:
                frames = np.load(path, mmap_mode="r")
                if frames.shape[0] != self.num_frames:
                    raise ValueError(f"{frames.shape[0]} frames, expected {self.num_frames}")
            except (OSError, ValueError) as exc:  # a damaged cache (truncated, overwritten)
                warnings.warn(f"frame cache {str(path)!r} is damaged ({exc}); rebuilding it",
                              stacklevel=2)  # fmt: skip
                frames = np.load(self._build_frame_cache(), mmap_mode="r")
            self._frames = frames
        return self._frames

    def _build_frame_cache(self) -> Path:
        self.cache_dir().mkdir(parents=True, exist_ok=True)
        for stale in self.cache_dir().glob("frames-*.npy"):
            stale.unlink()
        while True:
            path = self._cache_path()
            corrupt = self._write_frames(path)
            if corrupt is None:
                return path
            self._drop(lambda entry, file=self.entries[corrupt]["file"]: entry["file"] == file)

    def _write_frames(self, path: Path) -> int | None:
        """Write the frame cache; returns the position of a skipped corrupt episode, if any."""
        tmp = temporary_name(path)
        shape = (self.num_frames, *self.meta["observation_shape"])
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        episodes = []
        try:
            for i, offset in enumerate(self.frame_offsets):
                try:
                    episode = self.episode(i)
                except CorruptFileError as exc:
                    self._skip_or_raise(exc)
                    tmp.unlink()
                    return i
                array[offset : offset + len(episode.frames)] = episode.frames
                episode.frames = episode.frames[:0]  # the small arrays are kept, not the frames
                episodes.append(episode)
            array.flush()
            del array
            os.replace(tmp, path)
            self._keep_small_arrays(episodes)  # read on the way: no second pass for them
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
            self._read_small_arrays()
        return self._steps

    def frame_info(self) -> dict[str, np.ndarray]:
        """The optional per-frame arrays (``proprio``, ``state``) that every episode holds,
        concatenated in the rows of :meth:`frames` (small: kept in RAM); empty when the env
        reports none."""
        if self._steps is None:
            self._read_small_arrays()
        return self._frame_info

    def _read_small_arrays(self) -> None:
        """Read every episode once for the step arrays and the per-frame info arrays."""
        episodes, corrupt = [], set()
        for i in range(len(self)):
            try:
                episodes.append(self.episode(i))
            except CorruptFileError as exc:
                self._skip_or_raise(exc)
                corrupt.add(self.entries[i]["file"])
        if corrupt:  # frame rows move: a frame cache built before no longer lines up
            self._drop(lambda entry: entry["file"] in corrupt)
            self._frames = None
        self._keep_small_arrays(episodes)

    def _keep_small_arrays(self, episodes: list[Episode]) -> None:
        actions, rewards, dones = [], [], []
        info: dict[str, list] = {key: [] for key in FRAME_INFO_KEYS}
        for episode in episodes:
            actions.append(episode.actions)
            rewards.append(episode.rewards)
            dones.append(episode.dones)
            for key, arrays in info.items():
                arrays.append(getattr(episode, key))
        self._steps = (np.concatenate(actions), np.concatenate(rewards), np.concatenate(dones))
        self._frame_info = {
            key: np.concatenate(arrays)
            for key, arrays in info.items()
            if all(a is not None for a in arrays)
        }

    def sample_sequences(
        self, batch_size: int, length: int, rng: np.random.Generator
    ) -> SequenceBatch:
        """B windows of ``length`` steps, each from a random episode at a random start
        (see :meth:`windows`); padding is zero and masked."""
        w = self.windows(rng.integers(0, len(self), size=batch_size), length, rng)
        actions, rewards, dones = self.step_arrays()
        mask = w.step_mask
        info = {k: a[w.frame_rows] * w.frame_mask[..., None] for k, a in self.frame_info().items()}
        return SequenceBatch(
            frames=self.frames()[w.frame_rows] * w.frame_mask[..., None, None, None],
            actions=actions[w.step_rows] * mask[..., None],
            rewards=rewards[w.step_rows] * mask,
            dones=dones[w.step_rows] & mask,
            mask=mask,
            **info,
        )


class DatasetUnion(_EpisodeIndex):
    """Several datasets of one env read as one, without copying or concatenating any frame.

    Episode positions, frame rows and step rows run through the first dataset, then the second,
    and so on: a per-frame array built one dataset at a time (V's latents) and concatenated in
    this order lines up with :attr:`frame_offsets` and :meth:`windows`. Read-only; it serves what
    M's trainer needs (the paper's iterative training retrains M on all the data collected so far).

    Args:
        datasets: one or more datasets that share the :data:`UNION_KEYS` settings (env,
            observation shape, action bounds, frame skip); policy, seed and time limit may differ.

    Raises:
        DreamgymError: when no dataset is given, one is given twice, or one differs from the
            first (naming its directory and the setting).
    """

    def __init__(self, datasets: Sequence[RolloutDataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise DreamgymError("no rollout dataset given")
        first, seen = self.datasets[0], set()
        for dataset in self.datasets:
            if dataset.root.resolve() in seen:
                raise DreamgymError(f"dataset {str(dataset.root)!r} is given twice")
            seen.add(dataset.root.resolve())
            for key in UNION_KEYS:
                if dataset.meta.get(key) != first.meta.get(key):
                    raise DreamgymError(
                        f"dataset {str(dataset.root)!r} holds {key}={dataset.meta.get(key)!r}, "
                        f"but {str(first.root)!r} holds {key}={first.meta.get(key)!r}; datasets "
                        "read together must share env, observations, action space and frame skip"
                    )
        self.meta: dict[str, Any] = first.meta
        self.root = first.root
        self._steps: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._frame_info: dict[str, np.ndarray] | None = None

    @classmethod
    def open(cls, roots: Sequence[str | os.PathLike], skip_corrupt: bool = False) -> DatasetUnion:
        """The union of the dataset directories ``roots`` (see :class:`RolloutDataset`)."""
        return cls([RolloutDataset(root, skip_corrupt=skip_corrupt) for root in roots])

    def read_all(self) -> None:
        """:meth:`RolloutDataset.read_all` for each dataset."""
        for dataset in self.datasets:
            dataset.read_all()

    # Computed on every access: a dataset may leave out a corrupt episode while its frame cache
    # is built (skip_corrupt), and the union must follow.
    @property
    def entries(self) -> list[dict]:
        """Every dataset's manifest entries, in order (``file`` is relative to its own root)."""
        return [entry for dataset in self.datasets for entry in dataset.entries]

    @property
    def lengths(self) -> np.ndarray:
        return np.concatenate([dataset.lengths for dataset in self.datasets])

    @property
    def frame_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths + 1)])[:-1]

    def episode(self, i: int) -> Episode:
        """The i-th episode of the union, fully loaded (frames in RAM)."""
        if not 0 <= i < len(self):
            raise IndexError(f"episode {i} is out of range for {len(self)} episodes")
        ends = np.cumsum([len(dataset) for dataset in self.datasets])
        part = int(np.searchsorted(ends, i, side="right"))
        return self.datasets[part].episode(i - (int(ends[part - 1]) if part else 0))

    def cache_key(self) -> str:
        """Identifies the datasets, in order, and their episode files: a single dataset's own
        :meth:`RolloutDataset.cache_key`, so caches built for it stay valid."""
        if len(self.datasets) == 1:
            return self.datasets[0].cache_key()
        parts = [[str(dataset.root.resolve()), dataset.cache_key()] for dataset in self.datasets]
        return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]

    def step_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actions, rewards and dones of every episode of every dataset, concatenated."""
        if self._steps is None:
            parts = [dataset.step_arrays() for dataset in self.datasets]
            actions, rewards, dones = (np.concatenate(a) for a in zip(*parts, strict=True))
            self._steps = (actions, rewards, dones)
        return self._steps

    def frame_info(self) -> dict[str, np.ndarray]:
        """The optional per-frame arrays that every dataset holds, concatenated in frame-row
        order (see :meth:`RolloutDataset.frame_info`)."""
        if self._frame_info is None:
            parts = [dataset.frame_info() for dataset in self.datasets]
            common = [key for key in parts[0] if all(key in part for part in parts)]
            self._frame_info = {
                key: np.concatenate([part[key] for part in parts]) for key in common
            }
        return self._frame_info
