from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dreamgym.cli import main
from dreamgym.envs import make_env
from dreamgym.rollouts import (
    BrownianPolicy,
    CollectConfig,
    RepeatPolicy,
    collect,
    episode_seed,
    load_episode,
    run_episode,
)
from dreamgym.rollouts.store import read_manifest


def digest(root: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.glob("episode_*.npz"))
    }


def test_two_workers_write_complete_episode_files(car_data):
    files = sorted(p.name for p in car_data.glob("episode_*.npz"))
    assert files == [f"episode_{i:06d}.npz" for i in range(4)]
    manifest = read_manifest(car_data)
    meta = json.loads((car_data / "dataset.json").read_text())
    assert meta["env"] == "carracing" and meta["policy"] == "brownian"
    for index, entry in manifest.items():
        episode = load_episode(car_data / entry["file"])
        assert episode.frames.shape == (41, 64, 64, 3) and episode.frames.dtype == np.uint8
        assert episode.actions.shape == (40, 3) and episode.actions.dtype == np.float32
        assert episode.rewards.shape == (40,) and episode.rewards.dtype == np.float32
        assert episode.truncated and not episode.terminated
        assert episode.seed == entry["seed"] == episode_seed(0, index)
        assert entry["length"] == 40
        assert entry["return"] == pytest.approx(episode.total_reward)
    assert not list(car_data.glob(".*.tmp"))


def test_same_seed_gives_identical_files_and_resume_extends(car_data, tmp_path):
    out = tmp_path / "again"
    config = CollectConfig(env="carracing", episodes=2, out=out, workers=1, max_episode_steps=40)
    collect(config, progress=False)
    first = digest(out)
    assert first == {k: v for k, v in digest(car_data).items() if k in first}
    config.episodes = 4
    result = collect(config, progress=False)
    assert result.new_episodes == 2 and result.episodes == 4
    assert digest(out) == digest(car_data)  # 1 worker + resume == 2 workers in one go
    assert collect(config, progress=False).new_episodes == 0


def test_episode_is_reproducible_from_its_seed(car_data):
    episode = load_episode(car_data / "episode_000003.npz")
    env = make_env("carracing", max_episode_steps=40)
    again = run_episode(env, BrownianPolicy(env.action_space), episode.seed, index=3)
    np.testing.assert_array_equal(again.frames, episode.frames)
    np.testing.assert_array_equal(again.actions, episode.actions)


def test_doom_min_length_drops_short_episodes_deterministically(ray_local, tmp_path):
    config = CollectConfig(
        env="doom-takecover",
        episodes=3,
        out=tmp_path / "doom",
        policy="repeat",
        workers=2,
        min_length=150,
    )
    result = collect(config, progress=False)
    manifest = read_manifest(config.out)
    kept = [e for e in manifest.values() if e["kept"]]
    dropped = [e for e in manifest.values() if not e["kept"]]
    assert result.episodes == len(kept) == 3 and result.dropped == len(dropped)
    assert all(e["length"] >= 150 for e in kept) and all(e["length"] < 150 for e in dropped)
    assert sorted(p.name for p in config.out.glob("episode_*.npz")) == sorted(
        e["file"] for e in kept
    )
    # The kept set is the first 3 long-enough episodes in index order, whatever the timing.
    assert max(e["index"] for e in kept) == max(manifest)
    for entry in kept:
        episode = load_episode(config.out / entry["file"])
        assert episode.terminated  # every TakeCover episode ends in death under 2,100 steps
        assert episode.actions.shape == (entry["length"], 1)
        assert episode.total_reward == entry["length"]  # +1 per tic survived


def test_policy_objects_are_shipped_to_workers(ray_local, tmp_path):
    class HoldRight:
        def act(self, obs):
            return np.ones(1, np.float32)

    out = tmp_path / "obj"
    collect(
        CollectConfig(
            env="doom-takecover", episodes=1, out=out, policy=HoldRight(), max_episode_steps=20
        ),
        progress=False,
    )
    assert (load_episode(out / "episode_000000.npz").actions == 1).all()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_bad_input_gives_clear_errors_and_keeps_data(car_data, tmp_path, capsys):
    before = digest(car_data)
    cases = [
        (["--env", "carracing", "--episodes", "0"], "episodes must be an integer >= 1, got 0"),
        (
            ["--env", "carracing", "--episodes", "2", "--policy", "zigzag"],
            "unknown policy 'zigzag'",
        ),
        (["--env", "atari", "--episodes", "2"], "unknown environment 'atari'"),
        (["--env", "doom-takecover", "--episodes", "9"], "env='carracing'"),
        (["--env", "carracing", "--episodes", "9", "--seed", "5"], "seed=0"),
    ]
    for args, message in cases:
        out = car_data if "car" in message or "seed" in message else tmp_path / "x"
        assert main(["collect", "--out", str(out), *args, "--quiet"]) == 2
        assert message in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert (
        main(["collect", "--env", "carracing", "--episodes", "1", "--out", str(blocker / "sub")])
        == 2
    )
    assert "is not writable" in capsys.readouterr().err
    assert digest(car_data) == before


def test_cli_exit_status_and_envs_listing():
    listing = run_cli("envs")
    assert listing.returncode == 0
    assert "carracing" in listing.stdout and "Box(1,)" in listing.stdout
    bad = run_cli("collect", "--env", "carracing", "--episodes", "-3", "--out", "/tmp/never")
    assert bad.returncode == 2 and "episodes must be an integer >= 1" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_completes_exactly(tmp_path):
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "dreamgym.cli",
        "collect",
        "--env",
        "carracing",
        "--episodes",
        "8",
        "--out",
        str(out),
        "--workers",
        "2",
        "--max-steps",
        "120",
        "--quiet",
    ]
    proc = subprocess.Popen(
        args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while len(list(out.glob("episode_*.npz"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "collection ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("episode_*.npz")))
    assert 3 <= done_before < 8

    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    files = sorted(out.glob("episode_*.npz"))
    assert [p.name for p in files] == [f"episode_{i:06d}.npz" for i in range(8)]
    manifest = read_manifest(out)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    indices = [json.loads(line)["index"] for line in lines]
    assert sorted(indices) == list(range(8)), "manifest has duplicates or gaps"
    for path in files:
        episode = load_episode(path)
        assert episode.length == 120 and episode.seed == episode_seed(0, episode.index)
        assert manifest[episode.index]["length"] == 120
    assert not list(out.glob(".*.tmp"))


def test_unreachable_ray_address_is_a_clear_error(tmp_path):
    result = run_cli(
        "collect",
        "--env",
        "carracing",
        "--episodes",
        "1",
        "--out",
        str(tmp_path / "d"),
        "--address",
        "127.0.0.1:1",
        "--quiet",
    )
    assert result.returncode == 2
    assert "could not connect to the Ray cluster at '127.0.0.1:1'" in result.stderr


def test_repeat_policy_collection_records_actions_held(ray_local, tmp_path):
    out = tmp_path / "repeat"
    collect(
        CollectConfig(
            env="doom-takecover", episodes=1, out=out, policy="repeat", max_episode_steps=60
        ),
        progress=False,
    )
    episode = load_episode(out / "episode_000000.npz")
    policy = RepeatPolicy(make_env("doom-takecover").action_space)
    policy.reset(episode.seed)
    expected = np.stack([policy.act(f) for f in episode.frames[:-1]])
    np.testing.assert_array_equal(episode.actions, expected)
