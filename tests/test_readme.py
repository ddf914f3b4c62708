"""The README and the guides are a contract: every block marked runnable runs as pasted, the
README's first and then each guide's in a fixed order, in one fresh directory (the Quick start's
pipeline writes the ``runs/car`` that later blocks use)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The order the blocks run in: a later page's blocks may use what an earlier page's wrote.
GUIDES = ("collecting", "worldmodels", "dreams")
PAGES = [README, *(ROOT / "docs" / f"{name}.md" for name in GUIDES)]
MARK = "<!-- runnable: tests/test_readme.py runs this block -->"
FENCE = re.compile(re.escape(MARK) + r"\n```(bash|python)\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[Path, str, str]]:
    """(page, language, code) of the marked blocks, adjacent Python blocks of a page joined
    (they share names, as in a notebook)."""
    blocks: list[tuple[Path, str, str]] = []
    for page in PAGES:
        for lang, code in FENCE.findall(page.read_text()):
            if blocks and lang == "python" and blocks[-1][:2] == (page, "python"):
                blocks[-1] = (page, "python", blocks[-1][2] + "\n" + code)
            else:
                blocks.append((page, lang, code))
    return blocks


def test_every_marker_precedes_a_block():
    counts = [(p.read_text().count(MARK), len(FENCE.findall(p.read_text()))) for p in PAGES]
    assert all(marks == fences for marks, fences in counts)
    assert sum(fences for _, fences in counts) >= 8
    assert counts[0][1] >= 3  # the README's own quick start and ten lines of Python


def test_no_other_page_is_marked():
    """A marked block on a page missing from PAGES would never run."""
    others = [p for p in (ROOT / "docs").rglob("*.md") if p not in PAGES]
    assert [p.name for p in others if MARK in p.read_text()] == []


@pytest.mark.slow
def test_the_readme_runs_as_pasted(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DREAMGYM_HOME": str(tmp_path / "home"),  # a new user: no bundles of their own
    }
    for page, lang, code in runnable_blocks():
        command = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [
            sys.executable, "-c", code]  # fmt: skip
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=900)  # fmt: skip
        assert result.returncode == 0, f"{page.name} block failed:\n{code}\n{result.stderr[-3000:]}"
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
