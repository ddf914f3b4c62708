"""The one-command pipeline: collect -> train V -> train M -> evolve [-> iterate] -> evaluate ->
baseline -> fidelity -> render.

::

    RUN/
      pipeline.json          stages finished so far, with timings and results (resume source)
      pipeline-config.json   the resolved preset
      data/                  rollouts of the collection policy     (dreamgym collect)
      data-NAME/             rollouts of each of extra_policies (M trains on them, V does not)
      worldmodel/            V + M bundle, curves, recon            (dreamgym train vae / mdnrnn)
      evolve/                CMA-ES run, best/ and mean/            (dreamgym evolve, in the dream)
      data-K/, worldmodel-K/, evolve-K/   iteration K of the paper's iterative training: rollouts
                             of the last controller (with exploration noise), M continued on all
                             the data, a controller evolved again in the new dream (from zeros,
                             or from the last controller with iteration_warm_start)
      evolve[-K]-cJ/         with candidates > 1: more controllers evolved in the final dream
                             (other evolution seeds, side by side with evolve[-K]/, one process
                             per core given); the select stage keeps the best in real play
      agent[-K]/             with agent ppo, sac or td3: the SB3 agent trained in the final dream
                             in place of its evolution                (dreamgym train agent)
      agent[-K]-cJ/          with an agent and candidates > 1: more agents (other seeds)
      baseline/              real episodes of the collection policy (the random baseline)
      baseline-NAME/         real episodes of each of extra_policies, on the same seeds
      fidelity/              the final dream's fidelity report           (dreamgym fidelity)
      videos/                dream.mp4, compare.mp4, temperatures.mp4
      report.md, report.json

Every stage is itself resumable, and a finished stage is recorded; re-running the command skips
the recorded stages and resumes the first unfinished one where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.common import validate
from dreamgym.common.io import (
    DirectoryLock,
    atomic_write_bytes,
    atomic_write_json,
    check_writable_dir,
)
from dreamgym.common.seeding import derive_seed
from dreamgym.errors import DreamgymError
from dreamgym.pipeline_config import AGENTS, PipelineConfig, evaluation_seed, stage_names


def _bundle_dir(out: Path, k: int) -> Path:
    return out / ("worldmodel" if k == 0 else f"worldmodel-{k}")


def _evolve_dir(out: Path, k: int, candidate: int = 0) -> Path:
    name = "evolve" if k == 0 else f"evolve-{k}"
    return out / (name if candidate == 0 else f"{name}-c{candidate}")


def _agent_dir(out: Path, k: int, candidate: int = 0) -> Path:
    name = "agent" if k == 0 else f"agent-{k}"
    return out / (name if candidate == 0 else f"{name}-c{candidate}")


def _final_controller(out: Path, config: dict[str, Any], stages: dict[str, Any]) -> Path:
    """The select stage's choice, else the SB3 agent, else the ES mean of the last evolution."""
    chosen = stages.get("select", {}).get("chosen")
    if chosen:
        return out / chosen
    if config.get("agent", "cmaes") != "cmaes":
        return _agent_dir(out, config["iterations"])
    return _evolve_dir(out, config["iterations"]) / "mean"


