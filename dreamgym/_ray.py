"""Starting or joining Ray, with a fast, clear error for an unreachable cluster."""

from __future__ import annotations

import logging
import os
import socket
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


def connect_ray(address: str | None, workers: int) -> bool:
    """Start or join Ray; returns whether this call started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR}
    if address:
        _probe_address(address)
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DreamgymError(
                f"could not connect to the Ray cluster at {address!r}: {exc}"
            ) from exc
    else:
        ray.init(num_cpus=max(workers, os.cpu_count() or 1), **options)
    return True
