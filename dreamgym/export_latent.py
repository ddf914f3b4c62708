"""Export a latent world model (Push-T) as a small folder others can use as is.

A latent model has no controller: its ``MODEL_CARD.md`` gives goal reaching from a ``dreamgym
plan`` report (the pair set, success with its interval, by how far the block moves, the random
policy and the oracle), the data and preset it was trained with, the commands that rebuild it,
how closely the float16 weights plan like the float32 ones, and every file's SHA-256. The files
are written as :mod:`dreamgym.export` writes every export::

    dreamgym export --world-model runs/pusht/latent --plan runs/pusht/latent/plan --out pusht
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dreamgym.common.io import atomic_write_bytes
from dreamgym.common.pretrained import MODEL_CARD, describe, resolve_path
from dreamgym.dreams.registration import dream_id
from dreamgym.errors import DreamgymError
from dreamgym.export import (
    AGREEMENT_TOLERANCE,
    check_portable,
    checksums,
    files_table,
    portable,
    portable_text,
    staged,
    write_export,
)
from dreamgym.worldmodels import bundle
from dreamgym.worldmodels.checkpoint import read_checkpoint

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
    from dreamgym.agents.goal_pairs import BUDGET, GOAL_OFFSET, PAIR_SEED
    from dreamgym.agents.plan_report import report_lines
    from dreamgym.agents.planning import PLANNER_FLAGS, PLANNER_PRESETS, PLANNER_RENAME

    if report is None:
        return ["Not measured: the export was made without `--plan`.", ""], []
    planner = report["planner"]
    fields = {k: v for k, v in planner.items() if k not in ("seed", "proprio_weight")}
    presets = {n: dataclasses.asdict(c) for n, c in PLANNER_PRESETS.items()}
    preset, differs = _closest_preset(fields, presets)
    flags = [f"--episodes {report['pairs']}", f"--preset {preset}"]
    for field, value in differs.items():  # the preset's settings the report's planner changed
        if field in PLANNER_FLAGS:
            flag = PLANNER_RENAME.get(field, "--" + field.replace("_", "-"))
            flags.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
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
        *files_table(files),
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
    with staged(out) as stage:
        write_export(source, stage, controller, source.resolve().parent)
        agreement = planning_agreement(source, stage, config, weight)
        text = _latent_card(name or out.name, source, info, meta, report, agreement,
                            checksums(stage), hardware, commit)  # fmt: skip
        check_portable(text, MODEL_CARD)
        atomic_write_bytes(stage / MODEL_CARD, text.encode())
    return out
