"""Independent dream evolutions side by side, one process each.

A dream evolves on one torch thread (``common.threads``), so evolutions that do not depend on
each other (the candidates of a pipeline's final dream, evolution seeds one apart) finish about
P times sooner in P processes on P cores than one after another. Each process is a fresh
``python -m dreamgym.agents.parallel`` that reads its job as JSON on stdin: nothing of the
caller's script is imported again (as ``multiprocessing``'s spawn would), so a script that calls
this needs no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamgym.agents.evolution import Evolution, EvolutionConfig
from dreamgym.agents.run import EvolveSettings, evolve
from dreamgym.common import validate
from dreamgym.common.threads import threads_for
from dreamgym.errors import DreamgymError

Job = tuple[EvolveSettings, str | Path]


def evolve_many(
    jobs: Sequence[Job],
    generations: int,
    processes: int,
    device: str = "auto",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run :func:`~dreamgym.agents.run.evolve` for each of ``jobs`` (settings and output
    directory), ``processes`` at a time.

    A process gives exactly the evolution :func:`evolve` gives in this one (the same thread
    count), and each resumes by itself after a kill. ``processes`` 1 runs them here, in order
    (use it on a GPU, which the evolutions would share). Progress comes as plain lines named by
    the output directory. Returns each job's ``generation`` and ``best_fitness``, in order.

    Raises:
        DreamgymError: a bad count, or an evolution that failed (its own error is printed).
    """
    validate.integer("processes", processes)
    validate.integer("generations", generations)
    if processes == 1 or len(jobs) == 1:
        return [_summary(evolve(s, out, generations, device=device, progress=progress))
                for s, out in jobs]  # fmt: skip
    threads = threads_for("inference")
    waiting = [json.dumps({"settings": dataclasses.asdict(s), "out": str(out),
                           "generations": generations, "device": device,
                           "progress": progress, "threads": threads,
                           "parent": os.getpid()})
               for s, out in jobs]  # fmt: skip
    running: dict[int, subprocess.Popen] = {}
    results: dict[int, dict[str, Any]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < processes:
                i = len(jobs) - len(waiting)
                running[i] = subprocess.Popen(
                    [sys.executable, "-m", "dreamgym.agents.parallel"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                running[i].stdin.write(waiting.pop(0))
                running[i].stdin.close()
            finished = [i for i, child in running.items() if child.poll() is not None]
            if not finished:
                time.sleep(0.5)
            for i in finished:
                child = running.pop(i)
                if child.returncode != 0:
                    raise DreamgymError(
                        f"the evolution into {str(jobs[i][1])!r} stopped with exit status "
                        f"{child.returncode} (its own message is above)"
                    )
                results[i] = json.loads(child.stdout.read().strip().splitlines()[-1])
    finally:
        for child in running.values():  # a stopped run: each resumes from its last generation
            child.terminate()
            child.wait()
    return [results[i] for i in range(len(jobs))]


def _summary(evolution: Evolution) -> dict[str, Any]:
    return {"generation": evolution.generation, "best_fitness": float(evolution.best_fitness)}


def _die_with_parent(parent: int) -> None:
    """End this process when the one that started it ends, however it ends (a killed pipeline
    must not leave evolutions writing into its run, as Ray does not leave its workers): Linux's
    parent-death signal, where libc offers it."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the signal was asked for
        sys.exit(130)


def _main() -> int:
    """One job, read as JSON on stdin; its summary as the last line on stdout."""
    from dreamgym.common.progress import plain_lines_only
    from dreamgym.common.threads import set_threads

    job = json.loads(sys.stdin.read())
    _die_with_parent(job["parent"])
    set_threads(job["threads"])
    plain_lines_only()  # several processes share the terminal
    settings = job["settings"]
    settings = EvolveSettings(**{**settings, "evolution": EvolutionConfig(**settings["evolution"])})
    try:
        evolution = evolve(settings, job["out"], job["generations"], device=job["device"],
                           progress=job["progress"],
                           label=f"evolve {Path(job['out']).name}")  # fmt: skip
    except DreamgymError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(json.dumps(_summary(evolution)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
