"""The real environments dreamgym knows, by short name, and their Gymnasium ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from dreamgym.errors import DreamgymError


@dataclass(frozen=True)
class RealEnvSpec:
    """One real environment: its short name, Gymnasium id and defaults.

    Attributes:
        name: the short name used by the CLI and in datasets (``"carracing"``).
        gym_id: the id registered with Gymnasium on ``import dreamgym``.
        entry_point: ``"module:Class"`` of the env.
        max_episode_steps: the default time limit in agent steps.
        kwargs: fixed constructor arguments (e.g. the ViZDoom scenario).
        description: one line for ``dreamgym envs``.
        probe_actions: named constant actions that fidelity reports hold for a whole episode, in
            the dream and in the real game, to expose dreams an agent could exploit (e.g.
            "keep strafing left"); empty for an env with no obvious probes.
    """

    name: str
    gym_id: str
    entry_point: str
    max_episode_steps: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    probe_actions: dict[str, tuple[float, ...]] = field(default_factory=dict)


_CAR = "dreamgym.envs.carracing:CarRacing64"
_DOOM = "dreamgym.envs.doom:Doom64"

_DOOM_SCENARIOS = {
    # name: (scenario cfg, id stem, time limit, description)
    "doom-takecover": ("take_cover", "DoomTakeCover", 2100, "dodge fireballs; +1 per tic alive"),
    "doom-defend-center": ("defend_the_center", "DoomDefendCenter", 2100, "turn and shoot"),
    "doom-defend-line": ("defend_the_line", "DoomDefendLine", 2100, "turn and shoot"),
    "doom-health-gathering": ("health_gathering", "DoomHealthGathering", 2100, "find medkits"),
    "doom-basic": ("basic", "DoomBasic", 300, "strafe and shoot one monster"),
    "doom-predict-position": ("predict_position", "DoomPredictPosition", 300, "rocket a target"),
}

REAL_ENVS: dict[str, RealEnvSpec] = {
    "carracing": RealEnvSpec(
        "carracing",
        "Real-CarRacing-v0",
        _CAR,
        1000,
        description="Gymnasium CarRacing-v3, dashboard cropped, 64x64",
        probe_actions={
            "idle": (0.0, 0.0, 0.0),
            "full gas": (0.0, 1.0, 0.0),
            "gas, steer left": (-1.0, 0.5, 0.0),
            "gas, steer right": (1.0, 0.5, 0.0),
        },
    ),
}
for _name, (_scenario, _stem, _limit, _text) in _DOOM_SCENARIOS.items():
    REAL_ENVS[_name] = RealEnvSpec(
        _name,
        f"Real-{_stem}-v0",
        _DOOM,
        _limit,
        {"scenario": _scenario},
        f"ViZDoom {_scenario}: {_text}, 64x64",
        # Axis 0 strafes left below -1/3 and right above +1/3 (see doom.py).
        probe_actions={"strafe left": (-1.0,), "stand still": (0.0,), "strafe right": (1.0,)}
        if _scenario == "take_cover"
        else {},
    )


def register_real_envs() -> None:
    """Register every real env with Gymnasium (idempotent)."""
    for spec in REAL_ENVS.values():
        if spec.gym_id not in gym.registry:
            gym.register(
                spec.gym_id,
                entry_point=spec.entry_point,
                max_episode_steps=spec.max_episode_steps,
                kwargs=dict(spec.kwargs),
            )


def list_envs() -> list[RealEnvSpec]:
    """Every real environment dreamgym knows, sorted by name."""
    return [REAL_ENVS[name] for name in sorted(REAL_ENVS)]


def get_env_spec(name: str) -> RealEnvSpec:
    """The spec of the real env called ``name``.

    Raises:
        DreamgymError: for an unknown name, listing the known ones.
    """
    try:
        return REAL_ENVS[name]
    except KeyError:
        raise DreamgymError(
            f"unknown environment {name!r}; known environments: {', '.join(sorted(REAL_ENVS))}"
        ) from None


def make_env(
    name: str,
    *,
    max_episode_steps: int | None = None,
    frame_skip: int = 1,
    render_mode: str | None = None,
) -> gym.Env:
    """Build the real env called ``name`` (see :func:`list_envs`) through ``gym.make``.

    Args:
        name: a short name such as ``"carracing"`` or ``"doom-takecover"``.
        max_episode_steps: time limit in agent steps; default the env's own.
        frame_skip: repeat each action this many frames.
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        DreamgymError: for an unknown name or a bad argument.
    """
    spec = get_env_spec(name)
    if max_episode_steps is not None and max_episode_steps < 1:
        raise DreamgymError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    if frame_skip < 1:
        raise DreamgymError(f"frame_skip must be >= 1, got {frame_skip}")
    register_real_envs()
    return gym.make(
        spec.gym_id,
        max_episode_steps=max_episode_steps or spec.max_episode_steps,
        frame_skip=frame_skip,
        render_mode=render_mode,
    )
