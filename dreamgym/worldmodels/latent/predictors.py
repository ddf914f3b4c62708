"""The latent model's predictors of the next frame, chosen by ``LatentConfig.predictor``:
DINO-WM's frame-causal transformer (:class:`Predictor`, ``transformer``) and a convolutional
predictor over pooled-pixel frames (:class:`ConvPredictor`, ``conv``; not in the papers).

The transformer
---------------

The DINO-WM predictor: a frame-causal transformer over a short history of latent frames.

A frame is P tokens of width D (DINOv2 patches, or a tiny ViT's CLS token). The action block
taken after each frame and (optionally) the proprioception seen with it (z-scored) are each
embedded by a per-step linear map to a few dims and concatenated to every token of that
frame; the H frames' tokens are one sequence of H * P tokens with a learned position
embedding, and a frame-block causal mask lets a token of frame t attend to every token of
frames 0..t only. The output at frame t is the prediction of frame t + 1, so one pass over a
window of H frames trains H predictions at once (teacher forcing), and at imagination time the
last frame's output is the next latent.

Shapes, with B batch, T <= H frames, P tokens per frame, D token width, A the action block
size, Pd the proprio size, Ea and Ep the action and proprio embedding widths, W = D + Ea + Ep:

    tokens (B, T, P, D), actions (B, T, A) -> Linear -> (B, T, Ea), tiled over P
    proprio (B, T, Pd)                      -> Linear -> (B, T, Ep), tiled over P
    x = cat(...)                            (B, T, P, W) -> (B, T * P, W) + pos[:T * P]
    blocks (frame-causal mask)              (B, T * P, W)
    head(norm(x))                           (B, T, P, D + Pd)
      -> next tokens (B, T, P, D), next proprio = mean over P (B, T, Pd)

Where it differs from DINO-WM (depth 6, 16 heads of 64, MLP 2048, dropout 0.1, 10-d embeddings,
all configurable here): DINO-WM reads the prediction straight from the first D (and next Ep)
channels of its residual stream and reads proprio from the first token; this one ends in a
linear read-out to D + Pd and averages the proprio read-out over the frame's tokens. It
predicts the next (z-scored) proprioception itself, where DINO-WM predicts its embedding: the
embedding is learnt (and starts at weights of 0.02), so an embedding target can shrink towards
zero and with it the proprio loss, which left a CPU-trained model's imagined agent far off
(``docs/notes/planning.md``); a z-scored target keeps its scale. The attention projections have
biases (DINO-WM's qkv has none).

With ``residual`` (the ``cpu-vit`` preset; not in DINO-WM or LeWM) the read-out is a change: the
next tokens are the current ones plus the read-out, and the next proprio is the current one
plus the read-out plus a linear map of the current proprio and action block. Copying is then
the untrained predictor's answer and the agent's own (nearly linear) dynamics have a direct
path: on Push-T a linear map of (proprio, action block) alone places the agent after a model
step better than the absolute read-out did.

The convolutional predictor
---------------------------

A convolutional predictor over pooled-pixel frames (the ``pixels`` encoder's tokens).

Not in DINO-WM or LeWM, whose predictor is a transformer over latent tokens. Why: on Push-T
what a model must imagine to plan a push is contact, the block moving where the agent touches
it. Contact is local, and a convolution applies what it learns about it at one place of the
frame at every place, where a transformer over one token per frame must learn it separately
for every pose the token encodes. On Push-T it imagines the frames after a push far closer to
the real ones than the ``cpu-vit`` transformer does, and planning with it reaches about twice
as many goals (``docs/planning.md``).

A frame is the ``pixels`` encoder's one token of ``3 * G * G`` (channel-major), read back as a
G x G colour image. The prediction for frame t reads the H frames ending at t, as the
transformer's frame-causal mask lets it. Before the first frame the history holds copies of it
with zero (mean) actions, as a start's history does (``LatentWorldModel.encode``), so one pass
over a window trains every frame's prediction (teacher forcing).

Shapes, with B batch, T <= H frames, G the grid, C channels, A the action block size, Pd the
proprio size (both z-scored):

    tokens (B, T, 1, 3 G G) -> frames (B, T, 3, G, G)
    per predicted frame t: its H frames, actions, proprio     (B * T', H, ...)
    frames, x/y coordinates, actions and proprio broadcast    (B * T', 3H + 2 + H (A + Pd), G, G)
    conv 3x3 -> C (G x G); conv 3x3 stride 2 -> 2C (G/2 x G/2)
    2 residual blocks of two 3x3 convs                        (B * T', 2C, G/2, G/2)
    upsample x2, concat the C map, conv 3x3 -> C; conv 1x1 -> the change (B * T', 3, G, G)
    next frame = frame t + change; next proprio = proprio t + Linear(proprio t, action t)
                 + Linear(the mean of the 2C map)

The coordinate channels let the first convolution relate a place in the frame to the agent's
position in the proprio channels. The change read-out starts at zero, so the untrained predictor
copies the frame (as the transformer's ``residual`` read-out does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from dreamgym.worldmodels.latent.encoders import Block

BLOCKS = 2  # the conv predictor's residual blocks


@dataclass(frozen=True)
class PredictorConfig:
    """The predictor's shape.

    Attributes:
        frames: history length H (the most frames one pass sees; DINO-WM: 3).
        tokens: P, tokens per frame.
        token_dim: D, the latent token width (DINOv2 ViT-S: 384).
        action_dim: the size of one action block (raw action size x frameskip).
        proprio_dim: proprioception size; 0 for none.
        action_emb: width of the action embedding (DINO-WM: 10).
        proprio_emb: width of the proprio embedding (DINO-WM: 10); unused without proprio.
        depth: transformer blocks (DINO-WM: 6).
        heads: attention heads (DINO-WM: 16).
        head_dim: width per head (DINO-WM: 64).
        mlp: MLP hidden width (DINO-WM: 2048).
        dropout: on the embeddings, attention and MLP outputs (DINO-WM: 0.1).
        residual: read out the change from the current frame (see the module docstring).
    """

    frames: int = 3
    tokens: int = 1
    token_dim: int = 192
    action_dim: int = 2
    proprio_dim: int = 0
    action_emb: int = 10
    proprio_emb: int = 10
    depth: int = 6
    heads: int = 16
    head_dim: int = 64
    mlp: int = 2048
    dropout: float = 0.0
    residual: bool = False

    @property
    def proprio_width(self) -> int:
        """Ep: the proprio embedding width, 0 without proprio."""
        return self.proprio_emb if self.proprio_dim else 0

    @property
    def width(self) -> int:
        """W = D + Ea + Ep, the width of the transformer's tokens."""
        return self.token_dim + self.action_emb + self.proprio_width


