"""Imports point down the layers: envs -> rollouts -> worldmodels -> dreams -> agents -> fidelity ->
pipeline -> presets -> CLI, with shared infrastructure below them all; inside worldmodels, the
shared modules -> vm/ -> latent/. Lazy (function-level) imports count."""

from __future__ import annotations

import ast
from pathlib import Path

import dreamgym

PACKAGE = Path(dreamgym.__file__).parent
LAYERS = {  # first dotted part after "dreamgym." -> its level
    "errors": 0, "common": 0,
    "envs": 1, "rollouts": 2, "worldmodels": 3, "dreams": 4, "agents": 5, "fidelity": 6,
    "pipeline_config": 7, "pipeline": 7, "export": 7, "export_latent": 7,
    "presets": 8, "cli": 9, "__main__": 10,
}  # fmt: skip


def layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def imports(path: Path) -> set[str]:
    """Every dreamgym module ``path`` imports (absolute imports only, at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("dreamgym."))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dreamgym."))
    return {m for m in found if m.split(".")[1] in LAYERS}


def test_every_import_points_down_the_layers():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts)
        if module in ("dreamgym.__init__",):
            continue  # the package root re-exports from every layer
        for target in sorted(imports(path)):
            if layer(target) > layer(module):
                upward.append(f"{module} imports {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


FAMILIES = {"vm": 1, "latent": 2}  # worldmodels' own folders; the rest is shared (level 0)


def family(module: str) -> int:
    """A worldmodels module's level: shared modules 0, then V+M, then the latent family (whose
    ``vae`` encoder is a trained V)."""
    parts = module.split(".")
    return FAMILIES.get(parts[2], 0) if len(parts) > 2 else 0


def test_world_model_families_import_the_shared_modules_not_the_reverse():
    upward = []
    for path in sorted((PACKAGE / "worldmodels").rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if module == "dreamgym.worldmodels.__init__":
            continue  # the package re-exports each family's world model
        for target in sorted(imports(path)):
            if target.startswith("dreamgym.worldmodels.") and family(target) > family(module):
                upward.append(f"{module} imports {target}")
    assert not upward, "imports against the world-model families:\n" + "\n".join(upward)
