"""Start/goal pairs for goal reaching, held out from the world model's training data.

A pair is a random recorded episode and offset t (fixed seed): the start is the state reached by
replaying the episode's first t recorded actions from its seed (replay is exact; resetting to a
saved state is not, in gym-pusht), the goal is the recorded frame and state ``goal_offset`` env
steps later (DINO-WM's protocol; :mod:`dreamgym.agents.goals` measures reaching them).

Goals are held out by default (:func:`pair_set`): the pairs come from the world-model trainer's
validation episodes when there are enough, else from episodes collected for the purpose with
seeds outside the training data's; only when neither is possible from the training episodes,
and the report says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.common import validate
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import CollectConfig, RolloutDataset, collect
from dreamgym.rollouts.collect import episode_seed
from dreamgym.rollouts.policies import BUILTIN_POLICIES
from dreamgym.rollouts.store import read_manifest, read_meta

# The pair sets a report can be measured on; every one but "training" holds goals out.
PAIR_SETS = ("validation", "user data", "collected", "training")
# A held-out pair set needs one episode per this many pairs: fewer validation episodes than that
# are not enough, and a collected set has that many.
PAIRS_PER_EPISODE = 5
# DINO-WM's protocol: 50 pairs, goals 25 env steps ahead, 50 steps to reach them, pairs of seed 99.
PAIRS, GOAL_OFFSET, BUDGET, PAIR_SEED = 50, 25, 50, 99


@dataclass(frozen=True)
class GoalPair:
    """A start (episode ``episode`` after ``start`` recorded steps) and the goal reached
    ``offset`` recorded steps later."""

    episode: int
    start: int
    offset: int
    goal_frame: np.ndarray  # (H, W, 3) uint8
    goal_state: np.ndarray  # the env's recorded state
    goal_proprio: np.ndarray | None  # the recorded proprioception, when episodes record it
    displacement: float | None = None  # how far the goal moves the object (env spec's units)


@dataclass(frozen=True)
class PairSet:
    """Where the start/goal pairs come from.

    Attributes:
        kind: one of :data:`PAIR_SETS`: the trainer's ``validation`` episodes, ``user data``
            (named by the caller, not the training data), ``collected`` held-out episodes, or
            the ``training`` episodes (goals the model trained on).
        data: the dataset directory.
        episodes: the data's episode positions the pairs are drawn from (None: every one).
        note: one line saying where the pairs come from and, for a fallback, why.
        policy: the policy that collected a ``collected`` set (None for the other kinds).
    """

    kind: str
    data: Path
    episodes: tuple[int, ...] | None
    note: str
    policy: str | None = None

    @property
    def held_out(self) -> bool:
        """Whether the model never trained on these goals (as far as the bundle tells)."""
        return self.kind != "training"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "held_out": self.held_out, "data": str(self.data),
                "episodes": None if self.episodes is None else list(self.episodes),
                "note": self.note, "policy": self.policy}  # fmt: skip


def goal_pairs(
    data: RolloutDataset,
    n: int = PAIRS,
    offset: int = GOAL_OFFSET,
    seed: int = PAIR_SEED,
    episodes: Sequence[int] | None = None,
    goal_object: Sequence[int] | None = None,
) -> list[GoalPair]:
    """``n`` start/goal pairs drawn with ``seed`` from episodes that record states.

    Args:
        data: the episodes.
        n, offset, seed: how many pairs, goal steps ahead, and the seed of the draw.
        episodes: the positions in ``data`` to draw from (default: every episode).
        goal_object: state components whose move from start to goal is a pair's
            ``displacement`` (the env spec's ``goal_object``); None: no displacement.

    Raises:
        DreamgymError: the data records no states, or no episode is long enough.
    """
    lengths = data.lengths
    pool = np.arange(len(lengths)) if episodes is None else np.asarray(episodes, np.int64)
    eligible = pool[lengths[pool] >= offset]
    if len(eligible) == 0:
        raise DreamgymError(f"no episode in {str(data.root)!r} has {offset} steps for a goal")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        i = int(rng.choice(eligible))
        episode = data.episode(i)
        if episode.state is None:
            raise DreamgymError(
                f"episodes of {str(data.root)!r} record no states (info['state']); goals need them"
            )
        t = int(rng.integers(0, episode.length - offset + 1))
        proprio = None if episode.proprio is None else episode.proprio[t + offset]
        moved = None
        if goal_object is not None:
            where = list(goal_object)
            move = episode.state[t + offset][where] - episode.state[t][where]
            moved = float(np.linalg.norm(move))
        pairs.append(GoalPair(i, t, offset, episode.frames[t + offset], episode.state[t + offset],
                              proprio, moved))  # fmt: skip
    return pairs


def _episodes(n: int, kind: str) -> str:
    return f"{n} {kind} episode{'' if n == 1 else 's'}"


def _training(info: dict[str, Any]) -> dict[str, Any]:
    training = info.get("training") or {}
    if not training.get("data"):
        raise DreamgymError("the bundle names no training data: pass --data EPISODES")
    return training


def _at_hand(recorded: str | None) -> Path | None:
    """A directory the bundle records, when it is at hand. A trained bundle records absolute
    paths; an exported one (a shipped model's) records them relative to the run it came from,
    which says nothing about the working directory, so those are never at hand."""
    if not recorded or not os.path.isabs(recorded):
        return None
    return Path(recorded) if Path(recorded).is_dir() else None


def _training_seeds(training: dict[str, Any]) -> tuple[set[int], set[int]]:
    """(the training datasets' base seeds, their episodes' seeds): from the manifests where the
    data is at hand, else derived from what the bundle records of its collection."""
    bases, seeds = set(), set()
    recorded = training.get("collection") or []
    for k, recorded_root in enumerate(training.get("datasets") or [training["data"]]):
        root = _at_hand(recorded_root)
        meta = _read_meta(root)
        if meta is not None:
            bases.add(int(meta["seed"]))
            seeds.update(int(e["seed"]) for e in read_manifest(root).values())
        elif k < len(recorded):
            bases.add(int(recorded[k]["seed"]))
            seeds.update(episode_seed(int(recorded[k]["seed"]), i)
                         for i in range(int(recorded[k]["episodes"])))  # fmt: skip
    return bases, seeds


def _read_meta(root: Path | None) -> dict[str, Any] | None:
    """A dataset's ``dataset.json``, or None when ``root`` is None or holds no dataset."""
    return read_meta(root) if root is not None and root.is_dir() else None


def _collection_recipe(training: dict[str, Any]) -> dict[str, Any] | None:
    """How the first training dataset was collected (its dataset.json, else what the bundle
    records); None when nothing says. Held-out episodes are collected like the first dataset,
    whose episodes the trainer's validation split also comes from, so that the pair sets of a
    model trained on several datasets (e.g. two policies) are alike whichever is at hand."""
    meta = _read_meta(_at_hand(training["data"]))
    if meta is not None:
        return meta
    recorded = training.get("collection") or []
    return recorded[0] if recorded else None


def _other_policies(training: dict[str, Any]) -> list[str]:
    """The policies of the training datasets after the first, as the bundle records them."""
    return [str(r.get("policy")) for r in (training.get("collection") or [])[1:]]


def pair_set(
    info: dict[str, Any],
    pairs: int = PAIRS,
    offset: int = GOAL_OFFSET,
    seed: int = PAIR_SEED,
    data: str | Path | None = None,
    collect_to: str | Path | None = None,
    workers: int = 1,
    address: str | None = None,
    progress: bool = False,
) -> PairSet:
    """The pairs' episodes for a world model whose bundle says ``info``: held-out goals unless
    nothing else is possible.

    In order: ``data`` when given (``user data``, or ``training`` when it is one of the bundle's
    training datasets); the trainer's validation episodes when at least one per
    :data:`PAIRS_PER_EPISODE` pairs is long enough for a goal; else episodes collected into
    ``collect_to`` like the first training dataset (its env, policy, frame skip and time limit:
    its ``dataset.json``, or what the bundle records under ``training.collection`` when the data
    is not at hand, as for an exported model), one per :data:`PAIRS_PER_EPISODE` pairs, with
    base seed ``seed`` or the next one up that is none of the training data's (the same seed
    gives the same episodes, and a rerun reuses them); else the training episodes, with a note
    saying so.

    Args:
        info: the bundle's info (``model.info``).
        pairs, offset: the pairs wanted and their goal steps ahead.
        seed: the pairs' seed, also the collected episodes' base seed.
        data: a dataset the caller names.
        collect_to: where held-out episodes may be collected (None: never collect).
        workers, address: Ray workers and cluster for the collection.
        progress: show the collection's progress bar.

    Raises:
        DreamgymError: the bundle names no training data and ``data`` is None, or the collected
            episodes' seeds overlap the training data's.
    """
    validate.integer("pairs", pairs)
    validate.integer("goal offset", offset)
    if data is not None:
        root = Path(data).resolve()
        trained = info.get("training") or {}
        names = {str(Path(d).resolve()) for d in trained.get("datasets") or [trained.get("data")]
                 if d}  # fmt: skip
        if str(root) in names:
            return PairSet("training", root, None, f"the bundle's training data {str(root)!r}, "
                           "named with --data: goals the model trained on")  # fmt: skip
        return PairSet("user data", root, None, f"held-out episodes of {str(root)!r}")
    training = _training(info)
    validation = training.get("validation") or {}
    reason = "the bundle records no validation episodes"
    if validation.get("episodes") and _at_hand(validation["data"]) is None:
        reason = (f"the trainer's validation episodes ({validation['data']!r}) are not at hand"
                  + ("" if os.path.isabs(validation["data"]) else
                     ", named relative to the run the model was exported from"))  # fmt: skip
    elif validation.get("episodes"):
        held = RolloutDataset(validation["data"])
        episodes = np.asarray(validation["episodes"], np.int64)
        long_enough = episodes[held.lengths[episodes] >= offset]
        if len(long_enough) * PAIRS_PER_EPISODE >= pairs:
            return PairSet("validation", Path(validation["data"]).resolve(),
                           tuple(int(e) for e in long_enough),
                           f"the trainer's {_episodes(len(long_enough), 'validation')} of "
                           f"{str(validation['data'])!r}")  # fmt: skip
        reason = (f"too few validation episodes with {offset} steps for {pairs} pairs "
                  f"({len(long_enough)}; one per {PAIRS_PER_EPISODE} pairs needed)")  # fmt: skip
    recipe = _collection_recipe(training)
    policy = None if recipe is None else recipe.get("policy")
    if collect_to is None:
        reason += "; nowhere to collect held-out episodes"
    elif policy is None or not (policy in BUILTIN_POLICIES or Path(policy).exists()):
        reason += f"; the training data's policy {policy!r} cannot collect held-out episodes"
    else:
        return _collected(
            info,
            training=training,
            recipe=recipe,
            pairs=pairs,
            seed=seed,
            collect_to=Path(collect_to),
            workers=workers,
            address=address,
            progress=progress,
            reason=reason,
        )
    root = Path(training["data"]).resolve()
    return PairSet("training", root, None, f"{reason}: pairs from the training episodes of "
                   f"{str(root)!r}, goals the model trained on")  # fmt: skip


def _collected(info, training, recipe, pairs, seed, collect_to, workers, address, progress,
               reason) -> PairSet:  # fmt: skip
    """Collect (or reuse) held-out episodes with a seed outside the training data's."""
    bases, seeds = _training_seeds(training)
    base = int(seed)
    while base in bases:
        base += 1
    root = collect_to / f"held-out-seed{base}"
    episodes = math.ceil(pairs / PAIRS_PER_EPISODE)
    collect(CollectConfig(env=info["env"], episodes=episodes, out=root, policy=recipe["policy"],
                          workers=workers, seed=base, frame_skip=int(info.get("frame_skip", 1)),
                          max_episode_steps=recipe.get("max_episode_steps"),
                          min_length=int(recipe.get("min_length") or 0), address=address),
            progress=progress)  # fmt: skip
    overlap = seeds & {int(e["seed"]) for e in read_manifest(root).values()}
    if overlap:
        raise DreamgymError(
            f"held-out episodes in {str(root)!r} share seeds {sorted(overlap)} with the training "
            "data; pass another --pair-seed"
        )
    known = ", ".join(map(str, sorted(bases))) or "unknown"
    others = _other_policies(training)
    whose = (f" (the first training dataset's policy; the others': {', '.join(others)})"
             if others else "")  # fmt: skip
    return PairSet("collected", root.resolve(), tuple(range(episodes)),
                   f"{reason}: {_episodes(episodes, 'held-out')} collected with {recipe['policy']}"
                   f"{whose} and base seed {base} (the training data's: {known}) into "
                   f"{str(root)!r}", policy=str(recipe["policy"]))  # fmt: skip
