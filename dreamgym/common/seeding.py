"""Derived seeds: one rule for every seed dreamgym derives from a user's seed."""

from __future__ import annotations

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer ``keys`` (e.g. the run's seed and an episode index)
    with numpy's SeedSequence: independent streams for different keys, the same for the same."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
