"""Agents: the paper's linear controller and its evolution with CMA-ES, in the dream or in the
real env on Ray."""

from dreamgym.agents.backends import DreamBackend
from dreamgym.agents.controller import Controller, ControllerPolicy, ControllerSpec
from dreamgym.agents.evolution import EvaluationBackend, Evolution, EvolutionConfig

__all__ = [
    "Controller",
    "ControllerPolicy",
    "ControllerSpec",
    "DreamBackend",
    "EvaluationBackend",
    "Evolution",
    "EvolutionConfig",
]
