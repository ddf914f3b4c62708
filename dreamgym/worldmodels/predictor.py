"""The DINO-WM predictor: a frame-causal transformer over a short history of latent frames.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dreamgym.worldmodels.vit import Block


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
