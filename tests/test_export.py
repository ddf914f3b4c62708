"""Exports hold no path of the machine that made them (the full export of a pipeline run is
checked in tests/test_pipeline.py); a latent model's export carries a model card with its data,
its goal reaching from a plan report, its float16 fidelity and its checksums."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from dreamgym.agents import Controller, ControllerSpec
from dreamgym.agents.planning import PlannerConfig
from dreamgym.common.pretrained import MODEL_CARD
from dreamgym.export import (
    MACHINE_PATH,
    card_checksums,
    checksums,
    export_bundle,
    portable,
    portable_text,
)
from dreamgym.export_latent import export_latent, planning_agreement
from dreamgym.worldmodels import load


def test_paths_become_relative_to_the_source_run_or_bare_names(tmp_path):
    run = tmp_path / "run"
    (run / "evolve" / "mean").mkdir(parents=True)
    info = {"data": str(run / "data"), "datasets": [str(run / "data-1"), "/elsewhere/d"],
            "n": 3, "kind": "vae-mdnrnn", "world_model": ".."}  # fmt: skip
    assert portable(info, run) == {"data": "data", "datasets": ["data-1", "d"], "n": 3,
                                   "kind": "vae-mdnrnn", "world_model": ".."}  # fmt: skip
    line = f"controller {run}/evolve/mean: dream survival 1.00x real, tau 1/2"
    assert portable_text(line, run) == "controller evolve/mean: dream survival 1.00x real, tau 1/2"
    # The run as given at another working directory is recognised by what exists under it.
    assert portable_text("controller runs/x/evolve/mean: OK", run) == "controller evolve/mean: OK"
    assert portable_text("read /home/someone/notes.txt", run) == "read notes.txt"
    assert MACHINE_PATH.search(f"see {run}") and not MACHINE_PATH.search("1.5 ep/s, 0.3/step")


def test_an_exported_bundle_names_no_path_of_this_machine(doom_bundle, tmp_path):
    model = load(doom_bundle)
    spec = ControllerSpec.for_world_model(model)
    Controller(spec).save(tmp_path / "c", doom_bundle)
    out = export_bundle(doom_bundle, tmp_path / "export", tmp_path / "c")
    texts = [(out / name).read_text() for name in ("bundle.json", "controller/controller.json")]
    for name in ("vae.safetensors", "mdnrnn.safetensors"):
        with safe_open(str(out / name), "pt") as f:
            texts.append(json.dumps(f.metadata()))
    for text in texts:
        assert str(tmp_path.parent) not in text and not MACHINE_PATH.search(text), text[:300]
    info = json.loads(texts[0])
    assert info["exported"]["from"] == "doom" and info["training"]["data"] == "data"
    exported, meta = Controller.load(out / "controller")  # the copy still finds its bundle
    exported.check_fits(load(meta["world_model"]))


def plan_of(world_model, out, *extra):
    """``dreamgym plan`` on 3 pairs with the debug planner; its report."""
    from dreamgym.cli import main

    assert main(["plan", "--world-model", str(world_model), "--episodes", "3", "--preset",
                 "debug", "--videos", "0", "--quiet", "--out", str(out), *extra]) == 0  # fmt: skip
    return json.loads((out / "plan.json").read_text())


@pytest.fixture(scope="module")
def latent_export(pusht_latent, tmp_path_factory):
    """``pusht_latent`` planned on (its validation pairs) and exported with the report."""
    from dreamgym.cli import main

    work = tmp_path_factory.mktemp("latent-export")
    report = plan_of(pusht_latent, pusht_latent / "plan")
    out = work / "pusht"
    assert main(["export", "--world-model", str(pusht_latent), "--plan",
                 str(pusht_latent / "plan"), "--out", str(out), "--hardware", "a test machine",
                 "--commit", "abc1234"]) == 0  # fmt: skip
    return out, report


def test_a_latent_export_carries_its_plan_figures_data_and_checksums(pusht_latent, latent_export):
    out, report = latent_export
    card = (out / MODEL_CARD).read_text()
    assert card.startswith("# Model card: `pretrained:pusht`\n")
    assert "in the real `pusht` env, on held-out pairs (pair set `validation`)." in card
    assert (
        "Pair set: **validation** (held out): the trainer's 1 validation episode of 'data'." in card
    )
    for name, result in report["policies"].items():
        low, high = result["interval"]
        row = (f"| {name} | {result['successes']}/3 = {result['rate']:.2f} "
               f"({low:.2f}-{high:.2f}) | "
               + "".join(f"{b['successes']}/{b['pairs']} | " for b in result["by_displacement"])
               + f"{result['seconds_per_step']:.2f} |")  # fmt: skip
        assert row in card
    assert report["policies"]["oracle"]["successes"] == 3  # the pairs are real goals
    assert "| policy | reached (95% CI) | below 15 px | 15-50 px | 50 px and more |" in card
    assert "64 samples x 4 iterations, horizon 3" in card and "(preset `debug`)" in card
    assert (
        "- Data: 4 episodes of policy `weak-expert` (base seed 0, at most 60 steps); 2 "
        "episodes of policy `pusher-random` (base seed 1000, at most 60 steps); 6 episodes "
        "in all, of which the trainer held out 1 of the first dataset for validation."
    ) in card
    assert "latent preset `debug`, with `proprio` = True, `epochs` = 1;" in card
    seconds = json.loads((pusht_latent / "latent.json").read_text())["history"][0]["seconds"]
    assert f"- Training time: {seconds / 60:.1f} min over 1 epoch (a test machine)." in card
    assert "- Commit: `abc1234`." in card
    rebuild = ["dreamgym collect --env pusht --policy weak-expert --episodes 4 --max-steps 60 "
               "--workers 2 --out pusht-run/data",
               "dreamgym collect --env pusht --policy pusher-random --episodes 2 --seed 1000 "
               "--max-steps 60 --workers 2 --out pusht-run/data-pusher",
               "dreamgym train latent --data pusht-run/data --data pusht-run/data-pusher --out "
               "pusht-run/latent --preset debug  # and the settings above that differ from the "
               "preset",
               "dreamgym plan --world-model pusht-run/latent --episodes 3 --preset debug --out "
               "pusht-run/latent/plan",
               "dreamgym export --world-model pusht-run/latent --plan pusht-run/latent/plan "
               "--out pusht"]  # fmt: skip
    assert "\n".join(rebuild) in card
    assert card_checksums(out) == checksums(out)
    assert set(checksums(out)) == {"bundle.json", "latent.safetensors",
                                   "initial_frames.safetensors"}  # fmt: skip
    with safe_open(str(out / "latent.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}  # noqa: SIM118
        texts = [json.dumps(f.metadata()), card, (out / "bundle.json").read_text()]
    for text in texts:
        assert str(pusht_latent.parent) not in text and not MACHINE_PATH.search(text)


def test_the_card_says_how_closely_float16_plans_like_float32(pusht_latent, latent_export):
    out, report = latent_export
    config = PlannerConfig(**{k: v for k, v in report["planner"].items()
                              if k not in ("seed", "proprio_weight")})  # fmt: skip
    agreement = planning_agreement(pusht_latent, out, config, report["planner"]["proprio_weight"])
    assert agreement.pairs == 4  # the debug preset's bank: 16 first frames, a quarter as pairs
    assert agreement.cost_diff < 0.05  # float16 weights barely move the goal costs
    card = (out / MODEL_CARD).read_text()
    assert (
        f"agrees with the float32 original's within 0.05 (in half-widths of the action box) "
        f"on {100 * agreement.agree:.0f}% of pairs (largest difference "
        f"{agreement.max_abs_diff:.4f}). The goal costs of 64 random action sequences from "
        f"each start differ by at most {100 * agreement.cost_diff:.3f}% of their median, and "
        f"the cheapest sequence is the same on {100 * agreement.same_best:.0f}% of pairs."
    ) in card
    # The same bundle against itself: identical plans.
    same = planning_agreement(pusht_latent, pusht_latent, config)
    assert (same.agree, same.max_abs_diff, same.cost_diff, same.same_best) == (1.0, 0.0, 0.0, 1.0)


def test_the_card_commands_carry_the_planner_settings_that_differ_from_its_preset(
    pusht_latent, latent_export, tmp_path
):
    _, report = latent_export
    planner = {**report["planner"], "samples": 80, "final_steps": 2, "final_proprio_weight": 5.0}
    (tmp_path / "plan").mkdir()
    (tmp_path / "plan" / "plan.json").write_text(json.dumps({**report, "planner": planner}))
    card = (export_latent(pusht_latent, tmp_path / "pusht", plan=tmp_path / "plan")
            / MODEL_CARD).read_text()  # fmt: skip
    flags = "--preset debug --final-proprio-weight 5 --final-steps 2 --samples 80"
    assert f"dreamgym plan --world-model pusht-run/latent --episodes 3 {flags} --out" in card
    assert f"dreamgym plan --world-model pretrained:pusht --episodes 3 {flags}\n" in card
    assert "(preset `debug`, with `final_proprio_weight` = 5.0, `final_steps` = 2," in card


def test_a_latent_export_without_a_plan_says_so(pusht_latent, tmp_path):
    out = export_latent(pusht_latent, tmp_path / "pusht")
    card = (out / MODEL_CARD).read_text()
    assert "Not measured: the export was made without `--plan`." in card
    assert card_checksums(out) == checksums(out)
    assert "dreamgym export --world-model pusht-run/latent --out pusht\n" in card


def test_bad_exports_are_one_line_errors_that_write_nothing(
    pusht_latent, doom_bundle, latent_export, tmp_path, capsys
):
    from dreamgym.cli import main

    _, report = latent_export
    other_env = tmp_path / "other-env"
    other_env.mkdir()
    (other_env / "plan.json").write_text(json.dumps({**report, "env": "carracing"}))
    other_model = tmp_path / "other-model"
    other_model.mkdir()
    (other_model / "plan.json").write_text(json.dumps({**report, "world_model": "/m/latent"}))
    (tmp_path / "not-json").mkdir()
    (tmp_path / "not-json" / "plan.json").write_text("{")
    out = tmp_path / "out"
    latent = ["export", "--world-model", str(pusht_latent), "--out", str(out)]
    cases = [
        ([*latent, "--plan", str(tmp_path)], "has no plan.json; make one with `dreamgym plan"),
        ([*latent, "--plan", str(other_env)], "is of env 'carracing', the world model of 'pusht'"),
        ([*latent, "--plan", str(other_model)], "measured the world model '/m/latent', not "),
        ([*latent, "--plan", str(tmp_path / "not-json")], "is not valid JSON"),
        (["export", "--world-model", str(doom_bundle), "--plan", str(pusht_latent / "plan"),
          "--out", str(out)], "--plan needs a latent world model; "),
        (["export", "--run", str(tmp_path), "--plan", str(pusht_latent / "plan"), "--out",
          str(out)], "--plan goes with --world-model"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not out.exists()


def test_the_readme_results_table_reads_a_latent_card(latent_export):
    """docs/results.py makes a shipped model's row from its card: a latent model's too."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "results.py"
    spec = importlib.util.spec_from_file_location("docs_results", path)
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    out, report = latent_export
    row = results.card_row(out / MODEL_CARD)

    def rate(name):
        p = report["policies"][name]
        low, high = p["interval"]
        return f"{p['successes']}/3 = {p['rate']:.2f} ({low:.2f}-{high:.2f})"

    assert (row["env"], row["preset"]) == ("pusht", "latent `debug`")
    assert row["score"] == f"**{rate('planner')}** (held-out goals)"
    assert row["baseline"] == f"random {rate('random')}; oracle {rate('oracle')}"
    assert row["hardware"] == "a test machine" and row["time"].endswith(" min training")
