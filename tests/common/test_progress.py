"""Progress on a terminal is tqdm's; in a log file it is plain lines, without carriage returns."""

from __future__ import annotations

import os
import subprocess
import sys

from dreamgym.common.progress import PlainProgress


def test_plain_progress_prints_readable_lines_at_its_interval_and_at_the_end(capsys):
    bar = PlainProgress(total=4, initial=1, desc="collect carracing", unit="ep", interval=0)
    bar.update(1)
    bar.set_postfix(dropped=0)
    bar.update(2)
    bar.close()
    bar.close()  # closing twice prints once
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("collect carracing: 2/4 ep (50%), ") and "left" in lines[0]
    assert lines[1].startswith("collect carracing: 4/4 ep (100%), ")
    assert lines[1].endswith("dropped=0") and "left" not in lines[1]


def test_plain_progress_wraps_an_iterable_and_stays_quiet_between_intervals(capsys):
    assert list(PlainProgress(range(5), desc="epoch", interval=3600)) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("epoch: 5/5 it (100%)")


def test_a_command_logging_to_a_file_writes_plain_lines(tmp_path):
    env = {**os.environ, "DREAMGYM_LOG_INTERVAL": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", "collect", "--env", "carracing", "--episodes", "2",
         "--max-steps", "10", "--out", str(tmp_path / "d")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    progress = [line for line in result.stderr.splitlines() if line.startswith("collect carracing")]
    assert progress and progress[-1].startswith("collect carracing: 2/2 ep (100%)")
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
