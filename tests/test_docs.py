"""The README's results table is generated (docs/results.py) from the runs it cites, and the
README and guides carry no dates."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_results", ROOT / "docs" / "results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def pipeline_report(real: float, base: float) -> dict:
    """A report.json as ``Pipeline.write_report`` writes it, reduced to what a row reads."""
    scores = {"std": 10.0, "episodes": 100}
    return {
        "config": {"env": "doom-takecover", "preset": "small"},
        "stages": {
            "collect": {"seconds": 60.0},
            "evaluate": {"seconds": 90.0, "real": {"mean": real, **scores},
                         "dream": {"mean": 1.0, **scores}},
            "baseline": {"seconds": 30.0, "policy": "repeat", "mean": base, **scores},
        },
    }  # fmt: skip


def plan_report(held_out: bool) -> dict:
    """A plan.json as ``dreamgym plan`` writes it, reduced to what a row reads."""
    result = {"seconds": 15.0}
    return {
        "env": "pusht", "pairs": 50, "pair_set": {"kind": "validation", "held_out": held_out},
        "policies": {
            "planner": {"successes": 29, "rate": 0.58, "interval": [0.44, 0.71],
                        "results": [result] * 50},
            "random": {"successes": 0, "rate": 0.0, "interval": [0.0, 0.07], "results": [result]},
        },
    }  # fmt: skip


def test_the_readme_table_is_the_generated_one():
    assert results.readme_table(results.README.read_text()) == results.table()


def test_the_check_command_agrees():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "results.py"), "--check"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_card_row_reads_the_cards_scores_and_training_time():
    row = results.card_row(ROOT / "dreamgym" / "pretrained" / "doom-takecover" / "MODEL_CARD.md")
    card = (ROOT / "dreamgym" / "pretrained" / "doom-takecover" / "MODEL_CARD.md").read_text()
    real = re.search(r"\| this controller \| real \| (\d+) \| ([\d.]+) \+- ([\d.]+) \|", card)
    minutes = re.search(r"Training time: ([\d.]+) min", card)[1]
    assert (row["env"], row["preset"]) == ("doom-takecover", "cpu")
    assert row["score"].startswith(f"**{real[2]} +- {real[3]}** ({real[1]}; ")
    assert row["time"] == f"{minutes} min"


def test_a_card_without_scores_is_refused(tmp_path):
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# Model card: `pretrained:x`\n\nA world model of `pusht` (preset `cpu`).\n")
    with pytest.raises(results.SourceError, match="MODEL_CARD.md"):
        results.card_row(card)


def test_a_pipeline_row_gives_the_ratio_or_the_difference_and_the_wall_time():
    row = results.pipeline_row(pipeline_report(700.0, 350.0), {"hardware": "one H200"}, "r.json")
    assert row["score"] == "**700.0 +- 10.0** (100; 2.00x)"
    assert row["baseline"] == "repeat: 350.0 +- 10.0 (100)"
    assert (row["hardware"], row["time"]) == ("one H200", "3.0 min")
    resumed = {"hardware": "h", "minutes": 104.6}  # stages another command made
    assert results.pipeline_row(pipeline_report(700.0, 350.0), resumed, "r")["time"] == "104.6 min"
    row = results.pipeline_row(pipeline_report(-80.0, -50.0), {"hardware": "h"}, "r.json")
    assert row["score"] == "**-80.0 +- 10.0** (100; -30.0)"  # no ratio of negative returns


def test_a_plan_row_labels_training_pairs():
    run = {"hardware": "the 2-core machine", "model": "latent `cpu`", "minutes": 36.6}
    held = results.plan_row(plan_report(True), run, "p.json")
    assert held["score"] == "**29/50 = 0.58 (0.44-0.71)** (held-out goals)"
    assert held["baseline"] == "random 0/50 = 0.00 (0.00-0.07)"
    assert held["time"] == "36.6 min + 12.8 min planning"
    assert "(training pairs)" in results.plan_row(plan_report(False), run, "p.json")["score"]


def test_an_agent_row_reads_its_evaluation_and_the_collection_policys_returns(tmp_path):
    agent = {
        "env": "doom-takecover",
        "algo": "ppo",
        "preset": "doom-takecover",
        "timesteps": 20_021_248,
    }
    files = {"agent.json": agent,
             "evaluation-real.json": {"mean": 700.0, "std": 10.0, "episodes": 100},
             "baseline-real.json": {"policy": "repeat", "returns": [300.0, 400.0]}}  # fmt: skip
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    row = results.agent_row(tmp_path, {"hardware": "h", "minutes": 18.4})
    assert row["preset"] == "ppo `doom-takecover`, 20M dream steps"
    assert row["score"] == "**700.0 +- 10.0** (100; 2.00x)"
    assert row["baseline"] == "repeat: 350.0 +- 50.0 (2)"
    assert row["time"] == "18.4 min training"
    candidates = [{"seed": s, "episodes": 20, "mean": m} for s, m in ((5, 493.3), (6, 1013.8))]
    (tmp_path / "selection.json").write_text(json.dumps({"candidates": candidates}))
    chosen = results.agent_row(tmp_path, {"hardware": "h", "minutes": 66.5})
    assert chosen["preset"] == ("ppo `doom-takecover`, 20M dream steps, the best of 2 seeds on 20 "
                                "real episodes, scored again on others")  # fmt: skip
    assert chosen["time"] == "66.5 min training the 2 and choosing"


def test_committed_runs_add_the_shipped_recipes_other_seeds_not_ablations(tmp_path):
    cards = tmp_path / "pretrained"
    shutil.copytree(ROOT / "dreamgym" / "pretrained" / "doom-takecover", cards / "doom-takecover",
                    ignore=shutil.ignore_patterns("*.safetensors", "controller"))  # fmt: skip
    runs = tmp_path / "results"
    for name, file, report, preset, *seed in (
        ("a-doom", "report.json", pipeline_report(1, 1), "cpu"),
        ("b-doom", "report.json", pipeline_report(1, 1), None),  # no shipped model's preset
        ("c-pusht", "plan.json", plan_report(True), None),
        ("d-doom", "report.json", pipeline_report(2, 1), "cpu", 1),  # another seed: its own row
    ):
        (runs / name).mkdir(parents=True)
        if preset:  # the card's env and preset: the card's row stands
            report["config"]["preset"] = preset
        if seed:
            report["config"]["seed"] = seed[0]
        (runs / name / file).write_text(json.dumps(report))
        (runs / name / "run.json").write_text(json.dumps({"hardware": "h", "model": "m"}))
    found = results.rows(cards, runs)
    assert [(r["env"], r["preset"]) for r in found] == [
        ("doom-takecover", "cpu"),
        ("doom-takecover", "cpu (seed 1)"),
        ("pusht", "m"),
    ]
    assert found[1]["source"].endswith("d-doom/report.json)")


def test_a_run_without_its_hardware_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text(json.dumps(pipeline_report(1, 1)))
    (tmp_path / "run" / "run.json").write_text("{}")
    with pytest.raises(results.SourceError, match="hardware"):
        results.result_row(tmp_path / "run")


def test_no_page_of_the_manual_carries_a_date_or_a_work_log():
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    log = re.compile(r"\b20\d\d-\d\d-\d\d\b|\bthe issue\b|\bthis issue\b|"
                     r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|this|that|"
                     r"next|earlier|the same) session\b", re.IGNORECASE)  # fmt: skip
    found = [f"{p.name}: {m[0]}" for p in pages for m in log.finditer(p.read_text())]
    assert found == []


def _cells(row: str) -> int:
    """The cells of a markdown table row (a ``|`` escaped or inside backticks is not a border)."""
    row = re.sub(r"`[^`]*`", "code", row.replace("\\|", ""))
    return row.strip().strip("|").count("|") + 1


def test_every_table_row_has_its_headers_cells():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
             *sorted((ROOT / "dreamgym" / "pretrained").rglob("*.md"))]  # fmt: skip
    broken = []
    for page in pages:
        header = None
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if not line.startswith("|"):
                header = None
            elif header is None:
                header = _cells(line)
            elif _cells(line) != header:
                broken.append(f"{page.relative_to(ROOT)}:{number}")
    assert broken == []
