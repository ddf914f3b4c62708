"""V: the World Models convolutional VAE over 64x64x3 frames.

Architecture exactly as Ha & Schmidhuber's reference code (4,348,547 parameters at z = 32):

    x (B, 3, 64, 64) in [0, 1]
      conv 32 k4 s2 -> (B, 32, 31, 31)  ReLU
      conv 64 k4 s2 -> (B, 64, 14, 14)  ReLU
      conv 128 k4 s2 -> (B, 128, 6, 6)  ReLU
      conv 256 k4 s2 -> (B, 256, 2, 2)  ReLU  -> flatten (B, 1024)
      dense -> mu (B, z), dense -> logvar (B, z)
    z (B, z)
      dense -> (B, 1024) -> reshape (B, 1024, 1, 1)
      deconv 128 k5 s2 -> (B, 128, 5, 5)    ReLU
      deconv 64 k5 s2 -> (B, 64, 13, 13)    ReLU
      deconv 32 k6 s2 -> (B, 32, 30, 30)    ReLU
      deconv 3 k6 s2 -> (B, 3, 64, 64)      sigmoid

Loss per frame: summed squared error over the 64x64x3 pixels plus the KL divergence to N(0, I),
the KL floored at ``kl_tolerance * z_size`` (free bits), both averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from dreamgym.common import validate
from dreamgym.envs import PAPER, get_env_spec


@dataclass
class VAEConfig:
    """V's architecture and training settings.

    Attributes:
        z_size: latent size (paper: 32 CarRacing, 64 Doom).
        kl_tolerance: the KL floor per latent dimension (paper: 0.5).
        epochs: passes over the training frames (paper: 10).
        batch_size: frames per step (paper: 100).
        lr: Adam learning rate (paper: 1e-4).
        val_fraction: fraction of episodes held out for validation.
        max_episodes: train on a seeded subset of at most this many episodes (None: all). V
            needs far fewer frames than M, which must see many rare events such as deaths; a
            subset keeps V's epochs short on large datasets.
        seed: seeds the split, the batch order and the reparameterisation noise.
    """

    z_size: int = 32
    kl_tolerance: float = 0.5
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-4
    val_fraction: float = 0.05
    max_episodes: int | None = None
    seed: int = 0


# Named presets: the settings each differs from VAEConfig's defaults in; PAPER values are the
# env's (z by env). paper: the reference settings; small; debug: seconds on a CPU (the tests).
VAE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"z_size": PAPER},
    "small": {"z_size": PAPER, "epochs": 5, "batch_size": 64, "lr": 3e-4},
    "debug": {"z_size": PAPER, "epochs": 3, "batch_size": 32, "lr": 1e-3},
}


def vae_preset(name: str, env: str) -> VAEConfig:
    """The preset ``name`` of :data:`VAE_PRESETS` for ``env``'s data.

    Raises:
        DreamgymError: an unknown preset or env.
    """
    validate.preset("VAE", name, VAE_PRESETS)
    return VAEConfig(**get_env_spec(env).paper.fill(VAE_PRESETS[name]))


def deconv_decoder() -> nn.Sequential:
    """The World Models decoder's transposed convolutions: (B, 1024, 1, 1) -> (B, 3, 64, 64) in
    [0, 1]. V decodes with it, and so does a latent model's optional decoder."""
    return nn.Sequential(
        nn.ConvTranspose2d(1024, 128, 5, stride=2), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 5, stride=2), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 6, stride=2), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 6, stride=2), nn.Sigmoid(),
    )  # fmt: skip


class ConvVAE(nn.Module):
    """The World Models VAE (see the module docstring for shapes)."""

    def __init__(self, z_size: int = 32) -> None:
        super().__init__()
        self.z_size = z_size
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 4, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(),
            nn.Conv2d(128, 256, 4, stride=2), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        self.fc_mu = nn.Linear(1024, z_size)
        self.fc_logvar = nn.Linear(1024, z_size)
        self.fc_decode = nn.Linear(z_size, 1024)
        self.decoder = deconv_decoder()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 64, 64) in [0, 1] -> mu (B, z), logvar (B, z)."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z) -> (B, 3, 64, 64) in [0, 1]."""
        return self.decoder(self.fc_decode(z).view(-1, 1024, 1, 1))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct x through a sampled z; returns (reconstruction, mu, logvar)."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar


def vae_loss(
    x: torch.Tensor,
    recon: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kl_tolerance: float,
) -> dict[str, torch.Tensor]:
    """The World Models VAE loss: {"loss", "recon", "kl"}, each averaged over the batch."""
    recon_loss = F.mse_loss(recon.float(), x.float(), reduction="none").sum(dim=(1, 2, 3)).mean()
    mu, logvar = mu.float(), logvar.float()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    kl_floored = kl.clamp(min=kl_tolerance * mu.shape[1]).mean()
    return {"loss": recon_loss + kl_floored, "recon": recon_loss, "kl": kl.mean()}


def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 64, 64, 3) frames (already on the device) -> float (B, 3, 64, 64) in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def output_to_frames(x: torch.Tensor) -> torch.Tensor:
    """float (B, 3, 64, 64) in [0, 1] -> uint8 (B, 64, 64, 3)."""
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
