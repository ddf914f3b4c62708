"""Export a trained world model and its controller as a small folder others can use as is.

An export is a world-model bundle whose checkpoints keep only the weights, in float16 (no
optimizer state, no RNG state), its controller in ``controller/`` pointing at the bundle by a
relative path (so the folder can move), and ``MODEL_CARD.md``: the data, preset, training time,
fidelity figures, real scores beside the collection policy's, the command that rebuilds it, how
closely the float16 weights reproduce the float32 controller's decisions, and every file's
SHA-256. An export holds no path of the machine that made it: the paths its files record (the
training data, the source bundle) become relative to the source run, or their bare names
(:func:`portable`). The pretrained models shipped in ``dreamgym/pretrained/`` are exports of
pipeline runs::

    dreamgym export --run runs/doom --out dreamgym/pretrained/doom-takecover

A latent world model (Push-T) has no controller: its card gives goal reaching from a
``dreamgym plan`` report instead (:mod:`dreamgym.export_latent`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from dreamgym.agents.controller import Controller
from dreamgym.agents.saved import is_controller
from dreamgym.common.io import atomic_write_bytes, atomic_write_json
from dreamgym.common.pretrained import CONTROLLER_DIR, MODEL_CARD, resolve_path
from dreamgym.dreams.core import resolve_done_mode
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.pipeline import final_products
from dreamgym.pipeline_config import evaluation_seed
from dreamgym.rollouts import RolloutDataset
from dreamgym.worldmodels import bundle
from dreamgym.worldmodels.checkpoint import META_KEY, read_checkpoint

EXPORT_DTYPE = torch.float16
# Checkpoint metadata only needed to resume training.
_TRAINING_ONLY = ("optimizer", "numpy_rng")
# Two actions "agree" when every component differs by less than this (actions lie in [-1, 1]).
AGREEMENT_TOLERANCE = 0.05
_CHECKSUM_ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \| `([0-9a-f]{64})` \|$", re.MULTILINE)
# A path in text: at least one slash between names (absolute or relative).
_PATH_TOKEN = re.compile(r"(?<![\w./~+-])[\w.~+-]*(?:/[\w.+-]+)+/?")
# An absolute path in text (POSIX or a home directory): a machine's, never in an export.
MACHINE_PATH = re.compile(r"(?<![\w./~+-])~?/[\w.+-]+(?:/[\w.+-]*)*")


@dataclass(frozen=True)
class Agreement:
    """How closely an exported controller+model decides like the original on real frames."""

    steps: int
    agree: float  # fraction of steps whose actions agree within AGREEMENT_TOLERANCE
    max_abs_diff: float


def _relative(path: str, root: Path) -> str:
    """``path`` relative to ``root`` when inside it, else its bare name."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def portable(value: Any, root: str | Path) -> Any:
    """JSON ``value`` with every absolute path in it made relative to ``root`` (the run an
    export comes from) when inside it, else cut to its bare name."""
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return _relative(value, Path(root))
    return value


def portable_text(text: str, root: str | Path) -> str:
    """``text`` with each path in it that names something under ``root`` (as given at any
    working directory: the longest of its endings that exists under ``root``) written relative
    to ``root``, and any other absolute path cut to its bare name."""
    root = Path(root)

    def replace(match: re.Match) -> str:
        token = match.group(0)
        parts = Path(token).parts
        for k in range(len(parts)):
            ending = Path(*parts[k:]) if not Path(parts[k]).is_absolute() else None
            if ending is not None and (root / ending).exists():
                return ending.as_posix()
        return Path(token).name if os.path.isabs(os.path.expanduser(token)) else token

    return _PATH_TOKEN.sub(replace, text)


def check_portable(text: str, what: str) -> None:
    """Refuse to write an export file that names a path of this machine."""
    found = MACHINE_PATH.search(text)
    if found:
        raise DreamgymError(f"export: {what} would name the path {found.group(0)!r} of this "
                            "machine")  # fmt: skip


def _export_file(source: Path, target: Path, root: Path) -> None:
    """A dreamgym checkpoint as float16 weights without training state; any other file as is."""
    try:
        tensors, meta = read_checkpoint(source)
    except CorruptFileError:  # not a checkpoint (e.g. the initial-latent bank): copy it
        atomic_write_bytes(target, source.read_bytes())
        return
    weights = {
        k: (v.to(EXPORT_DTYPE) if v.is_floating_point() else v).contiguous()
        for k, v in tensors.items()
        if k.startswith("model.")
    }
    meta = portable({k: v for k, v in meta.items() if k not in _TRAINING_ONLY}, root)
    text = json.dumps(meta)
    check_portable(text, f"{target.name}'s metadata")
    atomic_write_bytes(target, safetensors_bytes(weights, metadata={META_KEY: text}))


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A hidden sibling directory to build an export in, renamed to ``out`` when the block
    succeeds and removed when it fails: ``out`` never holds half an export."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DreamgymError(f"export directory {str(out)!r} is not empty; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        if out.exists():
            out.rmdir()
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_bundle(world_model: str | Path, out: str | Path, controller: str | Path | None) -> Path:
    """Write the float16, weights-only copy of ``world_model`` (and ``controller``) to ``out``.

    Args:
        world_model: a bundle directory.
        out: a new or empty directory.
        controller: a saved controller trained for ``world_model``, copied to ``out/controller``.

    Raises:
        DreamgymError: ``out`` is a non-empty directory, or an input is missing.
    """
    out, source = Path(out), resolve_path(world_model)
    with staged(out) as stage:
        write_export(source, stage, controller, source.resolve().parent)
    return out


