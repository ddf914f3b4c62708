"""Gymnasium ids for dreams: ``Dream-CarRacing-v0``, ``Dream-DoomTakeCover-v0``, and any other."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

ENTRY_POINT = "dreamgym.dreams.env:DreamEnv"
VECTOR_ENTRY_POINT = "dreamgym.dreams.vector:DreamVectorEnv"


def register_dream(
    env_id: str, env: str, world_model: str | os.PathLike | None = None, **kwargs: Any
) -> None:
    """Register a dream of real env ``env`` under ``env_id`` for ``gym.make``/``gym.make_vec``.

    Args:
        env_id: the new Gymnasium id, e.g. ``"Dream-DoomDefendCenter-v0"``.
        env: the real env's short name (``dreamgym envs`` lists them).
        world_model: a bundle path; default the newest bundle for ``env`` under
            ``$DREAMGYM_HOME`` at ``gym.make`` time.
        kwargs: further default arguments of :class:`~dreamgym.dreams.env.DreamEnv`.
    """
    from dreamgym.envs import get_env_spec

    defaults = {"env": env, **kwargs}
    if world_model is not None:
        defaults["world_model"] = str(world_model)
    gym.register(
        env_id,
        entry_point=ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        # The dream's own cap, shown on env.spec like the real env's (DreamEnv truncates there).
        max_episode_steps=kwargs.get("max_episode_steps") or get_env_spec(env).max_episode_steps,
        kwargs=defaults,
    )


def register_dreams() -> None:
    """Register the paper's two dreams and the goal-conditioned Push-T dream (idempotent).

    ``Dream-PushT-v0`` needs a latent world model of ``pusht`` (``dreamgym train latent``, or
    the shipped one when there is one, as for the other two): each
    episode starts from a recorded frame, its goal is the frame recorded 25 env steps later,
    and it lasts at most 10 model steps (DINO-WM's budget: 50 env steps at frameskip 5).
    """
    for env_id, env, kwargs in (
        ("Dream-CarRacing-v0", "carracing", {}),
        ("Dream-DoomTakeCover-v0", "doom-takecover", {}),
        ("Dream-PushT-v0", "pusht", {"goal": "sample", "max_episode_steps": 10}),
    ):
        if env_id not in gym.registry:
            register_dream(env_id, env, **kwargs)


def dream_id(env: str) -> str | None:
    """The Gymnasium id of a dream registered for real env ``env`` (None when there is none)."""
    for env_id, spec in gym.registry.items():
        if spec.entry_point == ENTRY_POINT and spec.kwargs.get("env") == env:
            return env_id
    return None
