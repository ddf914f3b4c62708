"""Fidelity reports: can this dream be trusted? Measured against held-out real episodes.

::

    OUT/ (default WORLD_MODEL/fidelity)
      fidelity.json, fidelity.md     every figure, and one verdict line per check
      survival.png                   episode lengths, dream vs real, per policy
      reliability.png                the done head's calibration
      openloop.png                   prediction error vs horizon, against copying the start frame
      real/<policy>/                 the real episodes run for probes and controllers (resumable)
      real/held-out/                 held-out real episodes this report collected itself, when
                                     none were given and the bundle's recorded ones are absent

Checks and their thresholds (:data:`dreamgym.fidelity.summary.THRESHOLDS`):

- **survival** (per policy: the collection policy, each probe, each controller): dream mean
  episode length within +-25% of the real mean. The same for the return. A probe whose dream
  outlives the real game is a hole an optimiser will find. The verdict line leads with the
  quantity that decided it: the return when it is off (what an optimiser chases), else the
  survival. When the held-out episodes hold deaths, each probe's and controller's line also
  says how many episode ends the dream expects along that policy's real episodes (M following
  their frames) per real death: below 1, the dream's done head is kind exactly where that
  policy goes, even when it is calibrated on the collection policy's episodes.
- **done head**: AUROC of "the episode ends within the next 10 steps" >= 0.8 (k = 1 reported too),
  each step scored by the dream's own chance of ending within those steps (imagined from M's
  memory with the real actions, under the dream's done rule); expected calibration error of
  "ends at this step" <= 0.05, and the deaths per episode the head predicts along real
  episodes within +-25% of those observed.
- **reward head**: the mean absolute error of the per-episode summed reward within 25% of the
  real mean return.
- **open-loop**: the dream's latent error averaged over horizons 1..H below copying the start
  frame's, and V's reconstructions of the same real frames closer to them (pixel MSE) than
  their per-pixel mean frame, the best constant prediction: a V that decodes every frame to
  one blur, whose latents then say little, cannot pass. (The dream's own decoded frames are
  reported beside them but not judged against the mean frame: under MSE a blur beats a sharp
  prediction that drifts, as a stochastic game's long-horizon predictions do.)

Held-out real episodes come from ``data``, else from the validation episodes the bundle
records; when neither is there (an exported or shipped model), the report collects
``held_out`` episodes of the collection policy itself, with the seed :data:`HELD_OUT_SEED`
(+ ``seed``), which no training run of dreamgym uses, and says so.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamgym.common import validate
from dreamgym.common.io import atomic_write_bytes, atomic_write_json, check_writable_dir
from dreamgym.common.pretrained import describe, output_beside, resolve_controller, resolve_path
from dreamgym.common.threads import torch_threads
from dreamgym.errors import DreamgymError
from dreamgym.fidelity import summary
from dreamgym.fidelity.measure import (
    DreamEpisodes,
    controller_actions,
    dream_episodes,
    expected_ends,
    follow_real_episodes,
    policy_actions,
)

# The base seed of held-out episodes a report collects itself: far from the small seeds (and
# their +1, +1000 k offsets) that training data is collected with.
HELD_OUT_SEED = 1_000_003
HELD_OUT_DIR = "held-out"


@dataclass
class FidelityConfig:
    """What a fidelity report measures.

    Attributes:
        dream_episodes: dream episodes per policy.
        real_episodes: real episodes per probe and per controller.
        held_out: held-out real episodes followed by M (teacher forcing, open loop); at most.
        horizon: open-loop horizon H.
        temperature: the dream's tau (default: the env's, as in evolution).
        done_mode: the dream's done rule (default: see ``dreams.core.resolve_done_mode``).
        probes: run the env spec's probe actions.
        max_episode_steps: episode cap, dream and real (default: the bundle's).
        seed: seeds the dream episodes, the open-loop starts and the real probe episodes.
        workers: Ray workers for real episodes.
        address: Ray cluster to join (None: a local Ray).
    """

    dream_episodes: int = 256
    real_episodes: int = 20
    held_out: int = 50
    horizon: int = 100
    temperature: float | None = None
    done_mode: str | None = None
    probes: bool = True
    max_episode_steps: int | None = None
    seed: int = 0
    workers: int = 2
    address: str | None = None

    def check(self) -> None:
        for name in ("dream_episodes", "real_episodes", "held_out", "horizon"):
            validate.integer(name, getattr(self, name))
        validate.optional_integer("max_episode_steps", self.max_episode_steps)
        if self.temperature is not None:
            validate.positive("temperature", self.temperature)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class FidelityReport:
    """Measures one world model against real episodes (see the module docstring).

    Args:
        world_model: the bundle directory (or ``pretrained:NAME``).
        out: where the report goes (default ``WORLD_MODEL/fidelity``; ``./NAME/fidelity`` for
            ``pretrained:NAME``).
        data: held-out real episodes (a dataset directory); default the validation episodes
            recorded in the bundle, else ``held_out`` episodes collected into
            ``out/real/held-out``.
        policy: the policy that collected ``data`` (default: the dataset's, when built in; for
            collected episodes, the env's collection policy).
        controllers: saved controllers (or SB3 agents) to compare in the dream and in the
            real game (each a directory, its ``controller.json``, or ``pretrained:NAME``).
        config: sizes, dream settings, Ray.
        device: where the world model runs.

    Attributes:
        files: the report files :meth:`run` wrote (``fidelity.md`` first); the real episodes
            it ran or collected are under ``out/real``.
    """

    def __init__(self, world_model: str | Path, out: str | Path | None = None,
                 data: str | Path | None = None, policy: str | None = None,
                 controllers: Sequence[str | Path] = (), config: FidelityConfig | None = None,
                 device: str = "cpu", progress: bool = True) -> None:  # fmt: skip
        from dreamgym import worldmodels
        from dreamgym.dreams.core import resolve_done_mode, resolve_temperature
        from dreamgym.envs import get_env_spec
        from dreamgym.rollouts.policies import BUILTIN_POLICIES

        self.config = config or FidelityConfig()
        self.config.check()
        self.world_model = resolve_path(world_model)
        self.model = worldmodels.load(self.world_model, device)
        try:
            self.done_mode = resolve_done_mode(self.model, self.config.done_mode)
        except ValueError as exc:
            raise DreamgymError(str(exc)) from None
        tau = self.config.temperature
        try:
            self.temperature = resolve_temperature(self.model.env, tau)
        except ValueError as exc:
            raise DreamgymError(str(exc)) from None
        self.max_steps = int(self.config.max_episode_steps or self.model.info["max_episode_steps"])
        self.out = Path(out) if out is not None else output_beside(world_model, "fidelity")
        self.dataset, self.held_out, self.collect_reason = self._held_out(data)
        if self.dataset is None:
            self.policy = policy or get_env_spec(self.model.env).collection_policy
        else:
            self._check_data()
            self.policy = policy or self.dataset.meta.get("policy")
        if self.policy not in BUILTIN_POLICIES:
            raise DreamgymError(
                f"the data's collection policy {self.policy!r} is not a built-in one; pass "
                f"policy= (one of {', '.join(BUILTIN_POLICIES)})"
            )
        from dreamgym.agents.saved import agent_files

        self.controllers = [resolve_controller(c) for c in controllers]
        for c in controllers:
            agent_files(c)  # a path that holds no saved agent is named now
        self.progress = progress
        self.files: list[Path] = []  # what run() wrote, the summary first
        check_writable_dir(self.out)

    def _held_out(self, data):
        """(dataset, episode indices, None), or (None, None, why) when the report is to
        collect its held-out episodes itself."""
        from dreamgym.rollouts import RolloutDataset

        if data is not None:
            try:
                dataset = RolloutDataset(data)
            except DreamgymError as exc:
                raise DreamgymError(
                    f"held-out data: {exc}; pass --data DIR, a dataset of real episodes "
                    f"of {self.model.env!r}, or leave --data out to collect them"
                ) from None
            return dataset, np.arange(min(len(dataset), self.config.held_out)), None
        validation = self.model.info.get("training", {}).get("validation")
        if not validation or not validation["episodes"]:
            return None, None, "the bundle records no validation episodes"
        recorded = Path(validation["data"])
        # An exported bundle records its data relative to the run it came from: not here.
        if not recorded.is_absolute() or not recorded.is_dir():
            return None, None, f"the bundle's training data ({str(recorded)!r}) is not here"
        try:
            dataset = RolloutDataset(recorded)
        except DreamgymError:
            return None, None, f"the bundle's training data ({str(recorded)!r}) is unreadable"
        episodes = np.asarray(validation["episodes"], dtype=np.int64)
        return dataset, episodes[: self.config.held_out], None

    def _check_data(self) -> None:
        data_cap = int(self.dataset.meta["max_episode_steps"])
        if self.max_steps > data_cap:
            raise DreamgymError(
                f"max_episode_steps={self.max_steps} exceeds the held-out data's cap {data_cap} "
                f"({str(self.dataset.root)!r}); pass --max-steps {data_cap} or less"
            )
        if len(self.held_out) == 0:
            raise DreamgymError(f"no held-out episodes in {str(self.dataset.root)!r}")
        if self.dataset.env != self.model.env:
            raise DreamgymError(
                f"data {str(self.dataset.root)!r} holds {self.dataset.env!r} episodes; the world "
                f"model is for {self.model.env!r}; pass --data with {self.model.env!r} episodes"
            )

    @property
    def held_out_seed(self) -> int:
        """The base seed of the held-out episodes this report collects itself."""
        return self.config.seed + HELD_OUT_SEED

    def _collect_held_out(self) -> None:
        """Collect the held-out real episodes (resumably) when none were given or recorded."""
        from dreamgym.rollouts import CollectConfig, RolloutDataset, collect

        c, root = self.config, self.out / "real" / HELD_OUT_DIR
        print(f"fidelity: {self.collect_reason} and no --data was given: collecting "
              f"{c.held_out} held-out real episodes of the {self.policy} policy (seed "
              f"{self.held_out_seed}) into {root}", flush=True)  # fmt: skip
        collect(CollectConfig(
            env=self.model.env, episodes=c.held_out, out=root, policy=self.policy,
            workers=c.workers, seed=self.held_out_seed, max_episode_steps=self.max_steps,
            frame_skip=int(self.model.info.get("frame_skip", 1)), address=c.address,
        ), progress=self.progress, label="fidelity held-out real episodes")  # fmt: skip
        self.dataset = RolloutDataset(root)
        self.held_out = np.arange(min(len(self.dataset), c.held_out))

    def _say(self, text: str) -> None:
        if self.progress:
            print(f"fidelity: {text}", flush=True)

    def _dream(self, actions, observation_mode: str | None = None, seed_offset: int = 0):
        c = self.config
        return dream_episodes(
            self.model,
            actions,
            n=c.dream_episodes,
            temperature=self.temperature,
            done_mode=self.done_mode,
            max_episode_steps=self.max_steps,
            observation_mode=observation_mode,
            seed=c.seed + seed_offset,
        )

    def _real(self, name: str, policy, shown: str, deaths: bool,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
        """Real episodes of ``policy``, collected (resumably) under ``out/real/<name>``: their
        lengths, returns, terminations and the ends the dream expects along each (None without
        ``deaths``, when the held-out episodes hold none: nothing ends the dream but its cap);
        the progress bar says ``fidelity <shown> (real)``."""
        from dreamgym.rollouts import CollectConfig, RolloutDataset, collect

        c = self.config
        root = self.out / "real" / _slug(name)
        collect(CollectConfig(
            env=self.model.env, episodes=c.real_episodes, out=root, policy=policy,
            workers=c.workers, seed=c.seed + 7919, max_episode_steps=self.max_steps,
            frame_skip=int(self.model.info.get("frame_skip", 1)), address=c.address,
        ), progress=self.progress, label=f"fidelity {shown} (real)")  # fmt: skip
        dataset = RolloutDataset(root)
        entries = dataset.entries
        ends = None
        if deaths:
            from dreamgym.dreams.core import end_probability

            episodes = [dataset.episode(i) for i in range(len(dataset))]
            ends = expected_ends(self.model, episodes, end_probability(self.model, self.done_mode),
                                 self.config.seed)  # fmt: skip
        return (np.array([e["length"] for e in entries]), np.array([e["return"] for e in entries]),
                np.array([e["terminated"] for e in entries]), ends)  # fmt: skip

    @torch_threads("inference")
    def run(self) -> dict[str, Any]:
        """Measure everything, write the report files, and return the report."""
        from dreamgym.common.cluster import ray_session

        with ray_session(self.config.address, self.config.workers):
            report = self._measure()
        report = summary.finite(report)
        self._write(report)
        return report

    def _measure(self) -> dict[str, Any]:
        from dreamgym.agents.saved import agent_files, load_agent
        from dreamgym.dreams.agent import check_agent_fits
        from dreamgym.dreams.core import end_probability
        from dreamgym.envs import get_env_spec
        from dreamgym.rollouts.policies import ConstantPolicy, resolve_policy

        c, space = self.config, self.model.action_space
        if self.dataset is None:
            self._collect_held_out()
        episodes = [self.dataset.episode(int(i)) for i in self.held_out]
        # Held-out episodes as they would have gone under this report's cap.
        real_len = np.array([min(e.length, self.max_steps) for e in episodes])
        real_ret = np.array([float(e.rewards[: self.max_steps].sum()) for e in episodes])
        real_term = np.array([e.terminated and e.length <= self.max_steps for e in episodes])
        deaths = bool(real_term.any())
        survival = []

        self._say(f"dreaming {c.dream_episodes} episodes with the {self.policy} policy")
        seeds = np.random.SeedSequence([c.seed, 1]).generate_state(c.dream_episodes)
        policies = [resolve_policy(self.policy, space) for _ in range(c.dream_episodes)]
        dream = self._dream(policy_actions(self.model, policies, seeds))
        min_length = int(self.dataset.meta.get("min_length", 0))
        if min_length > 0:  # the held-out data kept only episodes this long: so does the dream
            keep = dream.lengths >= min_length
            if keep.any():
                dream = DreamEpisodes(dream.lengths[keep], dream.returns[keep],
                                      dream.terminated[keep])  # fmt: skip
        name = f"{self.policy} (collection policy)"
        real = (real_len, real_ret, real_term)
        survival.append(summary.survival_entry(name, dream, *real, "collection"))

        probes = get_env_spec(self.model.env).probe_actions if c.probes else {}
        for k, (name, action) in enumerate(probes.items()):
            self._say(f"probe '{name}': dream, then {c.real_episodes} real episodes")
            probe = ConstantPolicy(action, space, name)
            dream = self._dream(policy_actions(self.model, [probe] * c.dream_episodes, seeds),
                                seed_offset=k + 2)  # fmt: skip
            *real, ends = self._real(f"probe {name}", probe, f"probe '{name}'", deaths)
            survival.append(summary.survival_entry(f"probe '{name}'", dream, *real, "probe",
                                                   ends))  # fmt: skip

        for k, path in enumerate(self.controllers):
            file, weights = agent_files(path)
            kind = "controller" if file.name == "controller.json" else "agent"
            shown = f"{kind} {describe(path)}"
            self._say(f"{shown}: dream, then {c.real_episodes} real episodes")
            controller, _ = load_agent(path)
            check_agent_fits(controller, self.model)
            dream = self._dream(controller_actions(controller),
                                controller.observation_mode, 100 + k)  # fmt: skip
            digest = hashlib.sha256(weights.read_bytes()).hexdigest()
            *real, ends = self._real(f"{kind} {path.name} {digest[:12]}", str(file), shown,
                                     deaths)  # fmt: skip
            survival.append(summary.survival_entry(shown, dream, *real, "controller", ends))

        self._say(f"following {len(episodes)} held-out real episodes (heads, open loop)")
        follow = follow_real_episodes(
            self.model, episodes, self.temperature, c.horizon, c.seed,
            done_k=[k for k in summary.DONE_K if k > 1],
            end_probability=end_probability(self.model, self.done_mode),
        )  # fmt: skip
        if self.done_mode == "calibrated":  # judge the probabilities the dream draws from
            calibrated = end_probability(self.model, "calibrated")
            follow.done_prob = [calibrated(torch.from_numpy(p)).numpy() for p in follow.done_prob]
        held_out = {"source": "given" if self.collect_reason is None else "collected",
                    "policy": self.policy}  # fmt: skip
        if self.collect_reason is not None:
            held_out.update(seed=self.held_out_seed, reason=self.collect_reason)
        return {
            "world_model": describe(self.world_model.resolve()),
            "env": self.model.env,
            "data": str(self.dataset.root.resolve()),
            "held_out_episodes": len(episodes),
            "held_out": held_out,
            "config": {**asdict(c), "temperature": self.temperature,
                       "done_mode": self.done_mode, "max_episode_steps": self.max_steps},
            "thresholds": summary.THRESHOLDS,
            "survival": survival,
            "done": summary.done_section(follow, np.array([e.length for e in episodes]),
                                  np.array([e.terminated for e in episodes])),
            "reward": summary.reward_section(follow, episodes),
            "openloop": summary.openloop_section(follow),
        }  # fmt: skip

    def _write(self, report: dict[str, Any]) -> None:
        from dreamgym.fidelity.plots import plot_openloop, plot_reliability, plot_survival

        report["verdicts"] = summary.verdicts(report)
        report["ok"] = all(v.endswith(("OK", "n/a")) for v in report["verdicts"])
        atomic_write_json(self.out / "fidelity.json", report)
        self.files = [self.out / "fidelity.json"]
        for name, figure in (("survival.png", plot_survival), ("reliability.png",
                             plot_reliability), ("openloop.png", plot_openloop)):  # fmt: skip
            buffer = io.BytesIO()
            figure(report).savefig(buffer, format="png", dpi=80)
            atomic_write_bytes(self.out / name, buffer.getvalue())
            self.files.append(self.out / name)
        atomic_write_bytes(self.out / "fidelity.md", summary.markdown(report).encode())
        self.files.insert(0, self.out / "fidelity.md")
