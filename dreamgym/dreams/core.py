"""The batched dream: N world-model episodes stepped together with tensor ops only.

:class:`~dreamgym.dreams.env.DreamEnv` (N = 1) and :class:`~dreamgym.dreams.vector.DreamVectorEnv`
are thin Gymnasium faces over this. Randomness comes from two torch generators owned by the dream,
one for the dynamics (M's sampling) and one for resets, so a dream's trajectory depends only on its
seed and actions, and a vector dream with N = 1 reproduces the single dream exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from dreamgym.common import validate
from dreamgym.envs import get_env_spec
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import WorldModel, state_assign
from dreamgym.worldmodels.bundle import resolve_world_model
from dreamgym.worldmodels.protocol import (
    Decodes,
    HasGoalCost,
    PredictsRewardDone,
    SamplesGoals,
    check_feature_mode,
    step_options,
)

DONE_MODES = ("threshold", "sample", "calibrated")
ENSEMBLE_MODES = ("cycle", "pessimistic")  # beside True (each episode draws its M) and False


def resolve_temperature(env: str, temperature: float | None) -> float:
    """The dream's tau: ``temperature``, or the env's default (the paper's choice) when None,
    checked with :func:`check_temperature`."""
    return check_temperature(
        get_env_spec(env).paper.temperature if temperature is None else temperature
    )


def resolve_dropout(model: WorldModel, dropout: float | None) -> float:
    """The dream's inference dropout: ``dropout`` as given (checked), else the model's own
    default (V+M: M's ``dream_dropout``), 0 for a model without dropout."""
    if dropout is None:
        return float(getattr(model, "dream_dropout", 0.0))
    dropout = validate.fraction("dropout", dropout)
    if dropout and "dropout" not in getattr(model, "step_options", ()):
        raise DreamgymError("this world model has no inference dropout; leave dropout unset")
    return dropout


def check_decodes(model: WorldModel) -> None:
    """DreamgymError unless ``model`` can show its states (rendering needs a decoder)."""
    if not isinstance(model, Decodes):
        raise DreamgymError(
            "this world model has no decoder, so its dreams cannot be rendered; use "
            "render_mode=None"
        )


def check_temperature(temperature: float) -> float:
    """The temperature as a float, or DreamgymError (a ValueError) naming it when it is not a
    finite number > 0."""
    return validate.positive("temperature", temperature)


def resolve_done_mode(model: WorldModel, done_mode: str | None) -> str:
    """The dream's done rule: ``done_mode`` as given, or by default ``"calibrated"`` for a bundle
    that carries a done calibration (its validation episodes held deaths) and ``"threshold"``
    (the paper's rule) otherwise.

    Why not always the paper's rule: a done head trained with a weighted positive class (x10,
    as the reference code) rarely crosses 0.5 with a random policy, so thresholded Doom dreams
    ran to the cap; the calibrated rule reproduces the number of deaths along real episodes.
    """
    if done_mode is None:
        return "calibrated" if model.info.get("done_calibration") else "threshold"
    if done_mode not in DONE_MODES:
        raise DreamgymError(f"done_mode must be one of {DONE_MODES}, got {done_mode!r}")
    if done_mode == "calibrated" and not model.info.get("done_calibration"):
        raise DreamgymError(
            "done_mode='calibrated' needs a bundle with a done calibration (written by "
            "`dreamgym train mdnrnn` when its validation episodes hold a death)"
        )
    return done_mode


def end_probability(model: WorldModel, done_mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-step probability that a dream under ``done_mode`` ends, as a function of the done
    head's probability: the head's own (``sample``), shifted by the bundle's calibrated logit
    offset (``calibrated``), or 0 / 1 (``threshold``: p > 0.5)."""
    if done_mode == "threshold":
        return lambda p: (p > 0.5).to(p.dtype)
    if done_mode == "calibrated":
        offset = float(model.info["done_calibration"]["logit_offset"])
        return lambda p: torch.sigmoid(torch.logit(p, eps=1e-7) + offset)
    return lambda p: p


class DreamCore:
    """N dreams of one world model.

    Args:
        model: any world-model protocol implementation.
        num_envs: N.
        temperature: tau > 0 (see ``sample_mdn``), passed to models whose ``step`` takes it.
        observation_mode: which of the model's feature vectors agents see (default: the
            model's default; V+M: ``"zh"``, ``"z"``, ``"zch"``).
        done_mode: ``"threshold"`` ends an episode when the done probability exceeds 0.5 (the
            paper's deterministic rule); ``"sample"`` draws it; ``"calibrated"`` draws it from
            the probability recalibrated on held-out episodes (the bundle's
            ``done_calibration``: a logit offset that makes the expected number of episode ends
            along real episodes match the observed one). Default (None): see
            :func:`resolve_done_mode`.
        max_episode_steps: truncation length; default the bundle's (the cap of the episodes it
            was trained on), else the real env's (CarRacing 1,000, Doom 2,100).
        goal: a goal state (one, or N): the reward is then minus the model's goal cost, and an
            episode ends only by the done head (if the model has one) or the cap. ``"sample"``
            makes the dream goal-conditioned (models that :class:`SamplesGoals`): each episode
            starts from a recorded start and its recorded goal, agents see the features of both
            (concatenated), the reward is minus the goal cost, and the episode terminates when
            the cost falls below the model's ``goal_threshold``.
        dropout: inference dropout rate for models whose ``step`` takes one (V+M: Dropout's
            Dream Land's masks, fresh for every episode); default (None): the model's own.
        ensemble: for a model that holds an ensemble (V+M with several Ms), whether each
            episode draws its member (True, the default) or all dream with member 0 (False);
            ``"cycle"``: env i dreams in member i mod K (scoring one policy in every member);
            ``"pessimistic"``: each episode draws its member, and every member's done head
            judges its steps, the highest end probability ruling (see ``VMWorldModel``).

    Raises:
        ValueError (DreamgymError for bad values): a model without reward and done heads and
            no goal, a goal for a model without a goal cost, or bad settings.
    """

    def __init__(
        self,
        model: WorldModel,
        num_envs: int,
        temperature: float,
        observation_mode: str | None = None,
        done_mode: str | None = None,
        max_episode_steps: int | None = None,
        goal=None,
        *,
        dropout: float | None = None,
        ensemble: bool | str = True,
    ) -> None:
        done_mode = resolve_done_mode(model, done_mode)
        validate.integer("num_envs", num_envs)
        self.model = model
        self.num_envs = int(num_envs)
        self.temperature = check_temperature(temperature)
        self.dropout = resolve_dropout(model, dropout)
        if not (isinstance(ensemble, bool) or ensemble in ENSEMBLE_MODES):
            raise DreamgymError(
                f"ensemble must be True, False, 'cycle' or 'pessimistic', got {ensemble!r}"
            )
        self.options = step_options(model, temperature=self.temperature, dropout=self.dropout,
                                    ensemble=ensemble)  # fmt: skip
        self.observation_mode = check_feature_mode(model, observation_mode)
        self.observation_size = model.feature_size(self.observation_mode)
        if goal is not None and not isinstance(model, HasGoalCost):
            raise DreamgymError("this world model has no goal cost; a goal needs one")
        self.sample_goals = isinstance(goal, str) and goal == "sample"
        if self.sample_goals:
            if not isinstance(model, SamplesGoals):
                raise DreamgymError("goal='sample' needs a world model that draws goals")
            goal = None  # drawn with each episode's start
            self.observation_size *= 2  # the state's features, then the goal's
        if goal is None and not self.sample_goals and not isinstance(model, PredictsRewardDone):
            raise DreamgymError(
                "this world model predicts no reward or episode end; give the dream a goal"
            )
        self.goal = goal
        self.done_mode = done_mode
        self.end_probability = end_probability(model, done_mode)
        if max_episode_steps is None:
            max_episode_steps = (model.info.get("max_episode_steps")
                                 or get_env_spec(model.env).max_episode_steps)  # fmt: skip
        self.max_episode_steps = validate.integer("max_episode_steps", max_episode_steps)
        self.device = model.device
        self.action_space: gym.spaces.Box = model.action_space
        self._low = torch.as_tensor(self.action_space.low, device=self.device)
        self._high = torch.as_tensor(self.action_space.high, device=self.device)
        self.step_generator = torch.Generator(self.device)
        self.reset_generator = torch.Generator(self.device)
        self.state = None
        self.done_prob: torch.Tensor | None = None  # the last step's (N,), as the model gave it
        self.elapsed = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    def seed(self, np_random: np.random.Generator) -> None:
        """Seed both generators from a numpy generator (the env's ``np_random``)."""
        step_seed, reset_seed = np_random.integers(0, 2**63 - 1, size=2)
        self.step_generator.manual_seed(int(step_seed))
        self.reset_generator.manual_seed(int(reset_seed))

    def observe(self, state=None) -> torch.Tensor:
        features = self.model.features(self.state if state is None else state,
                                       self.observation_mode)  # fmt: skip
        if self.sample_goals:
            return torch.cat([features, self.model.features(self.goal, self.observation_mode)], 1)
        return features

    def _starts(self, n: int):
        if self.sample_goals:
            return self.model.goal_pairs(n, self.reset_generator)
        return self.model.initial_state(n, self.reset_generator), None

    def reset_all(self) -> torch.Tensor:
        """Start all N episodes; returns the observations (N, obs)."""
        self.state, goal = self._starts(self.num_envs)
        if self.sample_goals:
            self.goal = goal
        self.elapsed.zero_()
        return self.observe()

    def reset_where(self, mask: torch.Tensor) -> None:
        """Start new episodes for the envs where ``mask`` (N,) is True."""
        index = mask.nonzero().squeeze(1)
        if len(index):
            fresh, goal = self._starts(len(index))
            self.state = state_assign(self.state, index, fresh)
            if self.sample_goals:
                self.goal = state_assign(self.goal, index, goal)
            self.elapsed[index] = 0

    def check_actions(self, actions) -> torch.Tensor:
        """(N, A) float32 actions on the device; ValueError naming a bad value and the space."""
        try:
            a = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"action {actions!r} is not numeric; expected values in {self.action_space}"
            ) from None
        expected = (self.num_envs, *self.action_space.shape)
        if a.shape != expected:
            raise ValueError(
                f"action has shape {tuple(a.shape)}; expected {expected} from {self.action_space}"
            )
        bad = ~(torch.isfinite(a) & (a >= self._low) & (a <= self._high)).all(dim=1)
        if bad.any():
            i = int(bad.nonzero()[0])
            where = f" (env {i})" if self.num_envs > 1 else ""
            raise ValueError(
                f"action {a[i].tolist()}{where} is not in the action space {self.action_space}: "
                "expected finite values within its bounds"
            )
        return a

    def step(
        self, actions, check: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step all N dreams; returns (obs, reward, terminated, truncated), each batched.

        ``check=False`` skips the action checks (and their device sync) for callers whose
        actions are valid by construction, such as the evolution's controllers.
        """
        a = self.check_actions(actions) if check else actions
        self.state = self.model.step(self.state, a, self.step_generator, **self.options)
        if isinstance(self.model, PredictsRewardDone):
            reward, done_prob = self.model.reward_done(self.state)
        else:
            reward = done_prob = torch.zeros(self.num_envs, device=self.device)
        if self.goal is not None:
            cost = self.model.cost(self.state, self.goal)
            reward = -cost
            if self.sample_goals:
                done_prob = torch.maximum(done_prob, (cost < self.model.goal_threshold).float())
        self.done_prob = done_prob
        ends = self.end_probability(done_prob)
        if self.done_mode == "threshold":  # 0 or 1: nothing to draw
            terminated = ends.bool()
        else:
            u = torch.rand(ends.shape, generator=self.step_generator, device=self.device)
            terminated = u < ends
        self.elapsed += 1
        truncated = (self.elapsed >= self.max_episode_steps) & ~terminated
        return self.observe(), reward.float(), terminated, truncated

    def render(self) -> np.ndarray:
        """(N, 64, 64, 3) uint8 frames of the current states, decoded by the world model."""
        check_decodes(self.model)
        return self.model.decode(self.state).cpu().numpy()


@torch.no_grad()
def run_episodes(
    core: DreamCore, act: Callable[[torch.Tensor], torch.Tensor], cuda_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run all N dreams of ``core`` from a reset to their ends (done rule or cap), in one batch.

    ``act`` maps observations (N, F) to valid actions (N, A). Finished episodes keep being
    stepped (the batch stays rectangular) but count no more reward or steps. With
    ``cuda_graph`` and ``core`` on a GPU, one step is captured in a CUDA graph after two eager
    steps and replayed: one launch per step instead of ~40, about 3x faster for Doom-size
    evolution. Only a caller whose ``act`` is tensor ops on ``core.device`` may ask for it: a
    policy that runs on the host (numpy, an SB3 agent, a scripted policy) cannot be recorded.
    Returns the returns (N,), lengths (N,) and whether each episode was ended by the done rule
    (N,).
    """
    obs = core.reset_all()
    alive = torch.ones(core.num_envs, dtype=torch.bool, device=core.device)
    returns = torch.zeros(core.num_envs, device=core.device)
    lengths = torch.zeros(core.num_envs, dtype=torch.long, device=core.device)
    ended_by_done = torch.zeros_like(alive)

    def step() -> None:
        # In place only, so that a captured graph reads and writes the same buffers each replay.
        state = core.state
        new_obs, reward, terminated, truncated = core.step(act(obs), check=False)
        for field in dataclasses.fields(state):
            getattr(state, field.name).copy_(getattr(core.state, field.name))
        core.state = state
        obs.copy_(new_obs)
        returns.add_(reward * alive)
        lengths.add_(alive.long())
        ended_by_done.logical_or_(alive & terminated)
        alive.logical_and_(~(terminated | truncated))

    graph = cuda_graph and core.device.type == "cuda"
    # Asking whether any episode is alive waits for the device; on a GPU ask every 16 steps so
    # that the host queues steps ahead (the extra steps are masked and change no result).
    check_every = 16 if core.device.type == "cuda" else 1
    steps = 0
    while steps % check_every or alive.any():
        if graph and steps == 2:  # the eager steps warmed up the kernels and the allocator
            step = _captured(step, core.step_generator)
        step()
        steps += 1
    return returns, lengths, ended_by_done


def _captured(step: Callable[[], None], generator: torch.Generator) -> Callable[[], None]:
    """``step`` recorded once in a CUDA graph (nothing runs while recording); returns replay."""
    graph = torch.cuda.CUDAGraph()
    graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def make_core(
    num_envs: int,
    world_model,
    env: str | None,
    temperature: float | None,
    device,
    observation_mode: str | None,
    done_mode: str | None,
    max_episode_steps: int | None,
    render_mode: str | None,
    goal=None,
    dropout: float | None = None,
    ensemble: bool = True,
) -> DreamCore:
    """The dream behind a DreamEnv or DreamVectorEnv, from their constructor arguments."""
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    model = resolve_world_model(world_model, env, device)
    if render_mode is not None:
        check_decodes(model)
    tau = resolve_temperature(model.env, temperature)
    return DreamCore(model, num_envs, tau, observation_mode, done_mode, max_episode_steps, goal,
                     dropout=dropout, ensemble=ensemble)  # fmt: skip
