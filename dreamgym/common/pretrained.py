"""The pretrained world models and controllers shipped inside the package, and their short names.

Each shipped model is a directory ``dreamgym/pretrained/NAME/``: a world-model bundle (fp16
safetensors + ``bundle.json``), its best controller in ``controller/`` (none for a latent model,
whose policy is the planner), and ``MODEL_CARD.md`` (how it was made, what it scores, the files'
checksums). The directory is :data:`ROOT`; tests point it elsewhere to try a shipped model
without writing into the package. ``pretrained:NAME`` names it wherever a
bundle or a controller path is accepted; dreams made by env id fall back to it when the user has
no bundle of their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dreamgym.errors import DreamgymError

PREFIX = "pretrained:"
ROOT = Path(__file__).resolve().parents[1] / "pretrained"
CONTROLLER_DIR = "controller"
MODEL_CARD = "MODEL_CARD.md"


def pretrained_names() -> list[str]:
    """The names of the shipped models (``pretrained:NAME``), sorted."""
    if not ROOT.is_dir():
        return []
    return sorted(p.name for p in ROOT.iterdir() if (p / "bundle.json").is_file())


def pretrained_for_env(env: str) -> Path | None:
    """The shipped bundle directory for real env ``env``, or None when none is shipped."""
    for name in pretrained_names():
        try:
            if json.loads((ROOT / name / "bundle.json").read_text()).get("env") == env:
                return ROOT / name
        except (OSError, json.JSONDecodeError):
            continue
    return None


def pretrained_name(path: str | os.PathLike | None) -> str | None:
    """``NAME`` when ``path`` is ``pretrained:NAME`` (a string), else None."""
    if isinstance(path, str) and path.startswith(PREFIX):
        return path[len(PREFIX) :]
    return None


def resolve_path(path: str | os.PathLike, part: str = "") -> Path:
    """``path`` as a Path, with ``pretrained:NAME`` replaced by the shipped model's directory.

    Args:
        path: a filesystem path, or ``pretrained:NAME``.
        part: for a pretrained name, the sub-directory wanted (``"controller"`` for its
            controller; ``""`` for the world-model bundle).

    Raises:
        DreamgymError: ``pretrained:NAME`` names no shipped model.
    """
    name = pretrained_name(path)
    if name is None:
        return Path(path)
    if name not in pretrained_names():
        shipped = ", ".join(PREFIX + n for n in pretrained_names()) or "none"
        raise DreamgymError(f"no pretrained model {path!r}; shipped: {shipped}")
    return ROOT / name / part if part else ROOT / name


def resolve_controller(path: str | os.PathLike) -> Path:
    """The directory of a saved controller (or SB3 agent) named by ``path``: the directory
    itself, its ``controller.json`` (``agent.json``), or ``pretrained:NAME`` (the shipped
    model's controller).

    Every command that takes a controller resolves it here, so each accepts the same forms.

    Raises:
        DreamgymError: ``pretrained:NAME`` names no shipped model.
    """
    path = resolve_path(path, CONTROLLER_DIR)
    named = path.name in ("controller.json", "agent.json")
    return path.parent if named and path.is_file() else path


def output_beside(path: str | os.PathLike, *parts: str) -> Path:
    """Where an output about ``path`` goes by default: ``path/parts...``, or for
    ``pretrained:NAME`` ``./NAME/parts...`` (the installed package is never written to)."""
    name = pretrained_name(path)
    if name is None and (shown := describe(path)).startswith(PREFIX):
        name = shown[len(PREFIX) :]  # a path inside the installed package
    return Path(name if name is not None else path, *parts)


def describe(path: str | os.PathLike) -> str:
    """``pretrained:NAME`` for a shipped model's directory, else the path as given."""
    path = Path(path)
    try:
        relative = path.resolve().relative_to(ROOT)
    except ValueError:
        return str(path)
    return PREFIX + relative.parts[0] if relative.parts else str(path)
