"""Evaluation backends: where the evolution's episodes run.

- :class:`DreamBackend`: all population x rollouts episodes in one batched dream (CPU or GPU).
- :class:`~dreamgym.agents.ray_dream.ShardedDreamBackend`: the same, sharded over Ray actors.
- :class:`~dreamgym.agents.ray_backend.RealBackend`: real-env episodes on Ray actors.
"""

from __future__ import annotations

import numpy as np
import torch

from dreamgym.agents.controller import ControllerSpec, to_actions, unflatten
from dreamgym.common import validate
from dreamgym.dreams.core import DreamCore, run_episodes
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import WorldModel


class DreamBackend:
    """Evaluates controllers inside the world model.

    All P x R episodes start together in one :class:`~dreamgym.dreams.core.DreamCore`; every step
    is one batched controller op and one batched world-model step. Finished episodes keep being
    stepped (the batch stays rectangular) but their rewards are masked, until the longest ends.

    Args:
        model: the world model.
        spec: the controllers' shape (must fit ``model``).
        temperature: the dream's tau.
        max_episode_steps: episode cap (default: the real env's, CarRacing 1,000, Doom 2,100).
        done_mode: the dream's done rule (default: see ``dreams.core.resolve_done_mode``).
        dropout: the dream's inference dropout (default: the model's own).
        ensemble: with several Ms, each dream episode draws its M (False: member 0 only).
        ensemble_fitness: with several Ms (and ``ensemble``), ``"mean"``: each of a candidate's
            R episodes draws its M; ``"worst"``: the candidate plays its R episodes in every
            one of the K Ms (K x the episodes), and its returns are those of the M in which
            their mean is lowest, so a controller is scored by the world it does worst in and
            cannot profit from an error that only some Ms make; ``"pessimistic"``: each of
            the R episodes draws its M, and every M's done head judges each of its steps, the
            highest end probability ruling (the dream ends where the Ms disagree about a
            death: pessimism where they are unsure, as in offline model-based RL; K x the M
            work per step, as ``worst``).
    """

    def __init__(
        self,
        model: WorldModel,
        spec: ControllerSpec,
        temperature: float = 1.0,
        max_episode_steps: int | None = None,
        done_mode: str | None = None,
        dropout: float | None = None,
        ensemble: bool = True,
        ensemble_fitness: str = "mean",
    ) -> None:
        self.model = model
        self.spec = spec
        self.temperature = temperature
        self.max_episode_steps = max_episode_steps
        self.done_mode = done_mode
        self.dropout = dropout
        validate.choice("ensemble fitness", ensemble_fitness, ENSEMBLE_FITNESS)
        # Every member plays every episode only where there are several members to compare.
        members = getattr(model, "num_members", 1) if ensemble else 1
        self.members = members if ensemble_fitness == "worst" else 1
        pessimistic = ensemble and ensemble_fitness == "pessimistic"
        self.dream_ensemble = "pessimistic" if pessimistic else ensemble

    @torch.no_grad()
    def returns(self, params: np.ndarray, rollouts: int, seed: int) -> np.ndarray:
        k = self.members
        n = len(params) * rollouts * k
        core = DreamCore(self.model, n, self.temperature, self.spec.observation_mode,
                         self.done_mode, self.max_episode_steps, dropout=self.dropout,
                         ensemble="cycle" if k > 1 else self.dream_ensemble)  # fmt: skip
        core.seed(np.random.default_rng(seed))
        theta = torch.tensor(np.asarray(params), dtype=torch.float32, device=core.device)
        # Rows (candidate, rollout, member): with "cycle", row i dreams in member i mod k.
        w, b = unflatten(self.spec, theta.repeat_interleave(rollouts * k, dim=0))  # (N,A,I), (N,A)

        def act(obs: torch.Tensor) -> torch.Tensor:
            out = torch.tanh(torch.bmm(w, obs.unsqueeze(-1)).squeeze(-1) + b)
            return to_actions(self.spec, out)

        total, _, _ = run_episodes(core, act, cuda_graph=True)  # act: tensor ops on the device
        total = total.view(len(params), rollouts, k)
        worst = total.mean(dim=1).argmin(dim=1)  # (P,): each candidate's worst member
        total = total[torch.arange(len(params)), :, worst]  # (P, R)
        return total.cpu().numpy().astype(np.float64)


BACKENDS = ("dream", "real")
ENSEMBLE_FITNESS = ("mean", "worst", "pessimistic")
REAL_WORKERS = 2  # the real backend's default number of Ray actors


def make_backend(
    kind: str,
    model: WorldModel,
    spec: ControllerSpec,
    temperature: float,
    max_episode_steps: int | None = None,
    done_mode: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    world_model: str | None = None,
    dropout: float | None = None,
    ensemble: bool = True,
    ensemble_fitness: str = "mean",
):
    """The evaluation backend called ``kind``.

    - ``dream``: :class:`DreamBackend` in this process; with ``workers`` or ``address``, the
      dream sharded over Ray actors
      (:class:`~dreamgym.agents.ray_dream.ShardedDreamBackend`, which needs the bundle
      directory ``world_model``);
    - ``real``: :class:`~dreamgym.agents.ray_backend.RealBackend` on ``workers`` actors
      (default 2; ``temperature``, ``done_mode``, ``dropout`` and the ensemble's settings
      unused).
    """
    if kind == "dream":
        if workers is None and address is None:
            return DreamBackend(model, spec, temperature, max_episode_steps, done_mode, dropout,
                                ensemble, ensemble_fitness)  # fmt: skip
        if world_model is None:
            raise DreamgymError("a dream sharded over Ray actors needs the bundle's directory")
        from dreamgym.agents.ray_dream import ShardedDreamBackend

        return ShardedDreamBackend(world_model, spec, temperature, max_episode_steps, done_mode,
                                   workers, address, dropout, ensemble,
                                   ensemble_fitness)  # fmt: skip
    if kind == "real":
        from dreamgym.agents.ray_backend import RealBackend

        return RealBackend(model, spec, workers or REAL_WORKERS, address, max_episode_steps)
    raise DreamgymError(f"backend must be one of {BACKENDS}, got {kind!r}")
