"""The latent world model's training objective: the loss terms of a batch of windows.

A training window is H + 1 frames ``frameskip`` real steps apart, with the H action blocks
between them (each the ``frameskip`` actions in order, concatenated) and, when the episodes
hold it, the frames' proprioception. The encoder turns all H + 1 frames into tokens; the
frame-causal predictor reads the first H with their action blocks and predicts frames 1..H at
once (teacher forcing, DINO-WM and LeWM alike)::

    loss = MSE(predicted tokens, next frames' tokens)
         + MSE(predicted proprio, next proprio), both z-scored         when proprio is used
         + sigreg_weight * SIGReg(embeddings)                          when the encoder trains
         + MSE(imagined tokens, real tokens) (+ the same for proprio)  from epoch rollout_from

The last term (``rollout`` K, not in DINO-WM or LeWM) trains on the predictor's own imagination:
from the first H real frames of a window of H + K, it imagines K model steps with the recorded
action blocks, sliding the history as planning does, so the frames that planning's last
steps read (imagined ones only, from the (H + 1)-th step on) are seen in training too.

For a frozen encoder (DINOv2, V) the targets carry no gradient; for the jointly trained tiny ViT
they do (LeWM), SIGReg being what stops the encoder from collapsing to a constant. SIGReg is
computed per frame slot and token over the batch (LeWM: per time step), on fresh random
directions every step. The proprio target is the z-scored proprioception itself, not its
learnt embedding as in DINO-WM (see ``predictors.py`` for why).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from dreamgym.worldmodels.common import autocast
from dreamgym.worldmodels.latent.config import LatentConfig
from dreamgym.worldmodels.latent.encoders import FrozenEncoder
from dreamgym.worldmodels.latent.model import LatentNet
from dreamgym.worldmodels.latent.readouts import readout_losses
from dreamgym.worldmodels.latent.sigreg import sigreg


def window_losses(
    net: LatentNet,
    frozen: FrozenEncoder | None,
    config: LatentConfig,
    batch: dict,
    generator: torch.Generator,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """The loss terms of a batch of windows (see the module docstring) and their sum,
    ``"loss"``.

    Args:
        net: the model trained.
        frozen: the frozen encoder (DINOv2, V), or None when ``net`` has its own.
        config: its settings.
        batch: windows as :meth:`LatentTrainer.windows` draws them, on ``net``'s device.
        generator: SIGReg's random directions.
        bf16: bf16 autocast for the forward pass (losses in fp32).
    """
    c, h = config, config.history
    device = batch["frames"].device
    frames = batch["frames"]
    n, t1 = frames.shape[:2]
    with autocast(device, bf16):
        encoder = net.encoder if frozen is None else frozen
        emb = encoder(frames.flatten(0, 1))
        emb = emb.view(n, t1, *emb.shape[1:])  # (B, F, P, D), F = H + 1 or H + rollout
        actions = net.normalise_actions(batch["actions"])  # (B, F - 1, A)
        proprio = net.normalise_proprio(batch["proprio"]) if c.uses_proprio else None
        pred, pred_proprio = net.predictor(
            emb[:, :h], actions[:, :h], None if proprio is None else proprio[:, :h]
        )
    terms = {"pred": F.mse_loss(pred.float(), emb[:, 1 : h + 1].float())}
    loss = terms["pred"]
    if proprio is not None:
        terms["proprio"] = F.mse_loss(pred_proprio.float(), proprio[:, 1 : h + 1].float())
        loss = loss + terms["proprio"]
    if t1 > h + 1:
        rollout = rollout_losses(net, h, emb, actions, proprio, pred, pred_proprio, bf16)
        for key, value in rollout.items():
            terms[key] = value
            loss = loss + value
    if c.trains_encoder and c.sigreg_weight:
        # (B, H + 1, P, D) -> (H + 1, P, B, D): one SIGReg sample set per frame slot and token
        terms["sigreg"] = sigreg(emb.permute(1, 2, 0, 3), generator, c.sigreg_slices)
        loss = loss + c.sigreg_weight * terms["sigreg"]
    readouts = readout_losses(net.decoder, net.heads, emb, frames, batch["rewards"],
                              batch["dones"], c.done_pos_weight)  # fmt: skip
    for key, value in readouts.items():  # on detached embeddings: the core is unaffected
        terms[key] = value
        loss = loss + value
    terms["loss"] = loss
    return terms


def rollout_losses(
    net: LatentNet,
    h: int,
    emb: torch.Tensor,
    actions: torch.Tensor,
    proprio: torch.Tensor | None,
    pred: torch.Tensor,
    pred_proprio: torch.Tensor | None,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """MSE of frames H..F-1 imagined from the first H real ones, one model step at a time
    with the recorded action blocks, the history sliding as in planning (``step``). The
    first imagined frame is the teacher-forced pass's last prediction (``pred[:, -1]``); ``h``
    is the history, H."""
    imagined = [pred[:, -1]]
    tokens = torch.cat([emb[:, 1:h], pred[:, -1:]], dim=1)
    hist = None
    if proprio is not None:
        imagined_proprio = [pred_proprio[:, -1]]
        hist = torch.cat([proprio[:, 1:h], pred_proprio[:, -1:]], dim=1)
    with autocast(emb.device, bf16):
        for k in range(1, emb.shape[1] - h):
            nxt, nxt_proprio = net.predictor(tokens, actions[:, k : k + h], hist, last=True)
            imagined.append(nxt[:, -1])
            tokens = torch.cat([tokens[:, 1:], nxt[:, -1:]], dim=1)
            if hist is not None:
                imagined_proprio.append(nxt_proprio[:, -1])
                hist = torch.cat([hist[:, 1:], nxt_proprio[:, -1:]], dim=1)
    terms = {"rollout": F.mse_loss(torch.stack(imagined, 1).float(), emb[:, h:].float())}
    if proprio is not None:
        terms["rollout_proprio"] = F.mse_loss(
            torch.stack(imagined_proprio, 1).float(), proprio[:, h:].float()
        )
    return terms
