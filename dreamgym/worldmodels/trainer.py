"""The resumable epoch loop shared by the V, M and latent trainers, and the parts of a training
step they share (:func:`optimizer_step`, :class:`EpochMeans`).

A trainer's whole state (weights, optimizer, RNGs, metric history) is one checkpoint file,
``out/<name>.safetensors``, rewritten atomically after every epoch. Creating a trainer on an
``out`` that holds one resumes it: the config saved there wins (only ``epochs`` may grow), and the
run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamgym.common.device import resolve_device
from dreamgym.common.io import DirectoryLock, atomic_write_json, check_writable_dir
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.runs import RunLogger
from dreamgym.common.threads import torch_threads
from dreamgym.rollouts import RolloutDataset
from dreamgym.worldmodels.checkpoint import (
    load_model,
    load_training_state,
    read_checkpoint,
    save_checkpoint,
)
from dreamgym.worldmodels.common import resolve_config, seeded_init


def optimizer_step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    clip: float | None = None,
    clip_groups: Sequence[Iterable[torch.Tensor]] | None = None,
    lr: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One optimizer step on ``loss``: clear the gradients (to None), back-propagate, clip the
    gradient norm, step the optimizer, then the scheduler.

    The trainers differ in clipping and schedule, and say how by these arguments: V neither
    clips nor schedules; M clips at its ``grad_clip`` (1, as in the paper) and decays the
    learning rate through a torch scheduler; the latent trainer clips at its ``grad_clip``
    (unless 0) with its readouts apart from the core, and sets the rate of each step itself.

    Args:
        loss: the scalar to minimise.
        optimizer: the optimizer over the parameters ``loss`` depends on.
        clip: the gradient norm to clip to; None: no clipping.
        clip_groups: parameters whose norm is clipped, each group on its own (default: all the
            optimizer's parameters, one group).
        lr: a learning rate set on every parameter group before the step (a schedule computed
            from the step number by the caller); None: leave it.
        scheduler: a learning-rate scheduler stepped after the optimizer.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        if clip_groups is None:
            clip_groups = [[p for group in optimizer.param_groups for p in group["params"]]]
        for group in clip_groups:
            torch.nn.utils.clip_grad_norm_(group, clip)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


class EpochMeans:
    """An epoch's training metrics: each loss term's mean over the epoch's batches.

    The trainers average differently, and say how by these arguments: V and the latent trainer
    weigh each batch by its size (the mean over every frame or window) and sum on the device,
    as reading a value every step would stall a GPU; M weighs every batch alike (its last,
    smaller batch counts as much as the others) and reads each value as it comes.

    Args:
        per_sample: weigh each batch by its size (else every batch weighs 1).
        on_device: sum the terms as tensors where they are (else as Python floats, read at once).
    """

    def __init__(self, per_sample: bool, on_device: bool) -> None:
        self.per_sample, self.on_device = per_sample, on_device
        self.sums: dict[str, torch.Tensor | float] = {}
        self.weight = 0

    def add(self, terms: Mapping[str, torch.Tensor], size: int) -> None:
        """Add one batch's terms; ``size``: its samples."""
        weight = size if self.per_sample else 1
        for key, value in terms.items():
            value = value.detach() * weight if self.on_device else value.item() * weight
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.weight += weight

    def means(self, prefix: str = "train/") -> dict[str, float]:
        """``{prefix + term: mean}`` (empty before any batch)."""
        return {f"{prefix}{k}": float(v) / self.weight for k, v in self.sums.items()}


