"""The evolution loop: CMA-ES (pycma) over flat controller parameter vectors.

The loop knows nothing of Ray, files or logging (evotorch's separation): it asks an
:class:`EvaluationBackend` for returns and tells its callbacks after every generation.

Resuming is exact and executes no code: the checkpoint is the list of fitness vectors told so far
(JSON). A resumed run re-creates the ES from its seed and replays ask/tell with those fitnesses,
which reproduces the ES state bit for bit on the same machine. pycma draws from numpy's global
RNG; the loop keeps a private copy of that RNG state and swaps it in only around ask/tell, so no
other code drawing from ``np.random`` can perturb the evolution.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cma
import numpy as np

from dreamgym.common import validate
from dreamgym.common.seeding import derive_seed
from dreamgym.errors import DreamgymError


class EvaluationBackend(Protocol):
    """Runs episodes for many parameter vectors."""

    def returns(self, params: np.ndarray, rollouts: int, seed: int) -> np.ndarray:
        """Episode returns (P, rollouts) of P parameter vectors (P, n), seeded by ``seed``."""
        ...


class EvolutionCallback(Protocol):
    def on_generation(self, evolution: Evolution, row: dict[str, Any]) -> None: ...


@dataclass
class EvolutionConfig:
    """CMA-ES settings (defaults: the paper's).

    Attributes:
        popsize: candidates per generation (paper: 64).
        rollouts: episodes per candidate; fitness is their mean return (paper: 16).
        sigma0: initial step size around x0 (paper: 0.1, around x0 = 0).
        eval_every: evaluate the ES mean every this many generations (paper: 25).
        eval_rollouts: episodes for that evaluation (paper: 1,024).
        seed: seeds the ES and every generation's episodes.
    """

    popsize: int = 64
    rollouts: int = 16
    sigma0: float = 0.1
    eval_every: int = 25
    eval_rollouts: int = 1024
    seed: int = 0

    def check(self) -> None:
        validate.integer("popsize (CMA-ES needs 2)", self.popsize, 2)
        validate.integer("rollouts", self.rollouts)
        validate.integer("eval_rollouts", self.eval_rollouts)
        validate.positive("sigma0", self.sigma0)
        validate.integer("eval_every (0: never)", self.eval_every, 0)


# Named presets (``dreamgym evolve --preset``): paper is EvolutionConfig's defaults, the paper's.
EVOLUTION_PRESETS: dict[str, EvolutionConfig] = {
    "paper": EvolutionConfig(),
    "small": EvolutionConfig(popsize=32, rollouts=4, eval_every=10, eval_rollouts=64),
    "debug": EvolutionConfig(popsize=8, rollouts=2, eval_every=2, eval_rollouts=8),
}


def evolution_preset(name: str, **overrides: Any) -> EvolutionConfig:
    """A named preset of :data:`EVOLUTION_PRESETS` with ``overrides`` applied (None ignored),
    checked.

    Raises:
        DreamgymError: an unknown preset or a bad setting.
    """
    return validate.preset_config("evolution", name, EVOLUTION_PRESETS, **overrides)


def generation_seed(seed: int, generation: int, purpose: int = 0) -> int:
    """The episode seed of a generation (purpose 0: candidates, 1: mean evaluation)."""
    return derive_seed(seed, generation, purpose)


class Evolution:
    """CMA-ES over ``num_params`` parameters, minimising the negated mean return.

    Args:
        num_params: length of the parameter vectors.
        config: the ES settings.
        backend: evaluates candidates.
        callbacks: told about every generation (loggers, checkpointers).
        told: fitness vectors of earlier generations, to resume (replayed, not re-evaluated).
        x0: the initial mean (default: zeros, the paper's); a warm start searches around it.
    """

    def __init__(
        self,
        num_params: int,
        config: EvolutionConfig,
        backend: EvaluationBackend,
        callbacks: Sequence[EvolutionCallback] = (),
        told: Sequence[Sequence[float]] = (),
        x0: np.ndarray | None = None,
    ) -> None:
        config.check()
        x0 = np.zeros(num_params) if x0 is None else np.asarray(x0, dtype=np.float64)
        if x0.shape != (num_params,) or not np.isfinite(x0).all():
            raise DreamgymError(f"x0 must be {num_params} finite numbers, got shape {x0.shape}")
        self.config = config
        self.backend = backend
        self.callbacks = list(callbacks)
        self._np_state = np.random.RandomState(config.seed).get_state()
        options = {"popsize": config.popsize, "seed": float("nan"), "verbose": -9,
                   "verb_disp": 0, "verb_log": 0, "verb_filenameprefix": ""}  # fmt: skip
        with self._es_rng():
            self.es = cma.CMAEvolutionStrategy(x0, config.sigma0, options)
        self.told: list[list[float]] = []
        self.best_params = x0.copy()
        self.best_fitness = -math.inf
        for fitness in told:
            solutions = self._ask()
            self._tell(solutions, np.asarray(fitness, dtype=np.float64))

    @contextlib.contextmanager
    def _es_rng(self) -> Iterator[None]:
        outside = np.random.get_state()
        np.random.set_state(self._np_state)
        try:
            yield
        finally:
            self._np_state = np.random.get_state()
            np.random.set_state(outside)

    def _ask(self) -> np.ndarray:
        with self._es_rng():
            return np.asarray(self.es.ask())

    def _tell(self, solutions: np.ndarray, fitness: np.ndarray) -> None:
        with self._es_rng():
            self.es.tell(list(solutions), (-fitness).tolist())  # pycma minimises
        self.told.append(fitness.tolist())
        best = int(np.argmax(fitness))
        if fitness[best] > self.best_fitness:
            self.best_fitness, self.best_params = float(fitness[best]), solutions[best].copy()

    @property
    def generation(self) -> int:
        """Generations finished so far."""
        return len(self.told)

    @property
    def mean(self) -> np.ndarray:
        """The ES mean: the current estimate of the best parameters."""
        return np.asarray(self.es.mean).copy()

    def step(self) -> dict[str, Any]:
        """Run one generation; returns its log row."""
        g = self.generation
        solutions = self._ask()
        returns = self.backend.returns(
            solutions, self.config.rollouts, generation_seed(self.config.seed, g)
        )
        if returns.shape != (len(solutions), self.config.rollouts):
            raise RuntimeError(
                f"backend returned shape {returns.shape}, expected "
                f"{(len(solutions), self.config.rollouts)}"
            )
        fitness = returns.mean(axis=1).astype(np.float64)
        self._tell(solutions, fitness)
        row: dict[str, Any] = {
            "generation": g + 1,
            "fitness/best": float(fitness.max()),
            "fitness/mean": float(fitness.mean()),
            "fitness/median": float(np.median(fitness)),
            "fitness/worst": float(fitness.min()),
            "es/sigma": float(self.es.sigma),
        }
        every = self.config.eval_every
        if every and (g + 1) % every == 0:
            evaluation = self.evaluate_mean()
            row["eval/mean"], row["eval/std"] = float(evaluation.mean()), float(evaluation.std())
        for callback in self.callbacks:
            callback.on_generation(self, row)
        return row

    def evaluate_mean(self) -> np.ndarray:
        """Returns of the ES mean over ``eval_rollouts`` episodes (paper: every 25 generations)."""
        seed = generation_seed(self.config.seed, self.generation, purpose=1)
        return self.backend.returns(self.mean[None], self.config.eval_rollouts, seed)[0]

    def run(self, generations: int) -> list[dict[str, Any]]:
        """Evolve until ``generations`` generations are finished."""
        return [self.step() for _ in range(self.generation, generations)]
