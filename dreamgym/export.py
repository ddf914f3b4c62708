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
``dreamgym plan`` report instead, and the float16 check plans with both weights
(:func:`export_latent`)::

    dreamgym export --world-model runs/pusht/latent --plan runs/pusht/latent/plan --out pusht
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from dreamgym.common.pretrained import CONTROLLER_DIR, MODEL_CARD, describe, resolve_path
from dreamgym.dreams.core import resolve_done_mode
from dreamgym.dreams.registration import dream_id
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.pipeline import final_products
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


def _check_portable(text: str, what: str) -> None:
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
    _check_portable(text, f"{target.name}'s metadata")
    atomic_write_bytes(target, safetensors_bytes(weights, metadata={META_KEY: text}))


@contextlib.contextmanager
def _staged(out: Path) -> Iterator[Path]:
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
    with _staged(out) as stage:
        _write_export(source, stage, controller, source.resolve().parent)
    return out


def _write_export(source: Path, out: Path, controller: str | Path | None, root: Path) -> None:
    """The export of bundle ``source`` (and ``controller``) into ``out``; the paths they record
    are written relative to ``root``."""
    info = bundle.read_info(source)
    for name in bundle.bundle_files(info):
        _export_file(source / name, out / name, root)
    info = portable({**info, "exported": {"from": str(source.resolve()),
                                          "dtype": str(EXPORT_DTYPE)}}, root)  # fmt: skip
    _check_portable(json.dumps(info), bundle.BUNDLE_FILE)
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
        _check_portable(json.dumps(meta), "controller.json")
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
        "Measured by the pipeline with the float32 weights. Reproduce the real row with the "
        "float16 export:",
        "",
        "```bash",
        f"dreamgym evaluate --controller pretrained:{name} --backend real "
        f"--episodes {real['episodes']}",
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
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---:|---|",
        *[f"| `{path}` | {b} | `{h}` |" for path, (b, h) in files.items()],
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
    with _staged(out) as stage:
        _write_export(world_model, stage, controller, run)
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
        _check_portable(text, MODEL_CARD)
        atomic_write_bytes(stage / MODEL_CARD, text.encode())
    return out


# Recorded start/goal pairs the float16 check plans on, and random action sequences it scores.
FLOAT16_PAIRS, FLOAT16_CANDIDATES = 10, 64


@dataclass(frozen=True)
class PlanningAgreement:
    """How closely an exported latent model plans like the original, on the bundle's own
    recorded start/goal pairs (no data needed).

    Attributes:
        pairs: the start/goal pairs compared.
        agree: the fraction of pairs whose first planned action block agrees within
            AGREEMENT_TOLERANCE (in half-widths of the action box, as [-1, 1] actions).
        max_abs_diff: the largest difference of a first planned action, in half-widths.
        candidates: the random action sequences scored per pair.
        cost_diff: the largest difference of a candidate's goal cost, over the median cost of
            the pair's candidates under the original.
        same_best: the fraction of pairs whose cheapest candidate is the same under both.
    """

    pairs: int
    agree: float
    max_abs_diff: float
    candidates: int
    cost_diff: float
    same_best: float


