"""The world-model bundle: the one module that knows its layout.

A bundle is a directory holding ``bundle.json`` and the files it names::

    bundle.json    {"format": 1, "kind": "vae-mdnrnn", "env": "carracing", "files": {...},
                    "action_low": [...], "action_high": [...], "max_episode_steps": 1000,
                    "frame_skip": 1, ... kind-specific fields, "training": {...}}

``kind`` selects the loader (:func:`register_world_model_kind`); ``env`` names the real env.
Dreams find bundles by env under ``$DREAMGYM_HOME`` (default ``~/.dreamgym``) when given none,
and share loaded bundles through a cache keyed by path, modification time and device.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dreamgym.common.device import resolve_device
from dreamgym.common.io import HOME_VARIABLE, atomic_write_json, dreamgym_home
from dreamgym.common.pretrained import describe, pretrained_for_env, resolve_path
from dreamgym.common.resolve import resolve_callable
from dreamgym.envs import get_env_spec
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.protocol import WorldModel

BUNDLE_FILE = "bundle.json"
FORMAT = 1
SEARCH_DEPTH = 3

Loader = Callable[[Path, dict[str, Any], "str | torch.device"], WorldModel]
# Loaders by kind: a function, or "module:function" imported on first use.
_LOADERS: dict[str, Loader | str] = {
    "vae-mdnrnn": "dreamgym.worldmodels.vm.model:load_vm",
    "latent": "dreamgym.worldmodels.latent.model:load_latent",
}
_CACHE: dict[tuple[str, int, str], WorldModel] = {}


def register_world_model_kind(kind: str, loader: Loader | str) -> None:
    """Teach :func:`load` a new bundle kind (``bundle.json``'s ``"kind"``): ``loader(root, info,
    device)`` returns the world model, or is named as ``"module:function"``."""
    _LOADERS[kind] = loader


def read_info(root: str | Path) -> dict[str, Any]:
    """The parsed ``bundle.json`` of the bundle directory ``root`` (or ``pretrained:NAME``).

    Raises:
        DreamgymError: ``root`` is no bundle (saying how to make one).
        CorruptFileError: ``bundle.json`` is not valid JSON.
    """
    root = resolve_path(root)
    path = root / BUNDLE_FILE
    if not root.is_dir():
        raise DreamgymError(f"world-model bundle {str(root)!r} is not a directory")
    if not path.exists():
        below = sorted(str(p.parent) for p in root.glob(f"*/{BUNDLE_FILE}"))
        hint = (f"it holds bundles one level down (a pipeline run?): {', '.join(below)}; pass "
                "one of them" if below else
                "train one with `dreamgym train vae` then `dreamgym train mdnrnn`")  # fmt: skip
        raise DreamgymError(f"{str(root)!r} is not a world-model bundle (no {BUNDLE_FILE}); {hint}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{str(path)!r} is not valid JSON: {exc}") from exc


def write_info(root: str | Path, kind: str, env_meta: dict[str, Any], **fields: Any) -> None:
    """Write ``bundle.json`` atomically: the format, ``kind``, the env's facts from a dataset's
    metadata (``env_meta``: env, gym_id, action bounds, episode cap, frame skip) and the
    kind's own ``fields`` (its ``files`` among them)."""
    keys = ("env", "gym_id", "action_low", "action_high", "max_episode_steps", "frame_skip")
    atomic_write_json(Path(root) / BUNDLE_FILE,
                      {"format": FORMAT, "kind": kind, **{k: env_meta[k] for k in keys},
                       **fields})  # fmt: skip


def bundle_files(info: dict[str, Any]) -> list[str]:
    """The names of the files a bundle's ``info`` lists under ``files`` (a value may be one name
    or a list of names, e.g. an ensemble's members)."""
    names = []
    for value in info.get("files", {}).values():
        names.extend(value if isinstance(value, list) else [value])
    return names


