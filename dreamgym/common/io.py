"""Crash-safe file writes: every file is written to a temporary name, synced, then renamed.

A kill at any moment therefore leaves either the old file or the new one under the final name,
never a partial file. Temporary files start with ``.`` and end with ``.tmp`` so readers skip them.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"
HOME_VARIABLE = "DREAMGYM_HOME"


def dreamgym_home() -> Path:
    """dreamgym's own directory: ``$DREAMGYM_HOME``, default ``~/.dreamgym`` (bundles that
    dreams find by env, caches of read-only datasets)."""
    return Path(os.environ.get(HOME_VARIABLE, "~/.dreamgym")).expanduser()


def temporary_name(path: Path) -> Path:
    """The hidden temporary name that :func:`atomic_write_bytes` writes before renaming."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync of the dir)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    return atomic_write_bytes(path, text.encode())


def remove_stale_temporaries(directory: Path) -> int:
    """Delete temporary files left in ``directory`` by a killed writer; returns how many."""
    removed = 0
    for tmp in directory.glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed += 1
    return removed


def check_writable_dir(path: Path) -> None:
    """Create ``path`` if needed and make sure files can be written there.

    Raises:
        DreamgymError: naming the directory when it cannot be created or written.
    """
    from dreamgym.errors import DreamgymError

    if path.exists() and not path.is_dir():
        raise DreamgymError(f"output path {str(path)!r} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe.{os.getpid()}{TMP_SUFFIX}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DreamgymError(
            f"output directory {str(path)!r} is not writable: {exc.strerror or exc}"
        ) from exc
