"""The latent world model's named presets (:data:`LATENT_PRESETS`, :func:`latent_preset`).

Each preset is the settings it differs from :class:`LatentConfig`'s defaults in
(``action_size`` and ``proprio_size`` come from the data):

- ``debug``: a very small ViT and predictor, seconds on a CPU (the tests);
- ``cpu``: what 2 CPU cores train in about half an hour and plan with: the fixed
  ``pixels`` encoder at 16 x 16 x 3 and the convolutional predictor
  (``predictors.py``, 32 channels), history 3, frameskip 5, proprio when the data has
  it, and the rollout loss over 3 model steps from the first epoch; AdamW 1e-3, weight
  decay 1e-3, a 5% warm-up then a cosine decay; 40 epochs of 5,120 windows of batch 64.
  Not DINO-WM's or LeWM's recipe: trained on 2 cores, a transformer over one latent token
  per frame imagined hardly any of what a push does to the frame; pooled pixels cannot
  drift to suit the predictor, and the convolution learns contact once for every place in
  the frame (``docs/planning.md``);
- ``cpu-long``: ``cpu`` trained for 72 epochs instead of 40, about 47 minutes on one CPU
  thread: ahead of ``cpu`` on two held-out Push-T pair sets, each time within the noise of
  50 pairs (``docs/planning.md``);
- ``cpu-hour``: ``cpu`` trained for 144 epochs, about 51 minutes on 2 CPU threads (the
  hour that 2 cores have): ahead of ``cpu-long`` on both held-out Push-T pair sets they were
  compared on (``docs/planning.md``);
- ``cpu-hour-bf16``: ``cpu`` trained for 200 epochs under bf16 autocast, about 52-55
  minutes on 2 CPU threads with AVX512-BF16 (1.4x fp32's rate; without it bf16 may be
  slower): on the shipped model's data no better than ``cpu-hour``, with three times the
  ``weak-expert`` episodes (600 and 200 ``pusher-random``) 175 of 200 held-out Push-T pairs
  against ``cpu-hour``'s 167; the shipped ``pretrained:pusht`` (``docs/planning.md``);
- ``cpu-vit``: LeWM's recipe at a size 2 CPU cores can train (the ``cpu`` preset's
  earlier recipe, see CHANGELOG.md): a tiny ViT trained jointly with SIGReg, its CLS token
  the latent, history 3, frameskip 5, DINO-WM's predictor shape (dropout 0.1) on one token
  per frame, proprio when the data has it (DINO-WM); AdamW, weight decay 1e-3 (LeWM), a 5%
  warm-up then a cosine decay (LeWM warms up and anneals); 40 epochs of 5,120 windows of
  batch 64. Where it differs from LeWM, on purpose: the ViT is smaller (patch 16, 128-d,
  depth 4, 4 heads, against patch 8, 192-d, depth 6), the peak learning rate higher (5e-4,
  DINO-WM's, against 5e-5), and the predictor reads out changes (``residual``). At LeWM's
  size and rate 2 cores manage about a tenth of the optimizer steps per minute, too few
  for the predictor to learn more than the identity (``docs/notes/planning.md``);
- ``paper``: DINO-WM: frozen DINOv2 ViT-S/14 patch tokens at 196 px (14 x 14 x 384),
  history 3, frameskip 5, 10-d action and proprio embeddings, predictor depth 6, 16 heads
  of 64, MLP 2048, dropout 0.1, 100 epochs of batch 32, AdamW 5e-4; a GPU job.
"""

from __future__ import annotations

from typing import Any

from dreamgym.common import validate
from dreamgym.worldmodels.latent.config import LatentConfig

_CPU: dict[str, Any] = dict(
    encoder="pixels", pixel_grid=16, predictor="conv", conv_channels=32, rollout=3, epochs=40,
    batch_size=64, lr=1e-3, lr_schedule="cosine", weight_decay=1e-3, windows_per_epoch=5120,
)  # fmt: skip

LATENT_PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        encoder="dinov2", image_size=196, dropout=0.1, epochs=100, batch_size=32, lr=5e-4,
        weight_decay=1e-2,
    ),
    "cpu": _CPU,
    "cpu-long": {**_CPU, "epochs": 72},
    "cpu-hour": {**_CPU, "epochs": 144},
    "cpu-hour-bf16": {**_CPU, "epochs": 200, "bf16": True},
    "cpu-vit": dict(
        patch_size=16, vit_dim=128, vit_depth=4, vit_heads=4, dropout=0.1, residual=True,
        epochs=40, batch_size=64, lr=5e-4, lr_schedule="cosine", weight_decay=1e-3,
        windows_per_epoch=5120,
    ),
    "debug": dict(
        image_size=64, patch_size=16, vit_dim=32, vit_depth=1, vit_heads=2,
        projector_hidden=64, history=2, frameskip=2, proprio=False, action_emb=4,
        proprio_emb=4, depth=1, heads=2, head_dim=16, mlp=64, sigreg_slices=128, epochs=3,
        batch_size=16, lr=1e-3, windows_per_epoch=64, val_windows=32, max_initial_frames=16,
    ),
}  # fmt: skip


def latent_preset(name: str, action_size: int, proprio_size: int = 0) -> LatentConfig:
    """The preset ``name`` of :data:`LATENT_PRESETS` for data with ``action_size``-d actions and
    ``proprio_size``-d proprioception.

    Raises:
        DreamgymError: an unknown preset.
    """
    validate.preset("latent", name, LATENT_PRESETS)
    return LatentConfig(**LATENT_PRESETS[name], action_size=action_size, proprio_size=proprio_size)
