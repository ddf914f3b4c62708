"""Checkpoints as one safetensors file: weights, optimizer state, RNG states and JSON metadata.

One file per model (``vae.safetensors``, ``mdnrnn.safetensors``) holds everything needed to use
the model *and* to resume its training, so a kill can never leave weights and training state out
of step: the file is written to a temporary name and renamed. Tensors are keyed ``model.*``,
``optim.*`` and ``rng.*``; the JSON metadata (under the ``"dreamgym"`` key) holds the config, the
epoch, the metric history and the numpy RNG state. Loading never executes code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from dreamgym.common.io import atomic_write_bytes
from dreamgym.errors import CorruptFileError, DreamgymError

META_KEY = "dreamgym"


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
    rng: np.random.Generator | None = None,
) -> None:
    """Write model weights, optional training state and ``meta`` to ``path`` atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(meta)
    if optimizer is not None:
        state = optimizer.state_dict()
        keys = {}
        for index, values in state["state"].items():
            keys[str(index)] = sorted(values)
            for name, value in values.items():
                tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().clone()
        meta["optimizer"] = {"param_groups": state["param_groups"], "state_keys": keys}
    if generator is not None:
        tensors["rng.torch"] = generator.get_state()
    if rng is not None:
        meta["numpy_rng"] = rng.bit_generator.state
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)}))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint.

    Raises:
        DreamgymError: when the file is missing.
        CorruptFileError: naming the file when it is not a readable dreamgym checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise DreamgymError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[META_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise CorruptFileError(
            f"checkpoint {str(path)!r} is corrupt or not a dreamgym checkpoint: {exc}"
        ) from exc
    return tensors, meta


def load_model(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load the ``model.*`` tensors into ``model``, naming the file and key on any mismatch."""
    expected = model.state_dict()
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CorruptFileError(
            f"checkpoint {str(path)!r} does not fit this model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CorruptFileError(
                f"checkpoint {str(path)!r}: {key} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)


def load_training_state(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rng: np.random.Generator,
) -> None:
    """Restore optimizer, torch generator and numpy RNG states saved by :func:`save_checkpoint`."""
    saved = meta["optimizer"]
    device = optimizer.param_groups[0]["params"][0].device
    state = {
        int(index): {
            name: tensors[f"optim.{index}.{name}"].to(device if name != "step" else "cpu")
            for name in names
        }
        for index, names in saved["state_keys"].items()
    }
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    generator.set_state(tensors["rng.torch"])
    rng.bit_generator.state = meta["numpy_rng"]