def load(path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Load the world-model bundle in directory ``path`` (or ``pretrained:NAME``) onto ``device``
    (``"auto"``: CUDA when available).

    Raises:
        DreamgymError: when ``path`` is no bundle, a file is missing, or its parts disagree
            (e.g. V's and M's z size); the message names the file and the mismatch.
    """
    root = resolve_path(path)
    device = resolve_device(device)
    info = read_info(root)
    kind = info.get("kind")
    if kind not in _LOADERS:
        raise DreamgymError(
            f"bundle {str(root)!r} has kind {kind!r}; known kinds: {', '.join(_LOADERS)}"
        )
    loader = _LOADERS[kind]
    if isinstance(loader, str):
        loader = resolve_callable(loader, f"the loader of bundle kind {kind!r}")
    model = loader(root, info, device)
    # Where the model came from, for reprs and infos (``pretrained:NAME`` for shipped ones).
    model.info["source"] = describe(root)
    return model


def pack(path: str | Path) -> dict[str, bytes]:
    """The bundle's files by name (``bundle.json`` and the files it names), to send a world
    model to machines that do not share this one's filesystem (:func:`load_packed`)."""
    root = resolve_path(path)
    names = [BUNDLE_FILE, *bundle_files(read_info(root))]
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DreamgymError(f"bundle {str(root)!r} lacks {', '.join(missing)}")
    return {name: (root / name).read_bytes() for name in names}


def load_packed(files: dict[str, bytes], device: str | torch.device = "cpu") -> WorldModel:
    """Load a bundle packed by :func:`pack` onto ``device`` (through a temporary directory)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dreamgym-bundle-") as root:
        for name, data in files.items():
            (Path(root) / name).write_bytes(data)
        return load(root, device)


def find_bundle(env: str) -> Path:
    """The most recently trained bundle for ``env`` under :func:`dreamgym_home`, else the
    pretrained bundle shipped for ``env``.

    Bundles are found up to three directories deep (e.g. ``~/.dreamgym/runs/car/bundle.json``).

    Raises:
        DreamgymError: when there is none, saying how to train one.
    """
    home = dreamgym_home()
    found = []
    for depth in range(SEARCH_DEPTH + 1):
        for path in home.glob("/".join(["*"] * depth + [BUNDLE_FILE])):
            try:
                if json.loads(path.read_text()).get("env") == env:
                    found.append((path.stat().st_mtime, path.parent))
            except (OSError, json.JSONDecodeError):
                continue
    if not found and (shipped := pretrained_for_env(env)) is not None:
        return shipped
    if not found:
        raise DreamgymError(
            f"no world model for {env!r} under {str(home)!r} (set ${HOME_VARIABLE} to look "
            f"elsewhere, or pass world_model=PATH). Train one with:\n"
            + "\n".join(f"  {line}" for line in training_recipe(env, home / "runs" / env))
        )
    return max(found)[1]


def training_recipe(env: str, out: Path) -> list[str]:
    """The commands that make a world model of real env ``env`` in run directory ``out``, for
    the env's world-model family (its spec's ``world_model``), collecting with its collection
    policy."""
    spec = get_env_spec(env)
    collect = (f"dreamgym collect --env {env} --policy {spec.collection_policy} "
               f"--episodes 100 --workers 2 --out {out}/data")  # fmt: skip
    if spec.world_model == "latent":
        return [collect, f"dreamgym train latent --data {out}/data --out {out}"]
    return [collect, f"dreamgym train vae --data {out}/data --out {out}",
            f"dreamgym train mdnrnn --data {out}/data --vae {out} --out {out}"]  # fmt: skip


def resolve_world_model(
    world_model: str | os.PathLike | WorldModel | None,
    env: str | None,
    device: str | torch.device = "cpu",
) -> WorldModel:
    """A loaded world model from an object, a bundle path (or ``pretrained:NAME``), or (None)
    the newest bundle for ``env`` (:func:`find_bundle`). Loaded bundles are cached per (path,
    modification time, device) and shared: the dreams only read them. Raises DreamgymError when
    the bundle models another env than ``env``.
    """
    if world_model is None:
        if env is None:
            raise DreamgymError("pass world_model=PATH (a bundle directory) or env=NAME")
        world_model = find_bundle(env)
    device = resolve_device(device)
    if isinstance(world_model, (str, os.PathLike)):
        root = resolve_path(world_model).expanduser().resolve()
        info = root / BUNDLE_FILE
        stamp = info.stat().st_mtime_ns if info.exists() else 0
        key = (str(root), stamp, str(torch.device(device)))
        if key not in _CACHE:
            _CACHE[key] = load(root, device)
        model = _CACHE[key]
    else:
        model = world_model
    if env is not None and model.env != env:
        raise DreamgymError(f"world model {world_model!r} models {model.env!r}, not {env!r}")
    return model
