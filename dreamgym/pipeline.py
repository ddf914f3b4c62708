"""The one-command pipeline: collect -> train V -> train M -> evolve -> evaluate -> render.

::

    RUN/
      pipeline.json          stages finished so far, with timings and results (resume source)
      pipeline-config.json   the resolved preset
      data/                  rollouts                       (dreamgym collect)
      worldmodel/            V + M bundle, curves, recon    (dreamgym train vae / mdnrnn)
      evolve/                CMA-ES run, best/ and mean/    (dreamgym evolve, dream backend)
      videos/                dream.mp4, compare.mp4, temperatures.mp4
      report.md, report.json

Every stage is itself resumable, and a finished stage is recorded; re-running the command skips
the recorded stages and resumes the first unfinished one where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym._io import atomic_write_bytes, atomic_write_json, check_writable_dir
from dreamgym.errors import DreamgymError

PRESETS = ("debug", "small", "paper")
STAGES = ("collect", "train_vae", "train_mdnrnn", "evolve", "evaluate", "render")


@dataclass
class PipelineConfig:
    """Every setting of a pipeline run (see :func:`pipeline_preset`)."""

    env: str
    preset: str
    episodes: int
    policy: str
    max_steps: int | None
    min_length: int
    vae_overrides: dict[str, Any] = field(default_factory=dict)
    mdnrnn_overrides: dict[str, Any] = field(default_factory=dict)
    generations: int = 4
    popsize: int = 8
    rollouts: int = 2
    eval_every: int = 2
    eval_rollouts: int = 8
    dream_steps: int | None = None
    evaluate_episodes: int = 4
    real_steps: int | None = None
    render_steps: int = 100
    temperatures: tuple[float, ...] = (0.5, 1.0, 1.15, 1.3)
    seed: int = 0


def pipeline_preset(preset: str, env: str) -> PipelineConfig:
    """``debug``: minutes on 2 CPU cores (the tests and the README's main command); ``small``: a
    real but short run; ``paper``: the paper's sizes (a GPU and a Ray cluster)."""
    doom = env.startswith("doom")
    policy = "repeat" if doom else "brownian"
    if preset == "debug":
        # TakeCover episodes are short and ViZDoom is fast: keep them whole so deaths are seen.
        cap = None if doom else 100
        return PipelineConfig(
            env, preset, episodes=12, policy=policy, max_steps=cap, min_length=0,
            vae_overrides={"epochs": 3}, mdnrnn_overrides={"epochs": 60},
            generations=4, popsize=8, rollouts=2, eval_every=2, eval_rollouts=8,
            dream_steps=cap, evaluate_episodes=4, real_steps=cap, render_steps=60,
        )  # fmt: skip
    if preset == "small":
        return PipelineConfig(
            env, preset, episodes=200, policy=policy, max_steps=None if doom else 300,
            min_length=101 if doom else 0, vae_overrides={"epochs": 5},
            mdnrnn_overrides={"epochs": 20}, generations=30, popsize=32, rollouts=4,
            eval_every=10, eval_rollouts=64, dream_steps=None if doom else 300,
            evaluate_episodes=10, real_steps=None if doom else 300, render_steps=300,
        )  # fmt: skip
    if preset == "paper":
        return PipelineConfig(
            env, preset, episodes=10_000, policy=policy, max_steps=None,
            min_length=101 if doom else 0, generations=200 if doom else 1800, popsize=64,
            rollouts=16, eval_every=25, eval_rollouts=1024, evaluate_episodes=100,
            render_steps=1000,
        )  # fmt: skip
    raise DreamgymError(f"unknown pipeline preset {preset!r}; known: {', '.join(PRESETS)}")


class Pipeline:
    """Runs (or resumes) the stages of :data:`STAGES` in ``out``."""

    def __init__(self, config: PipelineConfig, out: str | Path, workers: int = 2,
                 address: str | None = None, device: str = "auto",
                 progress: bool = True) -> None:  # fmt: skip
        self.config, self.out = config, Path(out)
        self.workers, self.address, self.device, self.progress = workers, address, device, progress
        check_writable_dir(self.out)
        self.state = self._read_state()
        saved = self.state.get("config")
        wanted = json.loads(json.dumps(dataclasses.asdict(config)))
        if saved is not None and saved != wanted:
            raise DreamgymError(
                f"{str(self.out)!r} holds a pipeline run of env {saved['env']!r} with preset "
                f"{saved['preset']!r}; re-run it with the same --env and --preset, or use another"
                " --out"
            )
        self.state["config"] = wanted
        atomic_write_json(self.out / "pipeline-config.json", wanted)
        atomic_write_json(self.out / "pipeline.json", self.state)

    def _read_state(self) -> dict[str, Any]:
        path = self.out / "pipeline.json"
        return json.loads(path.read_text()) if path.exists() else {"stages": {}}

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def bundle(self) -> Path:
        return self.out / "worldmodel"

    def run(self, stop_after: str | None = None) -> dict[str, Any]:
        """Run every unfinished stage (up to ``stop_after``), then write the report."""
        from dreamgym._ray import connect_ray

        started = connect_ray(self.address, self.workers)
        try:
            for name in STAGES:
                if name not in self.state["stages"]:
                    self._run_stage(name, getattr(self, f"_stage_{name}"))
                if name == stop_after:
                    break
        finally:
            if started:
                import ray

                ray.shutdown()
        return self.write_report()

    def _run_stage(self, name: str, stage: Callable[[], dict[str, Any]]) -> None:
        if self.progress:
            print(f"== pipeline stage {name}", flush=True)
        start = time.perf_counter()
        result = stage()
        self.state["stages"][name] = {"seconds": time.perf_counter() - start, **result}
        atomic_write_json(self.out / "pipeline.json", self.state)

    def _stage_collect(self) -> dict[str, Any]:
        from dreamgym.rollouts import CollectConfig, collect

        c = self.config
        result = collect(CollectConfig(
            env=c.env, episodes=c.episodes, out=self.data, policy=c.policy, workers=self.workers,
            seed=c.seed, max_episode_steps=c.max_steps, min_length=c.min_length,
            address=self.address,
        ), progress=self.progress)  # fmt: skip
        from dreamgym.rollouts import RolloutDataset

        dataset = RolloutDataset(self.data)
        returns = [e["return"] for e in dataset.entries]
        return {"episodes": len(dataset), "frames": dataset.num_frames,
                "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
                "frames_per_second": result.frames_per_second}  # fmt: skip

    def _stage_train_vae(self) -> dict[str, Any]:
        from dreamgym.worldmodels.train_vae import VAETrainer

        trainer = VAETrainer(self.data, self.bundle, preset=self.config.preset,
                             overrides=self.config.vae_overrides, device=self.device)  # fmt: skip
        return _last_losses(trainer.fit(self.progress))

    def _stage_train_mdnrnn(self) -> dict[str, Any]:
        from dreamgym.worldmodels.train_mdnrnn import MDNRNNTrainer

        trainer = MDNRNNTrainer(self.data, self.bundle, self.bundle, preset=self.config.preset,
                                overrides=self.config.mdnrnn_overrides,
                                device=self.device)  # fmt: skip
        return _last_losses(trainer.fit(self.progress))

    def _stage_evolve(self) -> dict[str, Any]:
        from dreamgym.agents import EvolutionConfig
        from dreamgym.agents.run import EvolveSettings, evolve

        c = self.config
        settings = EvolveSettings(str(self.bundle), "dream", max_episode_steps=c.dream_steps,
                                  evolution=EvolutionConfig(c.popsize, c.rollouts, 0.1,
                                                            c.eval_every, c.eval_rollouts,
                                                            c.seed))  # fmt: skip
        evolution = evolve(settings, self.out / "evolve", c.generations, self.workers,
                           self.address, self.device, self.progress)  # fmt: skip
        return {"generations": evolution.generation, "best_fitness": evolution.best_fitness,
                "temperature": settings.temperature}  # fmt: skip

    def _stage_evaluate(self) -> dict[str, Any]:
        from dreamgym.agents.evaluate import evaluate_controller

        c = self.config
        controller = self.out / "evolve" / "mean"
        scores = {}
        for backend, steps in (("dream", c.dream_steps), ("real", c.real_steps)):
            returns = evaluate_controller(
                controller, c.evaluate_episodes, backend, max_episode_steps=steps,
                workers=self.workers, address=self.address, seed=c.seed + 1,
            )  # fmt: skip
            scores[backend] = {"mean": float(returns.mean()), "std": float(returns.std()),
                               "episodes": len(returns)}  # fmt: skip
            atomic_write_json(controller / f"evaluation-{backend}.json",
                              {**scores[backend], "returns": returns.tolist()})  # fmt: skip
        return scores

    def _stage_render(self) -> dict[str, Any]:
        from dreamgym.dreams.video import render_video

        c = self.config
        controller = self.out / "evolve" / "mean"
        videos = self.out / "videos"
        paths = {
            "dream": render_video(self.bundle, videos / "dream.mp4", controller,
                                  steps=c.render_steps, seed=c.seed),
            "compare": render_video(self.bundle, videos / "compare.mp4", controller,
                                    compare=True, steps=c.render_steps, seed=c.seed),
            "temperatures": render_video(self.bundle, videos / "temperatures.mp4", controller,
                                         temperatures=c.temperatures, steps=c.render_steps,
                                         seed=c.seed),
        }  # fmt: skip
        return {"videos": {k: str(p.relative_to(self.out)) for k, p in paths.items()}}

    def write_report(self) -> dict[str, Any]:
        """report.json (everything recorded) and report.md (the human summary)."""
        stages = self.state["stages"]
        report = {"config": self.state["config"], "stages": stages,
                  "finished": all(s in stages for s in STAGES)}  # fmt: skip
        atomic_write_json(self.out / "report.json", report)
        atomic_write_bytes(self.out / "report.md", _markdown(report).encode())
        return report


def _last_losses(history: list[dict[str, Any]]) -> dict[str, Any]:
    last = history[-1]
    return {"epochs": last["epoch"],
            **{k.replace("/", "_"): v for k, v in last.items() if "/" in k}}  # fmt: skip


def _markdown(report: dict[str, Any]) -> str:
    c, s = report["config"], report["stages"]
    lines = [f"# dreamgym pipeline: {c['env']}, preset {c['preset']}", ""]
    if not report["finished"]:
        done = ", ".join(s) or "none"
        lines += [f"**Unfinished.** Stages done: {done}. Re-run the command to resume.", ""]
    if "collect" in s:
        d = s["collect"]
        lines += [
            f"- Data: {d['episodes']} episodes, {d['frames']:,} frames, policy "
            f"{c['policy']}, return {d['return_mean']:.1f} +- {d['return_std']:.1f}"
        ]
    if "train_vae" in s:
        v = s["train_vae"]
        lines += [
            f"- V: {v['epochs']} epochs, train loss {v['train_loss']:.1f}, validation loss "
            f"{v.get('val_loss', float('nan')):.1f} ([curves](worldmodel/vae-curves.png), "
            "[reconstructions](worldmodel/vae-reconstructions.png))"
        ]
    if "train_mdnrnn" in s:
        m = s["train_mdnrnn"]
        lines += [
            f"- M: {m['epochs']} epochs, train loss {m['train_loss']:.3f}, validation NLL "
            f"{m.get('val_nll', float('nan')):.3f} ([curves](worldmodel/mdnrnn-curves.png))"
        ]
    if "evolve" in s:
        e = s["evolve"]
        lines += [
            f"- Evolution (dream, tau {e['temperature']:g}): {e['generations']} "
            f"generations of {c['popsize']} x {c['rollouts']} rollouts, best candidate "
            f"fitness {e['best_fitness']:.2f} ([fitness curve](evolve/evolve-curves.png))"
        ]
    if "evaluate" in s:
        r = s["evaluate"]
        lines += ["", "| controller (ES mean) | episodes | return mean +- std |", "|---|---:|---:|"]
        for backend in ("dream", "real"):
            x = r[backend]
            lines += [
                f"| in the {backend} env | {x['episodes']} | {x['mean']:.1f} +- {x['std']:.1f} |"
            ]
    if "render" in s:
        lines += ["", "Videos: " + ", ".join(f"[{k}]({v})" for k, v in
                                              s["render"]["videos"].items())]  # fmt: skip
    lines += ["", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {s[name]['seconds']:.1f} |" for name in STAGES if name in s]
    return "\n".join(lines) + "\n"
