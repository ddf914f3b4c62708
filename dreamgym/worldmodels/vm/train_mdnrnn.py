"""Training M on V's latents of one or more rollout datasets, and assembling the world-model bundle.

Steps (each cached or resumable): copy V into the bundle directory; encode every frame with V
into (mu, logvar), one dataset at a time (``latents.safetensors``, reused while V and the list of
datasets and their episodes are unchanged); save the bank of first-frame latents of every episode
the dream resets from (``initial_latents.safetensors``); train M,
re-sampling z = mu + exp(logvar / 2) * eps for every batch (so every epoch sees fresh samples, as
the original); write ``bundle.json`` after every epoch.

An ensemble of Ms (``members`` K > 1): member k > 0 is trained after member 0, one after the
other, into ``mdnrnn-m{k}.safetensors`` (its own checkpoint, resumed like member 0's). Every
member starts from member 0's starting point (the same seeded init on a fresh run; on a bundle
trained before without member k, a copy of member 0's checkpoint taken before this run trains
anything) and differs only in its sampling seed, derived from (seed, k): its windows, z
re-samples and training dropout masks. All members hold out member 0's validation episodes.

Episode boundaries: every training window lies inside one episode and M's state starts at zero
for each window, so no state leaks across episodes; episodes shorter than ``seq_len`` give one
window from step 0, zero-padded and masked out of every loss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save

from dreamgym.common import validate
from dreamgym.common.device import resolve_device
from dreamgym.common.io import atomic_write_bytes, check_writable_dir
from dreamgym.common.seeding import derive_seed
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import DatasetUnion, RolloutDataset
from dreamgym.worldmodels.bundle import write_info
from dreamgym.worldmodels.checkpoint import META_KEY, read_checkpoint
from dreamgym.worldmodels.common import autocast, split_episodes
from dreamgym.worldmodels.trainer import EpochMeans, EpochTrainer, optimizer_step
from dreamgym.worldmodels.vm.mdnrnn import (
    MDNRNN,
    MDNRNNConfig,
    fit_logit_offset,
    mdnrnn_losses,
    mdnrnn_preset,
)
from dreamgym.worldmodels.vm.model import BUNDLE_KIND, MEMBERS_KEY
from dreamgym.worldmodels.vm.train_vae import VAE_FILE, load_vae
from dreamgym.worldmodels.vm.vae import ConvVAE, frames_to_input

MDNRNN_FILE = "mdnrnn.safetensors"
LATENTS_FILE = "latents.safetensors"
INITIAL_FILE = "initial_latents.safetensors"
# Salts of the seeds derived from (seed, member): sampling RNGs, training dropout masks.
_SAMPLING_SALT, _DROPOUT_SALT = 3, 11
# Batches per pool sorted by window length (``length_batches``): large enough that a pool's
# sorted batches hold similar lengths, small enough that which episodes share a batch still
# changes from epoch to epoch.
LENGTH_POOL = 8


def member_file(k: int) -> str:
    """The checkpoint file of ensemble member ``k`` (member 0: ``mdnrnn.safetensors``)."""
    return MDNRNN_FILE if k == 0 else f"mdnrnn-m{k}.safetensors"


def _member_seeds(seed: int, k: int) -> tuple[int, np.random.Generator]:
    """Member ``k``'s sampling RNGs: the torch generator's seed and the numpy generator (member
    0 keeps the run's ``seed`` itself)."""
    if k == 0:
        return seed, np.random.default_rng(seed)
    return derive_seed(seed, _SAMPLING_SALT, k), np.random.default_rng([seed, _SAMPLING_SALT, k])


def _saved_epoch(path: Path) -> int:
    """The epoch a checkpoint was saved at (read from its metadata only)."""
    with safe_open(str(path), framework="pt") as f:
        return int(json.loads((f.metadata() or {})[META_KEY])["epoch"])


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


@torch.no_grad()
def encode_dataset(
    vae: ConvVAE,
    dataset: RolloutDataset | DatasetUnion,
    device: torch.device,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) float32 (N_frames, Z) of every frame of ``dataset``; a union is encoded one
    dataset (one frame cache) at a time, in its row order."""
    parts = dataset.datasets if isinstance(dataset, DatasetUnion) else [dataset]
    mus, logvars = [], []
    for part in parts:
        frames = part.frames()
        for start in range(0, len(frames), batch_size):
            x = torch.from_numpy(np.array(frames[start : start + batch_size])).to(device)
            mu, logvar = vae.encode(frames_to_input(x))
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
    return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def cached_latents(
    vae: ConvVAE,
    vae_path: Path,
    dataset: RolloutDataset | DatasetUnion,
    out: Path,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`encode_dataset`, cached in ``out/latents.safetensors`` keyed by V and the data
    (for a union: the list of datasets, so adding one re-encodes); a cache whose row count
    does not match the data is rebuilt."""
    key = f"{_file_digest(vae_path)}-{dataset.cache_key()}"
    path = out / LATENTS_FILE
    if path.exists():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key:
                mu = f.get_tensor("mu")
                if len(mu) == dataset.num_frames:
                    return mu.numpy(), f.get_tensor("logvar").numpy()
    mu, logvar = encode_dataset(vae, dataset, device)
    data = save({"mu": torch.from_numpy(mu), "logvar": torch.from_numpy(logvar)}, {"key": key})
    atomic_write_bytes(path, data)
    return mu, logvar


class MDNRNNTrainer(EpochTrainer):
    """Trains M for the V in ``vae_dir`` on ``data``, writing a complete bundle into ``out``.

    Args:
        data: the rollout dataset V was trained on (or another of the same env), or a sequence
            of dataset directories of one env and action space (see
            :class:`~dreamgym.rollouts.DatasetUnion`), read as one without copying frames.
        vae_dir: V's run directory (or its ``vae.safetensors``).
        out: the bundle directory; may be V's own run directory. Re-creating the trainer on the
            same ``out`` resumes from the last finished epoch, whatever ``data`` is then: with
            datasets added (the paper's iterative training), M continues from its checkpoint on
            all of them, and a larger ``epochs`` trains further.
        preset: ``paper``, ``small`` or ``debug`` (see :func:`mdnrnn_preset`).
        overrides: config fields to change from the preset, e.g. ``{"seq_len": 100}``.
        device, bf16, skip_corrupt: as for :class:`~dreamgym.worldmodels.vm.train_vae.VAETrainer`.
        members: K, the Ms of an ensemble (see the module docstring), trained one after the
            other by :meth:`fit`. A trainer argument, not a config field, so that a bundle
            trained before can gain members (a new member is then a copy of member 0 and
            differs only by the epochs trained after it: raise ``epochs``); default (None): as
            many as ``out`` holds (1 for a new run); fewer than ``out`` holds lists only the
            first K in the bundle. The done calibration is member 0's.
    """

    name = "mdnrnn"
    config_class = MDNRNNConfig
    dataset: DatasetUnion
    member = 0

    def __init__(
        self,
        data: str | os.PathLike | Sequence[str | os.PathLike],
        vae_dir: str | Path,
        out: str | Path,
        preset: str = "paper",
        overrides: dict[str, Any] | None = None,
        device: str = "auto",
        bf16: bool = False,
        skip_corrupt: bool = False,
        members: int | None = None,
    ) -> None:
        out = Path(out)
        if members is None:
            members = 1
            while (out / member_file(members)).exists():
                members += 1
        self.members = validate.integer("members", members)
        roots = [data] if isinstance(data, str | os.PathLike) else list(data)
        self.dataset = DatasetUnion.open(roots, skip_corrupt=skip_corrupt)
        self.dataset.read_all()  # a corrupt episode is named (or left out) before any writing
        out = Path(out)
        check_writable_dir(out)
        vae_source = Path(vae_dir) / VAE_FILE if Path(vae_dir).is_dir() else Path(vae_dir)
        self.vae, self.vae_meta = load_vae(vae_source, resolve_device(device))
        if self.vae_meta["env"] != self.dataset.env:
            raise DreamgymError(
                f"V in {str(vae_source)!r} was trained on {self.vae_meta['env']!r} data, but "
                f"{str(self.dataset.root)!r} holds {self.dataset.env!r} data"
            )
        z_size, action_size = self.vae.z_size, self.dataset.action_dim
        # Bad settings are named before V is copied into ``out``.
        known = {f.name for f in dataclasses.fields(MDNRNNConfig)}
        dataclasses.replace(
            mdnrnn_preset(preset, self.dataset.env, z_size, action_size),
            **{k: v for k, v in (overrides or {}).items() if v is not None and k in known},
        )
        self.vae_path = out / VAE_FILE
        if vae_source.resolve() != self.vae_path.resolve():
            if (out / MDNRNN_FILE).exists() and _file_digest(vae_source) != _file_digest(
                self.vae_path
            ):
                raise DreamgymError(
                    f"{str(out)!r} holds an M trained for another V than {str(vae_source)!r};"
                    " use another --out"
                )
            tmp = out / f".{VAE_FILE}.copy.tmp"
            shutil.copyfile(vae_source, tmp)
            tmp.replace(self.vae_path)
            shutil.copyfile(vae_source.with_suffix(".json"), out / "vae.json")

        def check_saved(saved: MDNRNNConfig, meta: dict[str, Any]) -> None:
            if (saved.z_size, saved.action_size) != (z_size, action_size):
                raise DreamgymError(
                    f"{str(self.path)!r} has z_size={saved.z_size}, action_size="
                    f"{saved.action_size}; V and the data give {z_size} and {action_size}"
                )

        meta = self._start(
            out, device, bf16, lambda: mdnrnn_preset(preset, self.dataset.env, z_size, action_size),
            overrides, MDNRNN, check_saved,
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(
            self.optimizer, self.config.lr_decay
        )
        if meta is not None:
            self.scheduler.last_epoch = meta["scheduler_steps"]
        self.mu, self.logvar = cached_latents(
            self.vae, self.vae_path, self.dataset, self.out, self.device
        )
        self.train_eps, self.val_eps = self._split()
        self.calibration: dict[str, Any] | None = None
        self._save_initial_latents()
        if meta is not None:
            self._copy_to_new_members(meta.get("members", 1))

    def _copy_to_new_members(self, planned: int) -> None:
        """Start each member without a checkpoint that the run which began member 0 did not
        plan (k >= ``planned``) from member 0's checkpoint as it is now, before this run trains
        it, with the member's own sampling RNGs; the planned ones start from the seeded init."""
        tensors = None
        for k in range(max(1, planned), self.members):
            target = self.out / member_file(k)
            if target.exists():
                continue
            if tensors is None:
                tensors, meta = read_checkpoint(self.path)
            seed, rng = _member_seeds(self.config.seed, k)
            copy = {**tensors, "rng.torch": torch.Generator(self.device).manual_seed(seed)
                    .get_state()}  # fmt: skip
            copy_meta = {**meta, "component": target.stem, "numpy_rng": rng.bit_generator.state}
            atomic_write_bytes(target, save(copy, metadata={META_KEY: json.dumps(copy_meta)}))

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        """Each dataset split on its own, so that adding a dataset (iterative training) leaves
        the earlier datasets' validation episodes held out."""
        train, val, offset = [], [], 0
        for part in self.dataset.datasets:
            t, v = split_episodes(len(part), self.config.val_fraction, self.config.seed)
            train.append(t + offset)
            val.append(v + offset)
            offset += len(part)
        return np.concatenate(train), np.concatenate(val)

    def _save_initial_latents(self) -> None:
        first = self.dataset.frame_offsets
        bank = {
            "mu": torch.from_numpy(self.mu[first].copy()),
            "logvar": torch.from_numpy(self.logvar[first].copy()),
        }
        atomic_write_bytes(self.out / INITIAL_FILE, save(bank))

    def batch(
        self, episodes: np.ndarray, random_start: bool, sample_z: bool, length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Windows of at most ``length`` (default ``seq_len``) steps from ``episodes``
        (positions), as device tensors, (B, T) with T the longest window."""
        # No longer than the batch's longest window: the same windows, without the steps every
        # window would only pad (a batch of short episodes under a long ``seq_len``).
        length = int(min(length or self.config.seq_len, self.dataset.lengths[episodes].max()))
        w = self.dataset.windows(episodes, length, self.rng if random_start else None)
        actions, rewards, dones = self.dataset.step_arrays()
        mask = w.step_mask

        def z_at(rows: np.ndarray) -> torch.Tensor:
            mu = torch.from_numpy(self.mu[rows]).to(self.device)
            if not sample_z:
                return mu
            std = torch.exp(0.5 * torch.from_numpy(self.logvar[rows]).to(self.device))
            eps = torch.randn(mu.shape, generator=self.generator, device=self.device)
            return mu + std * eps

        def dev(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

        restart = np.zeros_like(mask)
        restart[:, 0] = w.first_step
        return {
            "z": z_at(w.frame_rows[:, :-1]),
            "next_z": z_at(w.frame_rows[:, 1:]),
            "action": dev(actions[w.step_rows] * mask[..., None]),
            "reward": dev(rewards[w.step_rows] * mask),
            "done": dev(dones[w.step_rows] & mask),
            "restart": dev(restart),
            "mask": dev(mask),
        }

    def _losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.bf16):
            heads, _ = self.model(batch["z"], batch["action"], batch["restart"])
        return mdnrnn_losses(
            heads, batch["next_z"], batch["reward"], batch["done"], batch["mask"], self.config
        )

    def train_epoch(self, progress: bool = False) -> dict[str, float]:
        """One pass over the training episodes in a random order, a window from each: Adam with
        the gradient norm clipped at ``grad_clip`` (the paper's 1) and the rate decayed by
        ``lr_decay`` every step; metrics are means over batches."""
        self.model.train()
        if self.config.dropout > 0:
            # The training dropout masks come from torch's global RNG: seeded per member and
            # epoch, so members differ and a resumed run draws what an uninterrupted one would.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda"
                                       else []):  # fmt: skip
                torch.manual_seed(derive_seed(self.config.seed, _DROPOUT_SALT, self.member,
                                              self.epoch))  # fmt: skip
                return self._train_epoch()
        return self._train_epoch()

    def epoch_batches(self) -> list[np.ndarray]:
        """One epoch's batches of training episodes (positions), each episode once.

        The paper's: a random order cut into batches. With ``length_batches``: the random order
        is cut into pools of :data:`LENGTH_POOL` batches, each pool sorted by window length
        (min(episode length, ``seq_len``)) and cut into batches, and all batches shuffled: every
        batch is still a random draw of its pool, but its windows have similar lengths, so that
        it computes few padded steps.
        """
        size = self.config.batch_size
        order = self.rng.permutation(self.train_eps)
        if not self.config.length_batches:
            return [order[i : i + size] for i in range(0, len(order), size)]
        window = np.minimum(self.dataset.lengths[order], self.config.seq_len)
        batches = []
        for p in range(0, len(order), size * LENGTH_POOL):
            pool = order[p : p + size * LENGTH_POOL]
            pool = pool[np.argsort(window[p : p + size * LENGTH_POOL], kind="stable")]
            batches += [pool[i : i + size] for i in range(0, len(pool), size)]
        return [batches[i] for i in self.rng.permutation(len(batches))]

    def _train_epoch(self) -> dict[str, float]:
        means = EpochMeans(per_sample=False, on_device=False)
        for episodes in self.epoch_batches():
            losses = self._losses(self.batch(episodes, random_start=True, sample_z=True))
            optimizer_step(losses["loss"], self.optimizer, clip=self.config.grad_clip,
                           scheduler=self.scheduler)  # fmt: skip
            means.add(losses, 1)
        return means.means()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation losses on the held-out episodes' first windows, with z = mu."""
        if len(self.val_eps) == 0:
            return {}
        self.model.eval()
        losses = self._losses(self.batch(self.val_eps[:256], random_start=False, sample_z=False))
        return {f"val/{k}": v.item() for k, v in losses.items()}

    def _validation(self) -> dict[str, Any]:
        """The held-out episodes of the first dataset (the collection policy's), for
        fidelity reports: their positions in that dataset."""
        first = self.dataset.datasets[0]
        held = sorted(int(i) for i in self.val_eps if i < len(first))
        return {"data": str(first.root.resolve()), "episodes": held}

    def _data_dirs(self) -> list[str]:
        return [str(dataset.root.resolve()) for dataset in self.dataset.datasets]

    def extra_metadata(self) -> dict[str, Any]:
        return {"scheduler_steps": self.scheduler.last_epoch, "datasets": self._data_dirs(),
                "members": self.members}  # fmt: skip

    @torch.no_grad()
    def done_calibration(self) -> dict[str, Any] | None:
        """The done head's logit offset fitted on whole validation episodes (see
        :func:`~dreamgym.worldmodels.vm.mdnrnn.fit_logit_offset`); None without a death there."""
        val = self.val_eps[:256]
        if len(val) == 0:
            return None
        self.model.eval()
        batch = self.batch(val, False, False, length=int(self.dataset.lengths[val].max()))
        heads, _ = self.model(batch["z"], batch["action"], batch["restart"])
        mask = batch["mask"]
        logits = heads["done_logit"][mask].float().cpu().numpy()
        labels = batch["done"][mask].cpu().numpy()
        if not 0 < labels.sum() < len(labels):
            return None
        offset = fit_logit_offset(logits, labels)
        return {"logit_offset": offset, "episodes": len(val), "deaths": int(labels.sum()),
                "predicted_deaths_before": float((1 / (1 + np.exp(-logits))).sum())}  # fmt: skip

    def _trained_members(self) -> list[str]:
        """The files of members 1..K-1 trained as far as member 0, up to the first that is not."""
        names = []
        for k in range(1, self.members):
            path = self.out / member_file(k)
            if not path.exists() or _saved_epoch(path) < self.epoch:
                break
            names.append(member_file(k))
        return names

    def write_bundle(self) -> None:
        files: dict[str, Any] = {"vae": VAE_FILE, "mdnrnn": MDNRNN_FILE,
                                 "initial_latents": INITIAL_FILE}  # fmt: skip
        if trained := self._trained_members():
            files[MEMBERS_KEY] = trained
        write_info(
            self.out, BUNDLE_KIND, self.dataset.meta, z_size=self.config.z_size,
            hidden_size=self.config.hidden_size, files=files,
            done_calibration=self.calibration,
            training={"data": str(self.dataset.root.resolve()), "datasets": self._data_dirs(),
                      "episodes": len(self.dataset), "validation": self._validation(),
                      "vae_epochs": self.vae_meta["epoch"], "mdnrnn_epochs": self.epoch},
        )  # fmt: skip

    def after_epoch(self) -> None:
        self.write_bundle()

    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        """Train until ``config.epochs``, then each further ensemble member likewise; the bundle
        is complete after every epoch, gets the done head's calibration (member 0's) after
        member 0 and lists each further member once it is trained. Returns member 0's history."""
        history = super().fit(progress)
        self.calibration = self.done_calibration()
        self.write_bundle()
        for k in range(1, self.members):
            _MemberTrainer(self, k).fit(progress)
            self.write_bundle()
        return history


class _MemberTrainer(MDNRNNTrainer):
    """Trains ensemble member ``k`` > 0 on the data, latents and validation split of ``lead``
    (member 0's trainer) into ``mdnrnn-m{k}.safetensors``; the bundle is ``lead``'s to write."""

    def __init__(self, lead: MDNRNNTrainer, k: int) -> None:
        self.name, self.member, self.members = Path(member_file(k)).stem, k, lead.members
        self.dataset, self.vae, self.vae_meta = lead.dataset, lead.vae, lead.vae_meta
        self.vae_path = lead.vae_path

        def check_saved(saved: MDNRNNConfig, meta: dict[str, Any]) -> None:
            # All of member 0's settings but epochs, which member 0 may have grown.
            lead_settings = {**dataclasses.asdict(lead.config), "epochs": saved.epochs}
            if dataclasses.asdict(saved) != lead_settings:
                raise DreamgymError(
                    f"{str(self.path)!r} was trained with other settings than "
                    f"{str(lead.path)!r}; use another --out for a new ensemble"
                )

        meta = self._start(lead.out, str(lead.device), lead.bf16, lambda: lead.config,
                           {"epochs": lead.config.epochs}, MDNRNN, check_saved)  # fmt: skip
        if meta is None:  # a fresh member: member 0's initial weights, its own sampling seed
            seed, self.rng = _member_seeds(self.config.seed, k)
            self.generator.manual_seed(seed)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(
            self.optimizer, self.config.lr_decay
        )
        if meta is not None:
            self.scheduler.last_epoch = meta["scheduler_steps"]
        self.mu, self.logvar = lead.mu, lead.logvar
        self.train_eps, self.val_eps = lead.train_eps, lead.val_eps
        self.calibration = None

    def after_epoch(self) -> None:
        """Nothing: the lead lists the member in the bundle once it is trained."""

    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        return EpochTrainer.fit(self, progress)
