"""Torch's CPU threads for each kind of work, chosen here and nowhere else.

Per-step inference (one frame, or one batch of dreams, per call: rendering, an agent acting in
the real env, evaluating, planning, fidelity checks, the dream backend of an evolution) runs many
small operations; splitting each over a thread pool costs more in hand-offs than it saves, and on
a machine that other jobs share every hand-off waits for a core. It runs on one thread: 4.7x
(a CEM plan) to 54x (a batch of 100 dreams) faster than torch's default of one thread per core
on the 2-core development machine with other jobs running (``benchmarks/threads.py``,
``docs/benchmarks.md``). A Ray worker is one CPU in Ray's accounting, so one thread, too: N
workers then use N cores (a sharded dream's actor: its share of a node's CPUs).

Training's large batches use every core (torch's default), what a machine the training has to
itself rewards; on that busy machine one thread trained V 3x faster too, so there ``--threads
1`` is the faster choice for training as well.

The commands' ``--threads N`` (:func:`set_threads`) replaces both choices in its own process;
``$OMP_NUM_THREADS``, when set, does the same. Ray workers keep theirs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from dreamgym.common import validate

# Threads per kind of work; None: torch's default, one per core.
DEFAULT_THREADS: dict[str, int | None] = {"inference": 1, "training": None}
# Torch's own default, read before anything here changes it.
_TORCH_DEFAULT = torch.get_num_threads()
_chosen: int | None = None


def set_threads(count: int | None) -> None:
    """Use ``count`` threads for every kind of work in this process (None: the defaults).

    Raises:
        DreamgymError: ``count`` is not a positive integer.
    """
    global _chosen
    _chosen = validate.optional_integer("threads", count)


def threads_for(work: str) -> int:
    """The torch threads for ``work`` (a key of :data:`DEFAULT_THREADS`) in this process."""
    validate.choice("work", work, DEFAULT_THREADS)
    if _chosen is not None:
        return _chosen
    if os.environ.get("OMP_NUM_THREADS"):
        return _TORCH_DEFAULT  # torch read the user's choice at start-up
    return DEFAULT_THREADS[work] or _TORCH_DEFAULT


def use_threads(work: str) -> int:
    """Set torch's threads for ``work`` for the rest of this process (a Ray worker's); returns
    the count."""
    count = threads_for(work)
    torch.set_num_threads(count)
    return count


@contextlib.contextmanager
def torch_threads(work: str) -> Iterator[int]:
    """Run the ``with`` block on torch's threads for ``work``, restoring the caller's after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads_for(work))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
