"""The on-disk layout of a rollout dataset directory, and its manifest.

::

    DATA/
      dataset.json          what was collected and how (env, policy, seed, frame skip, ...)
      manifest.jsonl        one JSON line per finished episode attempt
      episode_000000.npz    one file per kept episode (see dreamgym.rollouts.episode)

Invariant: an episode file is renamed into place before its manifest line is appended, so every
kept manifest entry names a complete file. A kill between the two leaves a file without a line;
:func:`read_manifest` adds it back from the file (and drops a torn last line), so the manifest can
always be made consistent with the files. Attempts shorter than the minimum length are recorded
with ``"kept": false`` and no file, so a resumed run does not retry them.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from dreamgym.common.io import atomic_write_bytes, atomic_write_json
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.rollouts.episode import check_episode_file, load_episode

META_FILE = "dataset.json"
MANIFEST_FILE = "manifest.jsonl"
DAMAGED_DIR = "damaged"
FORMAT_VERSION = 1
EPISODE_RE = re.compile(r"^episode_(\d{6,})\.npz$")

# The dataset.json keys that must match for a run to add episodes to an existing directory.
IDENTITY_KEYS = ("env", "policy", "seed", "frame_skip", "max_episode_steps", "min_length")


def read_meta(root: Path) -> dict[str, Any] | None:
    """The parsed ``dataset.json`` of ``root``, or None when there is none."""
    path = root / META_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"dataset metadata {str(path)!r} is unreadable: {exc}") from exc


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    """Write ``dataset.json`` atomically."""
    atomic_write_json(root / META_FILE, meta)


def check_compatible(root: Path, existing: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse to mix data: every identity key of ``wanted`` must equal the existing dataset's.

    Raises:
        DreamgymError: naming the directory, the key, and both values.
    """
    for key in IDENTITY_KEYS:
        if existing.get(key) != wanted.get(key):
            raise DreamgymError(
                f"output directory {str(root)!r} already holds data collected with "
                f"{key}={existing.get(key)!r}, but this run asks for {key}={wanted.get(key)!r}; "
                "use another output directory (existing data is left untouched)"
            )


def episode_files(root: Path) -> dict[int, Path]:
    """Every final-named episode file in ``root``, by index."""
    files = {}
    for entry in os.scandir(root):
        match = EPISODE_RE.match(entry.name)
        if match:
            files[int(match.group(1))] = Path(entry.path)
    return files


def set_aside_damaged(root: Path) -> list[Path]:
    """Move every episode file whose zip structure is damaged (truncated, overwritten) into
    ``root/damaged/`` (never deleted), so that collection runs those episodes again; returns
    where they went."""
    moved = []
    for file in episode_files(root).values():
        try:
            check_episode_file(file)
        except CorruptFileError:
            target = root / DAMAGED_DIR / file.name
            target.parent.mkdir(exist_ok=True)
            os.replace(file, target)
            moved.append(target)
    return moved


def entry_from_episode(path: Path) -> dict[str, Any]:
    """A manifest entry rebuilt from an episode file (loads and validates it)."""
    episode = load_episode(path)
    return {
        "index": episode.index,
        "seed": episode.seed,
        "length": episode.length,
        "return": episode.total_reward,
        "terminated": episode.terminated,
        "truncated": episode.truncated,
        "kept": True,
        "file": path.name,
    }


def read_manifest(root: Path, repair: bool = False, skip_corrupt: bool = False) -> dict[int, dict]:
    """The manifest of ``root`` by episode index, reconciled with the episode files.

    Entries whose file is missing are dropped; files without an entry are read and added; a torn
    last line (a kill mid-append) is ignored. With ``repair`` the reconciled manifest is written
    back atomically when it differed.

    Raises:
        CorruptFileError: naming a file without a manifest entry that cannot be read, unless
            ``skip_corrupt`` (then it is left out with a warning).
    """
    path = root / MANIFEST_FILE
    entries: dict[int, dict] = {}
    changed = False
    if path.exists():
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            try:
                entry = json.loads(line)
                entries[int(entry["index"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                if number != len(lines) - 1:
                    raise CorruptFileError(
                        f"manifest {str(path)!r} line {number + 1} is not a valid entry"
                    ) from None
                changed = True
    files = episode_files(root)
    for index, entry in list(entries.items()):
        if entry.get("kept") and index not in files:
            del entries[index]
            changed = True
    for index, file in files.items():
        if index in entries:
            continue
        try:
            entries[index] = entry_from_episode(file)
        except CorruptFileError as exc:
            if not skip_corrupt:
                raise
            warnings.warn(f"skipping {exc}", stacklevel=2)
            continue
        changed = True
    if repair and changed:
        text = "".join(json.dumps(entries[i], sort_keys=True) + "\n" for i in sorted(entries))
        atomic_write_bytes(path, text.encode())
    return dict(sorted(entries.items()))


def append_manifest(root: Path, entry: dict[str, Any]) -> None:
    """Append one entry to the manifest and sync it to disk."""
    with open(root / MANIFEST_FILE, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
