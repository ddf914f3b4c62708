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


LOCK_FILE = ".dreamgym.lock"


class DirectoryLock:
    """An exclusive lock on a directory being written (a dataset, a run), so that two writers
    cannot interleave: ``flock`` on ``.dreamgym.lock``, which also records the holder (pid,
    host, command, start time) for the second writer's error. The operating system releases it
    when the holder exits, however it exits.

    Usable as a context manager, or with :meth:`acquire` / :meth:`release` around a longer life.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock.

        Raises:
            DreamgymError: naming the directory and the holder when another process has it.
        """
        import fcntl
        import socket
        import sys
        import time

        from dreamgym.errors import DreamgymError

        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.read(fd, 4096) or b"{}")
                who = (f"pid {holder['pid']} on {holder['host']}, `{holder['command']}`, since "
                       f"{holder['since']}")  # fmt: skip
            except (ValueError, KeyError):
                who = "holder unknown"
            os.close(fd)
            raise DreamgymError(
                f"{str(self.path)!r} is being written by another dreamgym process ({who}); "
                "wait for it to finish or use another output directory"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": " ".join(sys.argv)[:200],
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
