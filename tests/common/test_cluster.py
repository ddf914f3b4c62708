"""Joining a Ray cluster started the way users start one: `ray start --head` (token
authentication on, Ray's default), on loopback, with dreamgym's CLI in another process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_start_head():
    """A head node from `ray start`; afterwards exactly the processes it started are stopped
    (found by its own temporary directory), never another Ray on this machine."""
    temp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    subprocess.run([RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                    "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                    f"--temp-dir={temp}"], env=env, check=True, capture_output=True,
                   timeout=120)  # fmt: skip
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        ours = [p for p in psutil.process_iter(["cmdline"])
                if any(str(temp) in part for part in p.info["cmdline"] or [])]  # fmt: skip
        for process in ours:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
        psutil.wait_procs(ours, timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def test_collect_joins_a_ray_start_cluster_by_address_and_by_ray_address(ray_start_head,
                                                                         tmp_path):  # fmt: skip
    address, env = ray_start_head

    def collect(out, *extra, environ=env):
        return subprocess.run(
            [sys.executable, "-m", "dreamgym.cli", "collect", "--env", "carracing", "--episodes",
             "2", "--max-steps", "20", "--workers", "1", "--out", str(out), "--quiet", *extra],
            env=environ, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    by_flag = collect(tmp_path / "a", "--address", address)
    assert by_flag.returncode == 0, by_flag.stderr[-2000:]
    by_variable = collect(tmp_path / "b", environ={**env, "RAY_ADDRESS": address})
    assert by_variable.returncode == 0, by_variable.stderr[-2000:]
    manifests = [(tmp_path / d / "manifest.jsonl").read_text() for d in "ab"]
    assert manifests[0] == manifests[1] and len(manifests[0].splitlines()) == 2
    assert all(json.loads(line)["length"] == 20 for line in manifests[0].splitlines())
