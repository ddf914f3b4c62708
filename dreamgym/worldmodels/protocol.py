"""The world-model protocol (v2): the small interface every downstream module depends on.

V+M (:class:`~dreamgym.worldmodels.vm.model.VMWorldModel`) is the first implementation; a
DINO-WM-style latent model is another. Dreams, agents, planners and the renderer use only this.

The core every model implements (:class:`WorldModel`): start states, ``encode`` real frames,
``advance`` along a real episode, ``step`` the dynamics (model-specific options such as V+M's
``temperature`` are passed through by name; a model lists the ones it takes in
``step_options``), and ``features``, the vectors an agent sees (a model names its modes in
``feature_modes``, the first being its default). Multi-step imagination is :func:`rollout`.

Optional capabilities, each a small protocol checked with ``isinstance``:

- :class:`PredictsRewardDone`: reward and done heads (dreams take their reward and episode ends
  from them);
- :class:`Decodes`: frames of a state (rendering, videos);
- :class:`HasGoalCost`: a distance from states to a goal state (goal-reaching dreams, planners);
- :class:`SamplesGoals`: recorded start/goal pairs and a reached-goal threshold (goal-conditioned
  dreams such as ``Dream-PushT-v0``).

A *state* is a dataclass whose every field is a tensor with the batch dimension first, so that
generic helpers (:func:`state_where`, :func:`state_index`) can mix and slice states of any model.
All operations are batched over N states and run without gradients on the model's device.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar, runtime_checkable

import gymnasium as gym
import torch

from dreamgym.errors import DreamgymError

S = TypeVar("S")


@runtime_checkable
class WorldModel(Protocol):
    """What every world model offers to dreams, agents, planners and renderers."""

    env: str
    """The real env the model was trained on (``"carracing"``, ``"doom-takecover"``, ...)."""
    action_space: gym.spaces.Box
    """The real env's (continuous) action space."""
    device: torch.device
    info: dict[str, Any]
    """The bundle's metadata (``bundle.json``)."""
    feature_modes: tuple[str, ...]
    """The names of the feature vectors it offers; the first is the default."""
    step_options: tuple[str, ...]
    """The keyword options :meth:`step` takes (V+M: ``("temperature",)``)."""

    def feature_size(self, mode: str | None = None) -> int:
        """Length of :meth:`features` vectors for ``mode`` (default: the model's default)."""
        ...

    def features(self, state: Any, mode: str | None = None) -> torch.Tensor:
        """The (N, feature_size) float32 vectors an agent sees."""
        ...

    def initial_state(self, n: int, generator: torch.Generator | None = None) -> Any:
        """N start states, drawn from the recorded first frames."""
        ...

    def step(
        self,
        state: Any,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Any:
        """Dream one step for N states: action (N, A) -> next state."""
        ...

    def encode(self, frames: torch.Tensor) -> Any:
        """States for real (N, H, W, 3) uint8 frames, as at the start of an episode."""
        ...

    def advance(self, state: Any, action: torch.Tensor, frames: torch.Tensor) -> Any:
        """Follow a real episode: step the memory with ``action``, then see real ``frames``."""
        ...


@runtime_checkable
class PredictsRewardDone(Protocol):
    """A world model with reward and done heads."""

    def reward_done(self, state: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward (N,) and done probability (N,) predicted for the step that led to ``state``
        (zeros for start states)."""
        ...


@runtime_checkable
class Decodes(Protocol):
    """A world model that can show its states."""

    def decode(self, state: Any) -> torch.Tensor:
        """(N, 64, 64, 3) uint8 frames of the states."""
        ...


@runtime_checkable
class HasGoalCost(Protocol):
    """A world model that measures how far states are from a goal."""

    def cost(self, state: Any, goal: Any) -> torch.Tensor:
        """(N,) distances from each state to the goal state (one goal, or N goals)."""
        ...


@runtime_checkable
class SamplesGoals(Protocol):
    """A goal-cost model that draws start/goal pairs from recorded episodes (goal-conditioned
    dreams): the goal is a recorded state some steps after the start."""

    goal_threshold: float
    """A goal counts as reached when the cost falls below this."""

    def goal_pairs(self, n: int, generator: torch.Generator | None = None) -> tuple[Any, Any]:
        """(start states, goal states), N of each."""
        ...


def check_feature_mode(model: WorldModel, mode: str | None) -> str:
    """``mode``, or the model's default for None; DreamgymError naming the model's modes for a
    mode it does not offer."""
    if mode is None:
        return model.feature_modes[0]
    if mode not in model.feature_modes:
        raise DreamgymError(
            f"observation mode must be one of {model.feature_modes} for this world model, "
            f"got {mode!r}"
        )
    return mode


def step_options(model: WorldModel, **options: Any) -> dict[str, Any]:
    """The ``options`` (those not None) that ``model.step`` takes; the others are dropped, so
    that a dream's temperature knob is simply unused by a deterministic model."""
    return {k: v for k, v in options.items() if v is not None and k in model.step_options}


@torch.no_grad()
def rollout(
    model: WorldModel,
    state: S,
    actions: torch.Tensor,
    generator: torch.Generator | None = None,
    **options: Any,
) -> list[S]:
    """Imagine N action sequences (N, T, A) from N states: the T states reached, in order.

    Uses the model's own ``rollout`` when it has one (e.g. a predictor that imagines whole
    sequences at once), else ``step`` T times.
    """
    own = getattr(model, "rollout", None)
    if callable(own):
        return own(state, actions, generator, **options)
    states = []
    for t in range(actions.shape[1]):
        state = model.step(state, actions[:, t], generator, **options)
        states.append(state)
    return states


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
