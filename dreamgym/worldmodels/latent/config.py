"""The latent world model's settings (:class:`LatentConfig`) and the choices they name."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dreamgym.common import validate
from dreamgym.errors import DreamgymError

ENCODERS = ("vit-tiny", "pixels", "dinov2", "vae")
PREDICTORS = ("transformer", "conv")
# Frozen networks read from a file, and the name of the bundle's copy of it.
ENCODER_FILES = {"dinov2": "dinov2.safetensors", "vae": "vae.safetensors"}
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class LatentConfig:
    """The latent world model's architecture and training settings (presets:
    :func:`dreamgym.worldmodels.latent.presets.latent_preset`).

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
        dinov2_weights: the DINOv2 ViT-S/14 checkpoint, .pth or .safetensors (None:
            ``$DREAMGYM_HOME/weights/``).
        vae: a trained V's run directory or ``vae.safetensors``, for ``encoder="vae"``.
        history: frames the predictor sees, H (DINO-WM and LeWM: 3).
        frameskip: real steps per model step; their actions are concatenated (DINO-WM: 5).
        action_size: the real env's action size (set from the data).
        proprio_size: the episodes' proprioception size, 0 without (set from the data).
        proprio: use proprioception; None: when the data has it (the ``paper`` and ``cpu``
            presets; ``debug`` says False, and as overrides of None are ignored, pass True).
        predictor: ``transformer`` (DINO-WM's), or ``conv``: a convolutional predictor over
            the ``pixels`` encoder's pooled frames (not in the papers; ``predictors.py``).
        action_emb, proprio_emb: the transformer's embedding widths (DINO-WM: 10 each).
        depth, heads, head_dim, mlp, dropout: the transformer (DINO-WM: 6, 16, 64, 2048, 0.1).
        residual: the transformer reads out changes from the current frame, with a linear path
            from proprio and actions to the next proprio (not in the papers; ``predictors.py``);
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
        lr: AdamW's learning rate (LeWM: 5e-5; DINO-WM: 5e-4).
        weight_decay: AdamW's weight decay (LeWM: 1e-3; DINO-WM: torch's default 1e-2).
        lr_schedule: ``constant`` (DINO-WM), or ``cosine``: a linear warm-up over the first
            ``warmup`` of the optimizer steps, then a cosine decay to 0 at the last epoch's end
            (LeWM warms up and anneals).
        warmup: the warm-up's fraction of all steps, for ``cosine``.
        grad_clip: gradient norm clip (0: none).
        bf16: bf16 autocast for training's forward passes, the losses in fp32 (the trainer's
            ``bf16`` argument, ``--bf16``, sets it): on a CPU with AVX512-BF16 the conv predictor
            trains about 1.4x faster (``docs/benchmarks.md``); planning stays in the weights' dtype.
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
    bf16: bool = False
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
