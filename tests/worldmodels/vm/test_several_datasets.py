"""M trained on several datasets at once (the paper's iterative training)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from dreamgym import worldmodels
from dreamgym.cli import main
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import CollectConfig, DatasetUnion, RolloutDataset, collect
from dreamgym.worldmodels.vm.train_mdnrnn import LATENTS_FILE, MDNRNNTrainer, encode_dataset


@pytest.fixture(scope="module")
def more_data(ray_local, tmp_path_factory) -> Path:
    """Three shorter (25-step) CarRacing episodes, another seed and policy than ``car_data``."""
    out = tmp_path_factory.mktemp("car-more") / "data"
    config = CollectConfig(
        env="carracing", episodes=3, out=out, policy="random", workers=2, seed=1,
        max_episode_steps=25,
    )  # fmt: skip
    collect(config, progress=False)
    return out


def latents_key(out: Path) -> str:
    with safe_open(str(out / LATENTS_FILE), framework="pt") as f:
        return f.metadata()["key"]


def test_union_reads_every_episode_in_order(car_data, more_data):
    a, b = RolloutDataset(car_data), RolloutDataset(more_data)
    union = DatasetUnion([a, b])
    assert len(union) == 7 and union.env == "carracing" and union.action_dim == 3
    assert union.lengths.tolist() == [40] * 4 + [25] * 3
    assert union.frame_offsets.tolist() == [0, 41, 82, 123, 164, 190, 216]
    assert union.num_frames == 4 * 41 + 3 * 26 and union.num_steps == 4 * 40 + 3 * 25
    assert union.meta == a.meta and union.root == a.root and union.entries[4] == b.entries[0]
    np.testing.assert_array_equal(union.episode(5).frames, b.episode(1).frames)
    with pytest.raises(IndexError):
        union.episode(7)
    actions, rewards, dones = union.step_arrays()
    for i, episode in enumerate(
        [a.episode(j) for j in range(4)] + [b.episode(j) for j in range(3)]
    ):
        w = union.windows(np.array([i]), 60)  # longer than any episode: the whole episode
        steps = w.step_rows[0, w.step_mask[0]]
        np.testing.assert_array_equal(actions[steps], episode.actions)
        np.testing.assert_array_equal(rewards[steps], episode.rewards)
        np.testing.assert_array_equal(dones[steps], episode.dones)
        first = union.frame_offsets[i]
        assert w.frame_rows[0, w.frame_mask[0]].tolist() == list(
            range(first, first + len(steps) + 1)
        )
    w = union.windows(np.arange(7).repeat(20), 10, np.random.default_rng(0))
    episode_of_row = np.searchsorted(union.frame_offsets, w.frame_rows, side="right") - 1
    assert (episode_of_row == np.arange(7).repeat(20)[:, None]).all()
    # One dataset: exactly the dataset's own cache key (its caches stay valid).
    assert DatasetUnion([a]).cache_key() == a.cache_key() != union.cache_key()
    assert DatasetUnion([b, a]).cache_key() != union.cache_key()


def test_mismatched_or_repeated_datasets_are_refused(car_data, more_data, tmp_path):
    for key, value in (("env", "doom-takecover"), ("frame_skip", 2), ("action_low", [-1.0])):
        other = tmp_path / key
        shutil.copytree(more_data, other)
        meta = json.loads((other / "dataset.json").read_text())
        meta[key] = value
        (other / "dataset.json").write_text(json.dumps(meta))
        message = f"dataset '{other}' holds {key}={value!r}, but '{car_data}' holds {key}="
        with pytest.raises(DreamgymError, match=re.escape(message)):
            DatasetUnion.open([car_data, other])
        with pytest.raises(DreamgymError, match=re.escape(f"dataset '{other}' holds {key}=")):
            MDNRNNTrainer([car_data, other], tmp_path / "v", tmp_path / "never")
    with pytest.raises(DreamgymError, match="is given twice"):
        DatasetUnion.open([car_data, more_data, car_data])
    with pytest.raises(DreamgymError, match="no rollout dataset given"):
        DatasetUnion.open([])
    assert not (tmp_path / "never").exists()


def test_m_trained_on_two_datasets_sees_every_episode(car_data, more_data, car_bundle, tmp_path):
    out = tmp_path / "m"
    args = ["train", "mdnrnn", "--data", str(car_data), "--data", str(more_data), "--vae",
            str(car_bundle), "--out", str(out), "--preset", "debug", "--epochs", "1",
            "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(args) == 0
    info = json.loads((out / "bundle.json").read_text())
    assert info["training"]["data"] == str(car_data.resolve())
    assert info["training"]["datasets"] == [str(car_data.resolve()), str(more_data.resolve())]
    assert info["training"]["episodes"] == 7 and info["training"]["mdnrnn_epochs"] == 1
    model = worldmodels.load(out)
    assert model.initial_mu.shape == (7, 32)

    trainer = MDNRNNTrainer([car_data, more_data], car_bundle, out, preset="debug", device="cpu")
    assert trainer.epoch == 1 and len(trainer.dataset) == 7
    assert sorted([*trainer.train_eps, *trainer.val_eps]) == list(range(7))
    b = RolloutDataset(more_data)
    mu_b, _ = encode_dataset(trainer.vae, b, torch.device("cpu"))
    np.testing.assert_allclose(trainer.mu[164:], mu_b, atol=1e-5)
    first_frames = [trainer.dataset.episode(i).frames[0] for i in range(7)]
    torch.testing.assert_close(
        model.initial_mu, model.encode(torch.from_numpy(np.stack(first_frames))).z
    )

    episodes = np.array([5, 0, 6])
    trainer.config.seq_len = 50  # longer than every episode: padded and masked
    batch = trainer.batch(episodes, random_start=False, sample_z=False)
    assert batch["mask"].sum(1).tolist() == [25, 40, 25]
    for row, i in enumerate(episodes):
        episode, first = trainer.dataset.episode(i), trainer.dataset.frame_offsets[i]
        n = episode.length
        torch.testing.assert_close(
            batch["z"][row, :n], torch.from_numpy(trainer.mu[first : first + n])
        )
        torch.testing.assert_close(
            batch["next_z"][row, :n], torch.from_numpy(trainer.mu[first + 1 : first + n + 1])
        )
        torch.testing.assert_close(batch["action"][row, :n], torch.from_numpy(episode.actions))
        torch.testing.assert_close(batch["reward"][row, :n], torch.from_numpy(episode.rewards))


def test_adding_a_dataset_continues_m_and_re_encodes(car_data, more_data, car_bundle, tmp_path):
    out = tmp_path / "m"
    one = MDNRNNTrainer(car_data, car_bundle, out, preset="debug", overrides={"epochs": 1},
                        device="cpu")  # fmt: skip
    one.fit(False)
    single_key = latents_key(out)
    assert single_key.endswith(RolloutDataset(car_data).cache_key())  # as before unions
    both = MDNRNNTrainer([car_data, more_data], car_bundle, out, preset="debug",
                         overrides={"epochs": 2}, device="cpu")  # fmt: skip
    assert both.epoch == 1 and len(both.mu) == 4 * 41 + 3 * 26
    assert latents_key(out) != single_key
    for key, value in one.model.state_dict().items():
        assert torch.equal(both.model.state_dict()[key], value), key  # resumed, not restarted
    both.fit(False)
    assert both.epoch == 2 and len(worldmodels.load(out).initial_mu) == 7
    # Back to the first dataset alone: the stale two-dataset latents are re-encoded, no crash.
    again = MDNRNNTrainer(car_data, car_bundle, out, preset="debug", overrides={"epochs": 3},
                          device="cpu")  # fmt: skip
    assert len(again.mu) == 4 * 41 and latents_key(out) == single_key
    again.fit(False)
    assert again.epoch == 3 and len(worldmodels.load(out).initial_mu) == 4


def test_length_batches_hold_similar_windows_and_every_episode(
    car_data, more_data, car_bundle, tmp_path
):
    """Seven episodes of 40 and 25 steps in batches of 2: sorted within the pool, at most one
    batch mixes the two lengths, every training episode comes once per epoch, and the batches
    are a seeded draw that changes from epoch to epoch."""

    def trainer(out: str, sorted_batches: bool) -> MDNRNNTrainer:
        overrides = {"batch_size": 2, "seq_len": 50, "length_batches": sorted_batches}
        return MDNRNNTrainer([car_data, more_data], car_bundle, tmp_path / out, preset="debug",
                             device="cpu", overrides=overrides)  # fmt: skip

    by_length, again, plain = trainer("a", True), trainer("b", True), trainer("c", False)
    lengths = by_length.dataset.lengths
    first = by_length.epoch_batches()
    for batches in (first, plain.epoch_batches()):
        assert sorted(np.concatenate(batches).tolist()) == sorted(by_length.train_eps.tolist())
        assert all(len(b) <= 2 for b in batches)
    assert sum(len(set(lengths[b].tolist())) > 1 for b in first) <= 1
    assert [b.tolist() for b in again.epoch_batches()] == [b.tolist() for b in first]
    epochs = [[b.tolist() for b in by_length.epoch_batches()] for _ in range(5)]
    assert any(e != epochs[0] for e in epochs[1:])

    by_length.config.epochs = 1
    history = by_length.fit(False)
    assert np.isfinite(history[-1]["train/loss"])
