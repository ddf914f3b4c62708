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

Checks and their thresholds (:data:`THRESHOLDS`):

- **survival** (per policy: the collection policy, each probe, each controller): dream mean
  episode length within +-25% of the real mean. The same for the return. A probe whose dream
  outlives the real game is a hole an optimiser will find. The verdict line leads with the
  quantity that decided it: the return when it is off (what an optimiser chases), else the
  survival.
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
from dreamgym.fidelity import metrics
from dreamgym.fidelity.measure import (
    DreamEpisodes,
    controller_actions,
    dream_episodes,
    follow_real_episodes,
    policy_actions,
)

THRESHOLDS = {
    "survival_tolerance": 0.25,
    "done_auroc_k10": 0.8,
    "done_ece": 0.05,
    "reward_tolerance": 0.25,
}
DONE_K = (1, 10)
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


def _survival_entry(name: str, dream, real_lengths, real_returns, real_terminated,
                    kind: str) -> dict[str, Any]:  # fmt: skip
    tol = THRESHOLDS["survival_tolerance"]
    d_len, r_len = metrics.summary(dream.lengths), metrics.summary(real_lengths)
    d_ret, r_ret = metrics.summary(dream.returns), metrics.summary(real_returns)
    ratio = d_len["mean"] / max(r_len["mean"], 1e-9)
    length_ok = metrics.within(d_len["mean"], r_len["mean"], tol)
    return_ok = metrics.within(d_ret["mean"], r_ret["mean"], tol)
    survival = (f"survival {ratio:.2f}x real ({d_len['mean']:.0f} vs {r_len['mean']:.0f} "
                "steps)")  # fmt: skip
    returns = f"return {d_ret['mean']:.1f} vs {r_ret['mean']:.1f} real"
    need = f"need within +-{tol:.0%}"
    if not return_ok:  # what an optimiser chases decides first
        decided_by, higher = "return", d_ret["mean"] > r_ret["mean"]
        verdict = f"{name}: dream {returns} ({need}); {survival}: "
    elif not length_ok:
        decided_by, higher = "survival", d_len["mean"] > r_len["mean"]
        verdict = f"{name}: dream {survival} ({need}); {returns}: "
    else:
        decided_by, higher = None, False
        verdict = f"{name}: dream {survival}, {returns} (both {need}): "
    verdict += "OK" if decided_by is None else ("EXPLOITABLE" if higher else "TOO HARSH")
    return {
        "name": name, "kind": kind, "ok": decided_by is None, "decided_by": decided_by,
        "verdict": verdict,
        "dream": {"length": d_len, "return": d_ret,
                  "terminated": float(np.mean(dream.terminated))},
        "real": {"length": r_len, "return": r_ret,
                 "terminated": float(np.mean(real_terminated))},
        "ks_length": metrics.ks_statistic(dream.lengths, real_lengths),
        "transfer_gap": d_ret["mean"] - r_ret["mean"],
        "lengths": {"dream": dream.lengths.tolist(), "real": list(map(int, real_lengths))},
        "returns": {"dream": dream.returns.tolist(), "real": list(map(float, real_returns))},
    }  # fmt: skip


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

    def _real(self, name: str, policy, shown: str | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """Real episodes of ``policy``, collected (resumably) under ``out/real/<name>``; the
        progress bar says ``fidelity <shown> (real)``."""
        from dreamgym.rollouts import CollectConfig, RolloutDataset, collect

        c = self.config
        root = self.out / "real" / _slug(name)
        collect(CollectConfig(
            env=self.model.env, episodes=c.real_episodes, out=root, policy=policy,
            workers=c.workers, seed=c.seed + 7919, max_episode_steps=self.max_steps,
            frame_skip=int(self.model.info.get("frame_skip", 1)), address=c.address,
        ), progress=self.progress, label=f"fidelity {shown or name} (real)")  # fmt: skip
        entries = RolloutDataset(root).entries
        return (np.array([e["length"] for e in entries]), np.array([e["return"] for e in entries]),
                np.array([e["terminated"] for e in entries]))  # fmt: skip

    @torch_threads("inference")
    def run(self) -> dict[str, Any]:
        """Measure everything, write the report files, and return the report."""
        from dreamgym.common.cluster import ray_session

        with ray_session(self.config.address, self.config.workers):
            report = self._measure()
        report = _finite(report)
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
        survival.append(_survival_entry(f"{self.policy} (collection policy)", dream, real_len,
                                        real_ret, real_term, "collection"))  # fmt: skip

        probes = get_env_spec(self.model.env).probe_actions if c.probes else {}
        for k, (name, action) in enumerate(probes.items()):
            self._say(f"probe '{name}': dream, then {c.real_episodes} real episodes")
            probe = ConstantPolicy(action, space, name)
            dream = self._dream(policy_actions(self.model, [probe] * c.dream_episodes, seeds),
                                seed_offset=k + 2)  # fmt: skip
            real = self._real(f"probe {name}", probe, f"probe '{name}'")
            survival.append(_survival_entry(f"probe '{name}'", dream, *real, "probe"))

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
            real = self._real(f"{kind} {path.name} {digest[:12]}", str(file), shown)
            survival.append(_survival_entry(shown, dream, *real, "controller"))

        self._say(f"following {len(episodes)} held-out real episodes (heads, open loop)")
        follow = follow_real_episodes(
            self.model, episodes, self.temperature, c.horizon, c.seed,
            done_k=[k for k in DONE_K if k > 1],
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
            "thresholds": THRESHOLDS,
            "survival": survival,
            "done": _done_section(follow, np.array([e.length for e in episodes]),
                                  np.array([e.terminated for e in episodes])),
            "reward": _reward_section(follow, episodes),
            "openloop": _openloop_section(follow),
        }  # fmt: skip

    def _write(self, report: dict[str, Any]) -> None:
        from dreamgym.fidelity.plots import plot_openloop, plot_reliability, plot_survival

        report["verdicts"] = verdicts(report)
        report["ok"] = all(v.endswith(("OK", "n/a")) for v in report["verdicts"])
        atomic_write_json(self.out / "fidelity.json", report)
        self.files = [self.out / "fidelity.json"]
        for name, figure in (("survival.png", plot_survival), ("reliability.png",
                             plot_reliability), ("openloop.png", plot_openloop)):  # fmt: skip
            buffer = io.BytesIO()
            figure(report).savefig(buffer, format="png", dpi=80)
            atomic_write_bytes(self.out / name, buffer.getvalue())
            self.files.append(self.out / name)
        atomic_write_bytes(self.out / "fidelity.md", markdown(report).encode())
        self.files.insert(0, self.out / "fidelity.md")


def _finite(x: Any) -> Any:
    """NaN (e.g. an AUROC without deaths) as None, so that the JSON stays valid."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _done_section(follow, lengths: np.ndarray, terminated: np.ndarray) -> dict[str, Any]:
    probs = np.concatenate(follow.done_prob)
    out: dict[str, Any] = {"steps": int(len(probs)), "deaths": int(terminated.sum())}
    for k in DONE_K:  # scored by the dream's own chance of ending within k steps
        labels = np.concatenate(metrics.ends_within(lengths, terminated, k))
        scores = np.concatenate(follow.ends_within[k]) if k in follow.ends_within else probs
        out[f"auroc_k{k}"] = metrics.auroc(scores, labels)
        if k > 1:  # what the next-step probability alone gives, for comparison
            out[f"auroc_k{k}_next_step_score"] = metrics.auroc(probs, labels)
    labels = np.concatenate(metrics.ends_within(lengths, terminated, 1))
    out["ece"], out["reliability"] = metrics.reliability(probs, labels)
    # What the sampled done rule implies: expected deaths per episode along real episodes.
    out["predicted_deaths"] = float(np.mean([p.sum() for p in follow.done_prob]))
    out["observed_deaths"] = float(terminated.mean())
    last = np.array([p[-1] for p in follow.done_prob])
    before = np.concatenate([p[:-1] for p in follow.done_prob])
    out["fires_at_death"] = float(np.mean(last[terminated] > 0.5)) if terminated.any() else None
    out["false_alarms"] = float(np.mean(before > 0.5)) if len(before) else None
    return out


def _reward_section(follow, episodes) -> dict[str, Any]:
    step_err = np.concatenate([p - e.rewards for p, e in zip(follow.reward_pred, episodes,
                                                                strict=True)])  # fmt: skip
    sums_pred = np.array([p.sum() for p in follow.reward_pred])
    sums_real = np.array([e.total_reward for e in episodes])
    return {
        "step_mae": float(np.abs(step_err).mean()),
        "step_rmse": float(np.sqrt((step_err**2).mean())),
        "episode_mae": float(np.abs(sums_pred - sums_real).mean()),
        "episode_bias": float((sums_pred - sums_real).mean()),
        "real_return_mean": float(sums_real.mean()),
    }


def _openloop_section(follow) -> dict[str, Any]:
    def clean(x: np.ndarray) -> list[float | None]:
        return [None if np.isnan(v) else float(v) for v in x]

    valid = follow.openloop_count > 0
    return {
        "horizons": int(valid.sum()),
        "count": follow.openloop_count.astype(int).tolist(),
        "latent_error": clean(follow.latent_error),
        "latent_error_copy": clean(follow.latent_error_copy),
        "frame_error": clean(follow.frame_error),
        "frame_error_copy": clean(follow.frame_error_copy),
        "frame_error_recon": clean(follow.frame_error_recon),
        "frame_error_mean_frame": clean(follow.frame_error_mean_frame),
        "latent_error_mean": float(np.nanmean(follow.latent_error[valid])),
        "latent_error_copy_mean": float(np.nanmean(follow.latent_error_copy[valid])),
        "frame_error_mean": float(np.nanmean(follow.frame_error[valid])),
        "frame_error_copy_mean": float(np.nanmean(follow.frame_error_copy[valid])),
        "frame_error_recon_mean": float(np.nanmean(follow.frame_error_recon[valid])),
        "frame_error_mean_frame_mean": float(np.nanmean(follow.frame_error_mean_frame[valid])),
    }


def verdicts(report: dict[str, Any]) -> list[str]:
    """One line per check, ending in OK, in n/a (nothing to judge), or in what is wrong. Each
    line leads with the quantity that decided its verdict, and that quantity's threshold."""
    t, lines = report["thresholds"], [s["verdict"] for s in report["survival"]]
    tol = f"need within +-{t['survival_tolerance']:.0%}"
    d = report["done"]
    if d["deaths"] == 0:
        lines.append(
            f"done head: no held-out episode ended before the cap ({d['steps']} steps), "
            "nothing to discriminate: n/a"
        )
    else:
        auc = d["auroc_k10"]
        lines.append(
            f"done head: AUROC {auc:.2f} within 10 steps (need >= {t['done_auroc_k10']}; "
            f"scored by the dream's 10-step probability, the next-step probability alone scores "
            f"{d['auroc_k10_next_step_score']:.2f}), {d['auroc_k1']:.2f} at the next step: "
            + ("OK" if auc >= t["done_auroc_k10"] else "WEAK")
        )
    ece = f"ECE {d['ece']:.3f} (need <= {t['done_ece']})"
    deaths = (f"{d['predicted_deaths']:.2f} deaths per episode predicted along real episodes vs "
              f"{d['observed_deaths']:.2f} observed")  # fmt: skip
    if not metrics.within(d["predicted_deaths"], d["observed_deaths"], t["survival_tolerance"]):
        lines.append(f"done calibration: {deaths} ({tol}); {ece}: MISCALIBRATED")
    elif d["ece"] > t["done_ece"]:
        lines.append(f"done calibration: {ece}; {deaths} ({tol}): MISCALIBRATED")
    else:
        lines.append(f"done calibration: {ece}, {deaths} ({tol}): OK")
    r = report["reward"]
    allowed = t["reward_tolerance"] * max(abs(r["real_return_mean"]), 1.0)
    lines.append(
        f"reward head: episode-sum error {r['episode_mae']:.1f} (need <= {allowed:.1f}, "
        f"{t['reward_tolerance']:.0%} of the real mean return {r['real_return_mean']:.1f}; bias "
        f"{r['episode_bias']:+.1f}): " + ("OK" if r["episode_mae"] <= allowed else "OFF")
    )
    o = report["openloop"]
    blur = (f"V's reconstruction error {o['frame_error_recon_mean']:.4f} vs "
            f"{o['frame_error_mean_frame_mean']:.4f} predicting the real frames' mean "
            "frame")  # fmt: skip
    latent = (f"latent error {o['latent_error_mean']:.3f} vs {o['latent_error_copy_mean']:.3f} "
              "copying the start frame")  # fmt: skip
    head = f"open loop (1..{o['horizons']} steps): "
    if not o["frame_error_recon_mean"] < o["frame_error_mean_frame_mean"]:
        lines.append(f"{head}{blur} (need below it); {latent}: V NO BETTER THAN A BLUR")
    elif not o["latent_error_mean"] < o["latent_error_copy_mean"]:
        lines.append(f"{head}{latent} (need below it); {blur}: NO BETTER THAN COPYING")
    else:
        lines.append(f"{head}{latent}, {blur} (need below both): OK")
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The human summary: verdicts, then the survival table and the figures."""
    c = report["config"]
    h = report.get("held_out", {})
    if h.get("source") == "collected":
        source = (f"collected by this report into `{report['data']}` ({h['reason']}; policy "
                  f"{h['policy']}, seed {h['seed']})")  # fmt: skip
    else:
        source = f"from `{report['data']}`"
    lines = [
        f"# Dream fidelity: {report['env']}",
        "",
        f"World model `{report['world_model']}`; {report['held_out_episodes']} held-out real "
        f"episodes {source}; dream at tau {c['temperature']:g}, done rule "
        f"{c['done_mode']}, {c['dream_episodes']} dream episodes per policy, "
        f"{c['real_episodes']} real episodes per probe or controller.",
        "",
        *[f"- {v}" for v in report["verdicts"]],
        "",
        "| policy | dream length mean (p10-p90) | real length mean (p10-p90) | KS | dream return |"
        " real return | verdict |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["survival"]:
        dl, rl = s["dream"]["length"], s["real"]["length"]
        lines.append(
            f"| {s['name']} | {dl['mean']:.0f} ({dl['p10']:.0f}-{dl['p90']:.0f}) | "
            f"{rl['mean']:.0f} ({rl['p10']:.0f}-{rl['p90']:.0f}) | {s['ks_length']:.2f} | "
            f"{s['dream']['return']['mean']:.1f} | {s['real']['return']['mean']:.1f} | "
            f"{'OK' if s['ok'] else 'no'} |"
        )
    lines += ["", "![survival](survival.png) ![reliability](reliability.png) "
              "![open loop](openloop.png)", ""]  # fmt: skip
    return "\n".join(lines)
