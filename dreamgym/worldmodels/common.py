"""Helpers shared by the V and M trainers: the episode split, mixed precision, configs."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from dreamgym.common import validate
from dreamgym.errors import DreamgymError

C = TypeVar("C")
M = TypeVar("M", bound=torch.nn.Module)


def split_episodes(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/validation split of episode positions 0..n-1.

    At least one episode is held out when there are two or more; none when there is one.
    """
    validate.real("val_fraction", val_fraction, 0.0, 0.99)
    order = np.random.default_rng([seed, 2]).permutation(n)
    n_val = 0 if n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast when asked for (never fp16: its overflow turns the summed losses to inf)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def resolve_config(saved: C | None, fresh: Callable[[], C], overrides: dict[str, Any], path) -> C:
    """The config a training run uses.

    A new run takes the preset (``fresh()``) with ``overrides`` applied. A resumed run keeps the
    config saved in its checkpoint ``path``: only ``epochs`` may change (to train further); any
    other override that differs is refused, naming the setting.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = fresh() if saved is None else saved
    names = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise DreamgymError(f"unknown settings {unknown}; known: {sorted(names)}")
    if saved is not None:
        for key, value in overrides.items():
            if key != "epochs" and getattr(saved, key) != value:
                raise DreamgymError(
                    f"{str(path)!r} was trained with {key}={getattr(saved, key)!r}; a resumed run "
                    f"keeps its settings (only epochs can grow), so {key}={value!r} is refused. "
                    "Use another --out for a new run"
                )
    config = dataclasses.replace(base, **overrides)
    for key in ("epochs", "batch_size", "seq_len", "z_size", "hidden_size"):
        if key in names:
            validate.integer(key, getattr(config, key))
    validate.positive("lr", config.lr)
    return config


def seeded_init(build: Callable[[], M], seed: int) -> M:
    """Build a module with its initial weights drawn from ``seed``, leaving the global RNG as it
    was: the same seed gives the same initial weights whatever ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def reconstruction_grid(real: np.ndarray, decoded: np.ndarray, label: str, epoch: int) -> bytes:
    """A PNG: real frames (top row) over their decoding (bottom row), each (n, 64, 64, 3) uint8,
    doubled in size, with row labels and the epoch in a left margin."""
    from PIL import Image, ImageDraw

    grid = np.concatenate([np.concatenate(list(real), 1), np.concatenate(list(decoded), 1)], 0)
    image = Image.fromarray(grid).resize(
        (grid.shape[1] * 2, grid.shape[0] * 2), Image.Resampling.NEAREST
    )
    labelled = Image.new("RGB", (image.width + 96, image.height), "white")
    labelled.paste(image, (96, 0))
    draw = ImageDraw.Draw(labelled)
    half = image.height // 2
    for row, text in enumerate(("real frame", label)):
        draw.text((6, row * half + half // 2 - 6), text, fill="black")
    draw.text((6, image.height - 14), f"epoch {epoch}", fill="gray")
    buffer = io.BytesIO()
    labelled.save(buffer, format="PNG")
    return buffer.getvalue()
