"""A convolutional predictor over pooled-pixel frames (the ``pixels`` encoder's tokens).

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

BLOCKS = 2


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
    :class:`~dreamgym.worldmodels.predictor.Predictor` is."""

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
