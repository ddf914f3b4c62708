"""Evolution runs on disk: resolved config, per-generation checkpoint, logs, best controller.

::

    OUT/
      evolve-config.json     the resolved settings
      evolution.json         checkpoint: fitness vectors told so far + the log (resume source)
      best/, mean/           controllers (controller.json + controller.safetensors): the best
                             candidate seen, and the current ES mean
      evolve-metrics.csv, evolve-curves.png, tb/evolve/   fitness logs and curve

Re-running the same command resumes after the last finished generation and follows exactly the
trajectory an uninterrupted run would have (see :mod:`dreamgym.agents.evolution`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dreamgym import worldmodels
from dreamgym.agents.backends import BACKENDS, ENSEMBLE_FITNESS, make_backend
from dreamgym.agents.controller import Controller, ControllerSpec
from dreamgym.agents.evolution import Evolution, EvolutionConfig
from dreamgym.common import validate
from dreamgym.common.device import resolve_device
from dreamgym.common.io import DirectoryLock, atomic_write_json, check_writable_dir
from dreamgym.common.pretrained import resolve_controller, resolve_path
from dreamgym.common.progress import ProgressBar
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.runs import RunLogger
from dreamgym.common.threads import torch_threads
from dreamgym.dreams.core import resolve_done_mode, resolve_dropout, resolve_temperature
from dreamgym.errors import CorruptFileError, DreamgymError

CHECKPOINT = "evolution.json"


@dataclass
class EvolveSettings:
    """Everything that defines an evolution run besides its length.

    Attributes:
        world_model: the bundle directory.
        backend: ``"dream"`` (batched dream) or ``"real"`` (real env on Ray).
        temperature: the dream's tau (default: 1.0, Doom 1.15).
        observation_mode: the controller's input (default: the world model's default, V+M's
            ``zh``).
        bias: whether the controller has a bias.
        max_episode_steps: episode cap (default: the real env's).
        done_mode: the dream's done rule, ``threshold`` (the paper), ``sample`` or
            ``calibrated`` (default: see ``dreams.core.resolve_done_mode``).
        init: a saved controller to start the search from (a warm start: the ES mean begins at
            its parameters instead of zeros); it must read the same inputs and bias.
        evolution: the CMA-ES settings.
        dropout: the dream's inference dropout (default: the world model's own, 0 for models
            without it): each dream episode draws its own masks (Dropout's Dream Land).
        ensemble: with a bundle of several Ms, each dream episode draws its M (True) or all
            dream with member 0 (False).
        ensemble_fitness: with several Ms, ``"mean"`` (each episode draws its M),
            ``"worst"``: every candidate plays its rollouts in every M and is scored in the one
            where it does worst (K times the episodes), or ``"pessimistic"``: each episode
            draws its M and every M's done head judges its steps, the highest end probability
            ruling (see ``agents.backends.DreamBackend``).
    """

    world_model: str
    backend: str = "dream"
    temperature: float | None = None
    observation_mode: str | None = None
    bias: bool = True
    max_episode_steps: int | None = None
    done_mode: str | None = None
    init: str | None = None
    evolution: EvolutionConfig = dataclasses.field(default_factory=EvolutionConfig)
    dropout: float | None = None
    ensemble: bool = True
    ensemble_fitness: str = "mean"


class Checkpointer:
    """Evolution callback: saves controllers, then the resume checkpoint, after each generation."""

    def __init__(self, out: Path, settings: EvolveSettings, spec: ControllerSpec) -> None:
        self.out, self.settings, self.spec = out, settings, spec
        self.history: list[dict[str, Any]] = []

    def on_generation(self, evolution: Evolution, row: dict[str, Any]) -> None:
        self.history.append(row)
        extra = {"generation": evolution.generation}
        Controller(self.spec, evolution.best_params).save(
            self.out / "best", self.settings.world_model,
            {**extra, "fitness": evolution.best_fitness})  # fmt: skip
        Controller(self.spec, evolution.mean).save(
            self.out / "mean", self.settings.world_model, extra
        )
        atomic_write_json(self.out / CHECKPOINT, {
            "settings": dataclasses.asdict(self.settings),
            "told": evolution.told,
            "history": self.history,
        })  # fmt: skip


class LogCallback:
    """Evolution callback: CSV, TensorBoard and the fitness-curve PNG."""

    def __init__(self, out: Path, history: list[dict[str, Any]]) -> None:
        self.logger = RunLogger(out, "evolve", x_key="generation", panels="group")
        self.history = list(history)

    def on_generation(self, evolution: Evolution, row: dict[str, Any]) -> None:
        self.history.append(row)
        self.logger.log(self.history)


class ProgressCallback:
    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar

    def on_generation(self, evolution: Evolution, row: dict[str, Any]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(best=f"{row['fitness/best']:.1f}", mean=f"{row['fitness/mean']:.1f}")


def _read_checkpoint(out: Path) -> dict[str, Any] | None:
    path = out / CHECKPOINT
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"evolution checkpoint {str(path)!r} is unreadable: {exc}") from exc


def _initial_params(path: str, spec: ControllerSpec):
    """The parameters of the controller at ``path``, checked against the run's ``spec``."""
    controller, _ = Controller.load(path)
    if controller.spec != spec:
        raise DreamgymError(
            f"--init controller {path!r} does not fit this run: it reads "
            f"{controller.spec.input_size} inputs ({controller.spec.observation_mode}, bias "
            f"{controller.spec.bias}) of {controller.spec.env!r}, the run's controller "
            f"{spec.input_size} ({spec.observation_mode}, bias {spec.bias}) of {spec.env!r}"
        )
    return controller.get_params()


@torch_threads("inference")
def evolve(
    settings: EvolveSettings,
    out: str | Path,
    generations: int,
    workers: int | None = None,
    address: str | None = None,
    device: str = "auto",
    progress: bool = True,
    label: str = "evolve",
) -> Evolution:
    """Evolve a controller for ``settings.world_model``, resuming ``out`` if it holds a run.

    ``workers`` and ``address`` place the episodes: the real backend plays them on ``workers``
    Ray actors (default 2) of a local Ray or the cluster at ``address``; the dream backend runs
    in this process on ``device`` (``auto``: CUDA when available) unless ``workers`` or
    ``address`` is given, which shards it over Ray actors (one per GPU of the cluster by
    default, see :mod:`dreamgym.agents.ray_dream`). ``label`` names the progress reports.

    Raises:
        DreamgymError: bad settings, or ``out`` holding a run with other settings.
    """
    validate.integer("generations", generations)
    validate.optional_integer("workers", workers)
    validate.choice("backend", settings.backend, BACKENDS)
    validate.optional_integer("max_episode_steps", settings.max_episode_steps)
    if settings.temperature is not None:
        validate.positive("temperature", settings.temperature)
    settings.evolution.check()
    out = Path(out)
    settings.world_model = str(resolve_path(settings.world_model).resolve())
    # The dream runs on the GPU when there is one; real-env workers read frames on their CPUs.
    device = "cpu" if settings.backend == "real" else str(resolve_device(device))
    model = worldmodels.load(settings.world_model, device)
    settings.temperature = resolve_temperature(model.env, settings.temperature)
    settings.done_mode = resolve_done_mode(model, settings.done_mode)
    if settings.backend == "dream":
        settings.dropout = resolve_dropout(model, settings.dropout)
    if not isinstance(settings.ensemble, bool):
        raise DreamgymError(f"ensemble must be True or False, got {settings.ensemble!r}")
    validate.choice("ensemble fitness", settings.ensemble_fitness, ENSEMBLE_FITNESS)
    spec = ControllerSpec.for_world_model(model, settings.observation_mode, settings.bias)
    settings.observation_mode = spec.observation_mode
    x0 = None
    if settings.init is not None:
        settings.init = str(resolve_controller(settings.init).resolve())
        x0 = _initial_params(settings.init, spec)
    validate.ray_address(address)
    check_writable_dir(out)
    with DirectoryLock(out):
        return _evolve(
            settings,
            out,
            generations=generations,
            model=model,
            spec=spec,
            x0=x0,
            workers=workers,
            address=address,
            progress=progress,
            label=label,
        )


def _evolve(settings: EvolveSettings, out: Path, generations: int, model, spec: ControllerSpec,
            x0, workers: int | None, address: str | None, progress: bool,
            label: str) -> Evolution:  # fmt: skip
    saved = _read_checkpoint(out)
    if saved is not None:
        # Runs saved before dreams had dropout ran without it.
        dream = saved["settings"].get("backend") == "dream"
        saved["settings"].setdefault("dropout", 0.0 if dream else None)
        saved["settings"].setdefault("ensemble", True)  # and before ensembles, with one M
        saved["settings"].setdefault("ensemble_fitness", "mean")
    if saved is not None and saved["settings"] != dataclasses.asdict(settings):
        differing = sorted(k for k, v in dataclasses.asdict(settings).items()
                           if saved["settings"].get(k) != v)  # fmt: skip
        raise DreamgymError(
            f"{str(out)!r} holds an evolution run with other settings ({', '.join(differing)}); "
            "re-run it with its own settings to resume, or use another --out"
        )
    told = saved["told"] if saved else []
    history = saved["history"] if saved else []
    atomic_write_json(out / "evolve-config.json",
                      {**dataclasses.asdict(settings), "generations": generations})  # fmt: skip
    backend = make_backend(
        settings.backend,
        model=model,
        spec=spec,
        temperature=settings.temperature,
        max_episode_steps=settings.max_episode_steps,
        done_mode=settings.done_mode,
        workers=workers,
        address=address,
        world_model=settings.world_model,
        dropout=settings.dropout,
        ensemble=settings.ensemble,
        ensemble_fitness=settings.ensemble_fitness,
    )
    checkpointer = Checkpointer(out, settings, spec)
    checkpointer.history = list(history)
    bar = progress_bar(total=generations, initial=len(told), desc=label, unit="gen",
                       disable=not progress)  # fmt: skip
    try:
        evolution = Evolution(spec.num_params, settings.evolution, backend,
                              [checkpointer, LogCallback(out, history), ProgressCallback(bar)],
                              told, x0)  # fmt: skip
        evolution.run(generations)
    finally:
        bar.close()
        close = getattr(backend, "close", None)
        if close:
            close()
    return evolution
