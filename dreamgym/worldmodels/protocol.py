"""The world-model protocol: the small interface every downstream module depends on.

V+M (:class:`~dreamgym.worldmodels.vm.VMWorldModel`) is the first implementation; a DINO-WM-style
latent model will be another. Dreams, controllers, planners and the renderer use only this.

A *state* is a dataclass whose every field is a tensor with the batch dimension first, so that
generic helpers (:func:`state_where`, :func:`state_index`) can mix and slice states of any model.
All operations are batched over N states and run without gradients on the model's device.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar, runtime_checkable

import gymnasium as gym
import torch

S = TypeVar("S")


@runtime_checkable
class WorldModel(Protocol):
    """What a world model offers to dreams, controllers, planners and renderers."""

    env: str
    """The real env the model was trained on (``"carracing"``, ``"doom-takecover"``, ...)."""
    action_space: gym.spaces.Box
    """The real env's (continuous) action space."""
    device: torch.device
    info: dict[str, Any]
    """The bundle's metadata (``bundle.json``)."""

    def observation_size(self, mode: str = "zh") -> int:
        """Length of :meth:`observation` vectors for ``mode``."""
        ...

    def initial_state(self, n: int, generator: torch.Generator | None = None) -> Any:
        """N start states, drawn from the recorded first frames."""
        ...

    def step(
        self,
        state: Any,
        action: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Dream one step for N states.

        action (N, A) -> (next state, reward (N,), done probability (N,)).
        """
        ...

    def observation(self, state: Any, mode: str = "zh") -> torch.Tensor:
        """The (N, observation_size) float32 vectors an agent sees."""
        ...

    def decode(self, state: Any) -> torch.Tensor:
        """(N, 64, 64, 3) uint8 frames of the states, for rendering."""
        ...

    def encode(self, frames: torch.Tensor) -> Any:
        """States for real (N, 64, 64, 3) uint8 frames, as at the start of an episode."""
        ...

    def advance(self, state: Any, action: torch.Tensor, frames: torch.Tensor) -> Any:
        """Follow a real episode: step the memory with ``action``, then see real ``frames``."""
        ...


def state_where(mask: torch.Tensor, a: S, b: S) -> S:
    """Per batch element: ``a`` where ``mask`` (N,) is True, else ``b``."""
    values = {}
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        m = mask.view(-1, *([1] * (x.dim() - 1)))
        values[field.name] = torch.where(m, x, y)
    return type(a)(**values)


def state_index(state: S, index: torch.Tensor | slice) -> S:
    """The states at ``index`` along the batch dimension."""
    return type(state)(**{f.name: getattr(state, f.name)[index] for f in dataclasses.fields(state)})


def state_assign(state: S, index: torch.Tensor, values: S) -> S:
    """A copy of ``state`` whose rows ``index`` are replaced by the rows of ``values``."""
    fields = {}
    for f in dataclasses.fields(state):
        x = getattr(state, f.name).clone()
        x[index] = getattr(values, f.name)
        fields[f.name] = x
    return type(state)(**fields)
