"""Finding and loading the world model a dream runs: explicit paths, or the newest bundle for an
env under ``$DREAMGYM_HOME`` (default ``~/.dreamgym``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import WorldModel, load

HOME_VARIABLE = "DREAMGYM_HOME"
SEARCH_DEPTH = 3
_CACHE: dict[tuple[str, int, str], WorldModel] = {}


def dreamgym_home() -> Path:
    """Where dreams look for bundles: ``$DREAMGYM_HOME``, default ``~/.dreamgym``."""
    return Path(os.environ.get(HOME_VARIABLE, "~/.dreamgym")).expanduser()


def find_bundle(env: str) -> Path:
    """The most recently trained bundle for ``env`` under :func:`dreamgym_home`.

    Bundles are found up to three directories deep (e.g. ``~/.dreamgym/runs/car/bundle.json``).

    Raises:
        DreamgymError: when there is none, saying how to train one.
    """
    home = dreamgym_home()
    found = []
    for depth in range(SEARCH_DEPTH + 1):
        for path in home.glob("/".join(["*"] * depth + ["bundle.json"])):
            try:
                if json.loads(path.read_text()).get("env") == env:
                    found.append((path.stat().st_mtime, path.parent))
            except (OSError, json.JSONDecodeError):
                continue
    if not found:
        out = home / "runs" / env
        raise DreamgymError(
            f"no world model for {env!r} under {str(home)!r} (set ${HOME_VARIABLE} to look "
            f"elsewhere, or pass world_model=PATH). Train one with:\n"
            f"  dreamgym collect --env {env} --episodes 100 --workers 2 --out {out}/data\n"
            f"  dreamgym train vae --data {out}/data --out {out}\n"
            f"  dreamgym train mdnrnn --data {out}/data --vae {out} --out {out}"
        )
    return max(found)[1]


def resolve_world_model(
    world_model: str | os.PathLike | WorldModel | None,
    env: str | None,
    device: str | torch.device = "cpu",
) -> WorldModel:
    """A loaded world model from an object, a bundle path, or (None) the newest bundle for
    ``env``. Loaded bundles are cached per (path, modification time, device) and shared: the
    dreams only read them. Raises DreamgymError when the bundle models another env than ``env``.
    """
    if world_model is None:
        if env is None:
            raise DreamgymError("pass world_model=PATH (a bundle directory) or env=NAME")
        world_model = find_bundle(env)
    if isinstance(world_model, (str, os.PathLike)):
        root = Path(world_model).expanduser().resolve()
        stamp = (root / "bundle.json").stat().st_mtime_ns if (root / "bundle.json").exists() else 0
        key = (str(root), stamp, str(torch.device(device)))
        if key not in _CACHE:
            _CACHE[key] = load(root, device)
        model = _CACHE[key]
    else:
        model = world_model
    if env is not None and model.env != env:
        raise DreamgymError(f"world model {world_model!r} models {model.env!r}, not {env!r}")
    return model
