from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from dreamgym import worldmodels
from dreamgym.agents import ControllerSpec, DreamBackend, Evolution, EvolutionConfig
from dreamgym.agents.parallel import evolve_many
from dreamgym.agents.run import EvolveSettings, evolve
from dreamgym.errors import DreamgymError

TARGET = np.linspace(-0.5, 0.5, 12)


class Quadratic:
    """A synthetic backend: return = -||x - target||^2 plus seeded noise per rollout."""

    def __init__(self, touch_global_rng: bool = False):
        self.touch_global_rng = touch_global_rng

    def returns(self, params, rollouts, seed):
        if self.touch_global_rng:
            np.random.rand(7)  # other code drawing from numpy's global RNG
        noise = np.random.default_rng(seed).normal(0, 0.01, (len(params), rollouts))
        return -((params - TARGET) ** 2).sum(1)[:, None] + noise


def test_cma_es_improves_fitness_within_a_few_generations():
    evolution = Evolution(12, EvolutionConfig(popsize=16, rollouts=4, eval_every=0), Quadratic())
    rows = evolution.run(15)
    assert rows[-1]["fitness/mean"] > 0.3 * rows[0]["fitness/mean"]  # fitness is negative
    assert np.abs(evolution.mean - TARGET).max() < np.abs(TARGET).max()
    assert evolution.best_fitness == max(r["fitness/best"] for r in rows)


def test_replayed_resume_equals_uninterrupted_and_ignores_global_rng():
    config = EvolutionConfig(popsize=8, rollouts=2, eval_every=3, eval_rollouts=5)
    straight = Evolution(12, config, Quadratic())
    straight.run(9)
    first = Evolution(12, config, Quadratic(touch_global_rng=True))
    first.run(4)
    resumed = Evolution(12, config, Quadratic(), told=json.loads(json.dumps(first.told)))
    rows = resumed.run(9)
    assert np.array_equal(resumed.mean, straight.mean)
    assert resumed.es.sigma == straight.es.sigma
    assert [r["generation"] for r in rows] == [5, 6, 7, 8, 9] and "eval/mean" in rows[1]


def test_warm_start_searches_around_x0_and_resumes_exactly():
    config = EvolutionConfig(popsize=8, rollouts=2, eval_every=0, sigma0=0.01)
    warm = Evolution(12, config, Quadratic(), x0=TARGET)
    rows = warm.run(3)
    cold = Evolution(12, config, Quadratic())
    assert rows[0]["fitness/worst"] > cold.run(1)[0]["fitness/best"]  # starts near the optimum
    resumed = Evolution(12, config, Quadratic(), told=warm.told[:2], x0=TARGET)
    resumed.run(3)
    assert np.array_equal(resumed.mean, warm.mean)
    with pytest.raises(DreamgymError, match="x0 must be 12 finite numbers"):
        Evolution(12, config, Quadratic(), x0=np.zeros(5))


def test_bad_popsize():
    with pytest.raises(DreamgymError, match=r"popsize \(CMA-ES needs 2\) must be an integer >= 2"):
        Evolution(3, EvolutionConfig(popsize=1), Quadratic())


def test_dream_backend_is_per_candidate_seeded_and_masks_finished_episodes(car_bundle):
    from helpers import model_with_heads

    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    params = np.random.default_rng(0).normal(0, 0.1, (5, spec.num_params))
    backend = DreamBackend(model, spec, max_episode_steps=20)
    a, b = backend.returns(params, 3, seed=1), backend.returns(params, 3, seed=1)
    assert a.shape == (5, 3) and np.isfinite(a).all() and np.array_equal(a, b)
    assert not np.array_equal(a, backend.returns(params, 3, seed=2))

    ends_at_once = DreamBackend(model_with_heads(car_bundle, 3.0, 0.5), spec, max_episode_steps=20)
    assert np.allclose(ends_at_once.returns(params, 2, 0), 0.5)  # one step, then masked
    runs_out = DreamBackend(model_with_heads(car_bundle, -3.0, 0.5), spec, max_episode_steps=20)
    assert np.allclose(runs_out.returns(params, 2, 0), 10.0)  # 20 steps of 0.5


