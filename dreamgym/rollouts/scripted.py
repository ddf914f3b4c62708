"""Scripted collection policies that read the game: Push-T's weak expert and pusher (from the
env's state) and CarRacing's road driver (from the pixels). They are collection policies, not
agents: each shows a world model situations a random policy rarely reaches.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dreamgym.common import validate
from dreamgym.errors import DreamgymError
from dreamgym.rollouts.policies import _SeededPolicy

# Pixels per unit of a Push-T relative move (dreamgym.envs.pusht.ACTION_SCALE; that module is
# not imported here, as it loads gym-pusht's physics and drawing libraries).
PUSHT_MOVE_SCALE = 100.0


class WeakExpertPolicy(_SeededPolicy):
    """Push-T's collection policy (stable-worldmodel's "weak expert"): uniform relative moves of
    up to 100 px, with each target kept within 100 px (per axis) of the block so that the agent
    keeps pushing it.

    Each pair of the action is ``a`` ~ U[-1, 1]^2 (target ``p + 100 a`` from the agent position
    ``p``); the target is clipped to the box of half-side ``reach`` around the block and ``a`` is
    recomputed from it (clipped to [-1, 1]). With several pairs (an action block) each later pair
    starts from the previous pair's target. The state comes from ``info["state"]``
    (:meth:`observe_info`); without one (e.g. driven inside a dream, where there is no info) the
    moves stay uniform.

    Args:
        action_space: the env's action space, ``Box(-1, 1, (2k,))``.
        reach: half-side in pixels of the box around the block that targets are kept in.
    """

    def __init__(self, action_space: gym.spaces.Box, reach: float = 100.0) -> None:
        super().__init__(action_space)
        shape = action_space.shape
        if len(shape) != 1 or shape[0] % 2 or (self.low != -1).any() or (self.high != 1).any():
            raise DreamgymError(
                f"the weak expert needs Push-T's relative moves, Box(-1, 1, (2k,)), got "
                f"{action_space}"
            )
        self.reach = float(reach)
        self.state: np.ndarray | None = None

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.state = None

    def observe_info(self, info: dict[str, Any]) -> None:
        """Remember the agent and block positions of ``info["state"]`` (when there is one)."""
        state = info.get("state")
        self.state = None if state is None else np.asarray(state, np.float64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        moves = self._uniform().reshape(-1, 2)
        if self.state is None:
            return moves.reshape(-1)
        position, block = self.state[:2], self.state[2:4]
        for move in moves:
            target = position + PUSHT_MOVE_SCALE * move
            target = np.clip(target, block - self.reach, block + self.reach)
            move[:] = np.clip((target - position) / PUSHT_MOVE_SCALE, -1.0, 1.0)
            position = position + PUSHT_MOVE_SCALE * move
        return moves.reshape(-1)


# The T of gym-pusht (``PushTEnv.add_tee``, scale 30) in its body frame: the bar and the stem as
# (centre, half-size) boxes, and its centre of mass (the mean of the two boxes' centres).
PUSHT_T_BOXES = np.array([[[0.0, 15.0], [60.0, 15.0]], [[0.0, 75.0], [15.0, 45.0]]])
PUSHT_T_COM = np.array([0.0, 45.0])
PUSHT_AGENT_RADIUS = 15.0
PUSHT_PUSH_DEPTH = 80.0  # the furthest past its contact a push aims (px)
PUSHT_PD_REACH = 0.3  # the part of a move gym-pusht's PD control covers in one step
PUSHT_GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])  # gym-pusht's fixed goal (info["goal_pose"])


def _pusht_outline(spacing: float = 5.0, corner: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``spacing`` px along the T's outline (body frame), ``corner`` px clear of its
    corners, with their outward normals."""
    corners = [(-60, 0), (60, 0), (60, 30), (15, 30), (15, 120), (-15, 120), (-15, 30), (-60, 30)]
    points, normals = [], []
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        a, b = np.array(a, np.float64), np.array(b, np.float64)
        length = np.linalg.norm(b - a)
        tangent = (b - a) / length
        # The outline runs clockwise on screen (y down), so the outward normal is the tangent
        # turned by -90 degrees: (t_y, -t_x).
        normal = np.array([tangent[1], -tangent[0]])
        for s in np.arange(corner, length - corner + 1e-9, spacing):
            points.append(a + s * tangent)
            normals.append(normal)
    return np.array(points), np.array(normals)


