"""Parallel, crash-safe, resumable rollout collection on Ray.

Each Ray actor owns one real env and runs whole episodes; it returns the episode already
compressed, so the driver only renames bytes into place (this also works on a cluster whose nodes
share no filesystem). Episode ``i`` is always run with seed ``episode_seed(seed, i)``, so the same
command produces the same files, and a re-run skips the episodes already in the manifest.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dreamgym
from dreamgym.common import validate
from dreamgym.common.io import (
    DirectoryLock,
    atomic_write_bytes,
    check_writable_dir,
    remove_stale_temporaries,
)
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.seeding import derive_seed
from dreamgym.envs import get_env_spec, make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import store
from dreamgym.rollouts.episode import episode_filename, run_episode
from dreamgym.rollouts.policies import BUILTIN_POLICIES, PolicyArg, resolve_policy

IN_FLIGHT_PER_WORKER = 2


def episode_seed(base_seed: int, index: int) -> int:
    """The seed of episode ``index`` in a dataset collected with ``base_seed``."""
    return derive_seed(base_seed, index)


@dataclass
class CollectConfig:
    """What to collect and how.

    Attributes:
        env: real env name (``dreamgym envs`` lists them).
        episodes: number of kept episodes the dataset should hold when done.
        out: dataset directory; created if needed, resumed if it holds this config's data.
        policy: ``random``, ``brownian``, ``repeat``, a saved policy file, or a policy object.
        workers: number of Ray actors (one env each).
        seed: base seed; episode i uses ``episode_seed(seed, i)``.
        max_episode_steps: time limit in agent steps (default: the env's own).
        min_length: episodes with fewer steps are dropped (the Doom recipe drops <= 100: 101).
        frame_skip: each action is repeated this many frames.
        address: Ray address to join (``"auto"`` for a running cluster); None starts a local one.
    """

    env: str
    episodes: int
    out: Path
    policy: PolicyArg = "brownian"
    workers: int = 1
    seed: int = 0
    max_episode_steps: int | None = None
    min_length: int = 0
    frame_skip: int = 1
    address: str | None = None


@dataclass
class CollectResult:
    """What a collection run did. Timing starts once every worker has its env ready."""

    out: Path
    episodes: int
    new_episodes: int
    dropped: int
    frames: int
    seconds: float
    workers: int
    returns: list[float] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class EpisodeWorker:
    """A Ray actor body: one env and one policy, running whole episodes on request."""

    def __init__(self, env: str, frame_skip: int, max_episode_steps: int, policy: PolicyArg):
        from dreamgym.common.threads import use_threads

        use_threads("inference")  # a controller policy runs V and M on one frame per step
        self.env = make_env(env, max_episode_steps=max_episode_steps, frame_skip=frame_skip)
        self.policy = resolve_policy(policy, self.env.action_space)

    def ready(self) -> bool:
        return True

    def run(self, index: int, seed: int, min_length: int) -> tuple[dict[str, Any], bytes | None]:
        episode = run_episode(self.env, self.policy, seed, index)
        summary = {
            "index": index,
            "seed": seed,
            "length": episode.length,
            "return": episode.total_reward,
            "terminated": episode.terminated,
            "truncated": episode.truncated,
            "kept": episode.length >= min_length,
        }
        summary["file"] = episode_filename(index) if summary["kept"] else None
        return summary, (episode.to_bytes() if summary["kept"] else None)


def _policy_label(policy: PolicyArg) -> str:
    """How ``dataset.json`` names the policy: a policy object may say so in a ``label``
    attribute (e.g. a controller with exploration noise)."""
    if isinstance(policy, str):
        return policy if policy in BUILTIN_POLICIES else str(Path(policy).resolve())
    label = getattr(policy, "label", None)
    if isinstance(label, str):
        return label
    return f"object:{type(policy).__module__}.{type(policy).__qualname__}"


def _validate(config: CollectConfig) -> dict[str, Any]:
    """Check the config before any work; returns the dataset metadata it implies."""
    validate.integer("episodes", config.episodes)
    validate.integer("workers", config.workers)
    validate.integer("min_length", config.min_length, 0)
    validate.optional_integer("max_episode_steps", config.max_episode_steps)
    spec = get_env_spec(config.env)
    max_steps = config.max_episode_steps or spec.max_episode_steps
    env = make_env(config.env, max_episode_steps=max_steps, frame_skip=config.frame_skip)
    try:
        resolve_policy(config.policy, env.action_space)
        action_space = env.action_space
    finally:
        env.close()
    return {
        "format": store.FORMAT_VERSION,
        "env": config.env,
        "gym_id": spec.gym_id,
        "policy": _policy_label(config.policy),
        "seed": config.seed,
        "frame_skip": config.frame_skip,
        "max_episode_steps": max_steps,
        "min_length": config.min_length,
        "observation_shape": [64, 64, 3],
        "action_low": action_space.low.tolist(),
        "action_high": action_space.high.tolist(),
        "dreamgym_version": dreamgym.__version__,
    }


def _check_output(out: Path) -> dict[str, Any] | None:
    """The dataset metadata already in ``out`` (None for a new or empty directory); refuses a
    directory that holds something else (a run, a bundle), before anything is written."""
    existing = store.read_meta(out) if out.is_dir() else None
    if existing is None and out.is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise DreamgymError(
            f"output directory {str(out)!r} is not empty and holds no rollout dataset (no "
            f"{store.META_FILE}); collect into a new or empty directory, or into a dataset"
        )
    return existing


def prepare_output(config: CollectConfig) -> tuple[dict[str, Any], dict[int, dict]]:
    """Validate the config and the output directory; returns (metadata, existing manifest).

    Never deletes data: only temporary files left by a killed run are removed.
    """
    meta = _validate(config)
    out = Path(config.out)
    existing = _check_output(out)
    check_writable_dir(out)
    if existing is None:
        store.write_meta(out, meta)
    else:
        store.check_compatible(out, existing, meta)
    remove_stale_temporaries(out)
    damaged = store.set_aside_damaged(out)
    if damaged:
        warnings.warn(
            f"moved {len(damaged)} damaged episode file(s) to {str(out / store.DAMAGED_DIR)!r} "
            f"({', '.join(p.name for p in damaged)}); they are collected again",
            stacklevel=2,
        )
    return meta, store.read_manifest(out, repair=True)


def collect(config: CollectConfig, progress: bool = True,
            label: str | None = None) -> CollectResult:  # fmt: skip
    """Collect episodes into ``config.out`` until it holds ``config.episodes`` kept episodes.

    ``label`` names the progress bar (default ``collect ENV``): what the episodes are for.

    Re-running after a kill resumes: finished episodes are skipped and the rest are collected,
    with exactly the data an uninterrupted run would have written.

    Raises:
        DreamgymError: for bad input (before anything is written) or an unreachable Ray cluster.
    """
    _validate(config)  # before anything is written, even the lock
    out = Path(config.out)
    _check_output(out)
    validate.ray_address(config.address)
    check_writable_dir(out)
    with DirectoryLock(out):
        return _collect(config, progress, label)


def _collect(config: CollectConfig, progress: bool, label: str | None) -> CollectResult:
    meta, manifest = prepare_output(config)
    out = Path(config.out)
    kept = sum(1 for e in manifest.values() if e["kept"])
    result = CollectResult(out, kept, 0, 0, 0, 0.0, config.workers)
    if kept >= config.episodes:
        return result
    from dreamgym.common.cluster import ray_session  # Ray is imported only where it runs

    with ray_session(config.address, config.workers):
        _run(config, meta, manifest, result, progress, label)
    return result


def _run(
    config: CollectConfig,
    meta: dict[str, Any],
    manifest: dict[int, dict],
    result: CollectResult,
    progress: bool,
    label: str | None = None,
) -> None:
    import ray

    from dreamgym.common.cluster import ActorPool

    out = Path(config.out)
    remote_worker = ray.remote(num_cpus=1)(EpisodeWorker)
    policy = config.policy if isinstance(config.policy, str) else ray.put(config.policy)
    pool = ActorPool(
        lambda: remote_worker.remote(
            config.env, config.frame_skip, meta["max_episode_steps"], policy
        ),
        config.workers,
        IN_FLIGHT_PER_WORKER,
    )
    max_dropped = max(100, 10 * config.episodes)
    next_index = 0

    def take_index() -> int:
        nonlocal next_index
        while next_index in manifest:
            next_index += 1
        next_index += 1
        return next_index - 1

    bar = progress_bar(
        total=config.episodes,
        initial=result.episodes,
        unit="ep",
        disable=not progress,
        desc=label or f"collect {config.env}",
    )
    start = time.perf_counter()
    try:
        while result.episodes < config.episodes:
            while result.episodes + pool.pending < config.episodes and pool.has_room():
                index = take_index()
                seed = episode_seed(config.seed, index)
                pool.submit(lambda w, i=index, s=seed: w.run.remote(i, s, config.min_length), index)
            # A dead worker's episode is run again by its replacement (same index and seed).
            index, (summary, data) = pool.next()
            if data is not None:
                atomic_write_bytes(out / episode_filename(index), data)
            store.append_manifest(out, summary)
            manifest[index] = summary
            result.frames += summary["length"] + 1
            if summary["kept"]:
                result.episodes += 1
                result.new_episodes += 1
                result.returns.append(summary["return"])
                bar.update(1)
            else:
                result.dropped += 1
                if result.dropped > max_dropped:
                    raise DreamgymError(
                        f"{result.dropped} episodes were shorter than min_length="
                        f"{config.min_length}; lower --min-length"
                    )
            elapsed = time.perf_counter() - start
            bar.set_postfix(frames_per_s=f"{result.frames / elapsed:,.0f}", dropped=result.dropped)
    finally:
        result.seconds = time.perf_counter() - start
        bar.close()
        pool.close()
