"""How the tests start and join Ray: quietly, so no test's output holds another's Ray logs."""

from __future__ import annotations

from typing import Any

import ray

# Ray forwards its workers' and raylet's log lines to the driver's stderr (a raylet warns there
# every 10 s while the disk is over 95% full); the tests that read stderr must not see them.
QUIET: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}


def start_local_ray() -> None:
    """The local instance the test session shares: 2 CPUs, no dashboard, quiet."""
    ray.init(num_cpus=2, include_dashboard=False, **QUIET)
