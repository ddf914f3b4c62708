"""Ray as users run it: a cluster started with `ray start` (a head and a worker node, token
authentication on, Ray's default) on loopback, joined by dreamgym's CLI in another process; and a
local Ray that is really local and leaves nothing behind when its run is killed."""

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
import time
from pathlib import Path

import psutil
import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours(root: Path) -> list[psutil.Process]:
    """The processes whose command line or open files name ``root`` (Ray's processes rename
    themselves but keep their logs open)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if any(str(root) in part for part in process.cmdline()) or any(
                f.path.startswith(str(root)) for f in process.open_files()
            ):
                found.append(process)
    return found


def stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=30)


def alive(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a zombie has exited and only waits to be reaped)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def named(prefix: str, root: Path) -> list[psutil.Process]:
    """Ray worker processes of the actor class ``prefix`` (e.g. ``ray::EpisodeActor``); a process
    that exits (or is a zombie) between listing and reading its command line is skipped."""
    found = []
    for process in ours(root):
        with contextlib.suppress(psutil.Error):
            cmdline = process.cmdline()
            if cmdline and cmdline[0].startswith(prefix):
                found.append(process)
    return found


@pytest.fixture(params=["token"])
def ray_start_cluster(request):
    """A head node and a worker node, each from `ray start`: with token authentication (what
    `ray start` does when ~/.ray/auth_token exists, as it does once any local Ray has run) or,
    with the param "none", without; the token lives in a temporary $HOME. Afterwards exactly the
    processes they started are stopped (found by their temporary directory), never another Ray
    on this machine."""
    temp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(temp / "home")
    token = temp / "home" / ".ray" / "auth_token"
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp}",
              "--node-ip-address=127.0.0.1"]  # fmt: skip
    try:
        if request.param == "token":
            subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True,
                           capture_output=True, timeout=120)  # fmt: skip
            assert token.exists()
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        *common], env=env, check=True, capture_output=True,
                       timeout=120)  # fmt: skip
        # A worker node's `ray start` does not turn token authentication on by itself (Ray
        # 2.60); users say so with RAY_AUTH_MODE=token, as docs/cluster.md tells them.
        node_env = {**env, "RAY_AUTH_MODE": "token"} if request.param == "token" else env
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=node_env,
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        yield f"127.0.0.1:{port}", env, temp
    finally:
        stop(ours(temp))
        shutil.rmtree(temp, ignore_errors=True)


def dreamgym(*argv: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dreamgym.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.mark.parametrize("ray_start_cluster", ["token", "none"], indirect=True)
@pytest.mark.slow
def test_collect_joins_a_ray_start_cluster_by_address_and_by_ray_address(ray_start_cluster,
                                                                         tmp_path):  # fmt: skip
    address, env, _ = ray_start_cluster

    def collect(out, *extra, environ=env):
        argv = ["collect", "--env", "carracing", "--episodes", "2", "--max-steps", "20",
               "--workers", "2", "--quiet"]  # fmt: skip
        return dreamgym(*argv, "--out", str(out), *extra, env=environ)

    by_flag = collect(tmp_path / "a", "--address", address)
    assert by_flag.returncode == 0, by_flag.stderr[-2000:]
    by_variable = collect(tmp_path / "b", environ={**env, "RAY_ADDRESS": address})
    assert by_variable.returncode == 0, by_variable.stderr[-2000:]
    # Two workers finish in either order; the episodes themselves are the same.
    manifests = [sorted((tmp_path / d / "manifest.jsonl").read_text().splitlines()) for d in "ab"]
    assert manifests[0] == manifests[1] and len(manifests[0]) == 2
    assert all(json.loads(line)["length"] == 20 for line in manifests[0])

    if (Path(env["HOME"]) / ".ray" / "auth_token").exists():
        no_token = collect(tmp_path / "c", "--address", address,
                           environ={**env, "HOME": str(tmp_path)})  # fmt: skip
        assert no_token.returncode == 2 and not (tmp_path / "c" / "manifest.jsonl").exists()
        assert no_token.stderr.count("\n") == 1 and "token" in no_token.stderr, no_token.stderr


@pytest.mark.slow
def test_evolution_on_a_ray_start_cluster_survives_a_killed_worker(ray_start_cluster, car_bundle,
                                                                   tmp_path):  # fmt: skip
    address, env, temp = ray_start_cluster

    def evolve(out: Path, *extra: str) -> subprocess.Popen:
        argv = ["evolve", "--generations", "3", "--popsize", "4", "--rollouts", "2", "--max-steps",
               "60", "--quiet"]  # fmt: skip
        argv += ["--world-model", str(car_bundle), "--out", str(out), *extra]
        return subprocess.Popen([sys.executable, "-m", "dreamgym.cli", *argv], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip

    def told(out: Path) -> list:
        return json.loads((out / "evolution.json").read_text())["told"]

    real = ["--backend", "real", "--address", address, "--workers", "2"]
    calm = evolve(tmp_path / "calm", *real)
    assert calm.wait(300) == 0, calm.stderr.read()[-2000:]
    disturbed = evolve(tmp_path / "disturbed", *real)
    killed = None
    while killed is None and disturbed.poll() is None:
        actors = named("ray::EpisodeActor", temp)
        if actors and (tmp_path / "disturbed" / "evolution.json").exists():
            killed = actors[0]
            killed.kill()  # a worker process, mid-run (after the first generation)
        time.sleep(0.05)
    assert disturbed.wait(300) == 0, disturbed.stderr.read()[-2000:]
    assert killed is not None, "the run ended before a worker could be killed"
    assert told(tmp_path / "disturbed") == told(tmp_path / "calm")

    # The dream backend is sharded over the cluster when asked (no longer ignored): one actor
    # reproduces the in-process run exactly; two shards draw other dream noise.
    dream = ["--backend", "dream", "--device", "cpu"]
    runs = {name: evolve(tmp_path / name, *dream, *extra) for name, extra in [
        ("here", []), ("one", ["--address", address, "--workers", "1"]),
        ("two", ["--address", address, "--workers", "2"])]}  # fmt: skip
    for name, run in runs.items():
        assert run.wait(300) == 0, (name, run.stderr.read()[-2000:])
    assert told(tmp_path / "one") == told(tmp_path / "here")
    assert told(tmp_path / "two") != told(tmp_path / "here")
    # ray.kill is asynchronous: the raylet ends a killed actor's process a moment later.
    _, alive = psutil.wait_procs(named("ray::DreamShardActor", temp), timeout=15)
    assert not alive, f"the sharded backend left actors behind: {alive}"


@pytest.mark.slow
def test_local_means_local_even_with_a_stale_ray_address_file(tmp_path):
    """A `ray start` head that died leaves Ray's address file behind; a plain run must start
    its own Ray, not try to join the dead cluster."""
    temp = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))
    try:
        (temp / "ray").mkdir()
        (temp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}\n")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
               "TMPDIR": str(temp)}  # fmt: skip
        result = dreamgym("collect", "--env", "carracing", "--episodes", "1", "--max-steps", "10",
                          "--out", str(tmp_path / "d"), "--quiet", env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
    finally:
        stop(ours(temp))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_killed_run_leaves_no_ray_processes_after_the_next_run(tmp_path):
    temp = Path(tempfile.mkdtemp(prefix="ro", dir="/tmp"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
           "TMPDIR": str(temp)}  # fmt: skip
    argv = [sys.executable, "-m", "dreamgym.cli"]
    argv += ["collect", "--env", "carracing", "--episodes", "6", "--max-steps", "200", "--workers",
            "2", "--quiet"]  # fmt: skip
    argv += ["--out", str(tmp_path / "d")]
    try:
        run = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not named("ray::EpisodeWorker", temp) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.poll() is None, "collect ended before it could be killed"
        run.send_signal(signal.SIGKILL)  # no chance to shut its Ray down
        run.wait()
        time.sleep(3)
        if not ours(temp):  # Ray 2.60 leaves its two agents running; a later Ray may not
            pytest.skip("this Ray leaves no process behind a killed driver: nothing to reap")
        rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        left = [p.pid for p in ours(temp) if alive(p)]
        assert not left, left
        assert not list((temp / "ray").glob("session_*"))  # the killed run's folder went too
    finally:
        stop(ours(temp))
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_local_run_leaves_no_ray_session_folder(tmp_path):
    temp = Path(tempfile.mkdtemp(prefix="rl", dir="/tmp"))  # Ray's temp dir: $TMPDIR/ray
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
           "TMPDIR": str(temp)}  # fmt: skip
    try:
        result = dreamgym("collect", "--env", "carracing", "--episodes", "2", "--max-steps", "20",
                          "--workers", "2", "--quiet", "--out", str(tmp_path / "d"),
                          env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert (temp / "ray").is_dir()  # Ray did keep its session there while it ran
        assert sorted(p.name for p in (temp / "ray").glob("session_*")) == []
        assert not list((temp / "dreamgym-ray-sessions").glob("*.json"))
    finally:
        stop(ours(temp))
        shutil.rmtree(temp, ignore_errors=True)


def test_a_pool_larger_than_the_cluster_starts_with_the_actors_that_fit(ray_local):
    import ray

    from dreamgym.common.cluster import ActorPool

    class Echo:  # defined here, so that Ray sends the class itself to its workers
        def ready(self) -> bool:
            return True

        def run(self, x: int) -> int:
            return 2 * x

    echo = ray.remote(num_cpus=1)(Echo)  # the local Ray of the tests has 2 CPUs
    with pytest.warns(UserWarning, match="2 of 3 Ray workers could be placed"):
        pool = ActorPool(echo.remote, 3, placement_grace=1.0)
    try:
        for x in range(10):
            pool.submit(lambda actor, x=x: actor.run.remote(x), x)
        results = dict(pool.next() for _ in range(10))
        assert results == {x: 2 * x for x in range(10)} and len(pool.actors) == 2
    finally:
        pool.close()


def test_an_actor_whose_constructor_raises_is_an_error_not_a_retry_loop(ray_local):
    import ray

    from dreamgym.common.cluster import ActorPool

    class Broken:
        def __init__(self) -> None:
            raise ValueError("no env here")

        def ready(self) -> bool:
            return True

    with pytest.raises(ray.exceptions.RayActorError, match="no env here"):
        ActorPool(ray.remote(num_cpus=1)(Broken).remote, 2)


def test_a_live_driver_is_never_reaped_when_the_wall_clock_steps(tmp_path, monkeypatch):
    """A note names its driver by pid and start; a stepped wall clock (a VM resumed) shifts
    psutil's create_time of every process, and must not make a live driver look dead."""
    import json

    import psutil

    from dreamgym.common import cluster

    monkeypatch.setattr(cluster, "SESSIONS_DIR", tmp_path / "notes")
    (tmp_path / "notes").mkdir()
    session = tmp_path / "session_live"
    session.mkdir()
    (session / "log").write_text("")
    with open(session / "log") as held:  # this process "uses" the session, as a driver does
        live = {"pid": os.getpid(), "start": cluster._start_stamp(os.getpid()),
                "session_dir": str(session)}  # fmt: skip
        (tmp_path / "notes" / "live.json").write_text(json.dumps(live))
        real = psutil.Process.create_time
        monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) + 2.0)
        assert cluster.reap_orphans() == [] and held.readable()
    assert (tmp_path / "notes" / "live.json").exists() and session.exists()
    dead = {**live, "start": live["start"] - 1}  # the same pid, another start: a reused pid
    (tmp_path / "notes" / "live.json").write_text(json.dumps(dead))
    assert cluster.reap_orphans() == []  # nothing holds the session now: nothing to stop
    assert not (tmp_path / "notes" / "live.json").exists() and not session.exists()
