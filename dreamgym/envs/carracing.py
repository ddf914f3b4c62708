"""CarRacing at 64x64: Gymnasium's CarRacing-v3 with the World Models preprocessing."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.car_racing import CarRacing

from dreamgym.common import validate
from dreamgym.envs.preprocess import FRAME_SHAPE, resize_frame

DASHBOARD_ROW = 84


class CarRacing64(gym.Env):
    """Gymnasium's CarRacing-v3 seen through 64x64 frames, as in World Models.

    ## Description
    A top-down racing car on a randomly generated track (Gymnasium's ``CarRacing-v3``, continuous
    control). Each 96x96 frame has its dashboard rows 84:96 cropped away, as in the World Models
    reference code, and the remaining 84x96 image is resized to 64x64. Colours are not inverted
    (the original did; later ports dropped it).

    ## Action Space
    ``Box([-1, 0, 0], [1, 1, 1], (3,), float32)``: steering, gas, brake, exactly as CarRacing-v3.

    ## Observation Space
    ``Box(0, 255, (64, 64, 3), uint8)``: the cropped and resized RGB frame.

    ## Rewards
    CarRacing's own: -0.1 every frame and +1000/N for every track tile visited (N tiles);
    -100 when the car leaves the playfield. With ``frame_skip`` > 1 the rewards of the repeated
    frames are summed.

    ## Episode End
    Terminated when every tile is visited or the car leaves the playfield. Truncated by the
    time limit the env is registered with (1,000 steps, as CarRacing-v3).

    ## Arguments
    ``frame_skip`` repeats each action that many frames (default 1). ``render_mode`` may be
    ``"rgb_array"``: ``render()`` then returns CarRacing's full-resolution frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, frame_skip: int = 1, render_mode: str | None = None) -> None:
        validate.integer("frame_skip", frame_skip)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.frame_skip = int(frame_skip)
        self.render_mode = render_mode
        self._car = CarRacing(render_mode=render_mode, continuous=True)
        self.action_space = self._car.action_space
        self.observation_space = gym.spaces.Box(0, 255, FRAME_SHAPE, np.uint8)

    @staticmethod
    def preprocess(frame: np.ndarray) -> np.ndarray:
        """Crop the dashboard away and resize a 96x96x3 CarRacing frame to 64x64x3."""
        return resize_frame(frame[:DASHBOARD_ROW])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        frame, info = self._car.reset(seed=seed, options=options)
        return self.preprocess(frame), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        total = 0.0
        terminated = truncated = False
        info: dict[str, Any] = {}
        for _ in range(self.frame_skip):
            frame, reward, terminated, truncated, info = self._car.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return self.preprocess(frame), total, terminated, truncated, info

    def render(self) -> np.ndarray | None:
        return self._car.render() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self._car.close()
