"""Vision transformers: a tiny ViT trained from scratch (LeWM-style) and DINOv2 ViT-S/14.

One implementation serves both; the configs differ. Module and tensor names follow Meta's
DINOv2 code, so that a DINOv2 checkpoint loads by name::

    patch_embed.proj               Conv2d(3, dim, patch, stride=patch)
    cls_token                      (1, 1, dim)
    pos_embed                      (1, 1 + grid * grid, dim)   grid = 37 for DINOv2 (518 px / 14)
    mask_token                     (1, dim)                    DINOv2 only (unused here)
    blocks.N.norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma
    norm                           the final LayerNorm

Shapes for an image batch x (B, 3, S, S), patch p, n = (S / p)^2 patches, width d:

    patch_embed(x)                 (B, d, S/p, S/p) -> (B, n, d)
    cat(cls_token, patches)        (B, 1 + n, d)
    + pos_embed                    the stored grid resized (bicubic) to S/p when they differ
    blocks                         pre-norm: x + ls1(attn(norm1(x))), x + ls2(mlp(norm2(x)))
    norm                           (B, 1 + n, d): token 0 is the CLS token, 1.. the patches

DINOv2's checkpoint (175 tensors, 22,056,576 parameters for ViT-S/14) cannot be downloaded here:
:func:`load_dinov2` reads a file the user provides, strictly, by Meta's names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from dreamgym.common.io import dreamgym_home
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels.latent.config import LatentConfig

DINOV2_FILE = "dinov2_vits14_pretrain.pth"
DINOV2_PARAMETERS = 22_056_576
DINOV2_TENSORS = 175
# ImageNet statistics: what DINOv2 was trained on, and the usual input normalisation for ViTs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViTConfig:
    """A vision transformer's architecture.

    Attributes:
        image_size: the input side it runs at (frames are resized to it).
        patch_size: pixels per patch side.
        dim: token width.
        depth: transformer blocks.
        heads: attention heads (head width dim / heads).
        mlp_ratio: MLP hidden width over ``dim``.
        pos_grid: side of the stored position-embedding grid; None: image_size // patch_size.
            DINOv2 stores 37 (its 518 px hub default) and resizes it to the input.
        layerscale: per-channel residual scales ``ls1.gamma``, ``ls2.gamma`` (DINOv2).
        mask_token: hold DINOv2's (here unused) ``mask_token`` so its checkpoint loads.
        interpolate_offset: DINOv2's offset added to the target grid when resizing position
            embeddings (0.1).
    """

    image_size: int = 64
    patch_size: int = 8
    dim: int = 192
    depth: int = 6
    heads: int = 3
    mlp_ratio: float = 4.0
    pos_grid: int | None = None
    layerscale: bool = False
    mask_token: bool = False
    interpolate_offset: float = 0.0

    @property
    def grid(self) -> int:
        """Patches per side at ``image_size``."""
        return self.image_size // self.patch_size


TINY = ViTConfig()
"""The LeWM-style tiny ViT: 64 px, patch 8, width 192, depth 6, 3 heads (2,719,296 params)."""


def dinov2_vits14(image_size: int = 224) -> ViTConfig:
    """DINOv2 ViT-S/14 as Meta's hub builds it, run at ``image_size`` (a multiple of 14)."""
    if image_size % 14:
        raise DreamgymError(f"DINOv2 needs an image side divisible by 14, not {image_size}")
    return ViTConfig(image_size=image_size, patch_size=14, dim=384, depth=12, heads=6,
                     pos_grid=37, layerscale=True, mask_token=True,
                     interpolate_offset=0.1)  # fmt: skip


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, 3, S, S) -> (B, n, d)


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention; ``head_dim`` may make the inner width differ from ``dim``
    (DINO-WM's predictor: 16 heads x 64 over 404-wide tokens)."""

    def __init__(self, dim: int, heads: int, head_dim: int | None = None,
                 dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim or dim // heads
        inner = self.heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, dim), mask (L, L) bool (True: may attend) -> (B, L, dim)."""
        b, length, _ = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, L, head_dim) each
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        y = y.transpose(1, 2).reshape(b, length, self.heads * self.head_dim)
        return F.dropout(self.proj(y), drop, self.training)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.dropout(F.gelu(self.fc1(x)), self.dropout, self.training)
        return F.dropout(self.fc2(h), self.dropout, self.training)


class Block(nn.Module):
    """A pre-norm transformer block (DINOv2's names; LayerScale optional)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_hidden: int,
        head_dim: int | None = None,
        layerscale: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, head_dim, dropout)
        self.ls1 = LayerScale(dim) if layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden, dropout)
        self.ls2 = LayerScale(dim) if layerscale else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), mask))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """A ViT returning every token after the final norm (see the module docstring)."""

    def __init__(self, config: ViTConfig = TINY) -> None:
        super().__init__()
        self.config = c = config
        grid = c.pos_grid or c.grid
        self.patch_embed = PatchEmbed(c.patch_size, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, c.dim))
        if c.mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, c.dim))
        hidden = int(c.dim * c.mlp_ratio)
        self.blocks = nn.ModuleList(
            Block(c.dim, c.heads, hidden, layerscale=c.layerscale) for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def position_embedding(self, rows: int, cols: int) -> torch.Tensor:
        """(1, 1 + rows * cols, dim): the stored grid, bicubically resized when it differs
        (DINOv2's rule, offset included, so that its features match Meta's code)."""
        n = self.pos_embed.shape[1] - 1
        grid = math.isqrt(n)
        if rows == cols == grid:
            return self.pos_embed
        pos = self.pos_embed.float()
        patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)  # (1, d, g, g)
        offset = self.config.interpolate_offset
        if offset:
            size = {"scale_factor": ((rows + offset) / grid, (cols + offset) / grid)}
        else:
            size = {"size": (rows, cols)}
        patches = F.interpolate(patches, mode="bicubic", antialias=False, **size)
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([pos[:, :1], patches], dim=1).to(self.pos_embed.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) normalised images -> (B, 1 + n, dim) tokens after the final norm."""
        rows, cols = x.shape[-2] // self.config.patch_size, x.shape[-1] // self.config.patch_size
        tokens = self.patch_embed(x)  # (B, n, d)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embedding(rows, cols)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


def images_to_input(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames -> float (B, 3, size, size), ImageNet-normalised.

    Frames of another size are resized bilinearly (antialiased when shrinking)."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)  # fmt: skip
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def default_dinov2_path() -> Path:
    """Where :func:`load_dinov2` looks when given no path: ``$DREAMGYM_HOME/weights/``."""
    return dreamgym_home() / "weights" / DINOV2_FILE


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file or a ``.pth`` state dict (read with
    ``weights_only=True``: no code runs)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: torch and safetensors raise many types
        raise DreamgymError(f"cannot read weights {str(path)!r}: {exc}") from exc
    if not isinstance(tensors, dict) or not all(
        isinstance(v, torch.Tensor) for v in tensors.values()
    ):
        raise DreamgymError(f"{str(path)!r} is not a state dict of tensors (name -> tensor)")
    return tensors


def load_dinov2(path: str | Path | None = None, image_size: int = 224) -> VisionTransformer:
    """DINOv2 ViT-S/14 with the weights in ``path`` (Meta's names), frozen and in eval mode.

    Args:
        path: a ``.pth`` (Meta's ``dinov2_vits14_pretrain.pth``) or ``.safetensors`` file with
            Meta's tensor names; None: :func:`default_dinov2_path`.
        image_size: the input side it will run at (a multiple of 14; DINO-WM: 196 and 224).

    Raises:
        DreamgymError: the file is missing (saying where to put it), unreadable, or a tensor is
            missing, unexpected or of another shape (naming it), in one line.
    """
    path = Path(path).expanduser() if path is not None else default_dinov2_path()
    if not path.exists():
        raise DreamgymError(
            f"DINOv2 weights not found at {str(path)!r}: download Meta's ViT-S/14 checkpoint "
            f"({DINOV2_FILE}, {DINOV2_TENSORS} tensors) on a machine that can, and put it at "
            f"{str(default_dinov2_path())!r} or pass its path (dinov2_weights=PATH)"
        )
    tensors = read_weights(path)
    model = VisionTransformer(dinov2_vits14(image_size))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = f"missing tensor {missing[0]!r}" if missing else f"unexpected tensor {extra[0]!r}"
        more = len(missing) + len(extra) - 1
        raise DreamgymError(
            f"{str(path)!r} is not a DINOv2 ViT-S/14 checkpoint: {what}"
            + (f" (and {more} more name mismatches)" if more else "")
        )
    for name, value in tensors.items():
        if value.shape != expected[name].shape:
            raise DreamgymError(
                f"{str(path)!r}: tensor {name!r} has shape {tuple(value.shape)}, DINOv2 ViT-S/14 "
                f"has {tuple(expected[name].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    model.requires_grad_(False)
    return model.eval()


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
        from dreamgym.worldmodels.vm.train_vae import load_vae

        return FrozenEncoder("vae", load_vae(path or config.vae)[0], 64)
    return None
