"""A latent world model (DINO-WM, LeWM): frames become tokens, a frame-causal transformer
predicts the next frame's tokens from a short history and the action block, and a goal is
reached by making the last tokens close to the goal frame's.

Four encoders, chosen by :attr:`LatentConfig.encoder`:

- ``vit-tiny``: a tiny ViT trained from scratch together with the predictor (LeWM): its CLS token
  (or its patch grid average-pooled to a few tokens) through a BatchNorm MLP projector; SIGReg
  keeps it from collapsing;
- ``pixels``: a fixed encoder, the frame average-pooled to a small colour image (not in the
  papers; :class:`PixelEncoder` says why);
- ``dinov2``: frozen DINOv2 ViT-S/14 patch tokens from a user-provided checkpoint (DINO-WM);
- ``vae``: the mean of a trained dreamgym ConvVAE (V), frozen: one token per frame.

Two predictors, chosen by :attr:`LatentConfig.predictor`: DINO-WM's frame-causal transformer
(``predictor.py``), or, over the ``pixels`` encoder's pooled frames, a convolutional one
(``conv_predictor.py``; not in the papers).

A model step spans ``frameskip`` real steps and takes their actions concatenated (an action
block, DINO-WM's frameskip), so :attr:`LatentWorldModel.action_space` is the real action box
tiled ``frameskip`` times and ``advance`` expects the frame seen after the whole block.
Actions and proprioception are z-scored with the training data's statistics inside the model.

The bundle (kind ``latent``)::

    bundle.json                 {"kind": "latent", "files": {"latent": ..., ...}, ...}
    latent.safetensors          the trained network (and its training state), config in metadata
    initial_frames.safetensors  recorded first frames (uint8) and their proprio: start states
    dinov2.safetensors | vae.safetensors    the frozen encoder, when there is one
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dreamgym.common import validate
from dreamgym.envs import get_env_spec
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.checkpoint import load_model, read_checkpoint
from dreamgym.worldmodels.conv_predictor import ConvPredictor, ConvPredictorConfig
from dreamgym.worldmodels.predictor import Predictor, PredictorConfig
from dreamgym.worldmodels.protocol import check_feature_mode
from dreamgym.worldmodels.readouts import (
    DecodesTokens,
    FrameDecoder,
    ReadsRewardDone,
    RewardDoneHeads,
)
from dreamgym.worldmodels.vit import VisionTransformer, ViTConfig, images_to_input, load_dinov2

BUNDLE_KIND = "latent"
ENCODERS = ("vit-tiny", "pixels", "dinov2", "vae")
PREDICTORS = ("transformer", "conv")
# Frozen networks read from a file, and the name of the bundle's copy of it.
ENCODER_FILES = {"dinov2": "dinov2.safetensors", "vae": "vae.safetensors"}
LR_SCHEDULES = ("constant", "cosine")
ENCODE_CHUNK = 256
PAIR_KEYS = ("start_frames", "goal_frames", "start_proprio", "goal_proprio")


@dataclass
class LatentConfig:
    """The latent world model's architecture and training settings (presets:
    :func:`dreamgym.worldmodels.train_latent.latent_preset`).

    Attributes:
        encoder: ``vit-tiny`` (trained jointly), ``pixels`` (fixed), ``dinov2`` or ``vae``
            (frozen).
        image_size: the side frames are resized to for the ViTs (DINO-WM's DINOv2: 196).
        patch_size, vit_dim, vit_depth, vit_heads: the tiny ViT (64 px: 8, 192, 6, 3).
        vit_tokens: tokens per frame from the tiny ViT: 1 is the CLS token (LeWM), k*k the patch
            grid average-pooled to k x k.
        pixel_grid: the ``pixels`` encoder's side: frames are average-pooled to
            ``pixel_grid`` x ``pixel_grid`` x 3.
        projector_hidden: hidden width of LeWM's BatchNorm MLP projector after the tiny ViT
            (2048); 0 for none.
        dinov2_weights: the DINOv2 ViT-S/14 checkpoint (None: ``$DREAMGYM_HOME/weights/``).
        vae: a trained V's run directory or ``vae.safetensors``, for ``encoder="vae"``.
        history: frames the predictor sees, H (DINO-WM and LeWM: 3).
        frameskip: real steps per model step; their actions are concatenated (DINO-WM: 5).
        action_size: the real env's action size (set from the data).
        proprio_size: the episodes' proprioception size, 0 without (set from the data).
        proprio: use proprioception; None: when the data has it (the ``paper`` and ``cpu``
            presets; ``debug`` says False, and as overrides of None are ignored, pass True).
        predictor: ``transformer`` (DINO-WM's), or ``conv``: a convolutional predictor over
            the ``pixels`` encoder's pooled frames (not in the papers; ``conv_predictor.py``).
        action_emb, proprio_emb: the transformer's embedding widths (DINO-WM: 10 each).
        depth, heads, head_dim, mlp, dropout: the transformer (DINO-WM: 6, 16, 64, 2048, 0.1).
        residual: the transformer reads out changes from the current frame, with a linear path
            from proprio and actions to the next proprio (not in the papers; ``predictor.py``);
            the conv predictor always does.
        conv_channels: the conv predictor's channels at the full grid.
        decoder: train a frame decoder on the (detached) embeddings, so dreams render.
        reward_head: train reward and done heads on the (detached) embeddings, so the model can
            be dreamed in without a goal (rewards and episode ends from the data).
        rollout: also train on the predictor's own imagination (not in the papers, which train
            one step with teacher forcing): from H real frames, imagine this many model steps
            with the recorded action blocks, sliding the history as planning does, and add the
            MSE of the imagined tokens (and proprio) against the real ones; 0 (or 1, whose one
            step is teacher forcing's): none.
        rollout_from: the first epoch (counted from 0) with the rollout loss; with rollout 5 the
            teacher-forced epochs before it cost about a third as much (``docs/benchmarks.md``).
        done_pos_weight: the done head's weight on episode ends (M's: 10).
        sigreg_weight: weight of SIGReg on the jointly trained encoder's embeddings (LeWM: 0.09).
        sigreg_slices: SIGReg's random directions (LeWM: 1024).
        epochs: passes of ``windows_per_epoch`` training windows.
        batch_size: windows per step.
        lr, weight_decay: AdamW's (LeWM: 5e-5, 1e-3; DINO-WM: 5e-4, torch's default 1e-2).
        lr_schedule: ``constant`` (DINO-WM), or ``cosine``: a linear warm-up over the first
            ``warmup`` of the optimizer steps, then a cosine decay to 0 at the last epoch's end
            (LeWM warms up and anneals).
        warmup: the warm-up's fraction of all steps, for ``cosine``.
        grad_clip: gradient norm clip (0: none).
        windows_per_epoch: windows drawn per epoch; None: one per window start in the training
            episodes (DINO-WM's epoch).
        val_fraction: fraction of episodes held out for validation.
        val_windows: fixed validation windows (the same every epoch).
        max_initial_frames: first frames kept in the bundle as start states (and a quarter as
            many start/goal pairs for goal-conditioned dreams).
        goal_offset: real steps from a pair's start to its goal (DINO-WM: 25).
        seed: seeds the initial weights, split, windows, SIGReg directions and dropout.
    """

    encoder: str = "vit-tiny"
    image_size: int = 64
    patch_size: int = 8
    vit_dim: int = 192
    vit_depth: int = 6
    vit_heads: int = 3
    vit_tokens: int = 1
    pixel_grid: int = 8
    projector_hidden: int = 2048
    dinov2_weights: str | None = None
    vae: str | None = None
    history: int = 3
    frameskip: int = 5
    action_size: int = 0
    proprio_size: int = 0
    proprio: bool | None = None
    predictor: str = "transformer"
    action_emb: int = 10
    proprio_emb: int = 10
    depth: int = 6
    heads: int = 16
    head_dim: int = 64
    mlp: int = 2048
    dropout: float = 0.0
    residual: bool = False
    conv_channels: int = 32
    decoder: bool = False
    reward_head: bool = False
    rollout: int = 0
    rollout_from: int = 0
    done_pos_weight: float = 10.0
    sigreg_weight: float = 0.09
    sigreg_slices: int = 1024
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 1e-3
    lr_schedule: str = "constant"
    warmup: float = 0.05
    grad_clip: float = 1.0
    windows_per_epoch: int | None = None
    val_fraction: float = 0.05
    val_windows: int = 256
    max_initial_frames: int = 1024
    goal_offset: int = 25
    seed: int = 0

    @property
    def uses_proprio(self) -> bool:
        return self.proprio_size > 0 and self.proprio is not False

    @property
    def trains_encoder(self) -> bool:
        return self.encoder == "vit-tiny"

    def check(self) -> None:
        """DreamgymError naming the first setting that cannot work."""
        if self.encoder not in ENCODERS:
            raise DreamgymError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        integers = ("history", "frameskip", "action_size", "vit_tokens", "pixel_grid",
                    "conv_channels")  # fmt: skip
        for key in (*integers, "val_windows"):
            validate.integer(key, getattr(self, key))
        for key in ("rollout", "rollout_from"):
            validate.integer(key, getattr(self, key), minimum=0)
        if self.predictor not in PREDICTORS:
            raise DreamgymError(f"predictor must be one of {PREDICTORS}, got {self.predictor!r}")
        if self.predictor == "conv" and (self.encoder != "pixels" or self.pixel_grid % 2):
            raise DreamgymError(
                "predictor='conv' reads pooled frames: it needs encoder='pixels' with an even "
                f"pixel_grid, got encoder={self.encoder!r}, pixel_grid={self.pixel_grid} (other "
                "encoders: predictor='transformer')"
            )
        if self.proprio and not self.proprio_size:
            raise DreamgymError("proprio=True, but the episodes hold no proprio arrays")
        grid = self.image_size // self.patch_size
        side = math.isqrt(self.vit_tokens)
        if self.trains_encoder and (side * side != self.vit_tokens or grid % side):
            raise DreamgymError(
                f"vit_tokens must be 1 (CLS) or k*k with k dividing the {grid}x{grid} patch "
                f"grid, got {self.vit_tokens}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise DreamgymError(
                f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        validate.real("warmup", self.warmup, 0.0, 1.0)
        if self.encoder == "vae" and not self.vae:
            raise DreamgymError("encoder='vae' needs vae=PATH (a trained V's run directory)")


class TinyViTEncoder(nn.Module):
    """LeWM's trained encoder: a tiny ViT's CLS token (or pooled patches) through a BatchNorm
    MLP projector. uint8 frames (N, H, W, 3) -> (N, P, D)."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        self.config = config
        shape = ViTConfig(
            config.image_size, config.patch_size, config.vit_dim, config.vit_depth, config.vit_heads
        )
        self.vit = VisionTransformer(shape)
        d, hidden = config.vit_dim, config.projector_hidden
        self.projector = (
            nn.Sequential(nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.GELU(),
                          nn.Linear(hidden, d)) if hidden else None
        )  # fmt: skip

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        c = self.config
        out = self.vit(images_to_input(frames, c.image_size))  # (N, 1 + n, d)
        if c.vit_tokens == 1:
            z = out[:, :1]
        else:
            n, grid, side = len(out), c.image_size // c.patch_size, math.isqrt(c.vit_tokens)
            patches = out[:, 1:].transpose(1, 2).reshape(n, c.vit_dim, grid, grid)
            z = F.adaptive_avg_pool2d(patches, side).flatten(2).transpose(1, 2)  # (N, k*k, d)
        if self.projector is not None:
            z = self.projector(z.reshape(-1, c.vit_dim)).view(z.shape)
        return z


class PixelEncoder(nn.Module):
    """A fixed encoder: the frame average-pooled to ``grid`` x ``grid`` colour pixels, centred
    on the training frames' mean and scaled so that a dimension varies by 1 on average: one
    token of ``3 * grid * grid``. uint8 frames (N, H, W, 3) -> (N, 1, D), without gradients.

    Not in DINO-WM or LeWM. Why: on 2 CPU cores the tiny ViT, trained for the few thousand
    steps they allow, places Push-T's block only roughly, and DINOv2 is a GPU model. Pooled
    pixels move continuously with the objects in the frame, so their squared distance grows
    with the block's displacement over about a pooled cell and ranks the block's distance
    between two frames of an episode better than the trained CLS token
    (``docs/notes/planning.md``). The
    mean and scale are fitted once on training frames (:meth:`fit`) and saved with the model.
    The ``cpu`` preset reads it at grid 16 with the convolutional predictor, which sees the
    token as the pooled image it is.
    """

    def __init__(self, grid: int) -> None:
        super().__init__()
        self.grid, self.tokens, self.dim = grid, 1, 3 * grid * grid
        self.register_buffer("mean", torch.zeros(self.dim))
        self.register_buffer("scale", torch.ones(()))

    def _pooled(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)
        return F.adaptive_avg_pool2d(x, self.grid).flatten(1)  # (N, 3 * grid * grid)

    @torch.no_grad()
    def fit(self, frames: torch.Tensor) -> None:
        """Fit the mean and the scale to uint8 frames (N, H, W, 3)."""
        pooled = self._pooled(frames).double()
        self.mean.copy_(pooled.mean(0).float())
        spread = (pooled - pooled.mean(0)).pow(2).mean().sqrt()
        self.scale.fill_(1.0 / max(float(spread), 1e-6))

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return ((self._pooled(frames) - self.mean) * self.scale)[:, None]


class FrozenEncoder(nn.Module):
    """A pretrained encoder that is not trained: DINOv2 patch tokens or V's mean.
    uint8 frames (N, H, W, 3) -> (N, P, D), without gradients."""

    def __init__(self, kind: str, model: nn.Module, image_size: int) -> None:
        super().__init__()
        self.kind, self.image_size = kind, image_size
        self.model = model.eval().requires_grad_(False)
        if kind == "dinov2":
            self.tokens, self.dim = (image_size // 14) ** 2, model.config.dim
        else:
            self.tokens, self.dim = 1, model.z_size

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.kind == "dinov2":
            return self.model(images_to_input(frames, self.image_size))[:, 1:]
        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (64, 64):  # V's input size
            x = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
        return self.model.encode(x)[0][:, None]


def frozen_encoder(config: LatentConfig, path: str | Path | None) -> FrozenEncoder | None:
    """The frozen encoder ``config`` names, read from ``path`` (default: the config's path)."""
    if config.encoder == "dinov2":
        model = load_dinov2(path or config.dinov2_weights, config.image_size)
        return FrozenEncoder("dinov2", model, config.image_size)
    if config.encoder == "vae":
        from dreamgym.worldmodels.train_vae import load_vae

        return FrozenEncoder("vae", load_vae(path or config.vae)[0], 64)
    return None


class LatentNet(nn.Module):
    """What is trained: the tiny ViT encoder (``vit-tiny`` only), the predictor with its action
    and proprio embeddings, the optional readouts (decoder, reward/done heads) and the data's
    action and proprio statistics (buffers)."""

    def __init__(self, config: LatentConfig, frozen: FrozenEncoder | None = None) -> None:
        super().__init__()
        config.check()
        self.config = c = config
        if c.encoder in ENCODER_FILES and frozen is None:
            raise ValueError(f"a {c.encoder} latent model needs its frozen encoder")
        self.encoder: nn.Module | None = None
        if c.trains_encoder:
            self.encoder = TinyViTEncoder(c)
            tokens, dim = c.vit_tokens, c.vit_dim
        elif c.encoder == "pixels":
            self.encoder = PixelEncoder(c.pixel_grid)
            tokens, dim = self.encoder.tokens, self.encoder.dim
        else:
            tokens, dim = frozen.tokens, frozen.dim
        block = c.action_size * c.frameskip
        proprio = c.proprio_size if c.uses_proprio else 0
        if c.predictor == "conv":
            self.predictor: Predictor | ConvPredictor = ConvPredictor(ConvPredictorConfig(
                frames=c.history, grid=c.pixel_grid, channels=c.conv_channels, action_dim=block,
                proprio_dim=proprio,
            ))  # fmt: skip
        else:
            self.predictor = Predictor(PredictorConfig(
                frames=c.history, tokens=tokens, token_dim=dim, action_dim=block,
                proprio_dim=proprio, action_emb=c.action_emb, proprio_emb=c.proprio_emb,
                depth=c.depth, heads=c.heads, head_dim=c.head_dim, mlp=c.mlp,
                dropout=c.dropout, residual=c.residual,
            ))  # fmt: skip
        self.decoder = FrameDecoder(tokens, dim) if c.decoder else None
        self.heads = RewardDoneHeads(tokens, dim) if c.reward_head else None
        self.register_buffer("action_mean", torch.zeros(block))
        self.register_buffer("action_std", torch.ones(block))
        self.register_buffer("proprio_mean", torch.zeros(proprio))
        self.register_buffer("proprio_std", torch.ones(proprio))

    def set_statistics(self, actions: np.ndarray, proprio: np.ndarray | None) -> None:
        """Z-score statistics from raw actions (T, A) and proprio (T, Pd); a constant column
        keeps std 1. Actions' are tiled over the block's frameskip steps."""

        def stats(x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.as_tensor(np.asarray(x, np.float64))
            std = x.std(0) if len(x) > 1 else torch.ones(x.shape[1], dtype=x.dtype)
            return x.mean(0).float(), torch.where(std > 1e-6, std, 1.0).float()

        mean, std = stats(actions)
        self.action_mean.copy_(mean.repeat(self.config.frameskip))
        self.action_std.copy_(std.repeat(self.config.frameskip))
        if self.proprio_mean.numel():
            mean, std = stats(proprio)
            self.proprio_mean.copy_(mean)
            self.proprio_std.copy_(std)

    def normalise_actions(self, blocks: torch.Tensor) -> torch.Tensor:
        return (blocks - self.action_mean) / self.action_std

    def normalise_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        """Raw proprio (..., Pd) -> z-scored (..., Pd), as the predictor reads and predicts it."""
        return (proprio - self.proprio_mean) / self.proprio_std


@dataclass
class LatentState:
    """N states of a latent world model: the last H frames' tokens (N, H, P, D), oldest first;
    their z-scored proprioception (N, H, Pd) (Pd = 0 without proprio); and the normalised action
    block taken after each (N, H, A); the last one (after the current frame) is zero until a
    step fills it, as are those of the copies a start repeats (zero is the data's mean)."""

    tokens: torch.Tensor
    proprio: torch.Tensor
    actions: torch.Tensor


class LatentWorldModel:
    """A latent world model loaded from a ``latent`` bundle (see the module docstring).

    Implements the protocol's core and :class:`~dreamgym.worldmodels.protocol.HasGoalCost`;
    a model trained with readouts is loaded as a subclass that also decodes frames and/or
    predicts rewards and episode ends (:func:`latent_world_model`); without heads its dreams
    need a goal. Feature mode: ``latent``, the current frame's tokens flattened (P * D).
    Deterministic: no step options.

    Args:
        net: the trained network.
        frozen: the frozen encoder (None for ``vit-tiny``).
        initial_frames: (E, H, W, 3) uint8 recorded first frames (start states).
        initial_proprio: (E, Pd) their proprio, or None.
        info: the bundle's metadata.
        device: where every operation runs.
        pairs: goal-conditioned dreams' recorded pairs: ``start_frames`` and ``goal_frames``
            (G, H, W, 3) uint8, with ``start_proprio`` and ``goal_proprio`` (G, Pd) for models
            that use proprio.
        goal_threshold: the cost below which a goal counts as reached (default: a tenth of the
            pairs' median start-goal cost, computed here; bundles store it).
    """

    feature_modes = ("latent",)
    step_options = ()
    energies = ("mse", "l1")  # the goal cost's distances (a planner's ``energy``)

    def __init__(
        self,
        net: LatentNet,
        frozen: FrozenEncoder | None,
        initial_frames: torch.Tensor,
        initial_proprio: torch.Tensor | None,
        info: dict[str, Any],
        device: str | torch.device = "cpu",
        pairs: dict[str, torch.Tensor] | None = None,
        goal_threshold: float | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.frozen = frozen.to(self.device) if frozen is not None else None
        self.config = net.config
        self.initial_frames = initial_frames.to(self.device)
        self.initial_proprio = None
        if initial_proprio is not None:
            self.initial_proprio = initial_proprio.to(self.device)
        self.info = info
        self.env = info["env"]
        fs = self.config.frameskip
        self.action_space = gym.spaces.Box(
            np.tile(np.asarray(info["action_low"], np.float32), fs),
            np.tile(np.asarray(info["action_high"], np.float32), fs),
        )
        p = self.net.predictor.config
        self.tokens, self.token_dim, self.proprio_size = p.tokens, p.token_dim, p.proprio_dim
        # The proprio components a goal fixes (Push-T: the agent's position), by the env's spec.
        goal_proprio = get_env_spec(self.env).goal_proprio if self.proprio_size else None
        self.goal_proprio = list(range(self.proprio_size) if goal_proprio is None else goal_proprio)
        self.pairs = None if not pairs else {k: v.to(self.device) for k, v in pairs.items()}
        self._proprio_weight = 1.0
        self.goal_threshold = (
            self._goal_threshold() if goal_threshold is None else float(goal_threshold)
        )

    def feature_size(self, mode: str | None = None) -> int:
        check_feature_mode(self, mode)
        return self.tokens * self.token_dim

    def features(self, state: LatentState, mode: str | None = None) -> torch.Tensor:
        check_feature_mode(self, mode)
        return state.tokens[:, -1].flatten(1).float()

    @torch.no_grad()
    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (N, H, W, 3) -> tokens (N, P, D), in chunks."""
        encoder = self.net.encoder if self.frozen is None else self.frozen
        frames = frames.to(self.device)
        return torch.cat([encoder(frames[i : i + ENCODE_CHUNK])
                          for i in range(0, len(frames), ENCODE_CHUNK)])  # fmt: skip

    def _proprio(self, proprio: torch.Tensor | None, n: int) -> torch.Tensor:
        """(N, Pd) raw proprio -> z-scored; (N, 0) for a model without proprio."""
        if not self.proprio_size:
            return torch.zeros(n, 0, device=self.device)
        if proprio is None:
            raise DreamgymError(
                "this world model was trained with proprioception: pass proprio=(N, "
                f"{self.config.proprio_size}) with the frames"
            )
        return self.net.normalise_proprio(torch.as_tensor(proprio, device=self.device).float())

    @torch.no_grad()
    def encode(self, frames: torch.Tensor, proprio: torch.Tensor | None = None) -> LatentState:
        """States for real frames (N, H, W, 3) uint8 (and proprio (N, Pd) if the model uses
        it): the history is the frame repeated H times, with zero (mean) actions.

        Where it differs from DINO-WM, which starts from H recorded frames: a protocol start
        has one frame, so the predictor's first steps see a standing-still history."""
        tokens = self.embed(frames)
        proprio = self._proprio(proprio, len(tokens))
        h = self.config.history
        actions = torch.zeros(len(tokens), h, self.net.action_mean.numel(), device=self.device)
        return LatentState(
            tokens[:, None].repeat(1, h, 1, 1), proprio[:, None].repeat(1, h, 1), actions
        )

    @torch.no_grad()
    def goal_pairs(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[LatentState, LatentState]:
        """N recorded start frames and the frames ``goal_offset`` real steps later, encoded
        (:class:`~dreamgym.worldmodels.protocol.SamplesGoals`)."""
        if self.pairs is None:
            raise DreamgymError(
                f"bundle {self.info.get('source', '')!r} holds no start/goal pairs (trained "
                "before they were recorded); retrain it for goal-conditioned dreams"
            )
        pick = torch.randint(len(self.pairs["start_frames"]), (n,), generator=generator,
                             device=self.device)  # fmt: skip
        return self._pair_states(pick)

    def _pair_states(self, pick: torch.Tensor) -> tuple[LatentState, LatentState]:
        def encoded(which: str) -> LatentState:
            proprio = self.pairs[f"{which}_proprio"][pick] if self.uses_proprio else None
            return self.encode(self.pairs[f"{which}_frames"][pick], proprio)

        return encoded("start"), encoded("goal")

    @property
    def uses_proprio(self) -> bool:
        """Whether ``encode`` and ``advance`` need the agent's proprioception."""
        return self.proprio_size > 0

    @property
    def proprio_weight(self) -> float:
        """The proprio term's weight in :meth:`cost` (DINO-WM's objective: 1; its alpha)."""
        return self._proprio_weight

    @proprio_weight.setter
    def proprio_weight(self, weight: float) -> None:
        weight = validate.real("proprio weight", weight, 0.0)
        if weight != 1.0 and not self.proprio_size:
            raise DreamgymError(
                f"proprio weight {weight:g} needs a world model trained with proprioception; "
                "this one has no proprio term in its goal cost"
            )
        self._proprio_weight = weight

    @torch.no_grad()
    def _goal_threshold(self) -> float:
        """A tenth of the median cost between (up to 256 of) the recorded starts and goals."""
        if self.pairs is None:
            return 0.0
        pick = torch.arange(min(256, len(self.pairs["start_frames"])), device=self.device)
        return 0.1 * float(self.cost(*self._pair_states(pick)).median())

    @torch.no_grad()
    def initial_state(self, n: int, generator: torch.Generator | None = None) -> LatentState:
        """The encodings of n random recorded first frames."""
        pick = torch.randint(len(self.initial_frames), (n,), generator=generator,
                             device=self.device)  # fmt: skip
        proprio = self.initial_proprio[pick] if self.initial_proprio is not None else None
        return self.encode(self.initial_frames[pick], proprio)

    def _actions_with(self, state: LatentState, action: torch.Tensor) -> torch.Tensor:
        """The history's normalised action blocks with ``action`` (N, A * frameskip, raw) in
        the last slot."""
        expected = self.net.action_mean.numel()
        if action.shape[-1] != expected:
            raise DreamgymError(
                f"action has {action.shape[-1]} values; this model steps on blocks of "
                f"{self.config.frameskip} actions of {self.config.action_size} ({expected})"
            )
        actions = state.actions.clone()
        actions[:, -1] = self.net.normalise_actions(action.to(self.device, torch.float32))
        return actions

    @torch.no_grad()
    def step(
        self, state: LatentState, action: torch.Tensor, generator: torch.Generator | None = None
    ) -> LatentState:
        """One model step (``frameskip`` real steps) for N states: the action block (N, A *
        frameskip) -> the predicted next state, the oldest frame dropped."""
        actions = self._actions_with(state, action)
        proprio = state.proprio if self.proprio_size else None
        tokens, proprio_next = self.net.predictor(state.tokens, actions, proprio, last=True)
        if self.proprio_size:
            proprio = torch.cat([state.proprio[:, 1:], proprio_next[:, -1:]], dim=1)
        else:
            proprio = state.proprio
        return _shifted(state, tokens[:, -1], proprio, actions)

    @torch.no_grad()
    def advance(
        self,
        state: LatentState,
        action: torch.Tensor,
        frames: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> LatentState:
        """Follow a real episode: the action block (N, A * frameskip) was played and
        ``frames`` (and ``proprio``) seen after it; the history takes their encoding."""
        actions = self._actions_with(state, action)
        seen = self.encode(frames, proprio)
        proprio_hist = torch.cat([state.proprio[:, 1:], seen.proprio[:, -1:]], dim=1)
        return _shifted(state, seen.tokens[:, -1], proprio_hist, actions)

    def cost(self, state: LatentState, goal: LatentState, energy: str = "mse") -> torch.Tensor:
        """(N,) mean squared distance between the current tokens and the goal's (one goal or N),
        plus, for a model with proprio, :attr:`proprio_weight` times that of the z-scored proprio
        components the goal fixes (:attr:`goal_proprio`, from the env's spec). With
        ``energy="l1"`` both distances are mean absolute ones (V-JEPA 2-AC's energy).

        DINO-WM's objective compares the whole proprio embedding with weight 1. Here the
        comparison is on the proprioception itself, and for Push-T on the agent's position
        only: the velocity the recorded agent happened to have at the goal is not part of
        success, and in z-scored units 100 px/s of it weigh as much as 74 px of position."""
        if energy not in self.energies:
            raise DreamgymError(f"energy must be one of {self.energies}, got {energy!r}")
        distance = torch.abs if energy == "l1" else torch.square
        diff = state.tokens[:, -1] - goal.tokens[:, -1].to(self.device)
        cost = distance(diff).flatten(1).mean(1)
        if self.proprio_size:
            dims = self.goal_proprio
            proprio = state.proprio[:, -1, dims] - goal.proprio[:, -1, dims].to(self.device)
            cost = cost + self._proprio_weight * distance(proprio).mean(1)
        return cost


class DecodingLatentWorldModel(DecodesTokens, LatentWorldModel):
    """A latent world model with a frame decoder."""


class LatentWorldModelWithHeads(ReadsRewardDone, LatentWorldModel):
    """A latent world model with reward and done heads."""


class DecodingLatentWorldModelWithHeads(DecodesTokens, ReadsRewardDone, LatentWorldModel):
    """A latent world model with a frame decoder and reward and done heads."""


def latent_world_model(net: LatentNet, *args: Any, **kwargs: Any) -> LatentWorldModel:
    """The latent world model class offering exactly the readouts ``net`` has, built with
    :class:`LatentWorldModel`'s arguments."""
    classes = {
        (False, False): LatentWorldModel,
        (True, False): DecodingLatentWorldModel,
        (False, True): LatentWorldModelWithHeads,
        (True, True): DecodingLatentWorldModelWithHeads,
    }
    return classes[net.decoder is not None, net.heads is not None](net, *args, **kwargs)


def _shifted(
    state: LatentState, tokens: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor
) -> LatentState:
    """The history moved one frame on: ``tokens`` (N, P, D) appended, the oldest dropped; the
    new frame's action slot zero."""
    return LatentState(
        torch.cat([state.tokens[:, 1:], tokens[:, None]], dim=1),
        proprio,
        torch.cat([actions[:, 1:], torch.zeros_like(actions[:, :1])], dim=1),
    )


def _required(path: Path) -> Path:
    if not path.exists():
        raise DreamgymError(f"world-model bundle file {str(path)!r} is missing")
    return path


def load_latent(root: Path, info: dict[str, Any], device: str | torch.device) -> LatentWorldModel:
    """Load a ``latent`` bundle (the loader registered for its kind in
    :mod:`dreamgym.worldmodels.bundle`), checking that its parts agree."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = info["files"]
    path = _required(root / files["latent"])
    tensors, meta = read_checkpoint(path)
    config = LatentConfig(**meta["config"])
    if config.action_size != len(info["action_low"]) or meta["env"] != info["env"]:
        raise CorruptFileError(
            f"world-model bundle {str(root)!r} is inconsistent: {path.name} was trained on "
            f"{meta['env']!r} with action size {config.action_size}, the bundle is "
            f"{info['env']!r} with {len(info['action_low'])}"
        )
    frozen = None
    if config.encoder in ENCODER_FILES:
        frozen = frozen_encoder(config, _required(root / files["encoder"]))
    net = LatentNet(config, frozen)
    load_model(net, tensors, path)
    initial_path = _required(root / files["initial_frames"])
    try:
        bank = load_file(str(initial_path))
    except (SafetensorError, OSError) as exc:
        raise CorruptFileError(f"start-frame bank {str(initial_path)!r} is corrupt: {exc}") from exc
    if config.uses_proprio and "proprio" not in bank:
        raise CorruptFileError(f"start-frame bank {str(initial_path)!r} has no proprio")
    proprio = bank["proprio"].float() if "proprio" in bank else None
    pairs = {k: bank[k] for k in PAIR_KEYS if k in bank}
    pairs = {k: v.float() if "proprio" in k else v for k, v in pairs.items()}
    return latent_world_model(net, frozen, bank["frames"], proprio, info, device, pairs,
                              info.get("goal_threshold"))  # fmt: skip
