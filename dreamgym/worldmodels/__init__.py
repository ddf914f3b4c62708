"""World models behind one small protocol (:mod:`dreamgym.worldmodels.protocol`), one folder per
family: V (ConvVAE) + M (MDN-RNN) in :mod:`dreamgym.worldmodels.vm`, and latent models (DINO-WM,
LeWM) in :mod:`dreamgym.worldmodels.latent`; bundles, checkpoints and the training loop are
shared.

>>> from dreamgym import worldmodels
>>> model = worldmodels.load("runs/car/worldmodel")     # a bundle directory
>>> state = model.initial_state(16)
>>> state = model.step(state, actions, temperature=1.0)
>>> reward, done = model.reward_done(state)
"""

from __future__ import annotations

from dreamgym.worldmodels.bundle import load, register_world_model_kind
from dreamgym.worldmodels.latent.model import LatentState, LatentWorldModel
from dreamgym.worldmodels.protocol import WorldModel, state_assign, state_index, state_where
from dreamgym.worldmodels.vm.model import VMState, VMWorldModel

__all__ = [
    "LatentState",
    "LatentWorldModel",
    "VMState",
    "VMWorldModel",
    "WorldModel",
    "load",
    "register_world_model_kind",
    "state_assign",
    "state_index",
    "state_where",
]