def mean_params(out):
    return load_file(str(out / "mean" / "controller.safetensors"))["params"]


def test_runner_resumes_and_refuses_other_settings(car_bundle, tmp_path):
    config = EvolutionConfig(popsize=6, rollouts=2, eval_every=2, eval_rollouts=4)

    def settings():
        return EvolveSettings(
            str(car_bundle), max_episode_steps=10, evolution=EvolutionConfig(**vars(config))
        )

    evolve(settings(), tmp_path / "straight", 4, progress=False)
    evolve(settings(), tmp_path / "resumed", 2, progress=False)
    evolution = evolve(settings(), tmp_path / "resumed", 4, progress=False)
    assert evolution.generation == 4
    assert np.array_equal(mean_params(tmp_path / "resumed"), mean_params(tmp_path / "straight"))
    log = (tmp_path / "resumed" / "evolve-metrics.csv").read_text().splitlines()
    assert len(log) == 5 and (tmp_path / "resumed" / "evolve-curves.png").exists()
    assert log == (tmp_path / "straight" / "evolve-metrics.csv").read_text().splitlines()
    assert log[0].startswith("generation,")
    other = settings()
    other.evolution.popsize = 10
    with pytest.raises(DreamgymError, match="other settings \\(evolution\\)"):
        evolve(other, tmp_path / "resumed", 5, progress=False)


def test_evolutions_side_by_side_equal_one_after_another_and_resume(car_bundle, tmp_path):
    """Two processes give each evolution exactly what this process gives it; a finished one is
    found finished, a shorter one continued."""

    def settings(seed):
        config = EvolutionConfig(popsize=4, rollouts=2, eval_every=0, seed=seed)
        return EvolveSettings(str(car_bundle), max_episode_steps=10, evolution=config)

    here = [evolve(settings(s), tmp_path / f"here-{s}", 2, device="cpu", progress=False)
            for s in (0, 1)]  # fmt: skip
    evolve(settings(1), tmp_path / "apart-1", 1, device="cpu", progress=False)  # to be resumed
    jobs = [(settings(s), tmp_path / f"apart-{s}") for s in (0, 1)]
    apart = evolve_many(jobs, 2, processes=2, device="cpu", progress=False)
    assert [r["generation"] for r in apart] == [2, 2]
    assert [r["best_fitness"] for r in apart] == [e.best_fitness for e in here]
    for s in (0, 1):
        assert np.array_equal(mean_params(tmp_path / f"apart-{s}"),
                              mean_params(tmp_path / f"here-{s}"))  # fmt: skip
    assert not np.array_equal(mean_params(tmp_path / "apart-0"), mean_params(tmp_path / "apart-1"))
    again = evolve_many(jobs, 2, processes=2, device="cpu", progress=False)
    assert again == apart
    with pytest.raises(DreamgymError, match="processes must be"):
        evolve_many(jobs, 2, processes=0)


