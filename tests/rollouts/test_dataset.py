from __future__ import annotations

import os
import shutil
import zlib

import numpy as np
import pytest
from helpers import damage_member

from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.rollouts import DatasetUnion, RolloutDataset, load_episode
from dreamgym.rollouts.episode import Episode


def test_frames_and_sequences_have_the_documented_shapes(car_data):
    ds = RolloutDataset(car_data)
    assert len(ds) == 4 and ds.env == "carracing" and ds.action_dim == 3
    assert ds.num_frames == 4 * 41 and ds.num_steps == 4 * 40
    frames = ds.frames()
    assert frames.shape == (164, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[41:82], ds.episode(1).frames)
    batch = ds.sample_frames(16, np.random.default_rng(0))
    assert batch.shape == (16, 64, 64, 3) and batch.dtype == np.uint8

    seq = ds.sample_sequences(5, 10, np.random.default_rng(0))
    assert seq.frames.shape == (5, 11, 64, 64, 3)
    assert seq.actions.shape == (5, 10, 3) and seq.actions.dtype == np.float32
    assert seq.rewards.shape == seq.dones.shape == seq.mask.shape == (5, 10)
    assert seq.mask.all()


def test_sequences_match_the_episode_and_pad_short_ones(car_data):
    ds = RolloutDataset(car_data)
    seq = ds.sample_sequences(8, 60, np.random.default_rng(1))  # longer than the 40-step episodes
    assert (seq.mask.sum(axis=1) == 40).all() and not seq.mask[:, 40:].any()
    assert (seq.frames[:, 41:] == 0).all()
    episodes = [ds.episode(i) for i in range(len(ds))]
    for b in range(8):
        match = [e for e in episodes if np.array_equal(e.frames, seq.frames[b, :41])]
        assert len(match) == 1
        np.testing.assert_array_equal(match[0].actions, seq.actions[b, :40])
        np.testing.assert_array_equal(match[0].rewards, seq.rewards[b, :40])


def test_dones_mark_only_the_last_step_of_terminated_episodes():
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    terminated = Episode(
        frames, np.zeros((3, 1), np.float32), np.zeros(3, np.float32), True, False, 0, 0
    )
    truncated = Episode(
        frames, np.zeros((3, 1), np.float32), np.zeros(3, np.float32), False, True, 0, 0
    )
    assert terminated.dones.tolist() == [False, False, True]
    assert not truncated.dones.any()


def test_truncated_file_is_reported_by_name(car_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    victim = data / "episode_000002.npz"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="episode_000002.npz"):
        RolloutDataset(data)
    with pytest.warns(UserWarning, match="episode_000002.npz"):
        ds = RolloutDataset(data, skip_corrupt=True)
    assert len(ds) == 3 and ds.frames().shape[0] == 3 * 41


