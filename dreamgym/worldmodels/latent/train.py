"""Training a latent world model (DINO-WM, LeWM) on rollout datasets, resumable epoch by epoch.

A training window is H + 1 frames ``frameskip`` real steps apart, with the H action blocks
between them and, when the episodes hold it, the frames' proprioception; the loss on it is
``objective.py``'s.

An epoch draws ``windows_per_epoch`` windows uniformly over every window start of the training
episodes (by default as many as there are starts: DINO-WM's epoch; DINO-WM visits each once,
this draws with replacement); episodes shorter than one window are left out. Validation uses
the same fixed windows of the held-out episodes every epoch. Differences from the references,
on purpose: no decoder; the learning rate is constant (DINO-WM) unless ``lr_schedule`` is
``cosine`` (a warm-up, then a cosine decay: LeWM warms up and anneals).

Outputs in ``out``: the bundle (``bundle.json``, complete after every epoch), the checkpoint
``latent.safetensors``, ``latent-metrics.csv``, TensorBoard logs and ``latent-curves.png``.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save
from torch import nn

from dreamgym.common.io import atomic_write_bytes
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.seeding import derive_seed
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import DatasetUnion
from dreamgym.worldmodels.bundle import write_info
from dreamgym.worldmodels.common import split_episodes
from dreamgym.worldmodels.latent.config import ENCODER_FILES, LatentConfig
from dreamgym.worldmodels.latent.encoders import FrozenEncoder, PixelEncoder, frozen_encoder
from dreamgym.worldmodels.latent.model import BUNDLE_KIND, PAIR_KEYS, LatentNet, LatentWorldModel
from dreamgym.worldmodels.latent.objective import window_losses
from dreamgym.worldmodels.latent.presets import latent_preset
from dreamgym.worldmodels.latent.readouts import decoded_grid
from dreamgym.worldmodels.trainer import EpochMeans, EpochTrainer, optimizer_step

LATENT_FILE = "latent.safetensors"
INITIAL_FILE = "initial_frames.safetensors"
PRECISE_BN_FRAMES = 2048
PIXEL_FIT_FRAMES = 4096


def learning_rate(config: LatentConfig, step: int, steps: int) -> float:
    """The learning rate at optimizer step ``step`` of ``steps`` (a function of the step and the
    configured epochs alone, so an interrupted run that resumes follows the schedule an
    uninterrupted one does; raising ``epochs`` on resume stretches the decay from there on)."""
    if config.lr_schedule == "constant":
        return config.lr
    warmup = int(config.warmup * steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    return 0.5 * config.lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


class _FrameRows:
    """Frames of a union of datasets by global row, gathered from each dataset's memory map
    (or from one device copy of them all)."""

    def __init__(self, dataset: DatasetUnion, device: torch.device, on_device: bool) -> None:
        self.parts = [part.frames() for part in dataset.datasets]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.device = device
        self.all = None
        if on_device:
            self.all = torch.from_numpy(np.concatenate(self.parts)).to(device)

    def __call__(self, rows: np.ndarray) -> torch.Tensor:
        """uint8 frames (*rows.shape, H, W, 3) on the device."""
        flat = rows.ravel()
        if self.all is not None:
            out = self.all[torch.from_numpy(flat).to(self.device)]
        else:
            shape = self.parts[0].shape[1:]
            gathered = np.empty((len(flat), *shape), np.uint8)
            part = np.searchsorted(self.starts, flat, side="right") - 1
            for k in np.unique(part):
                sel = part == k
                gathered[sel] = self.parts[k][flat[sel] - self.starts[k]]
            out = torch.from_numpy(gathered).to(self.device)
        return out.view(*rows.shape, *out.shape[1:])


class LatentTrainer(EpochTrainer):
    """Trains a latent world model on ``data`` into the bundle directory ``out``.

    Args:
        data: a rollout dataset directory, or several of one env and action space.
        out: the bundle directory (created if needed); re-creating the trainer on it resumes
            from the last finished epoch (a larger ``epochs`` trains further).
        preset: ``debug``, ``cpu``, ``cpu-vit`` or ``paper`` (see :func:`latent_preset`).
        overrides: config fields to change from the preset, e.g. ``{"frameskip": 1}``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        bf16: bf16 autocast for the forward pass (losses in fp32); sets the config's ``bf16``,
            which a preset may set too and a resumed run keeps.
        skip_corrupt: leave corrupt episode files out with a warning.
        frames_on_device: copy every frame to the device once; default: on CUDA when they take
            under half its free memory.
    """

    name = "latent"
    config_class = LatentConfig
    dataset: DatasetUnion

    def __init__(
        self,
        data: str | os.PathLike | Sequence[str | os.PathLike],
        out: str | Path,
        preset: str = "cpu",
        overrides: dict[str, Any] | None = None,
        device: str = "auto",
        bf16: bool = False,
        skip_corrupt: bool = False,
        frames_on_device: bool | None = None,
    ) -> None:
        roots = [data] if isinstance(data, str | os.PathLike) else list(data)
        self.dataset = DatasetUnion.open(roots, skip_corrupt=skip_corrupt)
        self.dataset.read_all()  # a corrupt episode is named (or left out) before any writing
        self.proprio = self.dataset.frame_info().get("proprio")
        action_size = self.dataset.action_dim
        proprio_size = 0 if self.proprio is None else self.proprio.shape[1]
        self.frozen: FrozenEncoder | None = None

        def check_saved(saved: LatentConfig, meta: dict[str, Any]) -> None:
            if (meta["env"], saved.action_size) != (self.dataset.env, action_size):
                raise DreamgymError(
                    f"{str(self.path)!r} was trained on {meta['env']!r} data with action size "
                    f"{saved.action_size}; {str(self.dataset.root)!r} holds {self.dataset.env!r} "
                    f"data with {action_size}; use another --out"
                )
            if saved.uses_proprio and saved.proprio_size != proprio_size:
                raise DreamgymError(
                    f"{str(self.path)!r} was trained with proprio of size {saved.proprio_size}; "
                    f"the data has {proprio_size}"
                )

        if bf16:
            overrides = {**(overrides or {}), "bf16": True}
        try:
            meta = self._start(out, device, bf16,
                               lambda: latent_preset(preset, action_size, proprio_size),
                               overrides, self._build, check_saved)  # fmt: skip
            self._prepare(meta is None, frames_on_device)
        except BaseException:
            if hasattr(self, "_lock"):  # fit() would release it; a next trainer may want it
                self._lock.release()
            raise

    def _prepare(self, fresh: bool, frames_on_device: bool | None) -> None:
        if fresh:
            self.model.set_statistics(self.dataset.step_arrays()[0], self.proprio)
        c = self.config
        self.span = c.history * c.frameskip
        self.train_eps, self.val_eps = self._split()
        if len(self.train_eps) == 0:
            raise DreamgymError(
                f"no training episode in {str(self.dataset.root)!r} is as long as one window "
                f"(history {c.history} x frameskip {c.frameskip} = {self.span} steps)"
            )
        if frames_on_device is None:
            nbytes = sum(part.frames().nbytes for part in self.dataset.datasets)
            frames_on_device = (
                self.device.type == "cuda" and nbytes < 0.5 * torch.cuda.mem_get_info()[0]
            )
        self.frames = _FrameRows(self.dataset, self.device, frames_on_device)
        if fresh and isinstance(self.model.encoder, PixelEncoder):
            self.model.encoder.fit(self.frames(self._random_frames(PIXEL_FIT_FRAMES, 9)))
        self._save_initial_frames()

    def _build(self, config: LatentConfig) -> LatentNet:
        config.check()
        if config.encoder in ENCODER_FILES:
            self.frozen = frozen_encoder(config, self._frozen_source(config)).to(self.device)
            copy = self.out / ENCODER_FILES[config.encoder]
            if config.encoder == "dinov2" and not copy.exists():
                tensors = {k: v.contiguous() for k, v in self.frozen.model.state_dict().items()}
                atomic_write_bytes(copy, save(tensors))
        return LatentNet(config, self.frozen)

    def _frozen_source(self, config: LatentConfig) -> Path | None:
        """The frozen encoder's file: the bundle's copy once there is one, else the source."""
        copy = self.out / ENCODER_FILES[config.encoder]
        if config.encoder == "dinov2":
            return copy if copy.exists() else config.dinov2_weights
        from dreamgym.worldmodels.vm.train_vae import VAE_FILE

        source = Path(config.vae).expanduser()
        source = source / VAE_FILE if source.is_dir() else source
        if source.exists() and source.resolve() != copy.resolve() and not self.path.exists():
            tmp = self.out / f".{copy.name}.copy.tmp"
            shutil.copyfile(source, tmp)
            tmp.replace(copy)
        return copy if copy.exists() else source

    def build_optimizer(self, model: torch.nn.Module, config: LatentConfig):
        return torch.optim.AdamW(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)  # fmt: skip

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        """Each dataset split on its own (so adding one keeps the earlier ones' validation
        episodes held out); episodes shorter than a window dropped."""
        train, val, offset = [], [], 0
        for part in self.dataset.datasets:
            t, v = split_episodes(len(part), self.config.val_fraction, self.config.seed)
            train.append(t + offset)
            val.append(v + offset)
            offset += len(part)
        lengths = self.dataset.lengths
        return tuple(e[lengths[e] >= self.span] for e in map(np.concatenate, (train, val)))

    def _save_initial_frames(self) -> None:
        first = self.dataset.frame_offsets
        cap = self.config.max_initial_frames
        if len(first) > cap:
            pick = np.random.default_rng([self.config.seed, 6]).choice(len(first), cap, False)
            first = first[np.sort(pick)]
        bank = {"frames": self.frames(first).cpu()}
        if self.config.uses_proprio:
            bank["proprio"] = torch.from_numpy(self.proprio[first].astype(np.float32))
        bank.update(self._goal_pairs())
        self.pairs = {k: bank[k] for k in PAIR_KEYS if k in bank}
        atomic_write_bytes(self.out / INITIAL_FILE, save(bank))

    def _goal_threshold(self) -> float:
        """The current model's goal threshold on the recorded pairs (stored in the bundle so
        that loading does not encode them)."""
        info = {k: self.dataset.meta[k] for k in ("env", "action_low", "action_high")}
        model = LatentWorldModel(self.model, self.frozen, self.pairs["start_frames"][:1], None,
                                 info, self.device, self.pairs)  # fmt: skip
        return model.goal_threshold

    def _goal_pairs(self) -> dict[str, torch.Tensor]:
        """A quarter as many start frames as first frames, and the frames ``goal_offset`` real
        steps later, from random offsets of the episodes long enough (none: no pairs)."""
        offset, cap = self.config.goal_offset, max(1, self.config.max_initial_frames // 4)
        lengths = self.dataset.lengths
        eligible = np.flatnonzero(lengths >= offset)
        if len(eligible) == 0:
            return {}
        rng = np.random.default_rng([self.config.seed, 7])
        episodes = rng.choice(eligible, cap)
        starts = self.dataset.frame_offsets[episodes] + rng.integers(
            0, lengths[episodes] - offset + 1
        )
        pairs = {"start_frames": self.frames(starts).cpu(),
                 "goal_frames": self.frames(starts + offset).cpu()}  # fmt: skip
        if self.config.uses_proprio:
            pairs["start_proprio"] = torch.from_numpy(self.proprio[starts].astype(np.float32))
            pairs["goal_proprio"] = torch.from_numpy(
                self.proprio[starts + offset].astype(np.float32)
            )
        return pairs

    def _window_frames(self) -> int:
        """Frames per window in the current epoch: H + 1, or H + rollout once the rollout loss
        is on."""
        c = self.config
        rolls = c.rollout > 0 and self.epoch >= c.rollout_from
        return c.history + (c.rollout if rolls else 1)

    def windows(self, episodes: np.ndarray, n: int, rng: np.random.Generator) -> dict:
        """n windows of F frames (:meth:`_window_frames`) drawn uniformly over the window
        starts of the ``episodes`` long enough, as device tensors: frames (n, F, h, w, 3) uint8,
        actions (n, F - 1, A * frameskip), proprio (n, F, Pd) or None."""
        c = self.config
        frames = self._window_frames()
        span = (frames - 1) * c.frameskip
        episodes = episodes[self.dataset.lengths[episodes] >= span]
        if len(episodes) == 0:
            raise DreamgymError(
                f"no episode of {str(self.dataset.root)!r} is as long as a rollout window "
                f"({frames - 1} model steps of {c.frameskip} = {span} steps)"
            )
        starts = self.dataset.lengths[episodes] - span + 1
        pick = rng.choice(len(episodes), size=n, p=starts / starts.sum())
        w = self.dataset.windows(episodes[pick], span, rng)
        rows = w.frame_rows[:, :: c.frameskip]  # (n, F)
        actions = self.dataset.step_arrays()[0][w.step_rows].reshape(n, frames - 1, -1)
        batch = {
            "frames": self.frames(rows),
            "actions": torch.from_numpy(actions).to(self.device),
            "proprio": None,
            "rewards": None,
            "dones": None,
        }
        if c.reward_head:  # per model step: the block's summed rewards, whether it ended
            _, rewards, dones = self.dataset.step_arrays()
            blocks = (n, frames - 1, c.frameskip)
            batch["rewards"] = torch.from_numpy(
                rewards[w.step_rows].reshape(blocks).sum(-1).astype(np.float32)
            ).to(self.device)
            batch["dones"] = torch.from_numpy(dones[w.step_rows].reshape(blocks).any(-1)).to(
                self.device
            )
        if c.uses_proprio:
            batch["proprio"] = torch.from_numpy(self.proprio[rows]).float().to(self.device)
        return batch

    def losses(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The loss terms of a batch of windows (:func:`~.objective.window_losses`)."""
        return window_losses(self.model, self.frozen, self.config, batch, generator, self.bf16)

    def train_epoch(self, progress: bool) -> dict[str, float]:
        """An epoch of windows (``windows_per_epoch``): AdamW at the rate :func:`learning_rate`
        gives each step, the gradient norm clipped at ``grad_clip`` (unless 0), the readouts
        apart from the core; metrics are means over windows."""
        c = self.config
        self.model.train()
        starts = int((self.dataset.lengths[self.train_eps] - self.span + 1).sum())
        total = c.windows_per_epoch or starts
        means = EpochMeans(per_sample=True, on_device=True)
        start = time.perf_counter()
        batches = range(0, total, c.batch_size)
        devices = []
        if self.device.type == "cuda":
            devices = [torch.cuda.current_device() if self.device.index is None
                       else self.device.index]  # fmt: skip
        # Dropout draws from torch's global generator: forked and seeded per epoch, so that a
        # resumed run repeats an uninterrupted one and the caller's global state is untouched.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derive_seed(c.seed, 7, self.epoch))
            for first in progress_bar(batches, desc=f"latent epoch {self.epoch + 1}/{c.epochs}",
                                      disable=not progress, leave=False):  # fmt: skip
                size = min(c.batch_size, total - first)
                terms = self.losses(self.windows(self.train_eps, size, self.rng), self.generator)
                step = self.epoch * len(batches) + first // c.batch_size
                # The readouts are clipped apart, so that they never rescale the core.
                optimizer_step(terms["loss"], self.optimizer, clip=c.grad_clip or None,
                               clip_groups=self._clip_groups(),
                               lr=learning_rate(c, step, c.epochs * len(batches)))  # fmt: skip
                means.add(terms, size)
        seconds = time.perf_counter() - start
        self._precise_batchnorm()
        return {**means.means(), "windows_per_second": total / seconds}

    def _clip_groups(self) -> list[list[nn.Parameter]]:
        readouts = [m for m in (self.model.decoder, self.model.heads) if m is not None]
        ids = {id(p) for m in readouts for p in m.parameters()}
        core = [p for p in self.model.parameters() if id(p) not in ids]
        return [core] + [list(m.parameters()) for m in readouts]

    def _random_frames(self, n: int, *key: int) -> np.ndarray:
        """Rows of ``n`` frames drawn uniformly from the training episodes, seeded by ``key``."""
        rng = np.random.default_rng([self.config.seed, *key])
        episodes = rng.choice(self.train_eps, n)
        return self.dataset.frame_offsets[episodes] + rng.integers(
            0, self.dataset.lengths[episodes] + 1
        )

    @torch.no_grad()
    def _precise_batchnorm(self) -> None:
        """Re-estimate the encoder's BatchNorm statistics as exact averages over
        ``PRECISE_BN_FRAMES`` random training frames ("precise BN"), after each epoch.

        Why: the tiny ViT's outputs differ little between Push-T frames and the projector's
        BatchNorm scales those differences up; its running averages (momentum 0.1 over a moving
        network) can miss the mean by more than the spread, and eval-mode embeddings are then far
        from the training ones (``docs/notes/planning.md``). Exact averages over fixed weights
        remove the mismatch.
        """
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        rows = self._random_frames(PRECISE_BN_FRAMES, 8, self.epoch)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average
        self.model.encoder.train()
        for first in range(0, len(rows), 256):
            self.model.encoder(self.frames(rows[first : first + 256]))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Losses on the same held-out windows every epoch, SIGReg on fixed directions."""
        if len(self.val_eps) == 0:
            return {}
        c = self.config
        self.model.eval()
        rng = np.random.default_rng([c.seed, 5])
        generator = torch.Generator(self.device).manual_seed(12345)
        sums: dict[str, float] = {}
        for first in range(0, c.val_windows, c.batch_size):
            size = min(c.batch_size, c.val_windows - first)
            terms = self.losses(self.windows(self.val_eps, size, rng), generator)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value.item() * size
        return {f"val/{k}": v / c.val_windows for k, v in sums.items()}

    def _validation(self) -> dict[str, Any]:
        first = self.dataset.datasets[0]
        held = sorted(int(i) for i in self.val_eps if i < len(first))
        return {"data": str(first.root.resolve()), "episodes": held}

    def _collection(self) -> list[dict[str, Any]]:
        """How each dataset was collected (policy, base seed, episodes, episode cap), so that
        goals can be collected outside the training data's seeds without the data at hand."""
        keys = ("policy", "seed", "max_episode_steps", "min_length")
        return [{**{k: part.meta.get(k) for k in keys}, "episodes": len(part)}
                for part in self.dataset.datasets]  # fmt: skip

    def write_bundle(self) -> None:
        c = self.config
        files = {"latent": LATENT_FILE, "initial_frames": INITIAL_FILE}
        if c.encoder in ENCODER_FILES:
            files["encoder"] = ENCODER_FILES[c.encoder]
        datasets = [str(d.root.resolve()) for d in self.dataset.datasets]
        write_info(
            self.out, BUNDLE_KIND, self.dataset.meta, files=files, encoder=c.encoder,
            history=c.history, frameskip=c.frameskip, proprio=c.uses_proprio,
            goal_threshold=self._goal_threshold() if self.pairs else None,
            training={"data": datasets[0], "datasets": datasets, "episodes": len(self.dataset),
                      "validation": self._validation(), "collection": self._collection(),
                      "latent_epochs": self.epoch},
        )  # fmt: skip

    @torch.no_grad()
    def save_reconstructions(self, n: int = 8) -> Path:
        """A PNG grid: mid-episode frames of validation episodes over their decoding."""
        self.model.eval()
        pool = self.val_eps if len(self.val_eps) else self.train_eps
        episodes = pool[np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)]
        rows = self.dataset.frame_offsets[episodes] + self.dataset.lengths[episodes] // 2
        encoder = self.model.encoder if self.frozen is None else self.frozen
        png = decoded_grid(encoder, self.model.decoder, self.frames(rows), self.epoch)
        return atomic_write_bytes(self.out / "latent-reconstructions.png", png)

    def after_epoch(self) -> None:
        self.write_bundle()
        if self.model.decoder is not None:
            self.save_reconstructions()


def train_latent(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | Path,
    preset: str = "cpu",
    device: str = "auto",
    bf16: bool = False,
    skip_corrupt: bool = False,
    progress: bool = True,
    **overrides: Any,
) -> LatentTrainer:
    """Train (or resume training) a latent world model; the bundle in ``out`` is complete after
    every epoch and loads with :func:`dreamgym.worldmodels.load`.

    Args:
        data, out, preset, device, bf16, skip_corrupt: as for :class:`LatentTrainer`.
        progress: show progress bars.
        **overrides: config fields to change from the preset (see
            :class:`~dreamgym.worldmodels.latent.config.LatentConfig`), e.g. ``epochs=20``.

    Returns:
        The trainer after training (its ``history``, ``config``, ``model``).
    """
    trainer = LatentTrainer(data, out, preset, overrides, device, bf16, skip_corrupt)
    trainer.fit(progress)
    return trainer