def test_evolutions_side_by_side_end_with_a_killed_parent(car_bundle, tmp_path):
    """SIGKILL the process that runs evolve_many: its evolutions stop too (no writer is left in
    the run), and each resumes to the generation asked for."""
    script = (
        "import sys; from dreamgym.agents import EvolutionConfig; "
        "from dreamgym.agents.parallel import evolve_many; "
        "from dreamgym.agents.run import EvolveSettings; "
        "jobs = [(EvolveSettings(sys.argv[1], max_episode_steps=10, "
        "evolution=EvolutionConfig(popsize=4, rollouts=1, eval_every=0, seed=s)), "
        "f'{sys.argv[2]}/c{s}') for s in (0, 1)]; "
        "evolve_many(jobs, int(sys.argv[3]), 2, device='cpu', progress=False)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(car_bundle), str(tmp_path),
                               "100000"])  # fmt: skip
    checkpoints = [tmp_path / f"c{s}" / "evolution.json" for s in (0, 1)]

    def told() -> list[int]:
        return [len(json.loads(c.read_text())["told"]) if c.exists() else 0 for c in checkpoints]

    deadline = time.monotonic() + 120
    while min(told()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    parent.kill()
    parent.wait()
    time.sleep(3)  # a generation here takes a fraction of a second
    stopped = told()
    time.sleep(2)
    assert min(stopped) >= 2 and told() == stopped
    subprocess.run([sys.executable, "-c", script, str(car_bundle), str(tmp_path),
                    str(max(stopped) + 1)], check=True, timeout=300)  # fmt: skip
    assert told() == [max(stopped) + 1] * 2


def test_runner_warm_starts_from_a_saved_controller(car_bundle, tmp_path):
    def settings(**kwargs):
        config = EvolutionConfig(popsize=4, rollouts=1, eval_every=0, sigma0=1e-6)
        return EvolveSettings(str(car_bundle), max_episode_steps=5, evolution=config, **kwargs)

    evolve(settings(), tmp_path / "first", 1, progress=False)
    start = mean_params(tmp_path / "first")
    evolve(settings(init=str(tmp_path / "first" / "mean")), tmp_path / "warm", 1, progress=False)
    assert np.allclose(mean_params(tmp_path / "warm"), start, atol=1e-4)  # tiny sigma: stays put
    with pytest.raises(DreamgymError, match="does not fit this run"):
        evolve(settings(init=str(tmp_path / "first" / "mean"), bias=False), tmp_path / "nb", 1,
               progress=False)  # fmt: skip
    assert not (tmp_path / "nb").exists()


def test_sigkilled_cli_run_resumes_on_the_uninterrupted_trajectory(car_bundle, tmp_path):
    def cmd(out, generations):
        return [
            sys.executable,
            "-m",
            "dreamgym.cli",
            "evolve",
            "--world-model",
            str(car_bundle),
            "--generations",
            str(generations),
            "--preset",
            "debug",
            "--max-steps",
            "10",
            "--eval-every",
            "0",
            "--out",
            str(out),
            "--quiet",
        ]

    straight = subprocess.run(cmd(tmp_path / "a", 6), capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(
        cmd(tmp_path / "b", 200),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = tmp_path / "b" / "evolution.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if checkpoint.exists() and len(json.loads(checkpoint.read_text())["told"]) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(json.loads(checkpoint.read_text())["told"])
    assert 2 <= done < 6
    rerun = subprocess.run(cmd(tmp_path / "b", 6), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert np.array_equal(mean_params(tmp_path / "b"), mean_params(tmp_path / "a"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evolve", "--generations", "1", "--temperature", "0"], "temperature must be"),
        (["evolve", "--generations", "1", "--temperature", "nan"], "temperature must be"),
        (["evolve", "--generations", "1", "--max-steps", "-4"], "max_episode_steps must"),
        (["render", "--temperatures", "1.0,0,-2"], "temperature must be"),
    ],
)
def test_bad_temperatures_and_caps_are_one_line_errors(car_bundle, tmp_path, capsys, argv,
                                                       message):  # fmt: skip
    from dreamgym.cli import main

    out = tmp_path / "out"
    where = ["--out", str(out / "x.mp4")] if argv[0] == "render" else ["--out", str(out)]
    assert main([*argv, "--world-model", str(car_bundle), *where]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def test_evaluate_refuses_a_zero_temperature(car_bundle, tmp_path, capsys):
    from dreamgym.agents import Controller
    from dreamgym.cli import main

    model = worldmodels.load(car_bundle)
    Controller(ControllerSpec.for_world_model(model)).save(tmp_path / "c", car_bundle)
    argv = ["evaluate", "--controller", str(tmp_path / "c"), "--backend", "dream",
            "--episodes", "2", "--temperature", "0"]  # fmt: skip
    assert main(argv) == 2
    assert "temperature must be a finite number > 0, got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "c" / "evaluation-dream.json").exists()
