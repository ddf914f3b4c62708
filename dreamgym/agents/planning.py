"""Planning in a world model: the cross-entropy method (CEM), MPPI, and model-predictive
control (MPC).

Both searches (:func:`search`) optimise action sequences of ``horizon`` model steps: sample
``samples`` sequences from a Gaussian, imagine them all in **one batched rollout** from the
current state, score each by the world model's goal cost at the last imagined state, refit the
Gaussian, repeat ``iterations`` times; the mean is the plan. They differ only in the refit:

- CEM (DINO-WM's planner) refits to the ``elites`` best, weighted equally;
- MPPI (Williams et al.) weighs every sample by ``exp(-(cost - min cost) / lambda)``, with the
  mean and the standard deviation as weighted moments (TD-MPC's covariance-adapting form).

:class:`PlannerPolicy` is MPC: it executes the first ``execute`` steps of the plan in the real
env, sees the new frame, and replans from there, warm-starting from the rest of the previous plan.

Differences from the papers, on purpose:

- actions are sampled in the env's action box (clipped), not z-scored by the data's statistics:
  the latent model z-scores them itself; sigma0 is in those units;
- DINO-WM's CEM looks at the real simulator after each iteration and stops early on success; a
  planner that never sees the simulator is the honest protocol (and the only one here);
- V-JEPA 2-AC's planner is ``momentum`` on the mean and std updates and ``energy="l1"``: the
  goal cost as the mean absolute distance of the representations, for models that offer it
  (``energies``: the latent models do; by default their cost is DINO-WM's MSE);
- MPPI's lambda is ``temperature`` times the standard deviation of the iteration's costs, so one
  setting suits every model's cost scale (Williams et al. fix lambda in the cost's units);
- ``ensemble`` is VLA-0's ensemble of overlapping action chunks (Goyal et al. 2025), taken from
  a policy to a planner: the action executed at a step is the mean of what the last
  ``ensemble`` plans said for that step (each plan is a chunk of ``horizon`` actions), so one
  plan's noise moves the agent less. VLA-0 averages the chunks a policy predicts; here they are
  CEM's plans, each warm-started from the one before;
- ``final_steps`` / ``final_proprio_weight`` (ours): over the episode's last model steps the
  goal cost weighs the agent's proprioception more. DINO-WM's success counts the agent's
  position as the block's, and in the last steps, with the block in place, a latent cost over
  pooled pixels placed the agent only within about 20 px (many of the `cpu-hour` model's failed
  held-out pairs were such near misses); a higher weight throughout the episode made it favour
  the agent over the block (docs/planning.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dreamgym.common import validate
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels.protocol import HasGoalCost, WorldModel, rollout, state_index

PLANNERS = ("cem", "mppi")
ENERGIES = ("mse", "l1")


@dataclass(frozen=True)
class PlannerConfig:
    """A planner's settings (presets: :data:`PLANNER_PRESETS`).

    Attributes:
        method: ``cem`` (refits to the ``elites`` best, DINO-WM's) or ``mppi`` (weighs every
            sample by its cost; see the module docstring).
        horizon: model steps per plan (DINO-WM: 5).
        samples: candidate sequences per iteration (DINO-WM: 300).
        elites: the best candidates CEM refits the Gaussian to (DINO-WM: 30).
        iterations: refits per plan (DINO-WM: 30; 10 for simpler envs).
        init_std: the Gaussian's first standard deviation, in action units (DINO-WM: 1).
        min_std: a floor on the standard deviation, so the search never freezes.
        momentum: weight of the previous mean/std in each update (V-JEPA 2-AC; 0: none).
        execute: plan steps executed before replanning (MPC; DINO-WM executes the whole plan
            open loop: ``execute = horizon``).
        temperature: MPPI's lambda, in standard deviations of an iteration's costs.
        energy: the goal cost's distance, for a model that offers several (its ``energies``):
            ``mse`` (DINO-WM) or ``l1`` (V-JEPA 2-AC); None: the model's default.
        ensemble: the executed action is the mean of the actions the last ``ensemble`` plans
            chose for this step (VLA-0's chunk ensemble; 1: the latest plan's alone).
        final_steps: the last model steps of a known budget whose plans weigh the goal's
            proprioception by ``final_proprio_weight`` (models that read it; 0: none).
        final_proprio_weight: the goal cost's proprio weight in those plans.
    """

    method: str = "cem"
    horizon: int = 5
    samples: int = 300
    elites: int = 30
    iterations: int = 30
    init_std: float = 1.0
    min_std: float = 0.05
    momentum: float = 0.0
    execute: int = 5
    temperature: float = 0.1
    energy: str | None = None
    ensemble: int = 1
    final_steps: int = 0
    final_proprio_weight: float = 10.0

    def check(self) -> None:
        if self.method not in PLANNERS:
            raise DreamgymError(f"planner must be one of {PLANNERS}, got {self.method!r}")
        for name in ("horizon", "samples", "elites", "iterations", "execute", "ensemble"):
            validate.integer(f"planner {name}", getattr(self, name))
        if self.elites > self.samples:
            raise DreamgymError(
                f"planner elites ({self.elites}) must not exceed samples ({self.samples})"
            )
        if self.execute > self.horizon:
            raise DreamgymError(
                f"planner execute ({self.execute}) must not exceed horizon ({self.horizon})"
            )
        validate.real("planner momentum", self.momentum, 0.0, 0.99)
        validate.positive("planner init_std", self.init_std)
        validate.real("planner min_std", self.min_std, 0.0)
        validate.positive("planner temperature", self.temperature)
        validate.integer("planner final_steps", self.final_steps, minimum=0)
        validate.real("planner final_proprio_weight", self.final_proprio_weight, 0.0)
        if self.energy is not None and self.energy not in ENERGIES:
            raise DreamgymError(f"planner energy must be one of {ENERGIES}, got {self.energy!r}")


# The fields of PlannerConfig that `dreamgym plan` flags set (their types and help:
# PlannerConfig's), and the flags not named after their field.
PLANNER_FLAGS = (
    "method",
    "samples",
    "elites",
    "iterations",
    "horizon",
    "execute",
    "ensemble",
    "temperature",
    "energy",
    "final_steps",
    "final_proprio_weight",
)
PLANNER_RENAME = {"method": "--planner"}


PLANNER_PRESETS: dict[str, PlannerConfig] = {
    # A tenth of the imagination, for 2 CPU cores: 100 samples, 10 iterations, replanning
    # after every step (DINO-WM reports 100 x 10 as its cheaper setting).
    "cpu": PlannerConfig(samples=100, elites=10, iterations=10, execute=1),
    # DINO-WM's CEM (horizon 5, 300 samples, top 30, 30 iterations), MPC executing the plan.
    "dino-wm": PlannerConfig(),
    # V-JEPA 2-AC-like: one step ahead, many samples, momentum on the updates.
    "vjepa2-ac": PlannerConfig(
        horizon=1, samples=800, elites=80, iterations=10, momentum=0.9, execute=1, energy="l1"
    ),  # fmt: skip
    # For tests: seconds.
    "debug": PlannerConfig(horizon=3, samples=64, elites=8, iterations=4, execute=1),
}


def planner_preset(name: str, **overrides: Any) -> PlannerConfig:
    """A named preset of :data:`PLANNER_PRESETS` with ``overrides`` applied (None ignored),
    checked.

    Raises:
        DreamgymError: an unknown preset or a bad setting.
    """
    return validate.preset_config("planner", name, PLANNER_PRESETS, **overrides)


def refit(
    candidates: torch.Tensor, costs: torch.Tensor, config: PlannerConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next Gaussian's mean and standard deviation (H, A) from candidates (N, H, A) and
    their costs (N,): CEM's elites or MPPI's weighted moments (see the module docstring)."""
    if config.method == "cem":
        elites = candidates[torch.argsort(costs)[: config.elites]]
        return elites.mean(0), elites.std(0, unbiased=False)
    lam = config.temperature * costs.std().clamp_min(1e-12)
    weights = torch.softmax(-(costs - costs.min()) / lam, 0)[:, None, None]
    mean = (weights * candidates).sum(0)
    return mean, (weights * (candidates - mean).pow(2)).sum(0).sqrt()


