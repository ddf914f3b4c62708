"""DreamVectorEnv: N dreams in one batched world-model step, as a Gymnasium VectorEnv."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from dreamgym.dreams.core import make_core
from dreamgym.dreams.env import upscale
from dreamgym.envs import get_env_spec
from dreamgym.worldmodels import WorldModel

OUTPUTS = ("numpy", "torch")


class DreamVectorEnv(VectorEnv):
    """N dreams stepped together: one batched M call per step, on CPU or GPU.

    Same arguments as :class:`~dreamgym.dreams.env.DreamEnv`, plus:

    Args:
        num_envs: N.
        autoreset_mode: Gymnasium's ``AutoresetMode.NEXT_STEP`` (default: the step after an
            episode ends returns the new episode's first observation, reward 0, and ignores the
            action) or ``SAME_STEP`` (the ending step already returns the new first observation;
            the final one is in ``info["final_obs"]`` (N, obs) where ``info["_final_obs"]``).
        output: ``"numpy"`` (default) or ``"torch"``: observations, rewards and flags stay
            tensors on the model's device, for callers that stay on the GPU.
        render_grid: ``render()`` returns one image tiling all N frames (default) or a list.

    One seed drives the whole batch (``reset(seed=s)``); with N = 1 the trajectory equals a
    single :class:`DreamEnv` reset with the same seed and given the same actions.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "render_fps": 50,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        world_model: str | os.PathLike | WorldModel | None = None,
        env: str | None = None,
        temperature: float | None = None,
        device: str | torch.device = "cpu",
        observation_mode: str | None = None,
        done_mode: str | None = None,
        max_episode_steps: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        output: str = "numpy",
        render_mode: str | None = None,
        goal=None,
        render_size: int = 64,
        dropout: float | None = None,
        render_grid: bool = True,
        ensemble: bool | str = True,
    ) -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be NEXT_STEP or SAME_STEP")
        self.core = make_core(
            num_envs,
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
        self.num_envs = self.core.num_envs
        self.output = output
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.render_grid = render_grid
        self.metadata = {
            **self.metadata,
            "autoreset_mode": mode,
            "render_fps": get_env_spec(model.env).render_fps,
        }
        self.single_action_space = model.action_space
        self.single_observation_space = gym.spaces.Box(
            -np.inf, np.inf, (self.core.observation_size,), np.float32
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self._needs_reset = torch.zeros(self.num_envs, dtype=torch.bool, device=self.core.device)

    @property
    def temperature(self) -> float:
        return self.core.temperature

    def _out(self, x: torch.Tensor):
        return x if self.output == "torch" else x.cpu().numpy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be one int for the whole batch, got {seed!r}")
        first_reset = self.core.state is None
        if seed is not None or first_reset:
            self._np_random, _ = gym.utils.seeding.np_random(seed)
            self.core.seed(self._np_random)
        self._needs_reset.zero_()
        return self._out(self.core.reset_all()), {}

    def step(self, actions) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self.core.state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        core = self.core
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            restart = self._needs_reset.clone()
            if restart.all():  # nothing to step: every env starts a new episode
                core.check_actions(actions)
                core.reset_where(restart)
                obs, reward = core.observe(), torch.zeros(self.num_envs, device=core.device)
                terminated = truncated = torch.zeros_like(restart)
            else:
                obs, reward, terminated, truncated = core.step(actions)
                if restart.any():
                    core.reset_where(restart)
                    obs = core.observe()
                    reward = torch.where(restart, 0.0, reward)
                    terminated, truncated = terminated & ~restart, truncated & ~restart
            self._needs_reset = terminated | truncated
            info: dict[str, Any] = {}
        else:
            obs, reward, terminated, truncated = core.step(actions)
            done = terminated | truncated
            info = {"final_obs": self._out(obs), "_final_obs": self._out(done)}
            if done.any():
                core.reset_where(done)
                obs = core.observe()
        return self._out(obs), self._out(reward), self._out(terminated), self._out(truncated), info

    def render(self) -> np.ndarray | list[np.ndarray] | None:
        if self.render_mode != "rgb_array" or self.core.state is None:
            return None
        frames = upscale(self.core.render(), self.render_size)
        if not self.render_grid:
            return list(frames)
        cols = int(np.ceil(np.sqrt(self.num_envs)))
        rows = int(np.ceil(self.num_envs / cols))
        grid = np.zeros((rows * self.render_size, cols * self.render_size, 3), np.uint8)
        for i, frame in enumerate(frames):
            r, c = divmod(i, cols)
            grid[
                r * self.render_size : (r + 1) * self.render_size,
                c * self.render_size : (c + 1) * self.render_size,
            ] = frame
        return grid
