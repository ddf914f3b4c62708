"""Starting or joining Ray: a fast, clear error for an unreachable cluster, a local instance that
is really local, and nothing left behind: a local instance's session folder (its logs, under
Ray's temp directory) goes with it, and the processes of a run that was killed are stopped by the
next run, which removes that run's session folder too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import ray

from dreamgym.common.io import atomic_write_json
from dreamgym.errors import DreamgymError

# Where dreamgym notes the local Ray instances it starts: one JSON file per driver process.
SESSIONS_DIR = Path(tempfile.gettempdir()) / "dreamgym-ray-sessions"
# Seconds an actor pool waits for all its actors to be placed before starting with those that are.
PLACEMENT_GRACE_S = 10.0


def _probe_address(address: str) -> None:
    """Fail fast, with the cause, on a host:port nobody listens on (Ray itself would retry for
    minutes) and on a cluster that refuses this machine's token (Ray: 20 s of retries, then
    "Failed to connect")."""
    host, sep, port = address.split("://")[-1].rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms: Ray answers those quickly itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise DreamgymError(
            f"could not connect to the Ray cluster at {address!r}: {exc.strerror or exc}; "
            "start one with `ray start --head` or leave --address out for a local Ray"
        ) from exc
    try:
        with _stderr_to_devnull():  # Ray's C++ client logs the refusal before raising it
            ray._raylet.GcsClient(address=address)
    except ray.exceptions.AuthenticationError as exc:
        raise DreamgymError(
            f"the Ray cluster at {address!r} refused this machine's authentication token (it "
            "uses token authentication, the default of `ray start` once a token exists): copy "
            "the head node's ~/.ray/auth_token to ~/.ray/auth_token here, or set "
            "$RAY_AUTH_TOKEN / $RAY_AUTH_TOKEN_PATH"
        ) from exc
    except Exception:  # anything else: ray.init reports it in its own words
        return


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _use_token_auth() -> None:
    """Send Ray's auth token when one is available and the user chose no auth mode.

    Clusters started with ``ray start`` use token authentication by default (Ray >= 2.59), and a
    driver that joins one must present the token, which ``ray start`` keeps in
    ``~/.ray/auth_token`` (or ``$RAY_AUTH_TOKEN`` / ``$RAY_AUTH_TOKEN_PATH``); Ray only turns this
    on by itself for clusters it starts. Sending the token to a cluster without authentication is
    harmless. Ray's own switch is used (it also refreshes Ray's cached config).
    """
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # a Ray without token authentication
        return
    quiet = logging.getLogger(setup.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its notice is for clusters Ray starts, not joins
    try:
        setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def check_address(address: str | None) -> None:
    """Raise the error joining ``address`` (else ``$RAY_ADDRESS``) would meet, if it is one
    that can be told before Ray starts (nobody listening, a refused token); for commands that
    check their input before writing anything."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _use_token_auth()
        _probe_address(address)


def connect_ray(address: str | None, workers: int) -> bool:
    """Start or join Ray; returns whether this call started it (and so must shut it down, with
    :func:`disconnect_ray`).

    ``address``, else ``$RAY_ADDRESS``, names a cluster to join; without either, a new local
    instance with at least ``workers`` CPUs is started, never one that Ray's address file points
    at (a cluster started with ``ray start`` on this machine, perhaps long dead). Before starting
    one, the processes left by local instances of dreamgym runs that were killed are stopped.
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _use_token_auth()
        _probe_address(address)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DreamgymError(
                f"could not connect to the Ray cluster at {address!r}: {exc}; if it uses token "
                "authentication (the default of `ray start`), make its token available here "
                "($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
            ) from exc
        return True
    reap_orphans()
    ray.init(address="local", num_cpus=max(workers, os.cpu_count() or 1), **options)
    _note_session()
    return True


def disconnect_ray(started: bool) -> None:
    """Shut Ray down if :func:`connect_ray` started it (a joined cluster is left running); a
    local instance's session folder is removed with it."""
    if started and ray.is_initialized():
        ray.shutdown()
        note = _session_note(os.getpid())
        with contextlib.suppress(OSError, ValueError, KeyError):  # no note: a joined cluster
            _remove_session_dir(json.loads(note.read_text())["session_dir"])
        note.unlink(missing_ok=True)


