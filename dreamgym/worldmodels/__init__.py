"""World models: V (ConvVAE) + M (MDN-RNN) today, behind one small protocol.

>>> from dreamgym import worldmodels
>>> model = worldmodels.load("runs/car")                # a bundle directory
>>> state = model.initial_state(16)
>>> state, reward, done = model.step(state, actions, temperature=1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dreamgym.errors import DreamgymError
from dreamgym.worldmodels.protocol import WorldModel, state_assign, state_index, state_where
from dreamgym.worldmodels.vm import VMState, VMWorldModel, load_vm, read_bundle_info

Loader = Callable[[Path, dict[str, Any], "str | torch.device"], WorldModel]
_LOADERS: dict[str, Loader] = {"vae-mdnrnn": load_vm}


def register_world_model_kind(kind: str, loader: Loader) -> None:
    """Teach :func:`load` a new bundle kind (``bundle.json``'s ``"kind"``)."""
    _LOADERS[kind] = loader


def load(path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Load the world-model bundle in directory ``path`` onto ``device``.

    Raises:
        DreamgymError: when ``path`` is no bundle, a file is missing, or V, M and the bundle
            disagree (z size, action size, env); the message names the file and the mismatch.
    """
    root = Path(path)
    info = read_bundle_info(root)
    kind = info.get("kind")
    if kind not in _LOADERS:
        raise DreamgymError(
            f"bundle {str(root)!r} has kind {kind!r}; known kinds: {', '.join(_LOADERS)}"
        )
    return _LOADERS[kind](root, info, device)


__all__ = [
    "VMState",
    "VMWorldModel",
    "WorldModel",
    "load",
    "register_world_model_kind",
    "state_assign",
    "state_index",
    "state_where",
]