def final_products(run: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """(final world model, final controller, report) of the pipeline run in ``run``.

    Raises:
        DreamgymError: ``run`` holds no pipeline report.
    """
    run = Path(run)
    try:
        report = json.loads((run / "report.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise DreamgymError(f"{str(run)!r} holds no pipeline report (report.json)") from None
    config = report["config"]
    return (_bundle_dir(run, config["iterations"]),
            _final_controller(run, config, report["stages"]), report)  # fmt: skip


class Pipeline:
    """Runs (or resumes) the stages of :func:`stage_names` in ``out``."""

    def __init__(self, config: PipelineConfig, out: str | Path, workers: int = 2,
                 address: str | None = None, device: str = "auto",
                 progress: bool = True) -> None:  # fmt: skip
        self.config, self.out = config, Path(out)
        self.workers, self.address, self.device, self.progress = workers, address, device, progress
        validate.ray_address(address)
        validate.integer("candidates", config.candidates)
        validate.integer("members", config.members)
        validate.optional_integer("final_rollouts", config.final_rollouts)
        from dreamgym.agents.backends import ENSEMBLE_FITNESS

        validate.choice("ensemble fitness", config.ensemble_fitness, ENSEMBLE_FITNESS)
        if config.candidates > 1:
            validate.integer("select_episodes", config.select_episodes)
        validate.choice("agent", config.agent, AGENTS)
        from dreamgym.rollouts.policies import BUILTIN_POLICIES

        for name, episodes in config.extra_policies.items():
            others = [n for n in BUILTIN_POLICIES if n != config.policy]
            validate.choice("extra policy", name, others)
            validate.integer(f"extra_policies[{name!r}]", episodes)
        check_writable_dir(self.out)
        self.state = self._read_state()
        saved = self.state.get("config")
        for f in dataclasses.fields(PipelineConfig) if saved is not None else ():
            if f.name not in saved and f.default is not dataclasses.MISSING:
                saved[f.name] = json.loads(json.dumps(f.default))  # a run from before f existed
        wanted = json.loads(json.dumps(dataclasses.asdict(config)))
        if saved is not None and saved != wanted:
            differing = sorted(k for k in wanted if saved.get(k) != wanted[k])
            raise DreamgymError(
                f"{str(self.out)!r} holds a pipeline run of env {saved['env']!r} with preset "
                f"{saved['preset']!r} and other settings ({', '.join(differing)}); re-run it "
                "with the same --env, --preset and --iterations, or use another --out"
            )
        self.state["config"] = wanted
        atomic_write_json(self.out / "pipeline-config.json", wanted)
        atomic_write_json(self.out / "pipeline.json", self.state)

    def _read_state(self) -> dict[str, Any]:
        path = self.out / "pipeline.json"
        return json.loads(path.read_text()) if path.exists() else {"stages": {}}

    @property
    def stages(self) -> list[str]:
        return stage_names(self.config)

    def data(self, k: int = 0) -> Path:
        """The rollouts of iteration ``k`` (0: the collection policy's)."""
        return self.out / ("data" if k == 0 else f"data-{k}")

    def extra_data(self, name: str) -> Path:
        """The rollouts of the extra collection policy ``name`` (``extra_policies``)."""
        return self.out / f"data-{name}"

    def training_data(self, k: int) -> list[Path]:
        """What M trains on in iteration ``k``: every policy's rollouts, then each round's."""
        extra = [self.extra_data(name) for name in self.config.extra_policies]
        return [self.data(0), *extra, *(self.data(i) for i in range(1, k + 1))]

    def bundle(self, k: int | None = None) -> Path:
        """The world model of iteration ``k`` (default: the last one)."""
        return _bundle_dir(self.out, self.config.iterations if k is None else k)

    def evolve_dir(self, k: int | None = None, candidate: int = 0) -> Path:
        return _evolve_dir(self.out, self.config.iterations if k is None else k, candidate)

    @property
    def controller(self) -> Path:
        """The final controller: the ES mean of the last evolution, the select stage's pick, or
        the SB3 agent's directory."""
        return _final_controller(self.out, self.state["config"], self.state["stages"])

    def run(self, stop_after: str | None = None) -> dict[str, Any]:
        """Run every unfinished stage (up to ``stop_after``), then write the report."""
        from dreamgym.common.cluster import ray_session

        with DirectoryLock(self.out), ray_session(self.address, self.workers):
            for name in self.stages:
                if name not in self.state["stages"]:
                    self._run_stage(name)
                if name == stop_after:
                    break
            return self.write_report()

    def _run_stage(self, name: str) -> None:
        if self.progress:
            print(f"== pipeline stage {name}", flush=True)
        stage, _, k = name.rpartition("_")
        stage, k = (stage, int(k)) if k.isdigit() else (name, 0)
        start = time.perf_counter()
        result = getattr(self, f"_stage_{stage}")(k)
        self.state["stages"][name] = {"seconds": time.perf_counter() - start, **result}
        atomic_write_json(self.out / "pipeline.json", self.state)

    def _collect(self, out: Path, policy, episodes: int, seed: int,
                 max_steps: int | None) -> dict[str, Any]:  # fmt: skip
        from dreamgym.rollouts import CollectConfig, RolloutDataset, collect

        c = self.config
        result = collect(CollectConfig(
            env=c.env, episodes=episodes, out=out, policy=policy, workers=self.workers,
            seed=seed, max_episode_steps=max_steps, min_length=c.min_length,
            address=self.address,
        ), progress=self.progress)  # fmt: skip
        dataset = RolloutDataset(out)
        returns = [e["return"] for e in dataset.entries]
        lengths = [e["length"] for e in dataset.entries]
        return {"episodes": len(dataset), "frames": dataset.num_frames,
                "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)),
                "length_mean": float(np.mean(lengths)),
                "frames_per_second": result.frames_per_second}  # fmt: skip

    def _stage_collect(self, k: int) -> dict[str, Any]:
        c = self.config
        if k == 0:
            result = self._collect(
                self.data(0), policy=c.policy, episodes=c.episodes, seed=c.seed,
                max_steps=c.max_steps,
            )  # fmt: skip
            extra = {
                name: self._collect(self.extra_data(name), policy=name, episodes=episodes,
                                    seed=derive_seed(c.seed, 500 + i), max_steps=c.max_steps)
                for i, (name, episodes) in enumerate(c.extra_policies.items())
            }  # fmt: skip
            return {**result, "extra": extra} if extra else result
        from dreamgym.agents.controller import controller_policy

        policy = controller_policy(self.evolve_dir(k - 1) / "mean", noise=c.iteration_noise)
        return self._collect(
            self.data(k),
            policy=policy,
            episodes=c.iteration_episodes,
            seed=c.seed + 1000 * k,
            max_steps=c.iteration_steps or c.max_steps,
        )

    def _stage_train_vae(self, k: int) -> dict[str, Any]:
        from dreamgym.worldmodels.vm.train_vae import VAETrainer

        trainer = VAETrainer(self.data(0), self.bundle(0), preset=self.config.model_preset,
                             overrides=self.config.vae_overrides, device=self.device)  # fmt: skip
        return _last_losses(trainer.fit(self.progress))

    def _stage_train_mdnrnn(self, k: int) -> dict[str, Any]:
        from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer

        c, bundle = self.config, self.bundle(k)
        overrides = dict(c.mdnrnn_overrides)
        if k > 0:
            # M continues from the previous iteration's weights on all the data so far.
            if not bundle.exists():
                tmp = bundle.with_name(f".{bundle.name}.tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(self.bundle(k - 1), tmp)
                tmp.replace(bundle)
            base = self.state["stages"]["train_mdnrnn"]["epochs"]
            overrides["epochs"] = base + k * c.iteration_epochs
        trainer = MDNRNNTrainer(self.training_data(k), bundle, bundle,
                                preset=c.model_preset, overrides=overrides, device=self.device,
                                members=c.members if k == c.iterations else 1)  # fmt: skip
        return _last_losses(trainer.fit(self.progress))

    def _evolve_settings(self, k: int, candidate: int):
        from dreamgym.agents import EvolutionConfig
        from dreamgym.agents.run import EvolveSettings

        c = self.config
        # Off by default (the paper evolves from zeros): measured on Doom, a warm start kept a
        # good controller good in a worse dream but kept a poor one poor (docs/fidelity.md).
        init = str(self.evolve_dir(k - 1) / "mean") if k and c.iteration_warm_start else None
        rollouts = c.final_rollouts if k == c.iterations and c.final_rollouts else c.rollouts
        return EvolveSettings(
            world_model=str(self.bundle(k)),
            backend="dream",
            temperature=c.temperature,
            observation_mode=c.observation_mode,
            bias=c.bias,
            max_episode_steps=c.dream_steps,
            done_mode=c.done_mode,
            init=init,
            ensemble_fitness=c.ensemble_fitness,
            evolution=EvolutionConfig(
                popsize=c.popsize,
                rollouts=rollouts,
                eval_every=c.eval_every,
                eval_rollouts=c.eval_rollouts,
                seed=c.seed + k + candidate,
            ),
        )

    def candidate_processes(self) -> int:
        """How many of the final dream's candidate evolutions run side by side: one per core
        this run was given (``workers``, at most this machine's cores and the candidates); one
        on a GPU, which they would share."""
        from dreamgym.common.device import resolve_device

        if resolve_device(self.device).type != "cpu":
            return 1
        return max(1, min(self.config.candidates, self.workers, os.cpu_count() or 1))

    def _stage_evolve(self, k: int, candidate: int = 0) -> dict[str, Any]:
        from dreamgym.agents.parallel import evolve_many

        c = self.config
        jobs = [(self._evolve_settings(k, candidate), self.evolve_dir(k, candidate))]
        processes = 1
        if k == c.iterations and candidate == 0 and c.candidates > 1:
            # The select stage's candidates too, side by side (the dream evolves on one thread);
            # select then finds them evolved.
            jobs += [(self._evolve_settings(k, j), self.evolve_dir(k, j))
                     for j in range(1, c.candidates)]  # fmt: skip
            processes = self.candidate_processes()
        # The dream evolves on this machine (on its GPU if any); `dreamgym evolve --workers`
        # shards one over a cluster.
        evolution = evolve_many(jobs, c.generations, processes, device=self.device,
                                progress=self.progress)[0]  # fmt: skip
        settings = jobs[0][0]
        resolved = json.loads((jobs[0][1] / "evolve-config.json").read_text())
        return {"generations": evolution["generation"],
                "best_fitness": evolution["best_fitness"],
                "temperature": resolved["temperature"], "warm_start": settings.init is not None,
                "seed": settings.evolution.seed, "rollouts": settings.evolution.rollouts,
                **({"candidates_evolved": len(jobs), "processes": processes}
                   if len(jobs) > 1 else {})}  # fmt: skip

    def _stage_train_agent(self, k: int, candidate: int = 0) -> dict[str, Any]:
        from dreamgym.agents.sb3_agent import train_agent

        c = self.config
        preset = c.agent_preset or ("debug" if c.preset == "debug" else None)
        seed = c.seed + k + candidate
        overrides = {"algo": c.agent, "seed": seed, "temperature": c.temperature,
                     "done_mode": c.done_mode, "observation_mode": c.observation_mode,
                     "max_episode_steps": c.dream_steps}  # fmt: skip
        _, meta = train_agent(
            self.bundle(k),
            _agent_dir(self.out, k, candidate),
            preset=preset,
            overrides=overrides,
            device=self.device,
            progress=self.progress,
        )
        returns = [float(r) for r in meta.get("episode_returns", [])]
        return {"algo": meta["algo"], "timesteps": meta["timesteps"],
                "temperature": meta["config"]["temperature"],
                "preset": meta.get("preset"), "seed": seed,
                "dream_return": float(np.mean(returns)) if returns else None}  # fmt: skip

    def _stage_select(self, k: int) -> dict[str, Any]:
        """Score the final dream's ``candidates`` controllers (evolved by the evolve stage; or
        train ``candidates - 1`` more SB3 agents there) on ``select_episodes`` real episodes
        (seeds the evaluation does not use) and keep the best."""
        from dreamgym.agents.evaluate import evaluate_controller

        c, k = self.config, self.config.iterations
        agent = c.agent != "cmaes"
        stage = ("train_agent" if agent else "evolve") + (f"_{k}" if k else "")
        results = []
        for j in range(c.candidates):
            controller = _agent_dir(self.out, k, j) if agent else self.evolve_dir(k, j) / "mean"
            trained = self.state["stages"][stage]
            if j > 0:  # each evolution or agent resumes by itself after a kill
                trained = self._stage_train_agent(k, j) if agent else self._stage_evolve(k, j)
            saved = controller / "selection-real.json"
            if saved.exists():
                returns = np.array(json.loads(saved.read_text())["returns"])
            else:
                returns = evaluate_controller(
                    controller,
                    episodes=c.select_episodes,
                    backend="real",
                    max_episode_steps=c.real_steps,
                    workers=self.workers,
                    address=self.address,
                    seed=c.seed + 2,
                    progress=self.progress,
                    label=f"select {j + 1}/{c.candidates} (real)",
                )
                atomic_write_json(saved, {**_scores(returns), "returns": returns.tolist()})
            dream = ({"dream_return": trained["dream_return"]} if agent
                     else {"dream_best_fitness": trained["best_fitness"]})  # fmt: skip
            results.append({"controller": str(controller.relative_to(self.out)),
                            "seed" if agent else "evolution_seed": c.seed + k + j,
                            **dream, **_scores(returns)})  # fmt: skip
        best = max(results, key=lambda r: r["mean"])
        return {"candidates": results, "chosen": best["controller"]}

    def _stage_evaluate(self, k: int) -> dict[str, Any]:
        from dreamgym.agents.evaluate import evaluate_controller

        c = self.config
        scores = {}
        for backend, steps in (("dream", c.dream_steps), ("real", c.real_steps)):
            returns = evaluate_controller(
                self.controller,
                episodes=c.evaluate_episodes,
                backend=backend,
                temperature=c.temperature,
                max_episode_steps=steps,
                workers=self.workers,
                address=self.address,
                seed=evaluation_seed(c.seed),
                done_mode=c.done_mode,
                progress=self.progress,
            )
            scores[backend] = _scores(returns)
            atomic_write_json(self.controller / f"evaluation-{backend}.json",
                              {**scores[backend], "returns": returns.tolist()})  # fmt: skip
        return scores

    def _stage_baseline(self, k: int) -> dict[str, Any]:
        """The collection policy scored like the controller: real episodes, other seeds."""
        from dreamgym.rollouts import CollectConfig, RolloutDataset, collect

        c, scores = self.config, []
        for policy in (c.policy, *c.extra_policies):
            out = self.out / ("baseline" if policy == c.policy else f"baseline-{policy}")
            collect(CollectConfig(
                env=c.env, episodes=c.evaluate_episodes, out=out, policy=policy,
                workers=self.workers, seed=evaluation_seed(c.seed), max_episode_steps=c.real_steps,
                address=self.address,
            ), progress=self.progress, label=f"baseline {policy} (real)")  # fmt: skip
            returns = np.array([e["return"] for e in RolloutDataset(out).entries])
            scores.append({"policy": policy, **_scores(returns)})
        return {**scores[0], "extra": scores[1:]} if c.extra_policies else scores[0]

    def _stage_fidelity(self, k: int) -> dict[str, Any]:
        from dreamgym.fidelity import FidelityConfig, FidelityReport

        c = self.config
        config = FidelityConfig(
            dream_episodes=c.fidelity_episodes, real_episodes=c.fidelity_real_episodes,
            temperature=c.temperature, done_mode=c.done_mode, max_episode_steps=c.real_steps,
            seed=c.seed, workers=self.workers, address=self.address,
        )  # fmt: skip
        from dreamgym.common.device import resolve_device

        report = FidelityReport(self.bundle(), self.out / "fidelity", controllers=[self.controller],
                                config=config, device=str(resolve_device(self.device)),
                                progress=self.progress).run()  # fmt: skip
        return {"ok": report["ok"], "verdicts": report["verdicts"],
                "report": "fidelity/fidelity.md"}  # fmt: skip

    def _stage_render(self, k: int) -> dict[str, Any]:
        from dreamgym.dreams.video import render_video

        c = self.config
        from dreamgym.agents.saved import load_agent

        videos, bundle = self.out / "videos", self.bundle()
        controller, _ = load_agent(self.controller)
        paths = {
            name: render_video(bundle, videos / f"{name}.mp4", agent=controller,
                               steps=c.render_steps, seed=c.seed, **options)
            for name, options in (("dream", {}), ("compare", {"compare": True}),
                                  ("temperatures", {"temperatures": c.temperatures}))
        }  # fmt: skip
        return {"videos": {k: str(p.relative_to(self.out)) for k, p in paths.items()}}

    def write_report(self) -> dict[str, Any]:
        """report.json (everything recorded) and report.md (the human summary)."""
        stages = self.state["stages"]
        report = {"config": self.state["config"], "stages": stages, "order": self.stages,
                  "finished": all(s in stages for s in self.stages)}  # fmt: skip
        atomic_write_json(self.out / "report.json", report)
        atomic_write_bytes(self.out / "report.md", _markdown(report).encode())
        return report


def _scores(returns: np.ndarray) -> dict[str, Any]:
    return {"mean": float(returns.mean()), "std": float(returns.std()), "episodes": len(returns)}


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
    for name in report["order"]:
        if name not in s:
            continue
        x, k = s[name], name.rpartition("_")[2]
        where = "" if not k.isdigit() else f"-{k}"
        if name.startswith("collect"):
            noise = c["iteration_noise"]
            who = c["policy"] if not where else f"the previous controller + noise {noise}"
            for policy, y in ((who, x), *x.get("extra", {}).items()):
                lines.append(
                    f"- Data{where}: {y['episodes']} episodes, {y['frames']:,} frames, policy "
                    f"{policy}, return {y['return_mean']:.1f} +- {y['return_std']:.1f}"
                )
        elif name == "train_vae":
            lines.append(
                f"- V: {x['epochs']} epochs, train loss {x['train_loss']:.1f}, validation loss "
                f"{x.get('val_loss', float('nan')):.1f} ([curves](worldmodel/vae-curves.png), "
                "[reconstructions](worldmodel/vae-reconstructions.png))"
            )
        elif name.startswith("train_agent"):
            mean = x.get("dream_return")
            shown = "" if mean is None else f", mean return of its last dream episodes {mean:.1f}"
            lines.append(
                f"- {x['algo'].upper()} agent{where} (dream, tau {x['temperature']:g}): "
                f"{x['timesteps']:,} dream steps{shown} ([agent](agent{where}/agent.json))"
            )
        elif name.startswith("train_mdnrnn"):
            lines.append(
                f"- M{where}: {x['epochs']} epochs, train loss {x['train_loss']:.3f}, validation "
                f"NLL {x.get('val_nll', float('nan')):.3f} "
                f"([curves](worldmodel{where}/mdnrnn-curves.png))"
            )
        elif name.startswith("evolve"):
            start = (
                f", started from the controller of iteration {int(k) - 1}"
                if x.get("warm_start")
                else ""
            )
            lines.append(
                f"- Evolution{where} (dream, tau {x['temperature']:g}{start}): {x['generations']} "
                f"generations of {c['popsize']} x {x.get('rollouts', c['rollouts'])} rollouts, "
                f"best candidate fitness {x['best_fitness']:.2f} "
                f"([fitness curve](evolve{where}/evolve-curves.png))"
            )
    if "select" in s:
        x = s["select"]
        scores = ", ".join(f"`{r['controller']}` {r['mean']:.1f}" for r in x["candidates"])
        agent = c.get("agent", "cmaes") != "cmaes"
        who = (f"{c['agent'].upper()} agents trained" if agent
               else "controllers evolved")  # fmt: skip
        seeds = ", ".join(str(r["seed" if agent else "evolution_seed"]) for r in x["candidates"])
        lines.append(
            f"- Selection: {len(x['candidates'])} {who} in the final dream "
            f"({'' if agent else 'evolution '}seeds {seeds}), "
            f"each scored on {c['select_episodes']} real episodes: {scores}; kept "
            f"`{x['chosen']}` (scored again below on other seeds)"
        )
    if "evaluate" in s:
        lines += ["", "| policy | env | episodes | return mean +- std |", "|---|---|---:|---:|"]
        who = ("controller (ES mean)" if c.get("agent", "cmaes") == "cmaes"
               else f"{c['agent'].upper()} agent")  # fmt: skip
        for backend in ("dream", "real"):
            x = s["evaluate"][backend]
            lines.append(f"| {who}, trained in the dream | {backend} | "
                         f"{x['episodes']} | {x['mean']:.1f} +- {x['std']:.1f} |")  # fmt: skip
        if "baseline" in s:
            x = s["baseline"]
            for y in (x, *x.get("extra", [])):
                lines.append(f"| {y['policy']} (collection policy) | real | {y['episodes']} | "
                             f"{y['mean']:.1f} +- {y['std']:.1f} |")  # fmt: skip
            real, base = s["evaluate"]["real"]["mean"], x["mean"]
            vs = f"{real / base:.2f}x" if base > 0 else f"{real - base:+.1f}"
            gap = s["evaluate"]["dream"]["mean"] - real
            lines += ["", f"Controller vs collection policy in the real game: {vs}. Transfer gap "
                      f"(dream - real return of the controller): {gap:+.1f}."]  # fmt: skip
    if "fidelity" in s:
        lines += ["", "Fidelity of the final dream ([report](fidelity/fidelity.md)):", ""]
        lines += [f"- {v}" for v in s["fidelity"]["verdicts"]]
    if "render" in s:
        lines += ["", "Videos: " + ", ".join(f"[{k}]({v})" for k, v in
                                              s["render"]["videos"].items())]  # fmt: skip
    lines += ["", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {s[name]['seconds']:.1f} |" for name in report["order"] if name in s]
    total = sum(x["seconds"] for x in s.values())
    lines += [f"| total | {total:.1f} ({total / 60:.1f} min) |"]
    return "\n".join(lines) + "\n"