def write_export(source: Path, out: Path, controller: str | Path | None, root: Path) -> None:
    """The export of bundle ``source`` (and ``controller``) into ``out``; the paths they record
    are written relative to ``root``."""
    info = bundle.read_info(source)
    for name in bundle.bundle_files(info):
        _export_file(source / name, out / name, root)
    info = portable({**info, "exported": {"from": str(source.resolve()),
                                          "dtype": str(EXPORT_DTYPE)}}, root)  # fmt: skip
    check_portable(json.dumps(info), bundle.BUNDLE_FILE)
    atomic_write_json(out / bundle.BUNDLE_FILE, info)
    if controller is not None:
        if not is_controller(controller):
            raise DreamgymError(
                f"{str(controller)!r} is an SB3 agent; export shares linear controllers only "
                "(an agent's zip is a pickle, see docs/agents.md)"
            )
        agent, meta = Controller.load(controller)
        agent.check_fits(bundle.load(out))
        target = out / CONTROLLER_DIR
        agent.save(target)
        meta = portable({**meta, "world_model": ".."}, root)
        check_portable(json.dumps(meta), "controller.json")
        atomic_write_json(target / "controller.json", meta)


def decision_agreement(
    original: str | Path, exported: str | Path, data: str | Path, episodes: int = 5
) -> Agreement:
    """Compare the two controllers' actions along recorded real episodes of ``data``.

    Both world models follow the same real frames and recorded actions (``advance``), so every
    step compares the two decisions on the same history.
    """
    pairs = []
    for path in (original, exported):
        agent, meta = Controller.load(path)
        pairs.append((agent, bundle.load(meta["world_model"])))
    dataset = RolloutDataset(data)
    diffs = []
    for i in range(min(episodes, len(dataset))):
        episode = dataset.episode(i)
        frames = torch.from_numpy(episode.frames)
        actions = torch.from_numpy(episode.actions.astype(np.float32))
        if pairs[0][1].action_space.shape[0] != actions.shape[1]:
            raise DreamgymError(
                "decision agreement follows one real action per model step; this model steps "
                "on blocks of actions"
            )
        taken = []
        for agent, model in pairs:
            state, out = model.encode(frames[:1]), []
            for t in range(len(actions)):
                out.append(agent.act(model.features(state, agent.observation_mode))[0])
                state = model.advance(state, actions[t : t + 1], frames[t + 1 : t + 2])
            taken.append(torch.stack(out))
        diffs.append((taken[0] - taken[1]).abs())
    diff = torch.cat(diffs)
    agree = (diff < AGREEMENT_TOLERANCE).all(dim=1).float().mean().item()
    return Agreement(len(diff), agree, diff.max().item())


def checksums(root: str | Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (bytes, sha256)}`` of every file under ``root`` but the model card."""
    root = Path(root)
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name != MODEL_CARD]
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    return {p.relative_to(root).as_posix(): (p.stat().st_size, digest[p]) for p in files}


def files_table(files: dict[str, tuple[int, str]]) -> list[str]:
    """A card's "Files" section: every file's size and SHA-256 (:func:`checksums`), the table
    :func:`card_checksums` reads back."""
    rows = [f"| `{path}` | {b} | `{h}` |" for path, (b, h) in files.items()]
    return ["## Files", "", "| file | bytes | sha256 |", "|---|---:|---|", *rows]


def card_checksums(root: str | Path) -> dict[str, tuple[int, str]]:
    """The checksums that ``root``'s model card lists (same form as :func:`checksums`)."""
    text = (Path(root) / MODEL_CARD).read_text()
    return {m[1]: (int(m[2]), m[3]) for m in _CHECKSUM_ROW.finditer(text)}


