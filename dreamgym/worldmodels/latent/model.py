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

Two predictors, chosen by :attr:`LatentConfig.predictor`: DINO-WM's frame-causal transformer,
or, over the ``pixels`` encoder's pooled frames, a convolutional one (not in the papers); both
in ``predictors.py``. The settings are in ``config.py``, the encoders in ``encoders.py``.

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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from dreamgym.common import validate
from dreamgym.envs import get_env_spec
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.checkpoint import load_model, read_checkpoint
from dreamgym.worldmodels.latent.config import ENCODER_FILES, LatentConfig
from dreamgym.worldmodels.latent.encoders import (
    FrozenEncoder,
    PixelEncoder,
    TinyViTEncoder,
    frozen_encoder,
)
from dreamgym.worldmodels.latent.predictors import (
    ConvPredictor,
    ConvPredictorConfig,
    Predictor,
    PredictorConfig,
)
from dreamgym.worldmodels.latent.readouts import (
    DecodesTokens,
    FrameDecoder,
    ReadsRewardDone,
    RewardDoneHeads,
)
from dreamgym.worldmodels.protocol import check_feature_mode

BUNDLE_KIND = "latent"
ENCODE_CHUNK = 256
PAIR_KEYS = ("start_frames", "goal_frames", "start_proprio", "goal_proprio")


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

    def cost(self, state: LatentState, goal: LatentState, energy: str = "mse",
             proprio_weight: float | None = None) -> torch.Tensor:  # fmt: skip
        """(N,) mean squared distance between the current tokens and the goal's (one goal or N),
        plus, for a model with proprio, :attr:`proprio_weight` (or ``proprio_weight`` when
        given) times that of the z-scored proprio components the goal fixes
        (:attr:`goal_proprio`, from the env's spec). With ``energy="l1"`` both distances are
        mean absolute ones (V-JEPA 2-AC's energy).

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
            weight = self._proprio_weight if proprio_weight is None else proprio_weight
            cost = cost + weight * distance(proprio).mean(1)
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