def _t_distance(points: np.ndarray) -> np.ndarray:
    """Distance from body-frame points (..., 2) to the T (0 inside)."""
    gaps = np.abs(points[..., None, :] - PUSHT_T_BOXES[:, 0]) - PUSHT_T_BOXES[:, 1]
    return np.linalg.norm(np.maximum(gaps, 0.0), axis=-1).min(axis=-1)


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


class PusherPolicy(_SeededPolicy):
    """Push-T's scripted pusher: reads the true state and pushes the T toward a target pose.

    Every step it compares where each point of the T's outline is with where that point lies in
    the target pose: the point whose required displacement points most into the block (along its
    inward normal) is the contact, as pushing there moves it the way it must go (a point behind
    the centre of mass translates the block, one off it also turns it). The agent goes to a
    standing point just outside the contact, around the block (along a circle clear of it) when
    the straight way would sweep through it, then pushes along the inward normal, by as much as
    that point still has to move. A push goes on while its point needs at least 70% of the push
    the best point needs (so the pusher does not dither between sides).

    The target is the env's goal pose (``target="goal"``, the default: expert-like episodes that
    push the T onto its goal, as DINO-WM's demonstrations) or a random pose drawn where the reset
    puts the block (``target="random"``, policy ``pusher-random``: a new one each time one is
    reached or after 100 steps, so the block keeps moving and visits every pose; more varied
    data, but the episodes are not pushes to the goal).

    Noise: each move gets Gaussian noise of std ``noise``, and with probability ``detour`` per
    step the agent makes a random move held for 1-5 steps (the block is left or knocked off
    course and the pusher recovers). Without ``info["state"]`` (e.g. inside a dream) its moves
    are uniform, as the weak expert's. It is tuned for one move per step (Push-T's default): with
    an action block of k it decides once per k moves, and pushes less precisely.

    Args:
        action_space: the env's action space, ``Box(-1, 1, (2k,))``.
        target: ``"goal"`` or ``"random"``.
        noise: std of the Gaussian noise added to each move (in action units, 100 px).
        detour: probability per step of starting a random detour.
        standoff: distance in px between the agent's edge and the contact where a push starts.
    """

    def __init__(
        self,
        action_space: gym.spaces.Box,
        target: str = "goal",
        noise: float = 0.1,
        detour: float = 0.03,
        standoff: float = 10.0,
    ) -> None:
        super().__init__(action_space)
        shape = action_space.shape
        if len(shape) != 1 or shape[0] % 2 or (self.low != -1).any() or (self.high != 1).any():
            raise DreamgymError(
                f"the pusher needs Push-T's relative moves, Box(-1, 1, (2k,)), got {action_space}"
            )
        self.target = validate.choice("pusher target", target, ("goal", "random"))
        self.noise = validate.real("pusher noise", noise, 0.0, 1.0)
        self.detour = validate.real("pusher detour", detour, 0.0, 1.0)
        self.standoff = validate.real("pusher standoff", standoff, 0.0, 100.0)
        self.points, self.normals = _pusht_outline()
        # A contact is usable only where the agent fits against it (not in the T's inner corners)
        # and its standing point is clear of the T.
        touch = _t_distance(self.points + self.normals * (PUSHT_AGENT_RADIUS + 1.0))
        stand = _t_distance(self.points + self.normals * (PUSHT_AGENT_RADIUS + self.standoff))
        self.usable = (touch >= PUSHT_AGENT_RADIUS) & (stand >= PUSHT_AGENT_RADIUS + 2.0)
        # Radius around the centre of mass that clears the T and the agent: the way around it.
        self.clear = np.linalg.norm(self.points - PUSHT_T_COM, axis=1).max() + 25.0
        self.reset(0)

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.state: np.ndarray | None = None
        self.goal = PUSHT_GOAL_POSE.copy()
        self.pose: np.ndarray | None = None  # the current random target (drawn when needed)
        self.pose_left = 0  # steps before a new random target is drawn
        self.contact = -1  # index of the point being pushed, -1 when none
        self.detour_move, self.detour_left = np.zeros(2), 0

    def observe_info(self, info: dict[str, Any]) -> None:
        """Remember the true state (``info["state"]``) and the goal pose (``info["goal_pose"]``)."""
        state = info.get("state")
        self.state = None if state is None else np.asarray(state, np.float64)
        if info.get("goal_pose") is not None:
            self.goal = np.asarray(info["goal_pose"], np.float64)

    def _random_pose(self) -> np.ndarray:
        # gym-pusht's reset range for the block, so the pose is one a T can be pushed to.
        return np.array([*self.rng.uniform(100, 400, 2), self.rng.uniform(0, 2 * np.pi)])

    def _aim(self, agent: np.ndarray, block: np.ndarray) -> np.ndarray:
        """The point the agent should head for this step (absolute, px)."""
        rotation = _rotation(block[2])
        if self.target == "random":
            if self.pose is None or self.pose_left == 0:
                self.pose, self.pose_left = self._random_pose(), 100
            self.pose_left -= 1
        pose = self.goal if self.target == "goal" else self.pose
        # Where each outline point is and where it must go; the push it needs, into the block.
        here = block[:2] + self.points @ rotation.T
        there = pose[:2] + self.points @ _rotation(pose[2]).T
        normals = self.normals @ rotation.T
        need = np.einsum("ij,ij->i", there - here, -normals)
        need[~self.usable] = -np.inf
        if self.target == "random" and np.abs(there - here).max() < 8.0:
            self.pose, self.contact = None, -1  # reached: the next step draws a new target
            return agent
        best = int(np.argmax(need))
        if self.contact < 0 or need[self.contact] < 0.7 * need[best]:
            self.contact = best
        i = self.contact
        if need[i] <= 1.0:
            return agent  # nothing left to push: stay
        touch = here[i] + normals[i] * PUSHT_AGENT_RADIUS  # agent centre touching the contact
        # The agent's offset from the push line: along the normal (outward) and across it.
        offset = agent - touch
        along = offset @ normals[i]
        across = abs(offset @ np.array([-normals[i, 1], normals[i, 0]]))
        if across < 10.0 and -5.0 < along < self.standoff + 10.0:
            # Push: aim past the contact, inward, by as much as the point still has to move.
            return touch - normals[i] * min(need[i], PUSHT_PUSH_DEPTH)
        stand = touch + normals[i] * self.standoff
        # Straight to the standing point when the way is clear of the T (or the agent is already
        # on the standing point's side of it), else around the T along a circle clear of it.
        com = block[:2] + rotation @ PUSHT_T_COM
        here_angle = np.arctan2(*(agent - com)[::-1])
        there_angle = np.arctan2(*(stand - com)[::-1])
        turn = (there_angle - here_angle + np.pi) % (2 * np.pi) - np.pi
        path = agent + np.linspace(0.0, 1.0, 12)[:, None] * (stand - agent)
        free = _t_distance((path - block[:2]) @ rotation).min() >= PUSHT_AGENT_RADIUS + 2.0
        if free or abs(turn) < 0.2:
            return stand
        angle = here_angle + np.clip(turn, -0.6, 0.6)  # a chord of the circle at a time
        return com + self.clear * np.array([np.cos(angle), np.sin(angle)])

    def act(self, obs: np.ndarray) -> np.ndarray:
        pairs = self.low.shape[0] // 2
        if self.state is None:
            return self._uniform()
        agent, block = self.state[:2], self.state[2:5]
        if self.detour_left == 0 and self.rng.random() < self.detour:
            self.detour_move = self.rng.uniform(-1.0, 1.0, 2)
            self.detour_left = int(self.rng.integers(1, 6))
        if self.detour_left > 0:
            self.detour_left -= 1
            self.contact = -1
            aim = agent + PUSHT_MOVE_SCALE * self.detour_move
        else:
            aim = self._aim(agent, block)
        aim = aim + PUSHT_MOVE_SCALE * self.noise * self.rng.standard_normal(2)
        # Each pair of an action block aims at the same point from where the agent is expected
        # to be by then.
        moves, position = [], agent
        for _ in range(pairs):
            moves.append(np.clip((aim - position) / PUSHT_MOVE_SCALE, -1.0, 1.0))
            position = position + PUSHT_PD_REACH * PUSHT_MOVE_SCALE * moves[-1]
        return np.concatenate(moves).astype(np.float32)


