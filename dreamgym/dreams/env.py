"""DreamEnv: a trained world model as a single Gymnasium environment."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dreamgym.dreams.core import make_core
from dreamgym.envs import get_env_spec
from dreamgym.worldmodels import WorldModel


def upscale(frames: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upscale of (..., 64, 64, 3) frames to (..., size, size, 3)."""
    if size == frames.shape[-2]:
        return frames
    index = np.arange(size) * frames.shape[-2] // size
    return frames[..., index[:, None], index[None, :], :]


class DreamEnv(gym.Env):
    """A dream: the real env as the world model imagines it.

    ## Description
    Each step runs the world model's memory (M, an MDN-RNN) once: it reads the current latent
    state and the action, and samples the next latent state at temperature tau. Higher tau makes
    the dream more random (and harder than reality); low tau lets agents exploit the model.

    ## Action Space
    The real env's continuous space: CarRacing ``Box([-1, 0, 0], [1, 1, 1], (3,))``;
    TakeCover ``Box(-1, 1, (1,))``. Actions outside it (or NaN/inf) raise ValueError.

    ## Observation Space
    ``Box(-inf, inf, (n,), float32)``: by default [z, h], V's latent and M's hidden state (the
    paper's controller input: 32 + 256 = 288 for CarRacing); ``observation_mode="z"`` gives z
    only, ``"zch"`` gives [z, c, h] as the original Doom controller read.

    ## Rewards
    M's reward head's prediction for the step (CarRacing: tile rewards; Doom: +1 per step); with
    a ``goal`` state, minus the world model's goal cost instead (models that have one).

    ## Starting State
    z drawn from a random recorded first frame's (mu, logvar); M's state zero.

    ## Episode End
    By the done head: ``done_mode="threshold"`` ends when its probability exceeds 0.5 (the
    paper), ``"sample"`` draws it, ``"calibrated"`` draws it recalibrated on held-out deaths (the
    default for bundles that carry a calibration; otherwise ``"threshold"``); truncated after
    ``max_episode_steps`` (CarRacing 1,000, Doom 2,100 by default).

    ## Arguments
    ``world_model`` (bundle path or loaded model; default: the newest bundle for ``env`` under
    ``$DREAMGYM_HOME``), ``env``, ``temperature`` (default 1.0, Doom 1.15 as in the paper),
    ``device``, ``observation_mode`` (the model's feature vector; default its default),
    ``done_mode``, ``max_episode_steps``, ``render_mode`` (``"rgb_array"``: V decodes the
    current z; refused for a world model without a decoder), ``goal`` (a goal state of the world
    model), ``render_size`` (upscaled frame side) and ``dropout`` (inference dropout in M with a
    fresh mask every episode, Dropout's Dream Land's defence against exploitable dreams; default
    the bundle's) and ``ensemble`` (a bundle with several Ms: each episode dreams with one drawn
    at its start; False: member 0 only; ``"pessimistic"``: every member's done head judges each
    step, the highest end probability ruling).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        world_model: str | os.PathLike | WorldModel | None = None,
        env: str | None = None,
        temperature: float | None = None,
        device: str | torch.device = "cpu",
        observation_mode: str | None = None,
        done_mode: str | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        goal=None,
        render_size: int = 64,
        dropout: float | None = None,
        ensemble: bool | str = True,
    ) -> None:
        self.core = make_core(
            1,
            world_model,
            env=env,
            temperature=temperature,
            device=device,
            observation_mode=observation_mode,
            done_mode=done_mode,
            max_episode_steps=max_episode_steps,
            render_mode=render_mode,
            goal=goal,
            dropout=dropout,
            ensemble=ensemble,
        )
        model = self.core.model
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.metadata = {**self.metadata, "render_fps": get_env_spec(model.env).render_fps}
        self.action_space = model.action_space
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, (self.core.observation_size,), np.float32
        )
        self.real_env_spec = get_env_spec(model.env)

    @property
    def temperature(self) -> float:
        return self.core.temperature

    @property
    def world_model(self) -> WorldModel:
        return self.core.model

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        first_reset = self.core.state is None
        super().reset(seed=seed)
        if seed is not None or first_reset:
            self.core.seed(self.np_random)
        obs = self.core.reset_all()
        return obs[0].cpu().numpy(), {"world_model": self.source}

    @property
    def source(self) -> str:
        """Which world model dreams: its bundle path, or ``pretrained:NAME`` for shipped ones."""
        return str(self.core.model.info.get("source", type(self.core.model).__name__))

    def __str__(self) -> str:
        name = self.spec.id if self.spec is not None else type(self).__name__
        return f"<DreamEnv<{name}> world_model={self.source} tau={self.temperature:g}>"

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.core.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if not torch.is_tensor(action):
            try:
                action = np.asarray(action, dtype=np.float32)
            except (TypeError, ValueError):
                raise ValueError(
                    f"action {action!r} is not numeric; expected values in {self.action_space}"
                ) from None
        if tuple(action.shape) != self.action_space.shape:
            raise ValueError(
                f"action has shape {tuple(action.shape)}; expected {self.action_space.shape} "
                f"from {self.action_space}"
            )
        obs, reward, terminated, truncated = self.core.step(action[None])
        info = {"elapsed_steps": int(self.core.elapsed[0])}
        return obs[0].cpu().numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.core.state is None:
            return None
        return upscale(self.core.render()[0], self.render_size)
