"""Progress reports: tqdm bars on a terminal, plain periodic lines in a log file.

A tqdm bar written to a file (``nohup dreamgym ... > run.log``) leaves carriage returns and
escape codes, one redraw per update; when stderr is not a terminal, :func:`progress` returns a
:class:`PlainProgress` instead, which prints one readable line at most every ``interval`` seconds
(``$DREAMGYM_LOG_INTERVAL``, default 30) and one when it closes::

    collect carracing: 45/200 ep (22%), 2.9 ep/s, 0:15 elapsed, ~0:53 left, dropped=0
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

INTERVAL_VARIABLE = "DREAMGYM_LOG_INTERVAL"
DEFAULT_INTERVAL = 30.0


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class PlainProgress:
    """The part of tqdm's interface dreamgym uses, reported as plain lines on stderr.

    Args:
        iterable: iterate over it, counting one per item (or None and call :meth:`update`).
        total: the count at completion (default ``len(iterable)`` when it has one).
        initial: the count already done (a resumed run).
        desc: what is progressing.
        unit: what is counted.
        interval: seconds between lines.
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None,
                 initial: int = 0, desc: str = "", unit: str = "it",
                 interval: float | None = None) -> None:  # fmt: skip
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.n, self.initial = iterable, total, initial, initial
        self.desc, self.unit, self.postfix = desc, unit, ""
        if interval is None:
            interval = float(os.environ.get(INTERVAL_VARIABLE, DEFAULT_INTERVAL))
        self.interval = interval
        self.start = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "PlainProgress was given nothing to iterate"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._print()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, **values: Any) -> None:
        values = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def line(self) -> str:
        """The progress line, as printed."""
        elapsed = time.monotonic() - self.start
        done = self.n - self.initial
        parts = [f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if done and elapsed > 0:
            parts.append(f"{done / elapsed:.3g} {self.unit}/s")
        parts.append(f"{_clock(elapsed)} elapsed")
        if self.total and done and self.n < self.total:
            parts.append(f"~{_clock(elapsed / done * (self.total - self.n))} left")
        if self.postfix:
            parts.append(self.postfix)
        return f"{self.desc}: {', '.join(parts)}" if self.desc else ", ".join(parts)

    def _print(self) -> None:
        self.last = time.monotonic()
        print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n > self.initial:
                self._print()


ProgressBar = tqdm | PlainProgress
# Set in processes that share a terminal with others (parallel evolutions): two tqdm bars from
# two processes overwrite each other's line, plain lines do not.
_plain_only = False


def plain_lines_only() -> None:
    """Report progress as plain lines in this process even on a terminal."""
    global _plain_only
    _plain_only = True


def progress(iterable: Iterable | None = None, *, total: int | None = None, initial: int = 0,
             desc: str = "", unit: str = "it", disable: bool = False,
             leave: bool = True) -> ProgressBar:  # fmt: skip
    """A tqdm bar on a terminal; :class:`PlainProgress` lines when stderr is not one (or after
    :func:`plain_lines_only`); a silent tqdm when ``disable``. ``leave=False`` (an inner bar)
    clears the bar when done."""
    if disable or (sys.stderr.isatty() and not _plain_only):
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit,
                    disable=disable, leave=leave)  # fmt: skip
    return PlainProgress(iterable, total, initial, desc, unit)
