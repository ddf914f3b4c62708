"""Training V on the frames of a rollout dataset, resumable epoch by epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamgym.common.io import atomic_write_bytes
from dreamgym.common.progress import progress as progress_bar
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset
from dreamgym.worldmodels.checkpoint import (
    load_model,
    read_checkpoint,
)
from dreamgym.worldmodels.common import autocast, reconstruction_grid, split_episodes
from dreamgym.worldmodels.trainer import EpochMeans, EpochTrainer, optimizer_step
from dreamgym.worldmodels.vm.vae import (
    ConvVAE,
    VAEConfig,
    frames_to_input,
    output_to_frames,
    vae_loss,
    vae_preset,
)

VAE_FILE = "vae.safetensors"


def load_vae(path: str | Path, device: str | torch.device = "cpu") -> tuple[ConvVAE, dict]:
    """A trained V and its metadata from ``vae.safetensors`` (or the run directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / VAE_FILE
    tensors, meta = read_checkpoint(path)
    model = ConvVAE(VAEConfig(**meta["config"]).z_size)
    load_model(model, tensors, path)
    return model.to(device).eval(), meta


def _row_ranges(dataset: RolloutDataset, episodes: np.ndarray) -> np.ndarray:
    """Frame rows (into dataset.frames()) of the given episode positions."""
    if len(episodes) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(
        [
            np.arange(dataset.frame_offsets[i], dataset.frame_offsets[i] + dataset.lengths[i] + 1)
            for i in episodes
        ]
    )


def _batches(rows: np.ndarray, batch_size: int):
    for start in range(0, len(rows), batch_size):
        yield np.sort(rows[start : start + batch_size])


class VAETrainer(EpochTrainer):
    """Trains V on ``data`` into ``out/vae.safetensors``.

    Args:
        data: a rollout dataset directory.
        out: the run directory (created if needed). Re-creating the trainer on the same ``out``
            resumes from the last finished epoch; a larger ``epochs`` trains further.
        preset: ``paper``, ``small`` or ``debug`` (see :func:`vae_preset`).
        overrides: config fields to change from the preset, e.g. ``{"epochs": 2}``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        bf16: bf16 autocast for the forward pass (losses stay fp32).
        skip_corrupt: leave corrupt episode files out with a warning.
        frames_on_device: copy every frame (uint8) to the device once instead of gathering each
            batch from the memory map; default: on CUDA when they take under half the free GPU
            memory, so the GPU is not left waiting on host-side gathers.
    """

    name = "vae"
    config_class = VAEConfig

    def __init__(
        self,
        data: str | Path,
        out: str | Path,
        preset: str = "paper",
        overrides: dict[str, Any] | None = None,
        device: str = "auto",
        bf16: bool = False,
        skip_corrupt: bool = False,
        frames_on_device: bool | None = None,
    ) -> None:
        self.dataset = RolloutDataset(data, skip_corrupt=skip_corrupt)
        self.dataset.frames()  # a corrupt episode is named (or left out) before anything is written

        def check_saved(saved: VAEConfig, meta: dict[str, Any]) -> None:
            if meta["env"] != self.dataset.env:
                raise DreamgymError(
                    f"{str(self.path)!r} was trained on {meta['env']!r} data, but "
                    f"{str(data)!r} holds {self.dataset.env!r} data; use another --out"
                )

        self._start(out, device, bf16, lambda: vae_preset(preset, self.dataset.env), overrides,
                    lambda config: ConvVAE(config.z_size), check_saved)  # fmt: skip
        train_eps, val_eps = split_episodes(
            len(self.dataset), self.config.val_fraction, self.config.seed
        )
        cap = self.config.max_episodes
        if cap is not None and cap < len(train_eps):
            if cap < 1:
                raise DreamgymError(f"max_episodes must be >= 1, got {cap}")
            pick = np.random.default_rng([self.config.seed, 3]).choice(len(train_eps), cap, False)
            train_eps = np.sort(train_eps[pick])
            val_eps = val_eps[: max(1, round(cap * self.config.val_fraction))]
        self.train_rows = _row_ranges(self.dataset, train_eps)
        self.val_rows = _row_ranges(self.dataset, val_eps)
        if frames_on_device is None:
            frames_on_device = (
                self.device.type == "cuda"
                and self.dataset.frames().nbytes < 0.5 * torch.cuda.mem_get_info(self.device)[0]
            )
        self.device_frames = (
            torch.from_numpy(np.array(self.dataset.frames())).to(self.device)
            if frames_on_device
            else None
        )

    def _input(self, rows: np.ndarray) -> torch.Tensor:
        if self.device_frames is not None:
            frames = self.device_frames[torch.from_numpy(rows).to(self.device)]
        else:
            frames = torch.from_numpy(self.dataset.frames()[rows])  # fancy indexing copies
        return frames_to_input(frames.to(self.device, non_blocking=True))

    def train_epoch(self, progress: bool) -> dict[str, float]:
        """One pass over the training frames in a random order: Adam at a constant rate, no
        clipping; metrics are means over frames."""
        self.model.train()
        rows = self.rng.permutation(self.train_rows)
        means = EpochMeans(per_sample=True, on_device=True)
        bar = progress_bar(
            list(_batches(rows, self.config.batch_size)),
            desc=f"vae epoch {self.epoch + 1}/{self.config.epochs}",
            disable=not progress,
            leave=False,
        )
        for i, batch in enumerate(bar):
            x = self._input(batch)
            with autocast(self.device, self.bf16):
                recon, mu, logvar = self.model(x, self.generator)
            losses = vae_loss(x, recon, mu, logvar, self.config.kl_tolerance)
            optimizer_step(losses["loss"], self.optimizer)
            means.add(losses, len(batch))
            if progress and i % 10 == 0:
                bar.set_postfix(loss=f"{losses['loss'].item():.1f}")
        return means.means()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation losses, with fixed noise so that epochs compare fairly."""
        if len(self.val_rows) == 0:
            return {}
        self.model.eval()
        generator = torch.Generator(self.device).manual_seed(12345)
        sums: dict[str, float] = {}
        for batch in _batches(self.val_rows, 256):
            x = self._input(batch)
            with autocast(self.device, self.bf16):
                recon, mu, logvar = self.model(x, generator)
            for key, value in vae_loss(x, recon, mu, logvar, self.config.kl_tolerance).items():
                sums[key] = sums.get(key, 0.0) + value.item() * len(batch)
        return {f"val/{k}": v / len(self.val_rows) for k, v in sums.items()}

    @torch.no_grad()
    def save_reconstructions(self, n: int = 8) -> Path:
        """A PNG grid: real frames (top row) over V's reconstructions from mu (bottom row)."""
        self.model.eval()
        pool = self.val_rows if len(self.val_rows) else self.train_rows
        rows = pool[np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)]
        x = self._input(rows)
        recon = output_to_frames(self.model.decode(self.model.encode(x)[0].float())).cpu().numpy()
        real = np.asarray(self.dataset.frames()[rows])
        png = reconstruction_grid(real, recon, "V reconstruction", self.epoch)
        return atomic_write_bytes(self.out / "vae-reconstructions.png", png)

    def after_epoch(self) -> None:
        self.save_reconstructions()
