"""Saved agents of every kind, loaded by one function: a linear controller's directory
(``controller.json`` + ``controller.safetensors``) or an SB3 agent's (``agent.json`` +
``agent.zip``). Every command that takes ``--controller`` (or a policy directory) loads here, so
each accepts both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dreamgym.common.pretrained import resolve_controller
from dreamgym.dreams.agent import DreamAgent, WorldModelPolicy
from dreamgym.errors import DreamgymError

# The JSON that names each kind of saved agent, and the weights beside it.
AGENT_FILES = {"controller.json": "controller.safetensors", "agent.json": "agent.zip"}


def agent_files(path: str | Path) -> tuple[Path, Path]:
    """(JSON, weights) of the saved agent named by ``path`` (its directory, its JSON, or
    ``pretrained:NAME``).

    Raises:
        DreamgymError: ``path`` holds no saved agent.
    """
    root = resolve_controller(path)
    for name, weights in AGENT_FILES.items():
        if (root / name).is_file():
            return root / name, root / weights
    if not root.exists():
        raise DreamgymError(
            f"controller {str(path)!r} does not exist (a directory holding controller.json "
            "and controller.safetensors, such as an evolution run's mean/ or best/, or an "
            "agent directory of `dreamgym train agent`)"
        )
    raise DreamgymError(
        f"controller {str(path)!r} is not a saved controller or agent (a directory holding "
        f"{' or '.join(AGENT_FILES)}, one of those files, or pretrained:NAME)"
    )


def is_controller(path: str | Path) -> bool:
    """Whether ``path`` names a linear controller (not an SB3 agent)."""
    return agent_files(path)[0].name == "controller.json"


def load_agent(path: str | Path) -> tuple[DreamAgent, dict[str, Any]]:
    """The saved agent named by ``path`` and its metadata (the JSON, with ``world_model``
    resolved against the agent's directory).

    An SB3 agent's zip is unpickled: load only agents you trained or trust.

    Raises:
        DreamgymError: no saved agent there, or an unreadable one.
    """
    if is_controller(path):
        from dreamgym.agents.controller import Controller

        return Controller.load(path)
    from dreamgym.agents.sb3_agent import SB3Agent

    return SB3Agent.load(path)


def agent_policy(path: str | Path, noise: float = 0.0) -> WorldModelPolicy:
    """A saved agent as a real-env policy through the world model it was trained in, with
    optional exploration noise (see ``controller_policy`` and ``sb3_agent_policy``).

    Raises:
        DreamgymError: no saved agent there, one that names no world model, or bad noise.
    """
    if is_controller(path):
        from dreamgym.agents.controller import controller_policy

        return controller_policy(path, noise)
    from dreamgym.agents.sb3_agent import sb3_agent_policy

    return sb3_agent_policy(path, noise)
