"""ViZDoom scenarios at 64x64 with the World Models continuous action recipe."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import gymnasium as gym
import numpy as np
import vizdoom as vzd

from dreamgym.common import validate
from dreamgym.envs.preprocess import FRAME_SHAPE, resize_frame

STRAFE_THRESHOLD = np.float32(1.0 / 3.0)  # compared in float32, the action dtype
AXIS_PAIRS = (
    (vzd.Button.MOVE_LEFT, vzd.Button.MOVE_RIGHT),
    (vzd.Button.TURN_LEFT, vzd.Button.TURN_RIGHT),
)


def scenario_buttons(scenario: str) -> list[vzd.Button]:
    """The buttons a ViZDoom scenario's ``.cfg`` makes available, in order."""
    game = vzd.DoomGame()
    game.load_config(_config_path(scenario))
    return list(game.get_available_buttons())


def _config_path(scenario: str) -> str:
    path = os.path.join(vzd.scenarios_path, f"{scenario}.cfg")
    if not os.path.isfile(path):
        known = sorted(f[:-4] for f in os.listdir(vzd.scenarios_path) if f.endswith(".cfg"))
        raise ValueError(f"unknown ViZDoom scenario {scenario!r}; known: {', '.join(known)}")
    return path


def action_to_buttons(action: np.ndarray, n_buttons: int) -> list[bool]:
    """Map a continuous action in [-1, 1]^k to the scenario's button presses.

    The first dimension is the paper's left/right axis: below -1/3 presses the first button of the
    scenario's left/right pair, above +1/3 the second, in between neither (no-op). Every further
    dimension drives one further button, pressed when the value is positive.
    """
    axis = np.float32(action[0])
    buttons = [bool(axis < -STRAFE_THRESHOLD), bool(axis > STRAFE_THRESHOLD)]
    buttons.extend(bool(a > 0.0) for a in action[1 : n_buttons - 1])
    return buttons


class Doom64(gym.Env):
    """A ViZDoom scenario (TakeCover by default) seen through 64x64 frames with continuous actions.

    ## Description
    Runs a ViZDoom scenario shipped in the vizdoom wheel, rendered at 160x120 (fast, and as
    detailed as a 64x64 frame can show) and resized, full screen, to 64x64 as in World Models.
    Any scenario whose first two buttons are a left/right pair (MOVE_LEFT/MOVE_RIGHT or
    TURN_LEFT/TURN_RIGHT) works; TakeCover has exactly that pair.

    ## Action Space
    ``Box(-1, 1, (k,), float32)`` with k = number of buttons - 1. Dimension 0 is the paper's
    mapping: < -1/3 strafes (or turns) left, > +1/3 right, otherwise no-op. Each further dimension
    presses one further button (e.g. ATTACK) when positive. TakeCover: k = 1.

    ## Observation Space
    ``Box(0, 255, (64, 64, 3), uint8)``: the whole screen resized to 64x64 RGB.

    ## Rewards
    The scenario's own. TakeCover: +1 for every game tic survived (``frame_skip`` tics per step).

    ## Episode End
    Terminated when the player dies or the scenario ends it (e.g. its goal is reached); truncated
    when the scenario's own timeout runs out or by the time limit the env is registered with
    (TakeCover: 2,100 steps, the paper's cap). ViZDoom shows no frame after the episode ends, so
    the final observation repeats the last frame seen.

    ## Arguments
    ``scenario`` names a ``.cfg`` in ``vizdoom.scenarios_path`` (default ``"take_cover"``);
    ``frame_skip`` repeats each action that many tics (default 1); ``render_mode`` may be
    ``"rgb_array"``: ``render()`` then returns the 120x160 screen.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 35}

    def __init__(
        self, scenario: str = "take_cover", frame_skip: int = 1, render_mode: str | None = None
    ) -> None:
        validate.integer("frame_skip", frame_skip)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.scenario = scenario
        self.frame_skip = int(frame_skip)
        self.render_mode = render_mode
        game = vzd.DoomGame()
        game.load_config(_config_path(scenario))
        buttons = list(game.get_available_buttons())
        if len(buttons) < 2 or tuple(buttons[:2]) not in AXIS_PAIRS:
            raise ValueError(
                f"ViZDoom scenario {scenario!r} has buttons {[b.name for b in buttons]}; the "
                "continuous recipe needs a left/right pair (MOVE_* or TURN_*) as its first two"
            )
        # ViZDoom writes its settings file into the working directory unless told otherwise.
        game.set_doom_config_path(os.path.join(tempfile.gettempdir(), "dreamgym-vizdoom.ini"))
        game.set_window_visible(False)
        game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_mode(vzd.Mode.PLAYER)
        game.init()
        self._game = game
        self._n_buttons = len(buttons)
        self._screen: np.ndarray | None = None
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self._n_buttons - 1,), np.float32)
        self.observation_space = gym.spaces.Box(0, 255, FRAME_SHAPE, np.uint8)

    def _observe(self) -> np.ndarray:
        state = self._game.get_state()
        if state is not None:
            self._screen = state.screen_buffer
        return resize_frame(self._screen)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # ViZDoom's own RNG: seeded from the env's generator so reset(seed) fixes the episode.
        self._game.set_seed(int(self.np_random.integers(2**31 - 1)))
        self._game.new_episode()
        return self._observe(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        buttons = action_to_buttons(np.asarray(action, dtype=np.float32), self._n_buttons)
        reward = float(self._game.make_action(buttons, self.frame_skip))
        finished = self._game.is_episode_finished()
        timeout = self._game.get_episode_timeout()
        timed_out = finished and timeout > 0 and self._game.get_episode_time() >= timeout
        terminated = finished and not timed_out
        return self._observe(), reward, terminated, timed_out, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._screen is None:
            return None
        return self._screen.copy()

    def close(self) -> None:
        self._game.close()