@contextlib.contextmanager
def ray_session(address: str | None, workers: int) -> Iterator[None]:
    """:func:`connect_ray` for the duration of a ``with`` block."""
    started = connect_ray(address, workers)
    try:
        yield
    finally:
        disconnect_ray(started)


def _session_note(pid: int) -> Path:
    return SESSIONS_DIR / f"{pid}.json"


def _note_session() -> None:
    """Note this driver (pid and start time, against pid reuse) and its Ray session directory."""
    node = ray._private.worker.global_worker.node
    pid = os.getpid()
    note = {"pid": pid, "start": _start_stamp(pid), "session_dir": node.get_session_dir_path()}
    SESSIONS_DIR.mkdir(parents=True, exist_ok=True)
    atomic_write_json(_session_note(pid), note)


def _remove_session_dir(session_dir: str) -> None:
    """Remove a local Ray instance's session folder (``.../ray/session_<date>_<pid>``: its logs
    and sockets, which nothing reads once it is down; a dreamgym run reports its own errors) and
    Ray's ``session_latest`` link when that names it."""
    path = Path(session_dir)
    if not path.name.startswith("session_"):  # never anything but a Ray session folder
        return
    shutil.rmtree(path, ignore_errors=True)
    latest = path.parent / "session_latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() and Path(os.readlink(latest)).name == path.name:
            latest.unlink()


def _start_stamp(pid: int) -> float:
    """When process ``pid`` started, on a clock that no step of the wall clock moves: on Linux its
    start in clock ticks since boot (``/proc/PID/stat``). psutil's ``create_time`` adds the boot
    time, which moves when the wall clock is stepped (a VM resumed, NTP): a live driver then
    looked dead, and the next run stopped it. Elsewhere, psutil's ``create_time``."""
    if Path("/proc/self/stat").exists():
        stat = Path(f"/proc/{pid}/stat").read_text()
        return float(stat.rpartition(")")[2].split()[19])  # field 22, starttime
    return psutil.Process(pid).create_time()


def _alive(pid: int, start: float) -> bool:
    """Whether the process that wrote a note (``pid`` and its :func:`_start_stamp`) still runs."""
    try:
        return _start_stamp(pid) == start
    except (OSError, psutil.Error, IndexError, ValueError):
        return False


def _uses(process: psutil.Process, session_dir: str) -> bool:
    """Whether ``process`` belongs to a Ray session: its command line or an open file names the
    session directory (Ray's workers and agents rename themselves, but keep their logs open)."""
    prefix = session_dir.rstrip("/") + "/"
    try:
        if any(session_dir in part for part in process.cmdline()):
            return True
        return any(f.path.startswith(prefix) for f in process.open_files())
    except psutil.Error:
        return False


def reap_orphans() -> list[int]:
    """Stop the processes of local Ray instances whose dreamgym driver is gone and remove their
    session folders; returns the pids stopped. Ray stops most of an instance when its driver is
    killed (SIGKILL), but not all: its dashboard and runtime-env agents log that the raylet died
    and then hang on, forever."""
    stopped: list[int] = []
    for path in sorted(SESSIONS_DIR.glob("*.json")):
        try:
            note = json.loads(path.read_text())
            pid, start, session_dir = note["pid"], note["start"], note["session_dir"]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if _alive(pid, start):
            continue
        orphans = [p for p in psutil.process_iter()
                   if p.pid != os.getpid() and _uses(p, session_dir)]  # fmt: skip
        for process in orphans:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(orphans, timeout=10)
        stopped += [p.pid for p in orphans]
        _remove_session_dir(session_dir)
        path.unlink(missing_ok=True)
    return stopped


