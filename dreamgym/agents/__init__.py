"""Agents: the paper's linear controller and its evolution with CMA-ES, in the dream or in the
real env on Ray."""

from dreamgym.agents.backends import DreamBackend
from dreamgym.agents.controller import (
    CONTROLLER_KIND,
    Controller,
    ControllerPolicy,
    ControllerSpec,
    load_controller_policy,
)
from dreamgym.agents.evolution import EvaluationBackend, Evolution, EvolutionConfig
from dreamgym.rollouts.policies import register_policy_file_kind

register_policy_file_kind(CONTROLLER_KIND, load_controller_policy)

__all__ = [
    "Controller",
    "ControllerPolicy",
    "ControllerSpec",
    "DreamBackend",
    "EvaluationBackend",
    "Evolution",
    "EvolutionConfig",
]