def test_corrupt_data_inside_a_complete_file_is_reported_by_name(car_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    victim = data / "episode_000001.npz"
    raw = bytearray(victim.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)  # zip directory intact, compressed frames damaged
    victim.write_bytes(bytes(raw))
    ds = RolloutDataset(data)
    with pytest.raises(CorruptFileError, match="episode_000001.npz"):
        ds.frames()
    with pytest.warns(UserWarning, match="episode_000001.npz"):
        frames = RolloutDataset(data, skip_corrupt=True).frames()
    assert frames.shape[0] == 3 * 41
    with pytest.raises(CorruptFileError, match="episode_000001.npz"):
        load_episode(victim)


def test_a_skipped_episode_is_left_out_of_everything_and_named_once(car_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    damage_member(data / "episode_000001.npz")  # its zip directory reads: only reading finds it
    with pytest.raises(CorruptFileError, match="episode_000001.npz"):
        RolloutDataset(data).read_all()
    with pytest.warns(UserWarning) as caught:
        ds = RolloutDataset(data, skip_corrupt=True)
        seq = ds.sample_sequences(64, 40, np.random.default_rng(0))
    assert [str(w.message).count("episode_000001.npz") for w in caught] == [1]
    kept = [RolloutDataset(car_data).episode(i) for i in (0, 2, 3)]
    assert [e["file"] for e in ds.entries] == [f"episode_00000{i}.npz" for i in (0, 2, 3)]
    assert ds.frames().shape[0] == 3 * 41 and len(ds.step_arrays()[0]) == 3 * 40
    np.testing.assert_array_equal(ds.frames()[41:82], kept[1].frames)
    np.testing.assert_array_equal(ds.step_arrays()[0][40:80], kept[1].actions)
    for b in range(64):  # every window is one kept episode's frames and actions, aligned
        (match,) = [e for e in kept if np.array_equal(e.frames, seq.frames[b])]
        np.testing.assert_array_equal(match.actions, seq.actions[b])

    (cache,) = (data / "cache").glob("frames-*.npy")
    stamp = cache.stat().st_mtime_ns
    with pytest.warns(UserWarning) as caught:  # read again: the noted file is left out at once
        again = DatasetUnion.open([data], skip_corrupt=True)
    assert [str(w.message).count("episode_000001.npz") for w in caught] == [1]
    assert len(again) == 3 and again.cache_key() == ds.cache_key()
    assert cache.stat().st_mtime_ns == stamp  # the cache of the kept episodes was reused


def test_not_a_dataset(tmp_path):
    with pytest.raises(DreamgymError, match="not a rollout dataset"):
        RolloutDataset(tmp_path)


def test_corrupt_deflate_data_is_reported_by_name(car_data, tmp_path):
    """Random garbage inside a compressed array makes zlib itself fail (not only the CRC check):
    still a one-line CorruptFileError naming the file."""
    source = (car_data / "episode_000001.npz").read_bytes()
    rng = np.random.default_rng(0)
    for trial in range(200):
        raw = bytearray(source)
        start, size = int(rng.integers(200, len(raw) - 4000)), int(rng.integers(20, 200))
        raw[start : start + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        victim = tmp_path / f"episode_{trial:06d}.npz"
        victim.write_bytes(bytes(raw))
        try:
            with np.load(victim) as data:
                data["frames"]
        except zlib.error:
            break
        except Exception:  # noqa: BLE001 - other damage: try another pattern
            continue
    else:
        pytest.fail("no corruption pattern reached zlib")
    with pytest.raises(CorruptFileError, match=victim.name):
        load_episode(victim)


def test_a_damaged_frame_cache_is_rebuilt(car_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    expected = np.array(RolloutDataset(data).frames())
    (cache,) = (data / "cache").glob("frames-*.npy")
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 3])  # truncated
    with pytest.warns(UserWarning, match="damaged"):
        frames = RolloutDataset(data).frames()
    np.testing.assert_array_equal(frames, expected)


def test_the_cache_can_live_outside_the_dataset(car_data, tmp_path, monkeypatch):
    data = tmp_path / "shared"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    monkeypatch.setenv("DREAMGYM_CACHE", str(tmp_path / "caches"))
    dataset = RolloutDataset(data)
    assert dataset.frames().shape[0] == dataset.num_frames
    assert dataset.cache_dir().parent == tmp_path / "caches"
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before  # nothing written there


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_a_read_only_dataset_caches_under_dreamgym_home(car_data, tmp_path, monkeypatch):
    data = tmp_path / "shared"
    shutil.copytree(car_data, data, ignore=shutil.ignore_patterns("cache"))
    monkeypatch.setenv("DREAMGYM_HOME", str(tmp_path / "home"))
    data.chmod(0o555)
    try:
        dataset = RolloutDataset(data)
        assert dataset.frames().shape[0] == dataset.num_frames
    finally:
        data.chmod(0o755)
    assert dataset.cache_dir().parent == tmp_path / "home" / "cache"
    assert not (data / "cache").exists()
