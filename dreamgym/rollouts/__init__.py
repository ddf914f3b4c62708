"""Rollout collection from real environments (parallel on Ray, crash-safe, resumable) and the
dataset reader that serves the collected frames and sequences."""

from dreamgym.rollouts.collect import CollectConfig, CollectResult, collect, episode_seed
from dreamgym.rollouts.dataset import DatasetUnion, RolloutDataset, SequenceBatch
from dreamgym.rollouts.episode import Episode, load_episode, run_episode
from dreamgym.rollouts.policies import (
    BrownianPolicy,
    HoldPolicy,
    Policy,
    RandomPolicy,
    RepeatPolicy,
    load_policy_file,
    register_policy_file_kind,
    resolve_policy,
)
from dreamgym.rollouts.scripted import PusherPolicy, RoadDriverPolicy, WeakExpertPolicy

__all__ = [
    "BrownianPolicy",
    "CollectConfig",
    "CollectResult",
    "DatasetUnion",
    "Episode",
    "HoldPolicy",
    "Policy",
    "PusherPolicy",
    "RandomPolicy",
    "RepeatPolicy",
    "RoadDriverPolicy",
    "RolloutDataset",
    "SequenceBatch",
    "WeakExpertPolicy",
    "collect",
    "episode_seed",
    "load_episode",
    "load_policy_file",
    "register_policy_file_kind",
    "resolve_policy",
    "run_episode",
]
