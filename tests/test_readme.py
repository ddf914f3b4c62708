"""The README is a contract: every block marked runnable runs as pasted, in order, in one fresh
directory (the Quick start's pipeline writes the ``runs/car`` that later blocks use)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- runnable: tests/test_readme.py runs this block -->"
FENCE = re.compile(re.escape(MARK) + r"\n```(bash|python)\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[str, str]]:
    """(language, code) of the marked blocks, adjacent Python blocks joined (they share names,
    as in a notebook)."""
    blocks: list[tuple[str, str]] = []
    for lang, code in FENCE.findall(README.read_text()):
        if blocks and lang == "python" and blocks[-1][0] == "python":
            blocks[-1] = ("python", blocks[-1][1] + "\n" + code)
        else:
            blocks.append((lang, code))
    return blocks


def test_every_marker_precedes_a_block():
    assert README.read_text().count(MARK) == len(FENCE.findall(README.read_text())) >= 8


@pytest.mark.slow
def test_the_readme_runs_as_pasted(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DREAMGYM_HOME": str(tmp_path / "home"),  # a new user: no bundles of their own
    }
    for lang, code in runnable_blocks():
        command = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [
            sys.executable, "-c", code]  # fmt: skip
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=900)  # fmt: skip
        assert result.returncode == 0, f"README block failed:\n{code}\n{result.stderr[-3000:]}"
    for output in ("doom.mp4", "car.mp4", "runs/car/report.md", "dream.mp4", "dream.gif",
                   "compare.mp4", "taus.mp4"):  # fmt: skip
        assert (tmp_path / output).stat().st_size > 0, output


def test_the_envs_sample_is_what_the_command_prints():
    sample = README.read_text().split("$ dreamgym envs\n", 1)[1].split("```", 1)[0]
    printed = subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", "envs"], capture_output=True, text=True, timeout=120
    ).stdout.splitlines()
    lines = [line for line in sample.splitlines() if line != "..."]
    assert len(lines) >= 3 and all(line in printed for line in lines)
