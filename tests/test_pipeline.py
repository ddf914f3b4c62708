from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest

from dreamgym.pipeline_config import pipeline_preset, stage_names

pytestmark = pytest.mark.slow  # whole pipelines


def command(out):
    return [
        sys.executable,
        "-m",
        "dreamgym.cli",
        "pipeline",
        "--env",
        "carracing",
        "--preset",
        "debug",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
    ]


def test_debug_pipeline_runs_end_to_end_and_resumes_after_a_kill(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        command(out), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = out / "pipeline.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if state.exists() and "train_vae" in json.loads(state.read_text())["stages"]:
            break
        assert proc.poll() is None, "the pipeline ended before it could be killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = json.loads(state.read_text())["stages"]
    assert "collect" in before and "evolve" not in before
    data_files = {p: p.stat().st_mtime_ns for p in (out / "data").glob("episode_*.npz")}

    result = subprocess.run(command(out), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "pipeline done: dream" in result.stdout
    assert "next steps:" in result.stdout and "gym.make('Dream-CarRacing-v0', " in result.stdout
    report = json.loads((out / "report.json").read_text())
    stages = stage_names(pipeline_preset("debug", "carracing"))
    assert report["finished"] and sorted(report["stages"]) == sorted(stages)
    assert report["order"] == stages
    assert stages[-4:] == ["evaluate", "baseline", "fidelity", "render"]
    for name in before:  # finished stages were not run again
        assert report["stages"][name] == before[name]
    assert {p: p.stat().st_mtime_ns for p in (out / "data").glob("episode_*.npz")} == data_files

    text = (out / "report.md").read_text()
    assert "| controller (ES mean), trained in the dream | real | 4 |" in text
    assert "| brownian (collection policy) | real | 4 |" in text
    assert "[compare](videos/compare.mp4)" in text
    assert "Fidelity of the final dream" in text and "probe 'full gas'" in text
    assert (out / "fidelity" / "fidelity.json").exists()
    assert len(list((out / "baseline").glob("episode_*.npz"))) == 4
    for video in ("dream", "compare", "temperatures"):
        frames = iio.imread(out / "videos" / f"{video}.mp4")
        assert frames.ndim == 4 and frames.shape[1] == 256
    for plot in (
        "worldmodel/vae-curves.png",
        "worldmodel/vae-reconstructions.png",
        "worldmodel/mdnrnn-curves.png",
        "evolve/evolve-curves.png",
    ):
        assert (out / plot).stat().st_size > 0
    for backend in ("dream", "real"):
        scores = report["stages"]["evaluate"][backend]
        saved = json.loads((out / "evolve" / "mean" / f"evaluation-{backend}.json").read_text())
        assert scores["episodes"] == 4 and len(saved["returns"]) == 4
        assert scores["mean"] == pytest.approx(np.mean(saved["returns"]))
        assert scores["std"] == pytest.approx(np.std(saved["returns"]))
    check_export(out, tmp_path)


def check_export(run, tmp_path):
    """The finished run exports to a small, relocatable float16 folder with a true model card."""
    from safetensors import safe_open

    from dreamgym.agents.evaluate import evaluate_controller
    from dreamgym.export import card_checksums, checksums

    export = tmp_path / "export"
    result = subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", "export", "--run", str(run), "--out", str(export)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    card = (export / "MODEL_CARD.md").read_text()
    assert "| this controller | real | 4 |" in card and "| brownian (the collection policy)" in card
    # the card's command scores the export on the pipeline's own evaluation episodes (seed 0 + 1)
    assert "--backend real --episodes 4 --seed 1\n" in card
    assert "agree with the float32 original's within 0.05 on 100.00% of steps" in card
    assert card_checksums(export) == checksums(export) and len(checksums(export)) == 6
    for text in (card, (export / "bundle.json").read_text()):  # no path of this machine
        assert str(tmp_path) not in text and "/evolve/mean" not in text
    assert "- controller evolve/mean: dream " in card
    with safe_open(str(export / "vae.safetensors"), "pt") as f:
        assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F16"}  # noqa: SIM118
        assert all(k.startswith("model.") for k in f.keys())  # noqa: SIM118
    moved = tmp_path / "moved"
    export.rename(moved)  # the controller finds its bundle wherever the folder goes
    kwargs = dict(episodes=2, backend="dream", max_episode_steps=20, seed=3)
    exported = evaluate_controller(moved / "controller", **kwargs)
    original = evaluate_controller(run / "evolve" / "mean", **kwargs)
    assert abs(exported.mean() - original.mean()) <= 0.05 * abs(original.mean()) + 1e-3
    again = subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", "export", "--run", str(run), "--out", str(moved)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 2 and "is not empty" in again.stderr


def test_the_baseline_stage_labels_its_progress(ray_local, tmp_path, capsys):
    import dataclasses

    from dreamgym.pipeline import Pipeline

    config = dataclasses.replace(pipeline_preset("debug", "doom-takecover"), evaluate_episodes=1,
                                 real_steps=10)  # fmt: skip
    Pipeline(config, tmp_path / "run", workers=1)._run_stage("baseline")
    err = capsys.readouterr().err
    assert "baseline repeat (real): 1/1 ep (100%)" in err and "collect" not in err


def test_pipeline_refuses_another_env_in_the_same_run_dir(tmp_path):
    from dreamgym.errors import DreamgymError
    from dreamgym.pipeline import Pipeline

    Pipeline(pipeline_preset("debug", "carracing"), tmp_path)
    try:
        Pipeline(pipeline_preset("debug", "doom-takecover"), tmp_path)
    except DreamgymError as exc:
        assert "holds a pipeline run of env 'carracing'" in str(exc)
    else:
        raise AssertionError("a second env in the same run directory was accepted")


def test_iterative_training_stages(tmp_path, ray_local):
    """One round of the paper's iterative training: the controller collects, M continues on all
    the data, a new controller is evolved in the new dream."""
    import dataclasses

    from dreamgym.pipeline import Pipeline
    from dreamgym.rollouts import RolloutDataset

    config = dataclasses.replace(
        pipeline_preset("debug", "doom-takecover"), episodes=4, max_steps=60, dream_steps=60,
        vae_overrides={"epochs": 1}, mdnrnn_overrides={"epochs": 2}, generations=1, popsize=4,
        rollouts=1, eval_every=1, eval_rollouts=2, iterations=1, iteration_episodes=2,
        iteration_noise=0.3, iteration_epochs=1, iteration_steps=20, final_rollouts=2,
    )  # fmt: skip
    pipeline = Pipeline(config, tmp_path, workers=1, device="cpu", progress=False)
    assert pipeline.stages[:7] == [
        "collect", "train_vae", "train_mdnrnn", "evolve", "collect_1", "train_mdnrnn_1",
        "evolve_1",
    ]  # fmt: skip
    pipeline.run(stop_after="evolve_1")
    meta = RolloutDataset(tmp_path / "data-1").meta
    assert meta["policy"].startswith(str((tmp_path / "evolve" / "mean").resolve()))
    assert "noise=0.3" in meta["policy"]
    assert meta["max_episode_steps"] == 20  # iteration_steps caps the controller's episodes
    assert RolloutDataset(tmp_path / "data").meta["max_episode_steps"] == 60
    bundle = json.loads((tmp_path / "worldmodel-1" / "bundle.json").read_text())
    assert len(bundle["training"]["datasets"]) == 2
    assert bundle["training"]["mdnrnn_epochs"] == 3  # continued: 2 + 1
    first = json.loads((tmp_path / "worldmodel" / "bundle.json").read_text())
    assert first["training"]["mdnrnn_epochs"] == 2  # the first iteration's bundle is kept
    # final_rollouts applies to the final dream's evolution only.
    for evolved, rollouts in (("evolve", 1), ("evolve-1", 2)):
        settings = json.loads((tmp_path / evolved / "evolve-config.json").read_text())
        assert settings["evolution"]["rollouts"] == rollouts
    report = (tmp_path / "report.md").read_text()
    assert "- Evolution (dream, tau 1.15): 1 generations of 4 x 1 rollouts" in report
    assert "- Evolution-1 (dream, tau 1.15): 1 generations of 4 x 2 rollouts" in report
    assert pipeline.controller == tmp_path / "evolve-1" / "mean"
    assert (pipeline.controller / "controller.json").exists()
    controller = json.loads((pipeline.controller / "controller.json").read_text())
    assert controller["world_model"] == str((tmp_path / "worldmodel-1").resolve())


def test_env_recipes_are_presets_of_their_own_env_only():
    import dataclasses

    from dreamgym.errors import DreamgymError
    from dreamgym.pipeline_config import preset_names

    doom = ["debug", "small", "cpu", "paper", "cpu-hold", "cpu-hold-ensemble",
            "cpu-hold-ensemble-c2", "cpu-hold-ensemble-c2-4x", "cpu-hold-ensemble-c2-512",
            "cpu-hold-ensemble-c2-dropout", "cpu-hold-ensemble-c2-i2",
            "cpu-hold-ensemble-c2-pessimistic", "cpu-hold-ensemble-c2-whole"]  # fmt: skip
    assert preset_names("doom-takecover") == doom
    hold = pipeline_preset("cpu-hold", "doom-takecover")  # cpu with hold episodes beside
    assert hold.extra_policies == {"hold": 120}
    assert dataclasses.replace(hold, preset="cpu", extra_policies={}) == pipeline_preset(
        "cpu", "doom-takecover"
    )
    ens = pipeline_preset("cpu-hold-ensemble", "doom-takecover")  # 3 Ms, the worst M's fitness
    assert (ens.members, ens.ensemble_fitness, hold.members) == (3, "worst", 1)
    same = dataclasses.replace(ens, preset="cpu-hold", members=1, ensemble_fitness="mean")
    assert same == hold
    c2 = pipeline_preset("cpu-hold-ensemble-c2", "doom-takecover")  # 2 candidates, 20 episodes
    assert (c2.candidates, c2.select_episodes, ens.candidates) == (2, 20, 1)
    assert dataclasses.replace(c2, preset=ens.preset, candidates=1, select_episodes=0) == ens
    dropout = pipeline_preset("cpu-hold-ensemble-c2-dropout", "doom-takecover")
    overrides = {**c2.mdnrnn_overrides, "dropout": 0.05, "dream_dropout": 0.1}
    assert dropout.mdnrnn_overrides == overrides  # the base's epochs and windows kept
    same = dataclasses.replace(dropout, preset=c2.preset, mdnrnn_overrides=c2.mdnrnn_overrides)
    assert same == c2
    i2 = pipeline_preset("cpu-hold-ensemble-c2-i2", "doom-takecover")  # a second round
    assert (i2.iterations, i2.iteration_episodes, c2.iterations) == (2, 200, 1)
    assert dataclasses.replace(i2, preset=c2.preset, iterations=1) == c2
    x4 = pipeline_preset("cpu-hold-ensemble-c2-4x", "doom-takecover")  # 4x data, same windows
    windows = [c.episodes * c.mdnrnn_overrides["epochs"] for c in (x4, c2)]
    assert windows[0] == windows[1]
    assert (x4.extra_policies["hold"], x4.iteration_epochs) == (4 * 120, 3)
    back = {"episodes": 1000, "extra_policies": {"hold": 120}, "iteration_epochs": 10}
    same = dataclasses.replace(x4, preset=c2.preset, mdnrnn_overrides=c2.mdnrnn_overrides, **back)
    assert same == c2
    m512 = pipeline_preset("cpu-hold-ensemble-c2-512", "doom-takecover")  # the paper's M width
    assert m512.mdnrnn_overrides == {**c2.mdnrnn_overrides, "hidden_size": 512, "epochs": 20}
    assert (m512.iteration_epochs, c2.iteration_epochs) == (5, 10)
    back = {"mdnrnn_overrides": c2.mdnrnn_overrides, "iteration_epochs": 10}
    assert dataclasses.replace(m512, preset=c2.preset, **back) == c2
    whole = pipeline_preset("cpu-hold-ensemble-c2-whole", "doom-takecover")  # whole episodes
    windows = {"seq_len": 2100, "length_batches": True}  # the time limit: every episode whole
    assert whole.mdnrnn_overrides == {**c2.mdnrnn_overrides, **windows}
    back = {"mdnrnn_overrides": c2.mdnrnn_overrides}
    assert dataclasses.replace(whole, preset=c2.preset, **back) == c2
    fearful = pipeline_preset("cpu-hold-ensemble-c2-pessimistic", "doom-takecover")
    assert (fearful.ensemble_fitness, c2.ensemble_fitness) == ("pessimistic", "worst")
    assert dataclasses.replace(fearful, preset=c2.preset, ensemble_fitness="worst") == c2
    assert "cpu-driver" in preset_names("carracing") and "cpu-driver" in preset_names()
    driver = pipeline_preset("cpu-driver", "carracing")
    cpu = pipeline_preset("cpu", "carracing")
    assert driver.policy == "road-driver" and cpu.policy == "brownian"  # cpu keeps its meaning
    assert driver.mdnrnn_overrides["dream_dropout"] == 0.1
    assert driver.evaluate_episodes == cpu.evaluate_episodes == 100  # the base's, unless set
    select = pipeline_preset("cpu-driver-select", "carracing")  # built on cpu-driver
    same = dataclasses.replace(select, preset="cpu-driver", candidates=1, select_episodes=0)
    assert same == driver
    assert (select.candidates, select.select_episodes) == (4, 20) and driver.candidates == 1
    ensemble = pipeline_preset("cpu-driver-ensemble", "carracing")
    r16 = pipeline_preset("cpu-driver-ensemble-r16", "carracing")
    assert (ensemble.members, ensemble.final_rollouts, r16.final_rollouts) == (3, None, 16)
    assert dataclasses.replace(r16, preset=ensemble.preset, final_rollouts=None) == ensemble
    car_hold = pipeline_preset("cpu-driver-ensemble-hold", "carracing")
    assert car_hold.extra_policies == {"hold": 40}
    assert dataclasses.replace(car_hold, preset=ensemble.preset, extra_policies={}) == ensemble
    c8 = pipeline_preset("cpu-driver-ensemble-hold-c8", "carracing")  # 8 candidates, not 4
    assert dataclasses.replace(c8, preset=car_hold.preset, candidates=4) == car_hold
    x2 = pipeline_preset("cpu-driver-ensemble-220", "carracing")  # twice the road driver's
    assert (x2.episodes, ensemble.episodes) == (220, 110)
    assert dataclasses.replace(x2, preset=ensemble.preset, episodes=110) == ensemble
    worst = pipeline_preset("cpu-driver-ensemble-220-worst", "carracing")  # worst M's fitness
    assert (worst.ensemble_fitness, x2.ensemble_fitness) == ("worst", "mean")
    assert dataclasses.replace(worst, preset=x2.preset, ensemble_fitness="mean") == x2
    try:
        pipeline_preset("cpu-driver", "doom-takecover")
    except DreamgymError as exc:
        assert "unknown pipeline preset 'cpu-driver' for doom-takecover" in str(exc)
    else:
        raise AssertionError("a CarRacing recipe was accepted for Doom")


def test_select_keeps_the_candidate_that_scores_best_in_the_real_game(tmp_path, ray_local):
    """Controllers evolved with other seeds in the final dream; the real episodes choose."""
    import dataclasses

    from dreamgym.agents.evaluate import evaluate_controller
    from dreamgym.pipeline import Pipeline, final_products

    config = dataclasses.replace(
        pipeline_preset("debug", "carracing"), episodes=3, max_steps=60, dream_steps=40,
        vae_overrides={"epochs": 1}, mdnrnn_overrides={"epochs": 2}, generations=1, popsize=4,
        rollouts=1, eval_every=1, eval_rollouts=2, real_steps=40, candidates=3,
        select_episodes=2,
    )  # fmt: skip
    pipeline = Pipeline(config, tmp_path, workers=2, device="cpu", progress=False)
    assert pipeline.stages[3:6] == ["evolve", "select", "evaluate"]
    pipeline.run(stop_after="select")
    evolved = pipeline.state["stages"]["evolve"]  # all three, side by side on the 2 workers' cores
    assert evolved["candidates_evolved"] == 3
    assert evolved["processes"] == pipeline.candidate_processes() == min(2, os.cpu_count())
    select = pipeline.state["stages"]["select"]
    candidates = select["candidates"]
    assert [r["controller"] for r in candidates] == ["evolve/mean", "evolve-c1/mean",
                                                     "evolve-c2/mean"]  # fmt: skip
    assert [r["evolution_seed"] for r in candidates] == [0, 1, 2]
    weights = [(tmp_path / r["controller"] / "controller.safetensors").read_bytes()
               for r in candidates]  # fmt: skip
    assert len(set(weights)) == 3  # other seeds, other controllers
    assert select["chosen"] == max(candidates, key=lambda r: r["mean"])["controller"]
    assert pipeline.controller == tmp_path / select["chosen"]
    assert final_products(tmp_path)[1] == pipeline.controller
    again = evaluate_controller(tmp_path / "evolve-c1" / "mean", 2, "real", max_episode_steps=40,
                                workers=1, seed=config.seed + 2)  # fmt: skip
    assert again.mean() == pytest.approx(candidates[1]["mean"])  # its own seeds, reproducible
    text = (tmp_path / "report.md").read_text()
    assert "- Selection: 3 controllers evolved in the final dream (evolution seeds 0, 1, 2)" in text


def test_members_make_the_final_world_model_an_ensemble(tmp_path):
    """``members`` K: the dream the controller is evolved in draws one of K Ms per episode, or
    with ``ensemble_fitness="worst"`` scores each candidate in its worst M."""
    import dataclasses

    from dreamgym.errors import DreamgymError
    from dreamgym.pipeline import Pipeline
    from dreamgym.worldmodels import load

    config = dataclasses.replace(
        pipeline_preset("debug", "carracing"), episodes=3, max_steps=60, dream_steps=40,
        vae_overrides={"epochs": 1}, mdnrnn_overrides={"epochs": 2}, generations=1, popsize=4,
        rollouts=1, eval_every=1, eval_rollouts=2, members=2, ensemble_fitness="worst",
    )  # fmt: skip
    pipeline = Pipeline(config, tmp_path, workers=1, device="cpu", progress=False)
    pipeline.run(stop_after="evolve")
    info = json.loads((tmp_path / "worldmodel" / "bundle.json").read_text())
    assert info["files"]["mdnrnn_members"] == ["mdnrnn-m1.safetensors"]
    assert load(tmp_path / "worldmodel", "cpu").num_members == 2
    assert (tmp_path / "evolve" / "mean" / "controller.safetensors").exists()
    evolved = json.loads((tmp_path / "evolve" / "evolve-config.json").read_text())
    assert evolved["ensemble_fitness"] == "worst"
    with pytest.raises(DreamgymError, match="members"):
        Pipeline(dataclasses.replace(config, members=0), tmp_path / "bad")
    with pytest.raises(DreamgymError, match="ensemble fitness must be one of mean, worst"):
        Pipeline(dataclasses.replace(config, ensemble_fitness="min"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_select_needs_real_episodes_and_old_runs_still_resume(tmp_path):
    import dataclasses

    from dreamgym.errors import DreamgymError
    from dreamgym.pipeline import Pipeline

    config = pipeline_preset("debug", "carracing")
    with pytest.raises(DreamgymError, match="select_episodes must be"):
        Pipeline(dataclasses.replace(config, candidates=2), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    Pipeline(config, tmp_path / "old")
    state = json.loads((tmp_path / "old" / "pipeline.json").read_text())
    for name in ("candidates", "select_episodes", "iteration_steps"):
        del state["config"][name]  # as written before these settings existed
    (tmp_path / "old" / "pipeline.json").write_text(json.dumps(state))
    assert Pipeline(config, tmp_path / "old").stages == stage_names(config)


def test_an_sb3_agent_replaces_the_final_evolution(tmp_path, ray_local):
    """--agent ppo: the final dream trains a PPO agent; evaluate, fidelity and the videos use it."""
    import dataclasses

    from dreamgym.pipeline import Pipeline, final_products

    config = dataclasses.replace(
        pipeline_preset("debug", "carracing"), episodes=3, max_steps=60, dream_steps=20,
        vae_overrides={"epochs": 1}, mdnrnn_overrides={"epochs": 2}, evaluate_episodes=2,
        real_steps=20, render_steps=10, fidelity_episodes=8, fidelity_real_episodes=1,
        agent="ppo",
    )  # fmt: skip
    pipeline = Pipeline(config, tmp_path, workers=1, device="cpu", progress=False)
    assert pipeline.stages[:4] == ["collect", "train_vae", "train_mdnrnn", "train_agent"]
    report = pipeline.run()
    assert report["finished"] and pipeline.controller == tmp_path / "agent"
    agent = json.loads((tmp_path / "agent" / "agent.json").read_text())
    assert agent["kind"] == "sb3" and agent["preset"] == "debug"
    assert agent["world_model"] == str((tmp_path / "worldmodel").resolve())
    assert agent["config"]["max_episode_steps"] == 20  # the pipeline's dream_steps
    stages = report["stages"]
    assert stages["train_agent"]["timesteps"] == agent["timesteps"] == 256
    assert stages["evaluate"]["real"]["episodes"] == 2
    assert (tmp_path / "agent" / "evaluation-real.json").exists()
    assert final_products(tmp_path)[1] == tmp_path / "agent"
    assert iio.imread(tmp_path / "videos" / "compare.mp4").shape[1:] == (256, 3 * 256, 3)
    text = (tmp_path / "report.md").read_text()
    assert "- PPO agent (dream, tau 1): 256 dream steps" in text
    assert "| PPO agent, trained in the dream | real | 2 |" in text
    assert "agent " in (tmp_path / "fidelity" / "fidelity.md").read_text()


def test_select_keeps_the_agent_that_scores_best_in_the_real_game(tmp_path, ray_local):
    """--agent ppo with candidates: agents of other seeds in the final dream; the real episodes
    choose, and the stages after it use the chosen agent."""
    import dataclasses

    from dreamgym.pipeline import Pipeline, final_products

    config = dataclasses.replace(
        pipeline_preset("debug", "carracing"), episodes=3, max_steps=60, dream_steps=20,
        vae_overrides={"epochs": 1}, mdnrnn_overrides={"epochs": 2}, evaluate_episodes=1,
        real_steps=20, agent="ppo", candidates=2, select_episodes=2, seed=3,
    )  # fmt: skip
    pipeline = Pipeline(config, tmp_path, workers=1, device="cpu", progress=False)
    assert pipeline.stages[3:6] == ["train_agent", "select", "evaluate"]
    pipeline.run(stop_after="evaluate")
    select = pipeline.state["stages"]["select"]
    candidates = select["candidates"]
    assert [r["controller"] for r in candidates] == ["agent", "agent-c1"]
    assert [r["seed"] for r in candidates] == [3, 4]
    assert [json.loads((tmp_path / r["controller"] / "agent.json").read_text())["config"]["seed"]
            for r in candidates] == [3, 4]  # fmt: skip
    assert all(r["episodes"] == 2 and "dream_return" in r for r in candidates)
    assert select["chosen"] == max(candidates, key=lambda r: r["mean"])["controller"]
    assert pipeline.controller == final_products(tmp_path)[1] == tmp_path / select["chosen"]
    assert (tmp_path / select["chosen"] / "evaluation-real.json").exists()
    text = (tmp_path / "report.md").read_text()
    assert "- Selection: 2 PPO agents trained in the final dream (seeds 3, 4)" in text


def test_extra_policies_add_data_for_m_and_rows_to_the_baseline(tmp_path, ray_local):
    """``extra_policies``: each policy's episodes beside the collection policy's, M (not V)
    trains on them in every round, and the baseline scores each on the same seeds."""
    import dataclasses

    from dreamgym.errors import DreamgymError
    from dreamgym.pipeline import Pipeline
    from dreamgym.rollouts import RolloutDataset

    config = dataclasses.replace(
        pipeline_preset("debug", "doom-takecover"), episodes=3, max_steps=40, dream_steps=20,
        vae_overrides={"epochs": 1}, mdnrnn_overrides={"epochs": 1}, generations=1, popsize=4,
        rollouts=1, eval_every=1, eval_rollouts=2, iterations=1, iteration_episodes=2,
        iteration_epochs=1, evaluate_episodes=2, real_steps=30, extra_policies={"hold": 2},
    )  # fmt: skip
    for bad, match in (({"repeat": 2}, "extra policy"), ({"hold": 0}, "extra_policies")):
        with pytest.raises(DreamgymError, match=match):
            Pipeline(dataclasses.replace(config, extra_policies=bad), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    pipeline = Pipeline(config, tmp_path, workers=1, device="cpu", progress=False)
    pipeline.run(stop_after="baseline")
    held = RolloutDataset(tmp_path / "data-hold")
    assert held.meta["policy"] == "hold" and len(held) == 2
    actions = [held.episode(i).actions for i in range(2)]
    assert all(np.all(a == a[0]) for a in actions)  # one action, held
    repeat = {e["seed"] for e in RolloutDataset(tmp_path / "data").entries}
    assert repeat.isdisjoint(e["seed"] for e in held.entries)
    vae = json.loads((tmp_path / "worldmodel" / "vae.json").read_text())
    for k, name in ((0, "worldmodel"), (1, "worldmodel-1")):
        bundle = json.loads((tmp_path / name / "bundle.json").read_text())
        assert len(bundle["training"]["datasets"]) == 2 + k
        assert str((tmp_path / "data-hold").resolve()) in bundle["training"]["datasets"]
    assert "data-hold" not in json.dumps(vae)
    stages = json.loads((tmp_path / "report.json").read_text())["stages"]
    assert stages["collect"]["extra"]["hold"]["episodes"] == 2
    base = stages["baseline"]
    assert base["policy"] == "repeat" and [x["policy"] for x in base["extra"]] == ["hold"]
    seeds = [{e["seed"] for e in RolloutDataset(tmp_path / d).entries}
             for d in ("baseline", "baseline-hold")]  # fmt: skip
    assert seeds[0] == seeds[1]  # scored on the same episode seeds
    text = (tmp_path / "report.md").read_text()
    assert "- Data: 2 episodes" in text and "policy hold" in text
    assert "| hold (collection policy) | real | 2 |" in text
