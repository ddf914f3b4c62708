"""The settings of an agent's training in the dream, and their named presets.

:class:`AgentConfig` holds every setting of :func:`dreamgym.agents.sb3_agent.train_agent`;
:data:`AGENT_PRESETS` names the settings each preset differs in; :func:`agent_config` resolves a
preset with overrides and checks it (what ``dreamgym train agent`` and the pipeline call).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dreamgym.common import validate
from dreamgym.errors import DreamgymError

ALGOS = ("ppo", "sac", "td3")


@dataclass(frozen=True)
class AgentConfig:
    """Every setting of an agent's training in the dream (see :data:`AGENT_PRESETS`).

    Attributes:
        algo: ``ppo``, ``sac`` or ``td3``.
        timesteps: dream steps to train for (all envs together); a resumed run continues to it.
        num_envs: dreams stepped together.
        learning_rate: the optimizer's learning rate.
        gamma, batch_size: as SB3 names them.
        net_arch: hidden layer sizes of the policy (and value / Q) networks.
        n_steps, n_epochs, gae_lambda, clip_range, ent_coef: PPO's (``n_steps`` per env and
            rollout).
        buffer_size, learning_starts, train_freq, gradient_steps: SAC's and TD3's.
        observation_mode: the world model's feature vector the agent reads (default: the
            model's default, V+M's ``zh``).
        temperature: the dream's tau (default: the env's, 1.0; Doom 1.15).
        done_mode: the dream's done rule (default: see ``dreams.core.resolve_done_mode``).
        dropout: the dream's inference dropout (default: the world model's own).
        max_episode_steps: dream episode cap (default: the real env's).
        seed: seed of the dream and of SB3.
        checkpoint_every: timesteps between checkpoints of ``agent.zip``.
    """

    algo: str = "ppo"
    timesteps: int = 2_000_000
    num_envs: int = 64
    learning_rate: float = 3e-4
    gamma: float = 0.99
    batch_size: int = 256
    net_arch: tuple[int, ...] = (64, 64)
    n_steps: int = 128
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    buffer_size: int = 1_000_000
    learning_starts: int = 10_000
    train_freq: int = 1
    gradient_steps: int = 1
    observation_mode: str | None = None
    temperature: float | None = None
    done_mode: str | None = None
    dropout: float | None = None
    max_episode_steps: int | None = None
    seed: int = 0
    checkpoint_every: int = 100_000

    def check(self) -> None:
        """DreamgymError naming the first bad setting."""
        validate.choice("algo", self.algo, ALGOS)
        counts = ("timesteps", "num_envs", "batch_size", "n_steps", "n_epochs", "buffer_size",
                  "train_freq", "gradient_steps", "checkpoint_every")  # fmt: skip
        for name in counts:
            validate.integer(name, getattr(self, name))
        validate.integer("learning_starts", self.learning_starts, 0)
        validate.integer("seed", self.seed, 0)
        validate.optional_integer("max_episode_steps", self.max_episode_steps)
        validate.positive("learning_rate", self.learning_rate)
        validate.real("gamma", self.gamma, 0.0, 1.0)
        validate.real("gae_lambda", self.gae_lambda, 0.0, 1.0)
        validate.positive("clip_range", self.clip_range)
        validate.real("ent_coef", self.ent_coef, 0.0)
        if not self.net_arch or isinstance(self.net_arch, str):
            raise DreamgymError(f"net_arch must be a list of layer sizes, got {self.net_arch!r}")
        for size in self.net_arch:
            validate.integer("net_arch layer size", size)
        if self.temperature is not None:
            validate.positive("temperature", self.temperature)
        if self.algo == "ppo" and self.n_steps * self.num_envs < 2:
            raise DreamgymError("PPO needs n_steps x num_envs >= 2 steps per rollout")

    def algo_kwargs(self) -> dict[str, Any]:
        """The SB3 constructor's hyper-parameters for :attr:`algo`."""
        common = {"learning_rate": self.learning_rate, "gamma": self.gamma,
                  "batch_size": self.batch_size,
                  "policy_kwargs": {"net_arch": list(self.net_arch)}}  # fmt: skip
        if self.algo == "ppo":
            return {**common, "n_steps": self.n_steps, "n_epochs": self.n_epochs,
                    "gae_lambda": self.gae_lambda, "clip_range": self.clip_range,
                    "ent_coef": self.ent_coef}  # fmt: skip
        return {**common, "buffer_size": self.buffer_size, "learning_starts": self.learning_starts,
                "train_freq": self.train_freq, "gradient_steps": self.gradient_steps}  # fmt: skip


# Presets: the settings each differs from AgentConfig's defaults in. The Doom and CarRacing
# presets are PPO settings for the paper-size dreams (256 dreams per step on a GPU); the
# dream's own tau and done rule stay the env's defaults.
AGENT_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "debug": dict(timesteps=256, num_envs=8, n_steps=16, batch_size=32, n_epochs=2,
                  net_arch=(16,), buffer_size=4096, learning_starts=32, checkpoint_every=128),
    "doom-takecover": dict(timesteps=5_000_000, num_envs=256, n_steps=128, batch_size=4096,
                           n_epochs=4, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95,
                           ent_coef=0.0, net_arch=(64, 64), checkpoint_every=500_000),
    "carracing": dict(timesteps=10_000_000, num_envs=256, n_steps=128, batch_size=4096,
                      n_epochs=4, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95,
                      ent_coef=0.0, net_arch=(64, 64), checkpoint_every=500_000),
}  # fmt: skip
# doom-takecover trained 4x longer: at 5M steps the dream return is still rising (SB3's
# ep_rew_mean about 650 at 5M, 830 from 9M on; docs/agents.md).
AGENT_PRESETS["doom-takecover-20m"] = {**AGENT_PRESETS["doom-takecover"], "timesteps": 20_000_000}


def resolve_preset(preset: str | None, env: str | None) -> str:
    """``preset``, or for None the preset named after ``env`` when there is one, else
    ``default``.

    Raises:
        DreamgymError: an unknown preset.
    """
    if preset is None:
        preset = env if env in AGENT_PRESETS else "default"
    return validate.choice("agent preset", preset, AGENT_PRESETS)


def agent_config(
    preset: str | None = None, env: str | None = None, overrides: dict[str, Any] | None = None
) -> AgentConfig:
    """The settings of preset ``preset`` with ``overrides`` (those not None) applied, checked.

    Args:
        preset: a name of :data:`AGENT_PRESETS`; None: the preset named after ``env`` when
            there is one (``doom-takecover``, ``carracing``), else ``default``.
        env: the world model's real env.
        overrides: settings replacing the preset's; None values are ignored.

    Raises:
        DreamgymError: an unknown preset or setting, or a bad value.
    """
    preset = resolve_preset(preset, env)
    values = {**AGENT_PRESETS[preset], **{k: v for k, v in (overrides or {}).items()
                                          if v is not None}}  # fmt: skip
    known = {f.name for f in dataclasses.fields(AgentConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DreamgymError(f"unknown agent setting(s) {', '.join(unknown)}")
    if "net_arch" in values and not isinstance(values["net_arch"], str):
        values["net_arch"] = tuple(values["net_arch"])
    config = AgentConfig(**values)
    config.check()
    return config