class ActorPool:
    """Ray actors that survive their own deaths: tasks go to the least-loaded actor (at most
    ``per_actor`` in flight each); when an actor (or its node) dies, its unfinished tasks go back
    in the queue for the others and a replacement is started. A replacement takes tasks once Ray
    has placed it, so a cluster that shrank keeps working with the actors it still has. Callers
    see every task's result exactly once.

    Args:
        start_actor: starts one actor with a ``ready()`` method (e.g. ``Remote.remote(*args)``).
        size: the number of actors.
        per_actor: tasks in flight per actor.
        placement_grace: seconds to wait for every actor to be placed before starting with
            those that are (the others join when there is room).
    """

    def __init__(self, start_actor: Callable[[], Any], size: int, per_actor: int = 2,
                 placement_grace: float = PLACEMENT_GRACE_S) -> None:  # fmt: skip
        self.start_actor, self.per_actor = start_actor, per_actor
        self.actors: list[Any] = []
        self.load: dict[int, int] = {}
        self.joining: dict[ray.ObjectRef, Any] = {}  # ready() ref -> an actor not placed yet
        self.queue: deque[tuple[Callable[[Any], Any], Any]] = deque()
        self.in_flight: dict[ray.ObjectRef, tuple[Any, Callable[[Any], Any], Any]] = {}
        for _ in range(size):
            actor = start_actor()
            self.joining[actor.ready.remote()] = actor
        # Start with the actors Ray can place now (at least one: a cluster with no room at all
        # waits); the others join when there is room, e.g. when an autoscaler adds nodes.
        try:
            ready, _ = ray.wait(list(self.joining), num_returns=1)
            ready, _ = ray.wait(list(self.joining), num_returns=size, timeout=placement_grace)
            for ref in ready:
                self._join(ref)
        except BaseException:
            self.close()
            raise
        if self.joining:
            warnings.warn(
                f"{len(self.actors)} of {size} Ray workers could be placed; the other "
                f"{len(self.joining)} join when the cluster has room for them",
                stacklevel=2,
            )

    @property
    def pending(self) -> int:
        """Tasks submitted whose results were not taken yet."""
        return len(self.queue) + len(self.in_flight)

    def has_room(self) -> bool:
        """Whether a task submitted now would start at once."""
        return not self.queue and any(n < self.per_actor for n in self.load.values())

    def submit(self, call: Callable[[Any], ray.ObjectRef], task: Any) -> None:
        """Queue ``task``: ``call(actor)`` runs it on an actor and returns the remote ref."""
        self.queue.append((call, task))
        self._deal()

    def _deal(self) -> None:
        while self.queue and self.actors:
            actor = min(self.actors, key=lambda a: self.load[id(a)])
            if self.load[id(actor)] >= self.per_actor:
                return
            call, task = self.queue.popleft()
            self.in_flight[call(actor)] = (actor, call, task)
            self.load[id(actor)] += 1

    def _join(self, ref: ray.ObjectRef) -> None:
        """An actor's ready() finished: it takes tasks; if it was lost before (its process or
        node died), a replacement is started; if its constructor raised, so does this."""
        actor = self.joining.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            if exc.actor_init_failed:  # would fail again: a bug or a bad setting, not bad luck
                raise
            self._replace()
            return
        self.actors.append(actor)
        self.load[id(actor)] = 0

    def _replace(self) -> None:
        actor = self.start_actor()
        self.joining[actor.ready.remote()] = actor

    def next(self) -> tuple[Any, Any]:
        """The next finished (task, result), re-running tasks whose actor died."""
        while True:
            self._deal()
            (ref,), _ = ray.wait([*self.in_flight, *self.joining], num_returns=1)
            if ref in self.joining:
                self._join(ref)
                continue
            actor, call, task = self.in_flight.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError:
                if actor in self.actors:  # the first of its lost tasks retires it
                    self.actors.remove(actor)
                    del self.load[id(actor)]
                    self._replace()
                self.queue.appendleft((call, task))
                continue
            self.load[id(actor)] -= 1
            return task, result

    def close(self) -> None:
        for actor in [*self.actors, *self.joining.values()]:
            ray.kill(actor)
        self.actors, self.joining, self.in_flight, self.load = [], {}, {}, {}
        self.queue.clear()
