"""World models behind one small protocol (:mod:`dreamgym.worldmodels.protocol`): V (ConvVAE) +
M (MDN-RNN), and latent models (DINO-WM, LeWM: :mod:`dreamgym.worldmodels.latent`).

>>> from dreamgym import worldmodels
>>> model = worldmodels.load("runs/car/worldmodel")     # a bundle directory
>>> state = model.initial_state(16)
>>> state = model.step(state, actions, temperature=1.0)
>>> reward, done = model.reward_done(state)
"""

from __future__ import annotations

from dreamgym.worldmodels.bundle import load, register_world_model_kind
from dreamgym.worldmodels.latent import LatentState, LatentWorldModel
from dreamgym.worldmodels.protocol import WorldModel, state_assign, state_index, state_where
from dreamgym.worldmodels.vm import VMState, VMWorldModel

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
