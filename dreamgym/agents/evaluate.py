"""Evaluating a saved controller the paper's way: mean +- std of its return over many episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dreamgym import worldmodels
from dreamgym.agents.backends import make_backend
from dreamgym.agents.controller import Controller
from dreamgym.dreams.core import resolve_temperature
from dreamgym.errors import DreamgymError


def evaluate_controller(
    controller: str | Path,
    episodes: int = 100,
    backend: str = "real",
    world_model: str | Path | None = None,
    temperature: float | None = None,
    max_episode_steps: int | None = None,
    workers: int = 2,
    address: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    done_mode: str = "threshold",
) -> np.ndarray:
    """Returns (episodes,) of a saved controller in the real env or in the dream.

    Args:
        controller: the controller's directory (``controller.json`` + ``.safetensors``).
        world_model: the bundle it reads frames with; default the one it was trained for.

    Raises:
        DreamgymError: bad arguments, or a controller that does not fit the world model.
    """
    if episodes < 1:
        raise DreamgymError(f"episodes must be >= 1, got {episodes}")
    policy, meta = Controller.load(controller)
    bundle = world_model or meta.get("world_model")
    if bundle is None:
        raise DreamgymError(f"controller {str(controller)!r} names no world model; pass one")
    model = worldmodels.load(bundle, device)
    policy.check_fits(model)
    runner = make_backend(backend, model, policy.spec, resolve_temperature(model.env, temperature),
                          max_episode_steps, done_mode, workers, address)  # fmt: skip
    try:
        return runner.returns(policy.get_params()[None], episodes, seed)[0]
    finally:
        close = getattr(runner, "close", None)
        if close:
            close()