class EpochTrainer(ABC):
    """Base class: subclasses set ``name`` and ``config_class`` and implement
    :meth:`train_epoch` and :meth:`evaluate`; :meth:`after_epoch`, :meth:`extra_metadata` and
    :meth:`build_optimizer` are optional hooks."""

    name: str
    config_class: type
    dataset: RolloutDataset

    def _start(
        self,
        out: str | Path,
        device: str,
        bf16: bool,
        fresh_config: Callable[[], Any],
        overrides: dict[str, Any] | None,
        build_model: Callable[[Any], torch.nn.Module],
        check_saved: Callable[[Any, dict[str, Any]], None] | None = None,
    ) -> dict[str, Any] | None:
        """Set up (or restore) config, model, optimizer and RNGs; returns the checkpoint's
        metadata when resuming."""
        self.out = Path(out)
        check_writable_dir(self.out)
        self.device = resolve_device(device)
        self.path = self.out / f"{self.name}.safetensors"
        tensors = meta = saved = None
        if self.path.exists():
            tensors, meta = read_checkpoint(self.path)
            saved = self.config_class(**meta["config"])
            if check_saved is not None:
                check_saved(saved, meta)
        self.history: list[dict[str, Any]] = meta["history"] if meta else []
        self.epoch: int = meta["epoch"] if meta else 0
        self.config = config = resolve_config(saved, fresh_config, overrides or {}, self.path)
        # A config with a bf16 setting owns it (a resumed run keeps it); others take the argument.
        self.bf16 = getattr(config, "bf16", bf16)
        # Taken once the settings are known to be valid (a refused run writes nothing), held
        # until fit() ends (or this trainer is dropped): one writer per output directory.
        self._lock = DirectoryLock(self.out).acquire()
        self.model = seeded_init(lambda: build_model(config), config.seed).to(self.device)
        self.optimizer = self.build_optimizer(self.model, config)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        if meta is not None:
            load_model(self.model, tensors, self.path)
            load_training_state(tensors, meta, self.optimizer, self.generator, self.rng)
        atomic_write_json(self.out / f"{self.name}-config.json", dataclasses.asdict(config))
        self.logger = RunLogger(self.out, self.name)
        return meta

    def build_optimizer(self, model: torch.nn.Module, config: Any) -> torch.optim.Optimizer:
        """The optimizer (Adam at ``config.lr``; a subclass may choose another)."""
        return torch.optim.Adam(model.parameters(), lr=config.lr)

    @abstractmethod
    def train_epoch(self, progress: bool) -> dict[str, float]:
        """One pass over the training data; returns ``{"train/...": value}``. Steps go
        through :func:`optimizer_step`, the metrics through :class:`EpochMeans`."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Validation metrics ``{"val/...": value}`` (empty without a validation split)."""

    def extra_metadata(self) -> dict[str, Any]:
        return {}

    def after_epoch(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Called after each epoch's checkpoint (plots, bundle files, ...)."""

    def metadata(self) -> dict[str, Any]:
        return {
            "component": self.name,
            "env": self.dataset.env,
            "data": str(self.dataset.root.resolve()),
            "config": dataclasses.asdict(self.config),
            "epoch": self.epoch,
            "history": self.history,
            **self.extra_metadata(),
        }

    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        """Train until ``config.epochs``; checkpoint atomically after every epoch."""
        try:
            with torch_threads("training"):
                return self._fit(progress)
        finally:
            self._lock.release()

    def _fit(self, progress: bool) -> list[dict[str, Any]]:
        bar = progress_bar(range(self.epoch, self.config.epochs), initial=self.epoch,
                           total=self.config.epochs, desc=self.name, unit="epoch",
                           disable=not progress)  # fmt: skip
        for _ in bar:
            start = time.perf_counter()
            row = self.train_epoch(progress)
            row.update(self.evaluate())
            self.epoch += 1
            row = {"epoch": self.epoch, **row, "seconds": time.perf_counter() - start}
            self.history.append(row)
            save_checkpoint(
                self.path, self.model, self.metadata(), self.optimizer, self.generator, self.rng
            )
            atomic_write_json(self.out / f"{self.name}.json", self.metadata())
            self.after_epoch()
            self.logger.log(self.history)
            bar.set_postfix({k: f"{row[k]:.4g}" for k in ("train/loss", "val/loss") if k in row})
        self.logger.close()
        return self.history
