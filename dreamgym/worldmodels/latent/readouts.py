"""Optional readouts of a latent world model's state: a frame decoder (so its dreams render) and
reward/done heads (so it can be dreamed in without a goal, like V+M).

Both read one frame's tokens, flattened (P * D), and are trained on *detached* embeddings, so
they never shape the latent space the predictor and the goal cost work in (DINO-WM trains its
decoder the same way). The decoder is the World Models VAE's decoder (a linear layer to 1,024
units, then four transposed convolutions to 64 x 64 x 3); the heads are two small MLPs.

A model step spans ``frameskip`` real steps: the reward head predicts the sum of their rewards and
the done head whether the episode ended within them, both read from the frame the step leads to.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dreamgym.worldmodels.common import reconstruction_grid
from dreamgym.worldmodels.vm.vae import deconv_decoder, output_to_frames

DECODED_SIZE = 64
HEAD_HIDDEN = 256


class FrameDecoder(nn.Module):
    """Tokens (N, P, D) -> frames (N, 3, 64, 64) in [0, 1]."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(tokens * dim, 1024)
        self.deconv = deconv_decoder()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(tokens.flatten(1)).view(-1, 1024, 1, 1))


class RewardDoneHeads(nn.Module):
    """Tokens (N, P, D) -> the reward (N,) and the done logit (N,) of the step into that frame."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.reward = nn.Sequential(nn.Linear(tokens * dim, HEAD_HIDDEN), nn.GELU(),
                                    nn.Linear(HEAD_HIDDEN, 1))  # fmt: skip
        self.done = nn.Sequential(nn.Linear(tokens * dim, HEAD_HIDDEN), nn.GELU(),
                                  nn.Linear(HEAD_HIDDEN, 1))  # fmt: skip

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = tokens.flatten(1)
        return self.reward(x).squeeze(-1), self.done(x).squeeze(-1)


def frames_target(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) -> the decoder's target (N, 3, 64, 64) in [0, 1]."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (DECODED_SIZE, DECODED_SIZE):
        x = F.interpolate(x, size=(DECODED_SIZE, DECODED_SIZE), mode="bilinear", antialias=True)
    return x


def readout_losses(
    decoder: FrameDecoder | None,
    heads: RewardDoneHeads | None,
    emb: torch.Tensor,
    frames: torch.Tensor,
    rewards: torch.Tensor | None,
    dones: torch.Tensor | None,
    done_pos_weight: float,
) -> dict[str, torch.Tensor]:
    """The readouts' loss terms for a batch of windows: embeddings (B, H + 1, P, D), detached
    here; frames (B, H + 1, h, w, 3) uint8; the blocks' summed rewards and ended flags (B, H)."""
    emb = emb.detach().float()
    terms: dict[str, torch.Tensor] = {}
    if decoder is not None:
        decoded = decoder(emb.flatten(0, 1))
        terms["decoder"] = F.mse_loss(decoded, frames_target(frames.flatten(0, 1)))
    if heads is not None and rewards is not None and dones is not None:
        reward, done_logit = heads(emb[:, 1:].flatten(0, 1))
        terms["reward"] = F.mse_loss(reward, rewards.flatten().float())
        weight = torch.tensor(done_pos_weight, device=emb.device)
        terms["done"] = F.binary_cross_entropy_with_logits(
            done_logit, dones.flatten().float(), pos_weight=weight
        )
    return terms


@torch.no_grad()
def decoded_grid(
    encoder: nn.Module, decoder: FrameDecoder, frames: torch.Tensor, epoch: int
) -> bytes:
    """A PNG of uint8 ``frames`` (N, H, W, 3) over the decoder's images of their embeddings."""
    decoded = output_to_frames(decoder(encoder(frames).float())).cpu().numpy()
    real = output_to_frames(frames_target(frames)).cpu().numpy()
    return reconstruction_grid(real, decoded, "decoded", epoch)


class DecodesTokens:
    """A latent world model's :class:`~dreamgym.worldmodels.protocol.Decodes` capability."""

    @torch.no_grad()
    def decode(self, state) -> torch.Tensor:
        """The current frame of N states as uint8 images (N, 64, 64, 3)."""
        return output_to_frames(self.net.decoder(state.tokens[:, -1].float()))


class ReadsRewardDone:
    """A latent world model's :class:`~dreamgym.worldmodels.protocol.PredictsRewardDone`."""

    @torch.no_grad()
    def reward_done(self, state) -> tuple[torch.Tensor, torch.Tensor]:
        """The reward (N,) and done probability (N,) of the step into the current frame."""
        reward, done_logit = self.net.heads(state.tokens[:, -1].float())
        return reward, torch.sigmoid(done_logit)