def read_plan(plan: str | Path) -> dict[str, Any]:
    """The report of ``dreamgym plan`` in directory ``plan`` (or its ``plan.json``).

    Raises:
        DreamgymError: there is none, or it is not a plan report.
    """
    path = Path(plan)
    path = path / "plan.json" if path.is_dir() else path
    if not path.is_file():
        raise DreamgymError(f"plan report {str(plan)!r} has no plan.json; make one with "
                            "`dreamgym plan --world-model BUNDLE --out DIR`")  # fmt: skip
    try:
        report = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DreamgymError(f"plan report {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(report, dict) or not {"pair_set", "policies", "planner"} <= set(report):
        raise DreamgymError(f"{str(path)!r} is not a report of `dreamgym plan` (no pair set, "
                            "policies or planner)")  # fmt: skip
    return report


def planning_agreement(
    original: str | Path,
    exported: str | Path,
    config: Any,
    proprio_weight: float | None = None,
    pairs: int = FLOAT16_PAIRS,
    candidates: int = FLOAT16_CANDIDATES,
) -> PlanningAgreement | None:
    """Plan with both latent models from the same recorded starts towards the same goals, with
    the same seeds: the first planned actions, and the goal costs of the same random action
    sequences. None when the bundle records no start/goal pairs.

    Args:
        original, exported: the two bundles.
        config: the planner's settings (a ``PlannerConfig``).
        proprio_weight: the goal cost's proprio weight (None: the models').
        pairs: the recorded pairs compared (the bank's first ones).
        candidates: random action sequences scored per pair.
    """
    from dreamgym.agents.planning import Planner

    models = [bundle.load(path) for path in (original, exported)]
    bank = models[0].pairs
    if bank is None:
        return None
    for model in models:
        if proprio_weight is not None and model.uses_proprio:
            model.proprio_weight = proprio_weight
    low = torch.as_tensor(models[0].action_space.low)
    half = (torch.as_tensor(models[0].action_space.high) - low) / 2
    n = min(pairs, len(bank["start_frames"]))
    firsts, costs = [], []
    for k in range(n):
        generator = torch.Generator().manual_seed(k)
        tried = low + 2 * half * torch.rand(candidates, config.horizon, low.numel(),
                                            generator=generator)  # fmt: skip
        first, cost = [], []
        for model in models:
            proprio = {which: {"proprio": bank[f"{which}_proprio"][k : k + 1]}
                       if model.uses_proprio else {} for which in ("start", "goal")}  # fmt: skip
            start = model.encode(bank["start_frames"][k : k + 1], **proprio["start"])
            goal = model.encode(bank["goal_frames"][k : k + 1], **proprio["goal"])
            planner = Planner(model, config, seed=k)
            first.append(planner.plan(start, goal)[0][0].cpu() / half)
            cost.append(planner.costs(start, goal, tried.to(model.device)).cpu())
        firsts.append((first[0] - first[1]).abs().max())
        costs.append(cost)
    diffs = torch.stack(firsts)
    return PlanningAgreement(
        pairs=n,
        agree=(diffs < AGREEMENT_TOLERANCE).float().mean().item(),
        max_abs_diff=diffs.max().item(),
        candidates=candidates,
        cost_diff=max(((a - b).abs().max() / a.median()).item() for a, b in costs),
        same_best=sum(int(a.argmin() == b.argmin()) for a, b in costs) / n,
    )


def _closest_preset(config: dict[str, Any], presets: dict[str, dict[str, Any]]) -> tuple[str, dict]:
    """The preset ``config`` differs least from, and the settings it differs in."""
    diffs = {name: {k: v for k, v in config.items() if k in values and values[k] != v}
             for name, values in presets.items()}  # fmt: skip
    name = min(diffs, key=lambda n: len(diffs[n]))
    return name, diffs[name]


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(f"`{k}` = {v!r}" for k, v in values.items())


def _collect_line(recipe: dict[str, Any], env: str, frame_skip: int, out: str) -> str:
    """The ``dreamgym collect`` command of a dataset whose recipe is ``recipe``."""
    flags = [f"--policy {recipe['policy']}", f"--episodes {recipe['episodes']}"]
    if recipe.get("seed"):
        flags.append(f"--seed {recipe['seed']}")
    if recipe.get("max_episode_steps"):
        flags.append(f"--max-steps {recipe['max_episode_steps']}")
    if recipe.get("min_length"):
        flags.append(f"--min-length {recipe['min_length']}")
    if frame_skip != 1:
        flags.append(f"--frame-skip {frame_skip}")
    return f"dreamgym collect --env {env} {' '.join(flags)} --workers 2 --out {out}"


def _plan_section(name: str, report: dict[str, Any] | None, root: Path, run: str,
                  source: str) -> tuple[list[str], list[str]]:  # fmt: skip
    """The card's goal-reaching section and the commands that measured it."""
    from dreamgym.agents.goals import BUDGET, GOAL_OFFSET, PAIR_SEED
    from dreamgym.agents.plan_report import report_lines
    from dreamgym.agents.planning import PLANNER_PRESETS

    if report is None:
        return ["Not measured: the export was made without `--plan`.", ""], []
    planner = report["planner"]
    fields = {k: v for k, v in planner.items() if k not in ("seed", "proprio_weight")}
    presets = {n: dataclasses.asdict(c) for n, c in PLANNER_PRESETS.items()}
    preset, differs = _closest_preset(fields, presets)
    flags = [f"--episodes {report['pairs']}", f"--preset {preset}"]
    for flag, value, usual in (("--goal-offset", report["offset"], GOAL_OFFSET),
                               ("--budget", report["budget"], BUDGET),
                               ("--pair-seed", report["seed"], PAIR_SEED),
                               ("--seed", planner.get("seed", 0), 0)):  # fmt: skip
        if value != usual:
            flags.append(f"{flag} {value}")
    if planner.get("proprio_weight") not in (None, 1.0):
        flags.append(f"--proprio-weight {planner['proprio_weight']:g}")
    pairs, commands, named = report["pair_set"], [], []
    data = Path(pairs["data"])
    if pairs["kind"] in ("user data", "training"):
        relative = portable(str(data), root)
        if pairs["kind"] == "user data" and (meta := _dataset_meta(data)) is not None:
            commands.append(_collect_line(meta, report["env"], int(meta.get("frame_skip", 1)),
                                          f"{run}/{relative}"))  # fmt: skip
        named = [f"--data {run}/{relative}"]
    commands.append(f"dreamgym plan --world-model {run}/{source} {' '.join(flags + named)} "
                    f"--out {run}/{source}/plan")  # fmt: skip
    held = "held-out pairs" if pairs["held_out"] else "training pairs, goals the model trained on"
    # The planner, then the baselines, as `plan` prints them (plan.json keeps its keys sorted).
    order = {"planner": 0, "random": 1, "oracle": 2}
    ordered = sorted(report["policies"].items(), key=lambda item: order.get(item[0], 3))
    report = {**report, "policies": dict(ordered)}
    where = ""
    if pairs["kind"] == "user data" and (meta := _dataset_meta(data)) is not None:
        where = (f" The pairs' episodes: {meta['episodes']} episodes of policy "
                 f"`{meta['policy']}` with base seed {meta['seed']}.")  # fmt: skip
    with_ = f", with {_settings(differs)}" if differs else ""
    planned = (f"Planner: `{planner['method']}`, {planner['samples']} samples x "
               f"{planner['iterations']} iterations, horizon {planner['horizon']}, executing "
               f"{planner['execute']} model step(s) before replanning (preset `{preset}`{with_}); "
               f"proprio weight {planner.get('proprio_weight')}, planner seed "
               f"{planner.get('seed', 0)}.")  # fmt: skip
    own = ("" if pairs["kind"] == "collected" else
           " (the pairs above are not shipped: without `--data`, `plan` collects its own "
           "held-out episodes, see docs/planning.md, so its figures are on other "
           "pairs)")  # fmt: skip
    lines = [
        f"Success at reaching recorded goals in the real `{report['env']}` env, on "
        f"{held} (pair set `{pairs['kind']}`).{where}",
        "",
        *[portable_text(line, root) for line in report_lines(report)],
        "",
        planned,
        "",
        f"Measured with the float32 weights. The same protocol with the float16 export{own}:",
        "",
        "```bash",
        f"dreamgym plan --world-model pretrained:{name} {' '.join(flags)}",
        "```",
        "",
    ]
    return lines, commands


def _dataset_meta(root: Path) -> dict[str, Any] | None:
    """A dataset's ``dataset.json`` with its episode count, when the dataset is at hand."""
    from dreamgym.rollouts.store import read_manifest, read_meta

    if not root.is_dir() or not (root / "dataset.json").is_file():
        return None
    return {**read_meta(root), "episodes": len(read_manifest(root))}


def _latent_card(name: str, source: Path, info: dict[str, Any], meta: dict[str, Any],
                 report: dict[str, Any] | None, agreement: PlanningAgreement | None,
                 files: dict[str, tuple[int, str]], hardware: str, commit: str) -> str:  # fmt: skip
    from dreamgym.worldmodels.latent.presets import LATENT_PRESETS, latent_preset

    root = source.resolve().parent
    config, training = meta["config"], info.get("training") or {}
    presets = {n: dataclasses.asdict(latent_preset(n, config["action_size"],
                                                   config["proprio_size"]))
               for n in LATENT_PRESETS}  # fmt: skip
    preset, differs = _closest_preset(config, presets)
    run, bundle_name = f"{name}-run", portable(str(source.resolve()), root)
    datasets = [portable(str(d), root) if os.path.isabs(str(d)) else str(d)
                for d in training.get("datasets") or [training.get("data")]]  # fmt: skip
    recipes = training.get("collection") or []
    data = [f"{r['episodes']} episodes of policy `{r['policy']}` (base seed {r['seed']}"
            + (f", at most {r['max_episode_steps']} steps" if r.get("max_episode_steps") else "")
            + ")" for r in recipes]  # fmt: skip
    validation = (training.get("validation") or {}).get("episodes") or []
    seconds = [row["seconds"] for row in meta.get("history", []) if "seconds" in row]
    size = sum(b for b, _ in files.values())
    plan_lines, plan_commands = _plan_section(name, report, root, run, bundle_name)
    dream = dream_id(info["env"])
    fallback = (f' `gym.make("{dream}")` dreams with it when you have no model of your own.'
                if dream else "")  # fmt: skip
    took = f"{sum(seconds) / 60:.1f} min over {_count(len(seconds), 'epoch')}" if seconds else (
        "unrecorded")  # fmt: skip
    frame_skip = int(info.get("frame_skip", 1))
    rebuild = [_collect_line(r, info["env"], frame_skip, f"{run}/{d}")
               for r, d in zip(recipes, datasets, strict=False)]  # fmt: skip
    rebuild.append(f"dreamgym train latent {' '.join(f'--data {run}/{d}' for d in datasets)} "
                   f"--out {run}/{bundle_name} --preset {preset}"
                   + ("  # and the settings above that differ from the preset" if differs
                      else ""))  # fmt: skip
    rebuild += plan_commands
    rebuild.append(f"dreamgym export --world-model {run}/{bundle_name}"
                   + (f" --plan {run}/{bundle_name}/plan" if report is not None else "")
                   + f" --out {name}")  # fmt: skip
    lines = [
        f"# Model card: `pretrained:{name}`",
        "",
        f"A latent world model of `{info['env']}` (DINO-WM-style: encoder `{config['encoder']}`, "
        f"predictor `{config['predictor']}`) that reaches goals by planning in its latent space "
        f"(`dreamgym plan`), exported with float16 weights ({size / 2**20:.1f} MiB in all)."
        + fallback,
        "",
        "## Goal reaching in the real env",
        "",
        *plan_lines,
        "## Data and training",
        "",
        f"- Data: {'; '.join(data) or 'unrecorded'}; {training.get('episodes', '?')} episodes "
        f"in all, of which the trainer held out {len(validation)} of the first dataset for "
        "validation.",
        f"- Model: latent preset `{preset}`"
        + (f", with {_settings(portable(differs, root))}" if differs else "")
        + f"; history {config['history']}, frameskip {config['frameskip']}, proprio "
        f"{str(bool(info.get('proprio'))).lower()}; {_count(meta.get('epoch', 0), 'epoch')}.",
        f"- Training time: {took} ({hardware}).",
        f"- Commit: `{commit}`.",
        "",
        "Rebuild it:",
        "",
        "```bash",
        *rebuild,
        "```",
        "",
        "## Float16",
        "",
        *_float16_lines(agreement),
        "",
        "## Files",
        "",
        "| file | bytes | sha256 |",
        "|---|---:|---|",
        *[f"| `{path}` | {b} | `{h}` |" for path, (b, h) in files.items()],
        "",
        f"Source bundle: `{bundle_name}` (the paths above are relative to the directory "
        "that holds it).",
    ]
    return "\n".join(lines) + "\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _float16_lines(agreement: PlanningAgreement | None) -> list[str]:
    if agreement is None:
        return ["Not measured: the bundle records no start/goal pairs to plan on."]
    a = agreement
    return [f"On the bundle's first {a.pairs} recorded start/goal pairs, planning with the same "
            "planner and seeds, the float16 export's first planned action agrees with the "
            f"float32 original's within {AGREEMENT_TOLERANCE} (in half-widths of the action "
            f"box) on {100 * a.agree:.0f}% of pairs (largest difference {a.max_abs_diff:.4f}). "
            f"The goal costs of {a.candidates} random action sequences from each start differ "
            f"by at most {100 * a.cost_diff:.3f}% of their median, and the cheapest sequence is "
            f"the same on {100 * a.same_best:.0f}% of pairs."]  # fmt: skip


def export_latent(
    world_model: str | Path,
    out: str | Path,
    plan: str | Path | None = None,
    controller: str | Path | None = None,
    name: str | None = None,
    hardware: str = "unrecorded hardware",
    commit: str = "unrecorded",
) -> Path:
    """Export a latent world model with a model card: its data and preset from the bundle, its
    goal reaching from a ``dreamgym plan`` report, how closely float16 plans like float32
    (:func:`planning_agreement`), the commands that rebuild it, and the files' checksums.

    Args:
        world_model: a ``latent`` bundle directory.
        out: a new or empty directory.
        plan: a ``dreamgym plan`` report directory (or its ``plan.json``) of ``world_model``,
            whose figures the card gives (None: the card says they were not measured).
        controller: a saved controller trained in its dream, copied to ``out/controller``.
        name: the model's short name (default: ``out``'s name).
        hardware: the machine it was trained on, for the card.
        commit: the dreamgym commit it was trained with, for the card.

    Raises:
        DreamgymError: ``world_model`` is no latent bundle, ``plan`` is no plan report of it,
            or ``out`` is a non-empty directory; each before anything is written.
    """
    from dreamgym.agents.planning import PlannerConfig, planner_preset

    out, source = Path(out), resolve_path(world_model)
    info = bundle.read_info(source)
    if info.get("kind") != "latent":
        raise DreamgymError(f"{str(world_model)!r} is a {info.get('kind')!r} bundle; --plan "
                            "and this model card are for latent world models (export a "
                            "pipeline run with --run)")  # fmt: skip
    report = None if plan is None else read_plan(plan)
    if report is not None:
        if report.get("env") != info["env"]:
            raise DreamgymError(f"plan report {str(plan)!r} is of env {report.get('env')!r}, "
                                f"the world model of {info['env']!r}")  # fmt: skip
        measured = report.get("world_model")
        if measured is not None and measured != describe(source.resolve()):
            raise DreamgymError(f"plan report {str(plan)!r} measured the world model "
                                f"{measured!r}, not {str(source.resolve())!r}")  # fmt: skip
    _, meta = read_checkpoint(source / info["files"]["latent"])
    fields = {f.name for f in dataclasses.fields(PlannerConfig)}
    config = planner_preset("cpu")  # what `dreamgym plan` plans with by default
    if report is not None:
        config = PlannerConfig(**{k: v for k, v in report["planner"].items() if k in fields})
    weight = None if report is None else report["planner"].get("proprio_weight")
    with _staged(out) as stage:
        _write_export(source, stage, controller, source.resolve().parent)
        agreement = planning_agreement(source, stage, config, weight)
        text = _latent_card(name or out.name, source, info, meta, report, agreement,
                            checksums(stage), hardware, commit)  # fmt: skip
        _check_portable(text, MODEL_CARD)
        atomic_write_bytes(stage / MODEL_CARD, text.encode())
    return out
