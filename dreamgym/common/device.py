"""The device every command runs on."""

from __future__ import annotations

import torch

from dreamgym.errors import DreamgymError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else must be usable here."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise DreamgymError(f"unknown device {device!r}; expected auto, cpu or cuda[:N]") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DreamgymError(f"device {device!r} was asked for, but CUDA is not available here")
    return resolved
