"""Starting or joining Ray, with a fast, clear error for an unreachable cluster."""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import ray

from dreamgym.errors import DreamgymError


def _probe_address(address: str) -> None:
    """Fail fast on a host:port nobody listens on (Ray itself would retry for minutes)."""
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


def connect_ray(address: str | None, workers: int) -> bool:
    """Start or join Ray (``address``, else ``$RAY_ADDRESS``, else a local Ray); returns whether
    this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _probe_address(address)
        _use_token_auth()
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DreamgymError(
                f"could not connect to the Ray cluster at {address!r}: {exc}; if it uses token "
                "authentication (the default of `ray start`), make its token available here "
                "($RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
            ) from exc
    else:
        ray.init(num_cpus=max(workers, os.cpu_count() or 1), **options)
    return True


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
    """

    def __init__(self, start_actor: Callable[[], Any], size: int, per_actor: int = 2) -> None:
        self.start_actor, self.per_actor = start_actor, per_actor
        started = [start_actor() for _ in range(size)]
        ray.get([actor.ready.remote() for actor in started])
        self.actors: list[Any] = started
        self.load = {id(actor): 0 for actor in started}
        self.joining: dict[ray.ObjectRef, Any] = {}  # ready() ref -> replacement actor
        self.queue: deque[tuple[Callable[[Any], Any], Any]] = deque()
        self.in_flight: dict[ray.ObjectRef, tuple[Any, Callable[[Any], Any], Any]] = {}

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

    def _replace(self) -> None:
        actor = self.start_actor()
        self.joining[actor.ready.remote()] = actor

    def next(self) -> tuple[Any, Any]:
        """The next finished (task, result), re-running tasks whose actor died."""
        while True:
            self._deal()
            (ref,), _ = ray.wait([*self.in_flight, *self.joining], num_returns=1)
            if ref in self.joining:
                actor = self.joining.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError:
                    self._replace()
                    continue
                self.actors.append(actor)
                self.load[id(actor)] = 0
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