def _card(name: str, run: Path, report: dict[str, Any], done_mode: str, agreement: Agreement,
          files: dict[str, tuple[int, str]], hardware: str, commit: str) -> str:  # fmt: skip
    c, s = report["config"], report["stages"]
    tau = s["evolve"]["temperature"]
    total = sum(x["seconds"] for x in s.values())
    data = [f"{x['episodes']} episodes, {x['frames']:,} frames"
            for k, x in s.items() if k.startswith("collect")]  # fmt: skip
    real, dream, base = s["evaluate"]["real"], s["evaluate"]["dream"], s["baseline"]
    size = sum(b for b, _ in files.values())
    lines = [
        f"# Model card: `pretrained:{name}`",
        "",
        f"A world model of `{c['env']}` and a linear controller trained **only inside its "
        f"dream**, made by dreamgym's own pipeline (preset `{c['preset']}`) and exported with "
        f"float16 weights ({size / 2**20:.1f} MiB in all).",
        "",
        "## Scores in the real game",
        "",
        "| policy | env | episodes | return mean +- std |",
        "|---|---|---:|---:|",
        f"| this controller | real | {real['episodes']} | "
        f"{real['mean']:.1f} +- {real['std']:.1f} |",
        f"| this controller | dream (tau {tau:g}, done rule {done_mode}) | "
        f"{dream['episodes']} | {dream['mean']:.1f} +- {dream['std']:.1f} |",
        f"| {base['policy']} (the collection policy) | real | {base['episodes']} | "
        f"{base['mean']:.1f} +- {base['std']:.1f} |",
        "",
        "Measured by the pipeline with the float32 weights. Score the float16 export on the "
        "same episodes:",
        "",
        "```bash",
        f"dreamgym evaluate --controller pretrained:{name} --backend real "
        f"--episodes {real['episodes']} --seed {evaluation_seed(c.get('seed', 0))}",
        "```",
        "",
        "## Data and training",
        "",
        f"- Data: {'; then '.join(data)} (policy `{c['policy']}`, then the controller with "
        f"exploration noise {c['iteration_noise']:g} for each of {c['iterations']} iteration(s)).",
        f"- Models: V and M at their `{c['model_preset']}` presets; controller input "
        f"`{c['observation_mode']}`, "
        f"bias {str(c['bias']).lower()}; {c['generations']} CMA-ES generations of "
        f"{c['popsize']} x {c['rollouts']} dream rollouts at tau {tau:g}, done rule "
        f"{done_mode}.",
        *_selection(c, s),
        f"- Training time: {total / 60:.1f} min end to end ({hardware}).",
        f"- Commit: `{commit}`.",
        "",
        "Rebuild it:",
        "",
        "```bash",
        f"dreamgym pipeline --env {c['env']} --preset {c['preset']} --out {name}-run"
        + (f" --seed {c['seed']}" if c.get("seed", 0) else ""),
        f"dreamgym export --run {name}-run --out {name}",
        "```",
        "",
        "## Fidelity of the dream",
        "",
        *[f"- {portable_text(v, run)}" for v in s.get("fidelity", {}).get("verdicts", [])],
        "",
        "## Float16",
        "",
        f"Along {agreement.steps:,} steps of recorded real episodes, the float16 export's actions "
        f"agree with the float32 original's within {AGREEMENT_TOLERANCE} on "
        f"{100 * agreement.agree:.2f}% of steps (largest difference {agreement.max_abs_diff:.4f}).",
        "",
        *files_table(files),
        "",
        f"Source run: `{run.resolve().name}` (the paths above are relative to it).",
    ]
    return "\n".join(lines) + "\n"


def _selection(config: dict[str, Any], stages: dict[str, Any]) -> list[str]:
    if "select" not in stages:
        return []
    candidates = stages["select"]["candidates"]
    seeds = ", ".join(str(r["evolution_seed"]) for r in candidates)
    return [f"- Chosen among {len(candidates)} controllers evolved in the same dream (evolution "
            f"seeds {seeds}) by {config['select_episodes']} real episodes each, on seeds apart "
            "from the scores above; the weights were trained only in the dream."]  # fmt: skip


def export_run(
    run: str | Path,
    out: str | Path,
    name: str | None = None,
    hardware: str = "unrecorded hardware",
    commit: str = "unrecorded",
) -> Path:
    """Export a finished pipeline run's final world model and controller, with a model card.

    Args:
        run: a pipeline output directory whose report lists every stage.
        out: a new or empty directory.
        name: the model's short name (default: ``out``'s name).
        hardware: the machine the run was trained on, for the card.
        commit: the dreamgym commit the run was trained with, for the card.
    """
    run, out = Path(run), Path(out)
    world_model, controller, report = final_products(run)
    missing = [k for k in ("evaluate", "baseline") if k not in report["stages"]]
    if missing:
        raise DreamgymError(f"pipeline run {str(run)!r} has not finished {', '.join(missing)}")
    with staged(out) as stage:
        write_export(world_model, stage, controller, run)
        agreement = decision_agreement(controller, stage / CONTROLLER_DIR, run / "data")
        done_mode = resolve_done_mode(bundle.load(stage), report["config"]["done_mode"])
        text = _card(
            name or out.name,
            run=run,
            report=report,
            done_mode=done_mode,
            agreement=agreement,
            files=checksums(stage),
            hardware=hardware,
            commit=commit,
        )
        check_portable(text, MODEL_CARD)
        atomic_write_bytes(stage / MODEL_CARD, text.encode())
    return out
