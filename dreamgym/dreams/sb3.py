"""stable-baselines3 adapter: the batched dream as an SB3 ``VecEnv``.

SB3 does not take a Gymnasium VectorEnv: it wants its own VecEnv, which resets finished episodes in
the same step and hands back the final observation in ``info["terminal_observation"]``. This
adapter runs a :class:`~dreamgym.dreams.vector.DreamVectorEnv` in ``SAME_STEP`` mode underneath,
so PPO, A2C or SAC collect from thousands of dreams per batched world-model step::

    from stable_baselines3 import PPO
    from dreamgym.dreams.sb3 import DreamSB3VecEnv

    venv = DreamSB3VecEnv(num_envs=256, world_model="runs/car")
    PPO("MlpPolicy", venv, n_steps=64, tensorboard_log="runs/car/ppo").learn(100_000)

Each finished episode's return, length and time come back in ``info["episode"]`` (the
convention of SB3's ``VecMonitor``), so SB3 logs ``rollout/ep_rew_mean`` and ``ep_len_mean`` and
keeps them in ``model.ep_info_buffer``. Give SB3 a ``tensorboard_log`` directory (or a logger of
your own, ``model.set_logger``): without one, every ``learn()`` makes an empty ``SB3-<date>``
folder in the temp directory (SB3's default log folder, which nothing is written to).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from dreamgym.dreams.vector import DreamVectorEnv


class DreamSB3VecEnv(VecEnv):
    """N dreams as an SB3 VecEnv. Takes :class:`DreamVectorEnv`'s arguments (``num_envs``,
    ``world_model``, ``env``, ``temperature``, ``device``, ...), except its autoreset mode and
    output, which SB3 fixes (same-step reset, numpy).

    The info of the step that ends an episode holds ``"terminal_observation"``,
    ``"TimeLimit.truncated"`` and, as SB3's ``VecMonitor`` writes it, ``"episode"``: ``{"r":
    return, "l": length, "t": seconds since this VecEnv was made}``.
    """

    def __init__(self, num_envs: int, **kwargs: Any) -> None:
        self.dream = DreamVectorEnv(
            num_envs, autoreset_mode=AutoresetMode.SAME_STEP, output="numpy", **kwargs
        )
        self.render_mode = self.dream.render_mode
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._start = time.time()
        super().__init__(
            num_envs, self.dream.single_observation_space, self.dream.single_action_space
        )

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs, _ = self.dream.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self._returns[:], self._lengths[:] = 0.0, 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, info = self.dream.step(self._actions)
        dones = terminated | truncated
        self._returns += reward
        self._lengths += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        seconds = round(time.time() - self._start, 6)
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i]),
                                   "t": seconds}  # fmt: skip
        self._returns[dones], self._lengths[dones] = 0.0, 0
        return obs, reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.dream.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.dream.core.render()
        return list(frames)

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.dream, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.dream, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        result = getattr(self.dream, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._indices(indices))
