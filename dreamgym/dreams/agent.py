"""Agents over a world model: what acts on a dream's observations, and the same agent acting in
the real env, seeing real frames through the world model.

An agent is anything with ``observation_mode`` (which of the model's observations it reads) and
``act(obs)``, mapping observations (N, F) to actions (N, A) with tensor ops. The linear
controller is one; a planner or a wrapped SB3 model can be another. :class:`WorldModelPolicy`
turns any agent into a real-env policy (the ``act(frame)`` interface of ``dreamgym.rollouts``), so
collection, the real-env evaluation and the videos accept it unchanged.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from dreamgym.worldmodels import WorldModel
from dreamgym.worldmodels.protocol import check_feature_mode


@runtime_checkable
class DreamAgent(Protocol):
    """Acts on a world model's observations (see the module docstring)."""

    @property
    def observation_mode(self) -> str: ...

    def act(self, obs: torch.Tensor) -> torch.Tensor: ...


def check_agent_fits(agent: DreamAgent, model: WorldModel) -> None:
    """DreamgymError unless ``agent`` can act on ``model``'s observations.

    Uses the agent's own ``check_fits(model)`` when it has one (for a detailed message).
    """
    own = getattr(agent, "check_fits", None)
    if callable(own):
        own(model)
        return
    check_feature_mode(model, agent.observation_mode)


class WorldModelPolicy:
    """An agent acting in the real env: the world model encodes the first frame, then advances
    its state with each action taken and the frame that followed; the agent reads the model's
    observation of that state.

    Picklable (Ray ships it to collection and evaluation workers). Subclasses change how the
    agent's decision becomes an action through :meth:`decide`.

    Args:
        agent: the agent; it must fit ``model``.
        model: the world model it acts through.
        label: how a collected dataset names this policy; None names its class.
    """

    def __init__(self, agent: DreamAgent, model: WorldModel, label: str | None = None) -> None:
        check_agent_fits(agent, model)
        self.agent, self.model, self.label = agent, model, label
        self.state = None
        self.last_action: torch.Tensor | None = None

    def reset(self, seed: int) -> None:
        self.state = None

    def decide(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions (1, A) for the model's observation (1, F) of the current state."""
        return self.agent.act(obs)

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        frame_t = torch.tensor(frame)[None]
        if self.state is None:
            self.state = self.model.encode(frame_t)
        else:
            self.state = self.model.advance(self.state, self.last_action, frame_t)
        obs = self.model.features(self.state, self.agent.observation_mode)
        self.last_action = self.decide(obs.cpu())
        return self.last_action[0].numpy().astype(np.float32)
