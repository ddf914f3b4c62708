"""Push-T (gym-pusht) at 64x64 with DINO-WM's relative actions, its state and its success rule."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gym_pusht.envs import PushTEnv

from dreamgym.common import validate
from dreamgym.errors import DreamgymError

ACTION_SCALE = 100.0  # pixels moved by a relative action of 1 (DINO-WM, stable-worldmodel)
WORKSPACE = 512.0  # gym-pusht's targets and positions lie in [0, 512]
SUCCESS_DISTANCE = 20.0
SUCCESS_ANGLE = np.pi / 9


def pusht_state(info: dict[str, Any]) -> np.ndarray:
    """gym-pusht's full state from its step or reset info: agent x, y, block x, y, block angle
    (in [0, 2 pi), as gym-pusht's ``obs_type="state"`` observation), float64 (5,)."""
    block = info["block_pose"]
    return np.array(
        [*info["pos_agent"], block[0], block[1], block[2] % (2 * np.pi)], dtype=np.float64
    )


def success(state: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
    """DINO-WM's Push-T success: the state is within 20 px and pi/9 of the goal.

    As DINO-WM's ``eval_state`` (env/pusht/pusht_wrapper.py): the Euclidean norm of the agent
    and block position errors together (4 numbers) is below 20, and the block angle error,
    wrapped to [-pi, pi], is below pi/9 in magnitude.

    Args:
        state: (..., 5) states (agent x, y, block x, y, block angle).
        goal_state: (..., 5) goal states, broadcast against ``state``.

    Returns:
        bool array of the broadcast leading shape.
    """
    state, goal_state = np.asarray(state, np.float64), np.asarray(goal_state, np.float64)
    if state.shape[-1:] != (5,) or goal_state.shape[-1:] != (5,):
        raise DreamgymError(
            f"Push-T states must end in 5 numbers, got shapes {state.shape} and {goal_state.shape}"
        )
    position = np.linalg.norm(state[..., :4] - goal_state[..., :4], axis=-1)
    angle = np.abs((state[..., 4] - goal_state[..., 4] + np.pi) % (2 * np.pi) - np.pi)
    return (position < SUCCESS_DISTANCE) & (angle < SUCCESS_ANGLE)


class PushT(gym.Env):
    """gym-pusht's Push-T seen through small frames, driven by relative moves of the agent.

    ## Description
    A blue disc (the agent) pushes a grey T-shaped block on a 512x512 table towards a fixed green
    goal pose (gym-pusht's ``PushTEnv``, pymunk physics; each gym-pusht step is 0.1 s of PD
    control of the agent towards a target point). Frames are gym-pusht's own ``pixels``
    observation rendered at ``size`` x ``size``.

    ## Action Space
    ``Box(-1, 1, (2 * action_block,), float32)``: DINO-WM's relative action. Each pair
    ``a`` sets the target ``agent position + 100 * a`` (clipped to the table, [0, 512]^2).
    With ``action_block`` k > 1 the k pairs are applied one after another (DINO-WM's frame skip
    5 concatenates 5 such pairs), each from the agent's position at that moment.

    ## Observation Space
    ``Box(0, 255, (size, size, 3), uint8)``: the frame after the last pair.

    ## Rewards
    gym-pusht's: the block's coverage of the goal pose divided by 0.95, clipped to [0, 1];
    summed over the pairs of a block (and over repeated frames).

    ## Episode End
    Terminated when the block covers more than 95% of the goal pose (gym-pusht's rule); the
    rest of a block is then skipped. Truncated by the time limit the env is registered with
    (300 steps, gym-pusht's).

    ## Info
    ``proprio`` (float32 (4,): agent x, y, vx, vy) and ``state`` (float64 (5,): agent x, y,
    block x, y, block angle in [0, 2 pi)) after every reset and step, with gym-pusht's own keys.

    ## Arguments
    ``size`` is the frame's side in pixels (default 64; DINO-WM uses 224, diffusion policy 96);
    ``action_block`` the number of relative moves per step (default 1); ``frame_skip`` repeats
    each move that many times, each relative to the position reached (default 1);
    ``render_mode`` may be ``"rgb_array"``: ``render()`` then returns gym-pusht's 680x680 view
    with the last target marked.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": PushTEnv.metadata["render_fps"]}

    def __init__(
        self,
        size: int = 64,
        action_block: int = 1,
        frame_skip: int = 1,
        render_mode: str | None = None,
    ) -> None:
        checked = {"size": size, "action_block": action_block, "frame_skip": frame_skip}
        for name, value in checked.items():
            validate.integer(name, value)
        if render_mode not in (None, "rgb_array"):
            raise DreamgymError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.size = int(size)
        self.action_block = int(action_block)
        self.frame_skip = int(frame_skip)
        self.render_mode = render_mode
        # gym-pusht draws its pixels observation only in its rgb_array mode.
        self._pusht = PushTEnv(
            obs_type="pixels",
            render_mode="rgb_array",
            observation_width=self.size,
            observation_height=self.size,
        )
        self._agent = np.zeros(2)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2 * self.action_block,), np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        """gym-pusht's info with ``proprio`` and ``state``; keeps the agent's position, which the
        next relative move starts from."""
        self._agent = np.asarray(info["pos_agent"], np.float64)
        proprio = np.concatenate([info["pos_agent"], info["vel_agent"]]).astype(np.float32)
        return {**info, "proprio": proprio, "state": pusht_state(info)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        frame, info = self._pusht.reset(seed=seed, options=options)
        return frame, self._info(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        moves = np.asarray(action, dtype=np.float64)
        if moves.shape != self.action_space.shape:
            raise DreamgymError(
                f"Push-T action must have shape {self.action_space.shape}, got {moves.shape}"
            )
        total = 0.0
        for move in moves.reshape(self.action_block, 2):
            for _ in range(self.frame_skip):
                target = np.clip(self._agent + ACTION_SCALE * move, 0.0, WORKSPACE)
                frame, reward, terminated, _, info = self._pusht.step(target)
                info = self._info(info)
                total += float(reward)
                if terminated:
                    return frame, total, True, False, info
        return frame, total, False, False, info

    def render(self) -> np.ndarray | None:
        return self._pusht.render() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self._pusht.close()


def replay_states(
    seed: int, actions: np.ndarray, *, action_block: int = 1, frame_skip: int = 1
) -> np.ndarray:
    """The states a recorded action sequence reaches from ``reset(seed)``: goals by replay.

    gym-pusht's ``reset(options={"reset_to_state": s})`` does not restore ``s`` exactly (the
    block lands elsewhere, as its docstring warns), but the same seed and actions reproduce an
    episode exactly: a goal is the state found by replaying the recorded actions, e.g.
    ``replay_states(seed, actions)[t + 25]`` for the state 25 steps after step t.

    Args:
        seed: the episode's seed.
        actions: (T, 2 * action_block) recorded relative actions.
        action_block: as the env that recorded them.
        frame_skip: as the env that recorded them.

    Returns:
        float64 (T + 1, 5): the state after reset and after every action.
    """
    actions = np.asarray(actions)
    if actions.ndim != 2 or actions.shape[1] != 2 * action_block:
        raise DreamgymError(
            f"actions must have shape (T, {2 * action_block}) for action_block={action_block}, "
            f"got {actions.shape}"
        )
    env = PushT(action_block=action_block, frame_skip=frame_skip)
    try:
        states = [env.reset(seed=seed)[1]["state"]]
        states.extend(env.step(action)[4]["state"] for action in actions)
    finally:
        env.close()
    return np.stack(states)
