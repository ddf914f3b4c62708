"""Agents: the paper's linear controller and its evolution with CMA-ES, in the dream or in the
real env on Ray; stable-baselines3 agents trained in the dream (:mod:`.sb3_agent`); any saved one
loaded by :func:`load_agent`."""

from dreamgym.agents.backends import DreamBackend
from dreamgym.agents.controller import Controller, ControllerPolicy, ControllerSpec
from dreamgym.agents.evolution import EvaluationBackend, Evolution, EvolutionConfig
from dreamgym.agents.saved import load_agent
from dreamgym.agents.sb3_agent import SB3Agent, train_agent
from dreamgym.agents.sb3_config import AgentConfig

__all__ = [
    "AgentConfig",
    "Controller",
    "ControllerPolicy",
    "ControllerSpec",
    "DreamBackend",
    "EvaluationBackend",
    "Evolution",
    "EvolutionConfig",
    "SB3Agent",
    "load_agent",
    "train_agent",
]
