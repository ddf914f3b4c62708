"""scripts/temperature_table.py at debug size: one controller per tau and seed, scored in the
dream and the real game, resumable, and the paper's figures beside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "temperature_table.py"

pytestmark = pytest.mark.slow  # real Doom episodes


def command(bundle, out, *extra):
    return [sys.executable, str(SCRIPT), "--world-model", str(bundle), "--out", str(out),
            "--generations", "1", "--popsize", "4", "--rollouts", "1", "--episodes", "2",
            "--workers", "1", "--device", "cpu", *extra]  # fmt: skip


def test_one_controller_per_temperature_and_seed_and_a_resume(doom_bundle, tmp_path):
    out = tmp_path / "taus"
    first = subprocess.run(command(doom_bundle, out, "--temperatures", "0.1"),
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = json.loads((out / "seed-0" / "table.json").read_text())["rows"]["0.1"]
    both = subprocess.run(
        command(doom_bundle, out, "--temperatures", "0.1", "1.15", "--seeds", "0", "3"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert "== seed 0, tau 0.1\n" not in both.stdout  # done before: not run again
    assert "== seed 3, tau 0.1\n" in both.stdout
    tables = {s: json.loads((out / f"seed-{s}" / "table.json").read_text())["rows"]
              for s in (0, 3)}  # fmt: skip
    assert tables[0]["0.1"] == before and sorted(tables[0]) == sorted(tables[3]) == ["0.1", "1.15"]
    for rows in tables.values():
        for row in rows.values():
            assert row["dream"]["episodes"] == row["real"]["episodes"] == 2
            assert row["real"]["mean"] >= 1  # Doom pays one point per tic alive
    assert (out / "seed-3" / "tau-1.15" / "mean" / "controller.json").exists()
    table = (out / "table.md").read_text()
    real = [tables[s]["1.15"]["real"]["mean"] for s in (0, 3)]
    assert f"| {(real[0] + real[1]) / 2:.1f} | 918 +- 546 | 1092 +- 556 |" in table
    assert "| 1.15 | 3 |" in table  # every run's mean +- std below

    other = subprocess.run(command(tmp_path / "elsewhere", out, "--temperatures", "0.1"),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert other.returncode == 2 and "holds a table for world model" in other.stderr
    dropped = subprocess.run(command(doom_bundle, out, "--temperatures", "0.1", "--dropout", "0.1"),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert dropped.returncode == 2 and "holds a table for dropout None" in dropped.stderr


def test_bad_settings_are_one_line_errors(doom_bundle, tmp_path):
    result = subprocess.run(command(doom_bundle, tmp_path / "x", "--temperatures", "0"),
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "temperature" in result.stderr and not (tmp_path / "x").exists()