def frame_causal_mask(frames: int, tokens: int, device: torch.device | None = None) -> torch.Tensor:
    """(frames * tokens, frames * tokens) bool: True where token i may attend to token j, i.e.
    where j's frame is not later than i's."""
    frame = torch.arange(frames * tokens, device=device) // tokens
    return frame[None, :] <= frame[:, None]


class Predictor(nn.Module):
    """The frame-causal predictor (see the module docstring)."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = c = config
        self.action_embed = nn.Linear(c.action_dim, c.action_emb)
        self.proprio_embed = nn.Linear(c.proprio_dim, c.proprio_emb) if c.proprio_dim else None
        self.pos_embed = nn.Parameter(torch.zeros(1, c.frames * c.tokens, c.width))
        self.blocks = nn.ModuleList(
            Block(c.width, c.heads, c.mlp, head_dim=c.head_dim, dropout=c.dropout)
            for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.width, eps=1e-6)
        self.head = nn.Linear(c.width, c.token_dim + c.proprio_dim)
        self.proprio_skip = (
            nn.Linear(c.proprio_dim + c.action_dim, c.proprio_dim)
            if c.residual and c.proprio_dim else None
        )  # fmt: skip
        self.register_buffer("mask", frame_causal_mask(c.frames, c.tokens), persistent=False)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        tokens: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None = None,
        last: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict, for each of T frames (or the last one only), the next frame.

        Args:
            tokens: (B, T, P, D) latent frames, T <= H.
            actions: (B, T, A) the (normalised) action block taken after each frame.
            proprio: (B, T, Pd) the frames' z-scored proprioception; needed iff the predictor
                has proprio.
            last: read out the last frame's prediction only (T' = 1 instead of T).

        Returns:
            The predicted next tokens (B, T', P, D) and z-scored proprio (B, T', Pd) (None
            without proprio); those of frame t depend on frames, actions and proprio 0..t only.
        """
        c = self.config
        b, t, p, d = tokens.shape
        if t > c.frames or p != c.tokens or d != c.token_dim:
            raise ValueError(
                f"tokens of shape {tuple(tokens.shape)} do not fit a predictor for "
                f"(B, <= {c.frames}, {c.tokens}, {c.token_dim})"
            )
        parts = [tokens, self.action_embed(actions)[:, :, None].expand(b, t, p, c.action_emb)]
        if self.proprio_embed is not None:
            if proprio is None:
                raise ValueError("this predictor needs proprio")
            embedded = self.proprio_embed(proprio)[:, :, None]
            parts.append(embedded.expand(b, t, p, c.proprio_emb))
        x = torch.cat(parts, dim=-1).reshape(b, t * p, c.width) + self.pos_embed[:, : t * p]
        x = nn.functional.dropout(x, c.dropout, self.training)
        mask = self.mask[: t * p, : t * p]
        for block in self.blocks:
            x = block(x, mask)
        if last:
            x, tokens, actions = x[:, -p:], tokens[:, -1:], actions[:, -1:]
            proprio = proprio[:, -1:] if proprio is not None else None
        out = self.head(self.norm(x)).view(b, tokens.shape[1], p, -1)
        nxt = out[..., :d]
        nxt_proprio = out[..., d:].mean(dim=2) if self.proprio_embed is not None else None
        if c.residual:
            nxt = tokens + nxt
            if nxt_proprio is not None:
                skip = self.proprio_skip(torch.cat([proprio, actions], dim=-1))
                nxt_proprio = proprio + skip + nxt_proprio
        return nxt, nxt_proprio


