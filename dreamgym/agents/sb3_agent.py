"""Neural agents trained with stable-baselines3 in the batched dream, and carried into the game.

:func:`train_agent` trains a PPO, SAC or TD3 policy on :class:`~dreamgym.dreams.sb3.DreamSB3VecEnv`
(thousands of dreams per batched world-model step, CPU or GPU) and saves it as an agent
directory::

    OUT/
      agent.json     {"kind": "sb3", "algo", "world_model", "observation_mode", "timesteps",
                     "config"}: what the agent is and what it acts through (the resume source)
      agent.zip      the SB3 model, rewritten atomically at every checkpoint and at the end
      tb/ALGO_1/     TensorBoard (SB3's rollout/ and train/ curves)

Re-running the same command continues to the target timesteps from the last checkpoint. The
run's RNG streams and, for SAC and TD3, the replay buffer are not saved (the zip holds the
policy and the optimiser), so a resumed run continues the training but does not repeat the
trajectory an uninterrupted one would have followed.

:class:`SB3Agent` is the saved agent as a :class:`~dreamgym.dreams.agent.DreamAgent`
(deterministic actions), so ``evaluate``, ``render``, ``collect --policy``, ``fidelity
--controller`` and the pipeline take an agent directory wherever they take a controller
(:func:`dreamgym.agents.saved.load_agent`).

SB3's zip holds pickled Python objects: loading one can run code. Load only agents you trained
or chose to trust.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamgym.agents.sb3_config import ALGOS, agent_config, resolve_preset
from dreamgym.common import validate
from dreamgym.common.io import (
    LOCK_FILE,
    TMP_SUFFIX,
    DirectoryLock,
    atomic_write_bytes,
    atomic_write_json,
    check_writable_dir,
    remove_stale_temporaries,
)
from dreamgym.common.pretrained import pretrained_name, resolve_controller, resolve_path
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.threads import torch_threads
from dreamgym.dreams.agent import WorldModelPolicy
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.protocol import check_feature_mode

AGENT_KIND = "sb3"
AGENT_JSON = "agent.json"
AGENT_ZIP = "agent.zip"


def _algo_class(algo: str):
    from stable_baselines3 import PPO, SAC, TD3

    return {"ppo": PPO, "sac": SAC, "td3": TD3}[algo]


class SB3Agent:
    """A trained SB3 policy as a :class:`~dreamgym.dreams.agent.DreamAgent`: deterministic
    actions for the world model's observations. Picklable (it holds only SB3's policy module,
    which Ray ships to the real env's workers).

    Args:
        policy: the SB3 policy (``model.policy``).
        observation_mode: the world model's feature vector it reads.
        algo: the algorithm that trained it (for messages).
    """

    def __init__(self, policy, observation_mode: str, algo: str = "ppo") -> None:
        self.policy, self.algo = policy, algo
        self._observation_mode = observation_mode
        self.policy.set_training_mode(False)

    @property
    def observation_mode(self) -> str:
        return self._observation_mode

    @property
    def observation_size(self) -> int:
        return int(self.policy.observation_space.shape[0])

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions (N, A) for observations (N, F) (or (A,) for (F,)), inside the action space."""
        actions, _ = self.policy.predict(obs.detach().float().cpu().numpy(), deterministic=True)
        return torch.from_numpy(np.asarray(actions, dtype=np.float32))

    def check_fits(self, model) -> None:
        """Raise DreamgymError when this agent cannot act on ``model``'s observations."""
        space = model.action_space
        real = len(model.info.get("action_low", space.low))
        if space.shape[0] != real:
            raise DreamgymError(
                f"this world model steps on blocks of {space.shape[0] // real} real actions "
                "(frameskip), an agent acts on one real step; train the model with "
                "--frameskip 1 to train agents in it"
            )
        mode = check_feature_mode(model, self.observation_mode)
        inputs, own = model.feature_size(mode), self.policy.action_space
        same_actions = own.shape == space.shape and np.allclose(own.low, space.low) and (
            np.allclose(own.high, space.high))  # fmt: skip
        if inputs != self.observation_size or not same_actions:
            raise DreamgymError(
                f"{self.algo} agent does not fit the world model: it reads "
                f"{self.observation_size} inputs ({mode}) and acts on {own}, the world model "
                f"({model.env!r}) gives {inputs} inputs and acts on {space}"
            )

    @classmethod
    def load(cls, path: str | Path) -> tuple[SB3Agent, dict[str, Any]]:
        """A saved agent and its ``agent.json`` from its directory (or its ``agent.json``).

        The zip is unpickled: load only agents you trained or trust. A relative
        ``world_model`` in the JSON is resolved against the agent's directory.

        Raises:
            DreamgymError: a missing directory or file, or a JSON of another kind.
            CorruptFileError: an unreadable JSON, or a zip that is not a stable-baselines3
                model of the JSON's algorithm with a Box observation of the world model's size.
        """
        root = resolve_controller(path)
        meta = read_agent_json(root)
        zip_path = root / AGENT_ZIP
        if not zip_path.is_file():
            raise DreamgymError(f"agent file {str(zip_path)!r} does not exist")
        algo = meta["algo"]
        # The schedules are only needed to train on; SB3's own advice for loading elsewhere.
        model = _load_zip(zip_path, algo, device="cpu",
                          custom_objects={"learning_rate": 0.0, "lr_schedule": lambda _: 0.0,
                                          "clip_range": lambda _: 0.0})  # fmt: skip
        obs_space = model.policy.observation_space
        if len(getattr(obs_space, "shape", ()) or ()) != 1:
            raise CorruptFileError(
                f"{str(zip_path)!r} observes {obs_space}, not a world model's feature vector"
            )
        bundle = meta.get("world_model")
        if isinstance(bundle, str) and pretrained_name(bundle) is None:
            meta["world_model"] = str((root / bundle).resolve())
        return cls(model.policy, meta["observation_mode"], algo), meta