def search(
    objective,
    mean: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    config: PlannerConfig,
    generator: torch.Generator,
    std: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``objective`` over action sequences with CEM or MPPI (``config.method``).

    Args:
        objective: (N, H, A) candidate sequences -> (N,) costs, for all N at once.
        mean: (H, A) the first Gaussian's mean (a warm start, or zeros).
        low, high: (A,) the action bounds; samples are clipped to them.
        config: the search's settings.
        generator: the source of every sample (same generator state, same plan).
        std: (H, A) the first standard deviation (default ``config.init_std``).

    Returns:
        (plan (H, A): the final mean, clipped; cost (iterations,): the best cost seen per
        iteration).
    """
    mean = mean.clone()
    std = torch.full_like(mean, config.init_std) if std is None else std.clone()
    best = []
    for _ in range(config.iterations):
        noise = torch.randn((config.samples, *mean.shape), generator=generator, device=mean.device)
        candidates = torch.clamp(mean + std * noise, low, high)  # (N, H, A)
        candidates[0] = torch.clamp(mean, low, high)  # the current mean competes too
        costs = objective(candidates)
        new_mean, new_std = refit(candidates, costs, config)
        m = config.momentum
        mean = m * mean + (1 - m) * new_mean
        std = (m * std + (1 - m) * new_std).clamp_min(config.min_std)
        best.append(costs.min())
    return torch.clamp(mean, low, high), torch.stack(best)


class Planner:
    """CEM or MPPI over a world model with a goal cost: plans from a state towards a goal state.

    Args:
        model: a protocol model implementing :class:`HasGoalCost`.
        config: the planner's settings.
        seed: seeds the planner's generator (the same seed gives the same plans).
    """

    def __init__(self, model: WorldModel, config: PlannerConfig, seed: int = 0) -> None:
        if not isinstance(model, HasGoalCost):
            raise DreamgymError("planning needs a world model with a goal cost")
        config.check()
        offered = getattr(model, "energies", ())
        if config.energy is not None and config.energy not in offered:
            raise DreamgymError(
                f"planner energy {config.energy!r} needs a world model whose goal cost offers it; "
                f"this one offers {', '.join(offered) or 'only its own'}"
            )
        if config.final_steps and not getattr(model, "uses_proprio", False):
            raise DreamgymError(
                f"planner final_steps {config.final_steps} needs a world model that reads "
                "proprioception (its goal cost has a proprio term); this one does not"
            )
        self.model, self.config = model, config
        self.low = torch.as_tensor(model.action_space.low, device=model.device)
        self.high = torch.as_tensor(model.action_space.high, device=model.device)
        self.generator = torch.Generator(model.device)
        self.generator.manual_seed(int(seed))

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    @torch.no_grad()
    def costs(self, state: Any, goal: Any, candidates: torch.Tensor,
              proprio_weight: float | None = None) -> torch.Tensor:  # fmt: skip
        """(N,) goal costs of the last states that N sequences (N, H, A) reach from ``state``
        (one state), all imagined in one batched rollout; ``proprio_weight`` overrides the
        model's (models that read proprioception)."""
        n = candidates.shape[0]
        start = state_index(state, torch.zeros(n, dtype=torch.long, device=self.model.device))
        last = rollout(self.model, start, candidates, self.generator)[-1]
        options: dict[str, Any] = {}
        if self.config.energy is not None:
            options["energy"] = self.config.energy
        if proprio_weight is not None:
            options["proprio_weight"] = proprio_weight
        return self.model.cost(last, goal, **options)

    def plan(
        self,
        state: Any,
        goal: Any,
        warm_start: torch.Tensor | None = None,
        horizon: int | None = None,
        proprio_weight: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(plan (H, A), best cost per iteration) from ``state`` (one state) to ``goal``, over
        ``horizon`` steps (default the config's), the goal cost's proprio weight
        ``proprio_weight`` (default the model's)."""
        h, a = horizon or self.config.horizon, self.low.numel()
        mean = torch.zeros(h, a, device=self.model.device)
        if warm_start is not None:
            k = min(len(warm_start), h)
            mean[:k] = warm_start[:k]
        return search(lambda c: self.costs(state, goal, c, proprio_weight), mean, self.low,
                      self.high, self.config, self.generator)  # fmt: skip


class PlannerPolicy:
    """MPC with :class:`Planner` as a real-env policy (``act(frame)``, ``reset(seed)``).

    The world model's step may span several real steps (a latent model's ``frameskip``): the
    policy then plays each planned action block one real action at a time, and hands the model
    the frame seen after the whole block. It replans after ``config.execute`` model steps,
    warm-started from the rest of the plan.

    The cost is the goal cost of a plan's last state. With a known ``budget`` the horizon
    shrinks so that no plan reaches past the budget's end: the last plans then aim at the goal
    at exactly the step where success is judged (without it, a receding terminal cost keeps
    aiming ``horizon`` steps ahead and never needs to arrive), and the plans of its last
    ``config.final_steps`` model steps weigh the goal's proprioception by
    ``config.final_proprio_weight``.

    Args:
        model: the world model (with a goal cost).
        config: the planner's settings.
        goal_frame: (H, W, 3) uint8 the goal image (set later with :meth:`set_goal` if None).
        seed: the planner's seed; :meth:`reset` reseeds it per episode.
        budget: the episode's length in real steps, if known (a whole number of blocks).
        goal_proprio: the goal's proprioception, for models that read it.
    """

    def __init__(self, model: WorldModel, config: PlannerConfig,
                 goal_frame: np.ndarray | None = None, seed: int = 0, budget: int | None = None,
                 goal_proprio: np.ndarray | None = None) -> None:  # fmt: skip
        self.planner = Planner(model, config, seed)
        self.model, self.config = model, config
        block = model.action_space.shape[0]
        real = len(model.info.get("action_low", model.action_space.low))
        if block % real:
            raise DreamgymError(f"model action size {block} is not a block of {real}-d actions")
        self.real_action_size, self.block = real, block // real
        if budget is not None and int(budget) % self.block:
            raise DreamgymError(
                f"budget {budget} is not a whole number of the model's {self.block}-step blocks"
            )
        self.budget = None if budget is None else int(budget) // self.block  # model steps
        self.proprio = None
        self.goal = None if goal_frame is None else self._encode(goal_frame, goal_proprio)
        chunks = f", {config.ensemble} chunks" if config.ensemble > 1 else ""
        self.label = (f"{config.method} planner ({config.samples} x {config.iterations}, "
                      f"h={config.horizon}{chunks})")  # fmt: skip
        self.reset(seed)

    def _proprio_kwargs(self, proprio: np.ndarray | None) -> dict[str, Any]:
        """``proprio=`` for models that read the agent's proprioception (a latent model trained
        with it), else nothing."""
        if not getattr(self.model, "uses_proprio", False):
            return {}
        if proprio is None:
            raise DreamgymError("this world model needs proprioception (the env's info['proprio'])")
        return {"proprio": torch.as_tensor(np.asarray(proprio, np.float32))[None]}

    def _encode(self, frame: np.ndarray, proprio: np.ndarray | None = None) -> Any:
        frames = torch.from_numpy(np.ascontiguousarray(frame))[None]
        return self.model.encode(frames, **self._proprio_kwargs(proprio))

    def set_goal(self, goal_frame: np.ndarray, goal_proprio: np.ndarray | None = None) -> None:
        """Plan towards ``goal_frame`` (and ``goal_proprio``) from now on."""
        self.goal = self._encode(goal_frame, goal_proprio)

    def observe_info(self, info: dict[str, Any]) -> None:
        """Keep the env's proprioception, for models that read it (see ``rollouts.play``)."""
        self.proprio = info.get("proprio")

    def reset(self, seed: int) -> None:
        self.planner.seed(seed)
        self.state = None
        self.queue: list[np.ndarray] = []  # real actions left of the current block
        self.block_action: torch.Tensor | None = None
        self.plan: torch.Tensor | None = None
        self.chunks: list[tuple[int, torch.Tensor]] = []  # (model step made at, plan), newest last
        self.steps_since_plan = 0
        self.steps = 0  # model steps taken
        self.plan_seconds: list[float] = []

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self.goal is None:
            raise DreamgymError("the planner has no goal: call set_goal(frame) first")
        if not self.queue:
            self._next_block(frame)
        return self.queue.pop(0)

    def _next_block(self, frame: np.ndarray) -> None:
        seen = torch.from_numpy(np.ascontiguousarray(frame))[None]
        proprio = self._proprio_kwargs(self.proprio)
        if self.state is None:
            self.state = self.model.encode(seen, **proprio)
        else:
            self.state = self.model.advance(self.state, self.block_action[None], seen, **proprio)
        if self.plan is None or self.steps_since_plan >= min(self.config.execute, len(self.plan)):
            start = time.perf_counter()
            rest = None if self.plan is None else self.plan[self.steps_since_plan :]
            horizon, weight = self.config.horizon, None
            if self.budget is not None:
                left = self.budget - self.steps
                horizon = max(1, min(horizon, left))
                if left <= self.config.final_steps:
                    weight = self.config.final_proprio_weight
            self.plan, _ = self.planner.plan(self.state, self.goal, rest, horizon, weight)
            self.plan_seconds.append(time.perf_counter() - start)
            self.steps_since_plan = 0
            self.chunks = [*self.chunks, (self.steps, self.plan)][-self.config.ensemble :]
        # The latest plan always covers this step; older chunks join where they reach it.
        said = [plan[self.steps - made] for made, plan in self.chunks
                if self.steps - made < len(plan)]  # fmt: skip
        self.block_action = torch.stack(said).mean(0)
        self.steps_since_plan += 1
        self.steps += 1
        actions = self.block_action.cpu().numpy().astype(np.float32)
        self.queue = list(actions.reshape(self.block, self.real_action_size))