@dataclass(frozen=True)
class ConvPredictorConfig:
    """The convolutional predictor's shape.

    Attributes:
        frames: history length H.
        grid: G, the side of the pooled frames (even: one stride-2 level).
        channels: C, the channels at the full grid (2C at half of it).
        action_dim: the size of one action block (raw action size x frameskip).
        proprio_dim: proprioception size; 0 for none.
    """

    frames: int = 3
    grid: int = 16
    channels: int = 32
    action_dim: int = 2
    proprio_dim: int = 0

    @property
    def tokens(self) -> int:
        """P: one token per frame."""
        return 1

    @property
    def token_dim(self) -> int:
        """D: the pooled frame's size, 3 * G * G."""
        return 3 * self.grid * self.grid


class ConvPredictor(nn.Module):
    """The convolutional predictor (see the module docstring); called as
    :class:`~dreamgym.worldmodels.latent.predictors.Predictor` is."""

    def __init__(self, config: ConvPredictorConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.grid < 2 or c.grid % 2:
            raise ValueError(f"the conv predictor needs an even grid, got {c.grid}")
        inputs = 3 * c.frames + 2 + c.frames * (c.proprio_dim + c.action_dim)
        ch = c.channels
        self.inp = nn.Conv2d(inputs, ch, 3, padding=1)
        self.down = nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1)
        self.res = nn.ModuleList(nn.Conv2d(2 * ch, 2 * ch, 3, padding=1) for _ in range(2 * BLOCKS))
        self.up = nn.Conv2d(3 * ch, ch, 3, padding=1)
        self.out = nn.Conv2d(ch, 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.proprio_head = self.proprio_skip = None
        if c.proprio_dim:
            self.proprio_head = nn.Linear(2 * ch, c.proprio_dim)
            self.proprio_skip = nn.Linear(c.proprio_dim + c.action_dim, c.proprio_dim)
        axis = torch.linspace(-1.0, 1.0, c.grid)
        ys, xs = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)

    def forward(
        self,
        tokens: torch.Tensor,
        actions: torch.Tensor,
        proprio: torch.Tensor | None = None,
        last: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict the next frame of each of T frames (or of the last one only).

        Args:
            tokens: (B, T, 1, 3 G G) pooled frames, T <= H.
            actions: (B, T, A) the (normalised) action block taken after each frame.
            proprio: (B, T, Pd) the frames' z-scored proprioception; needed iff the predictor
                has proprio.
            last: predict for the last frame only (T' = 1 instead of T).

        Returns:
            The predicted next tokens (B, T', 1, 3 G G) and z-scored proprio (B, T', Pd) (None
            without proprio); those of frame t depend on frames, actions and proprio 0..t only.
        """
        c = self.config
        b, t, p, d = tokens.shape
        if t > c.frames or p != 1 or d != c.token_dim:
            raise ValueError(
                f"tokens of shape {tuple(tokens.shape)} do not fit a conv predictor for "
                f"(B, <= {c.frames}, 1, {c.token_dim})"
            )
        if (proprio is None) != (self.proprio_head is None):
            raise ValueError("pass proprio exactly when the predictor has proprio")
        ends = torch.arange(t - 1 if last else 0, t, device=tokens.device)
        rows = ends[:, None] + torch.arange(1 - c.frames, 1, device=tokens.device)  # (T', H)
        copy = rows < 0  # before the first frame: copies of it, with zero actions
        rows = rows.clamp(min=0)
        n = b * len(ends)
        frames = tokens.view(b, t, 3, c.grid, c.grid)[:, rows]  # (B, T', H, 3, G, G)
        acts = actions[:, rows].masked_fill(copy[None, :, :, None], 0.0)  # (B, T', H, A)
        cond = [acts.reshape(n, -1)]
        if proprio is not None:
            cond.append(proprio[:, rows].reshape(n, -1))
        cond = torch.cat(cond, dim=1)[:, :, None, None].expand(-1, -1, c.grid, c.grid)
        x = torch.cat([frames.reshape(n, -1, c.grid, c.grid),
                       self.coords.expand(n, -1, -1, -1), cond], dim=1)  # fmt: skip
        # Channels-last: oneDNN's small-grid convolutions run faster on a CPU (a pass on 300
        # states 1.6x, a CEM plan about 1.2x; docs/benchmarks.md); the same outputs up to
        # float rounding.
        x = x.contiguous(memory_format=torch.channels_last)
        full = F.gelu(self.inp(x))  # (N, C, G, G)
        h = F.gelu(self.down(full))  # (N, 2C, G/2, G/2)
        for first in range(0, 2 * BLOCKS, 2):
            h = h + self.res[first + 1](F.gelu(self.res[first](h)))
        up = F.interpolate(h, scale_factor=2.0, mode="nearest")
        change = self.out(F.gelu(self.up(torch.cat([up, full], dim=1))))  # (N, 3, G, G)
        current = frames[:, :, -1].reshape(n, 3, c.grid, c.grid)
        nxt = (current + change).view(b, len(ends), 1, d)
        if proprio is None:
            return nxt, None
        now = proprio[:, ends]  # (B, T', Pd)
        skip = self.proprio_skip(torch.cat([now, actions[:, ends]], dim=-1))
        head = self.proprio_head(h.mean(dim=(2, 3))).view(b, len(ends), -1)
        return nxt, now + skip + head