def _load_zip(path: Path, algo: str, **kwargs: Any):
    """``ALGO.load(path, **kwargs)``, with any failure as one CorruptFileError line."""
    try:
        return _algo_class(algo).load(path, **kwargs)
    except Exception as exc:  # SB3 raises many kinds (zip, pickle, torch, its own checks)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise CorruptFileError(
            f"{str(path)!r} is not a stable-baselines3 {algo.upper()} model "
            f"({type(exc).__name__}: {first})"
        ) from None


def read_agent_json(root: Path) -> dict[str, Any]:
    """The checked ``agent.json`` of agent directory ``root``.

    Raises:
        DreamgymError: ``root`` or its ``agent.json`` does not exist, or it is of another kind.
        CorruptFileError: it is not JSON, or lacks a field.
    """
    path = root / AGENT_JSON
    if not root.exists():
        raise DreamgymError(f"agent {str(root)!r} does not exist (a directory holding "
                            f"{AGENT_JSON} and {AGENT_ZIP})")  # fmt: skip
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DreamgymError(f"agent file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"agent file {str(path)!r} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != AGENT_KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        raise DreamgymError(f"{str(path)!r} is of kind {kind!r}, not a saved SB3 agent "
                            f"(kind {AGENT_KIND!r})")  # fmt: skip
    if meta.get("algo") not in ALGOS or not isinstance(meta.get("observation_mode"), str):
        raise CorruptFileError(
            f"agent file {str(path)!r} must name algo (one of {', '.join(ALGOS)}) and "
            f"observation_mode, got {meta.get('algo')!r} and {meta.get('observation_mode')!r}"
        )
    return meta


class SB3AgentPolicy(WorldModelPolicy):
    """A saved agent acting in the real env through its world model (``dreamgym collect
    --policy AGENT_DIR``), optionally with exploration noise: Gaussian noise of std ``noise`` on
    the actions scaled to [-1, 1] over the action bounds, clipped back into them, drawn from a
    generator seeded by each episode's seed (as a noisy controller's)."""

    def __init__(self, agent: SB3Agent, world_model, noise: float = 0.0,
                 label: str | None = None) -> None:  # fmt: skip
        validate.real("policy noise", noise, 0.0)
        super().__init__(agent, world_model, label)
        self.noise = float(noise)
        space = agent.policy.action_space
        self.low = torch.as_tensor(space.low, dtype=torch.float32)
        self.high = torch.as_tensor(space.high, dtype=torch.float32)
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        super().reset(seed)
        self.rng = np.random.default_rng([seed, 2])

    def decide(self, obs: torch.Tensor) -> torch.Tensor:
        actions = self.agent.act(obs)
        if self.noise > 0:
            eps = torch.from_numpy(self.rng.standard_normal(actions.shape).astype(np.float32))
            actions = actions + self.noise * eps * (self.high - self.low) / 2
            actions = torch.minimum(torch.maximum(actions, self.low), self.high)
        return actions


def sb3_agent_policy(path: str | Path, noise: float = 0.0) -> SB3AgentPolicy:
    """A saved agent as a real-env policy reading frames through its world model; its label is
    the resolved path (`` noise=SIGMA`` added when noisy), as a controller's.

    Raises:
        DreamgymError: a bad agent directory, or one that names no world model.
    """
    from dreamgym import worldmodels

    root = resolve_controller(path)
    agent, meta = SB3Agent.load(root)
    if not meta.get("world_model"):
        raise DreamgymError(f"agent {str(root)!r} names no world model to read frames with")
    label = str(root.resolve()) + (f" noise={float(noise)!r}" if noise else "")
    return SB3AgentPolicy(agent, worldmodels.load(meta["world_model"]), noise, label)


def load_sb3_policy(path: Path, meta: dict[str, Any]) -> SB3AgentPolicy:
    """The policy-file loader for ``kind: sb3`` (see rollouts.policies)."""
    return sb3_agent_policy(path)


def _save(model, out: Path, meta: dict[str, Any]) -> None:
    """The zip, then the JSON that records it (the JSON is the commit point of a checkpoint)."""
    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write_bytes(out / AGENT_ZIP, buffer.getvalue())
    returns = [float(e["r"]) for e in model.ep_info_buffer]  # SB3 keeps the last 100
    atomic_write_json(out / AGENT_JSON, {**meta, "timesteps": int(model.num_timesteps),
                                         "episode_returns": returns})  # fmt: skip


def _callback(out: Path, meta: dict[str, Any], every: int, bar):
    from stable_baselines3.common.callbacks import BaseCallback

    class Callback(BaseCallback):
        """Progress on every step; a checkpoint at the start of a rollout (after the last
        update, so the zip's weights and timesteps agree) once ``every`` steps have passed."""

        def _on_training_start(self) -> None:
            self.saved = self.model.num_timesteps

        def _on_rollout_start(self) -> None:
            if self.model.num_timesteps - self.saved >= every:
                _save(self.model, out, meta)
                self.saved = self.model.num_timesteps

        def _on_step(self) -> bool:
            bar.update(self.model.num_timesteps - bar.n)
            episodes = self.model.ep_info_buffer
            if episodes:
                bar.set_postfix(ep_return=f"{np.mean([e['r'] for e in episodes]):.1f}")
            return True

    return Callback()


@torch_threads("training")
def train_agent(
    world_model: str | Path,
    out: str | Path,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    progress: bool = True,
) -> tuple[SB3Agent, dict[str, Any]]:
    """Train an SB3 agent in ``world_model``'s batched dream into ``out``, resuming a run there.

    Args:
        world_model: the bundle directory (or ``pretrained:NAME``).
        out: the agent directory (see the module docstring).
        preset: a name of :data:`~dreamgym.agents.sb3_config.AGENT_PRESETS` (default: see
            :func:`~dreamgym.agents.sb3_config.agent_config`).
        overrides: settings of :class:`~dreamgym.agents.sb3_config.AgentConfig` replacing the
            preset's (None: the preset's).
        device: where the dream and the networks run (``auto``: CUDA when available).
        progress: show a progress bar.

    Returns:
        The trained agent and its ``agent.json``.

    Raises:
        DreamgymError: bad settings, or ``out`` holding an agent trained with other settings.
    """
    from dreamgym import worldmodels
    from dreamgym.common.device import resolve_device
    from dreamgym.dreams.core import resolve_done_mode, resolve_dropout, resolve_temperature
    from dreamgym.dreams.sb3 import DreamSB3VecEnv

    out = Path(out)
    bundle = str(resolve_path(world_model).resolve())
    device = str(resolve_device(device))
    model = worldmodels.load(bundle, device)
    config = agent_config(preset, model.env, overrides)
    config = dataclasses.replace(
        config,
        observation_mode=check_feature_mode(model, config.observation_mode),
        temperature=resolve_temperature(model.env, config.temperature),
        done_mode=resolve_done_mode(model, config.done_mode),
        dropout=resolve_dropout(model, config.dropout),
    )
    saved = _saved_run(out)
    settings = {**asdict(config), "net_arch": list(config.net_arch)}
    if saved is not None:  # the target and the checkpoint interval may change on a resume
        same = {"timesteps": config.timesteps, "checkpoint_every": config.checkpoint_every}
        theirs = {**saved.get("config", {}), **same}
        mine = {**settings, "world_model": bundle}
        theirs["world_model"] = saved.get("world_model")
        differing = sorted(k for k in mine if theirs.get(k) != mine[k])
        if differing:
            raise DreamgymError(
                f"{str(out)!r} holds an agent trained with other settings "
                f"({', '.join(differing)}); re-run it with its own settings to resume, or use "
                "another --out"
            )
    check_writable_dir(out)
    meta = {"kind": AGENT_KIND, "algo": config.algo, "world_model": bundle, "env": model.env,
            "observation_mode": config.observation_mode, "config": settings,
            "preset": resolve_preset(preset, model.env)}  # fmt: skip
    with DirectoryLock(out):
        remove_stale_temporaries(out)  # a checkpoint cut short by a kill
        venv = DreamSB3VecEnv(
            config.num_envs, world_model=model, temperature=config.temperature,
            observation_mode=config.observation_mode, done_mode=config.done_mode,
            max_episode_steps=config.max_episode_steps, dropout=config.dropout,
        )  # fmt: skip
        if saved is not None:
            sb3 = _load_zip(out / AGENT_ZIP, config.algo, env=venv, device=device)
            sb3.set_random_seed(config.seed + int(sb3.num_timesteps))
        else:
            sb3 = _algo_class(config.algo)(
                "MlpPolicy", venv, seed=config.seed, device=device, verbose=0,
                tensorboard_log=str(out / "tb"), **config.algo_kwargs(),
            )  # fmt: skip
        sb3.tensorboard_log = str(out / "tb")
        done = int(sb3.num_timesteps)
        bar = progress_bar(total=config.timesteps, initial=min(done, config.timesteps),
                           desc=f"train agent ({config.algo})", unit="step",
                           disable=not progress)  # fmt: skip
        try:
            if done < config.timesteps:
                sb3.learn(config.timesteps - done, reset_num_timesteps=saved is None,
                          tb_log_name=config.algo,
                          callback=_callback(out, meta, config.checkpoint_every, bar))  # fmt: skip
                _save(sb3, out, meta)
        finally:
            bar.close()
            venv.close()
    return SB3Agent.load(out)


def _saved_run(out: Path) -> dict[str, Any] | None:
    """The ``agent.json`` of the run in ``out`` when it has a checkpoint, else None.

    Raises:
        DreamgymError: ``out`` holds something else (files of another kind of run or data).
    """
    if (out / AGENT_JSON).exists() and (out / AGENT_ZIP).exists():
        return read_agent_json(out)
    if out.is_dir():  # a run killed before its first checkpoint leaves only these
        ours = {"tb", LOCK_FILE, AGENT_JSON, AGENT_ZIP}
        other = sorted(p.name for p in out.iterdir()
                       if p.name not in ours and not p.name.endswith(TMP_SUFFIX))  # fmt: skip
        if other:
            raise DreamgymError(
                f"{str(out)!r} is not an agent directory (it holds {other[0]!r} and no "
                f"{AGENT_JSON}); use a new or empty directory"
            )
    return None