class RoadDriverPolicy(_SeededPolicy):
    """CarRacing's driving collection policy: a crude road follower with a changing speed.

    It steers toward the centroid of the grey road pixels a few rows ahead of the car in the 64x64
    frame and holds a gas level drawn from ``gas_levels`` for a random 20-120 steps, so its
    episodes show the car standing (gas 0, sometimes braking), crawling and driving at several
    speeds on the road, which a world model needs to learn that only motion along the road pays
    (the frame hides the speed). Steering carries slowly varying noise, and with probability
    ``drift`` per step the car swerves for 5-25 steps, leaves the road and finds it again (with no
    road in view it turns slowly toward the side that showed road last). It is a collection
    policy, not an agent: it scores well below a trained controller on most tracks.

    Args:
        action_space: CarRacing's ``Box([-1, 0, 0], [1, 1, 1])``.
        gas_levels: the gas values a segment holds.
        steer_noise: scale of the steering noise (an AR(1) process, coefficient 0.9).
        drift: probability per step of starting a swerve.
    """

    def __init__(
        self,
        action_space: gym.spaces.Box,
        gas_levels: tuple[float, ...] = (0.0, 0.05, 0.1, 0.1, 0.15, 0.2, 0.3),
        steer_noise: float = 0.08,
        drift: float = 0.01,
    ) -> None:
        super().__init__(action_space)
        if action_space.shape != (3,):
            raise DreamgymError(
                f"the road driver needs CarRacing's (steer, gas, brake) actions, got {action_space}"
            )
        self.gas_levels = np.asarray(gas_levels, np.float32)
        self.steer_noise, self.drift = float(steer_noise), float(drift)
        self.reset(0)

    observes = True  # it steers by the frame

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.gas, self.left, self.noise = 0.0, 0, 0.0
        self.swerve, self.swerve_left, self.last_side = 0.0, 0, 1.0

    def _steer_to_road(self, obs: np.ndarray) -> float:
        frame = obs.astype(np.int16)
        r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
        road = (abs(r - g) < 20) & (abs(g - b) < 20) & (r > 70) & (r < 170)
        # Rows 26-41 lie ahead of the car (which sits near row 52); nearer rows if none there.
        for rows in (slice(26, 42), slice(42, 56), slice(0, 64)):
            cols = np.nonzero(road[rows])[1]
            if len(cols) >= 3:
                offset = (cols.mean() - 31.5) / 10.0
                self.last_side = 1.0 if offset >= 0 else -1.0
                return float(np.clip(offset, -1.0, 1.0))
        return 0.5 * self.last_side

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.left <= 0:
            self.gas = float(self.rng.choice(self.gas_levels))
            self.left = int(self.rng.integers(20, 121))
        self.left -= 1
        self.noise = 0.9 * self.noise + self.steer_noise * float(self.rng.standard_normal())
        if self.swerve_left > 0:
            self.swerve_left -= 1
            steer = self.swerve
        else:
            if self.rng.random() < self.drift:
                self.swerve_left = int(self.rng.integers(5, 26))
                self.swerve = float(self.rng.choice([-1.0, 1.0]) * self.rng.uniform(0.3, 1.0))
            steer = self._steer_to_road(obs) + self.noise
        brake = 0.3 if self.gas == 0.0 and self.rng.random() < 0.3 else 0.0
        return np.array([np.clip(steer, -1.0, 1.0), self.gas, brake], np.float32)


def random_pusher(action_space: gym.spaces.Box) -> PusherPolicy:
    """The scripted pusher toward random target poses (the ``pusher-random`` policy)."""
    return PusherPolicy(action_space, target="random")
