"""Ensembles of Ms: training K members into one bundle, resuming them, loading and exporting."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from dreamgym import worldmodels
from dreamgym.cli import main
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.export import export_bundle
from dreamgym.worldmodels.bundle import load_packed, pack
from dreamgym.worldmodels.checkpoint import read_checkpoint, save_checkpoint
from dreamgym.worldmodels.common import seeded_init
from dreamgym.worldmodels.vm.mdnrnn import MDNRNN, MDNRNNConfig
from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer


def weights(path) -> dict[str, torch.Tensor]:
    tensors, _ = read_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def history(path) -> list[dict]:
    return read_checkpoint(path)[1]["history"]


def train(data, vae, out, epochs: int, members: int | None, **overrides) -> MDNRNNTrainer:
    trainer = MDNRNNTrainer(data, vae, out, preset="debug", device="cpu", members=members,
                            overrides={"epochs": epochs, **overrides})  # fmt: skip
    trainer.fit(False)
    return trainer


def test_an_ensemble_bundle_lists_and_loads_its_members(car_ensemble):
    info = json.loads((car_ensemble / "bundle.json").read_text())
    assert info["files"]["mdnrnn"] == "mdnrnn.safetensors"
    assert info["files"]["mdnrnn_members"] == ["mdnrnn-m1.safetensors", "mdnrnn-m2.safetensors"]
    model = worldmodels.load(car_ensemble)
    assert model.num_members == 3 and model.mdnrnn is model.members[0]
    m0, m1 = (weights(car_ensemble / f) for f in ("mdnrnn.safetensors", "mdnrnn-m1.safetensors"))
    assert not torch.equal(m0["model.lstm.weight_hh_l0"], m1["model.lstm.weight_hh_l0"])
    # Other sampling seeds: other windows and z samples, so other losses; the same validation.
    h0, h1 = (
        history(car_ensemble / "mdnrnn.safetensors"),
        history(car_ensemble / "mdnrnn-m1.safetensors"),
    )
    assert len(h0) == len(h1) == 2 and h0[0]["train/loss"] != h1[0]["train/loss"]
    assert info["training"]["validation"]["episodes"]  # member 0's held-out episodes


def test_fresh_members_start_from_member_0s_init(car_data, car_bundle, tmp_path):
    # A learning rate of ~0 leaves each member at its starting point.
    trainer = train(car_data, car_bundle, tmp_path, 1, 2, lr=1e-12)
    init = seeded_init(lambda: MDNRNN(trainer.config), trainer.config.seed).state_dict()
    for name in ("mdnrnn.safetensors", "mdnrnn-m1.safetensors"):
        for key, value in weights(tmp_path / name).items():
            torch.testing.assert_close(value, init[key[len("model.") :]], atol=1e-8, rtol=0)
    assert history(tmp_path / "mdnrnn.safetensors") != history(tmp_path / "mdnrnn-m1.safetensors")


def test_resumed_members_match_uninterrupted(car_data, car_bundle, car_ensemble, tmp_path):
    train(car_data, car_bundle, tmp_path, 1, 3)
    info = json.loads((tmp_path / "bundle.json").read_text())
    assert len(info["files"]["mdnrnn_members"]) == 2
    trainer = train(car_data, car_bundle, tmp_path, 2, None)  # as many members as out holds
    assert trainer.members == 3
    for name in ("mdnrnn.safetensors", "mdnrnn-m1.safetensors", "mdnrnn-m2.safetensors"):
        a, b = weights(car_ensemble / name), weights(tmp_path / name)
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)


def test_a_member_killed_before_its_first_epoch_still_starts_fresh(car_data, car_bundle,
                                                                   tmp_path):  # fmt: skip
    train(car_data, car_bundle, tmp_path / "straight", 1, 2)
    train(car_data, car_bundle, tmp_path / "killed", 1, 2)
    for name in ("mdnrnn-m1.safetensors", "mdnrnn-m1.json", "mdnrnn-m1-config.json"):
        (tmp_path / "killed" / name).unlink()  # as if killed during member 1's first epoch
    info = json.loads((tmp_path / "killed" / "bundle.json").read_text())
    del info["files"]["mdnrnn_members"]
    (tmp_path / "killed" / "bundle.json").write_text(json.dumps(info))
    train(car_data, car_bundle, tmp_path / "killed", 1, 2)  # planned: not a copy of member 0
    a = weights(tmp_path / "straight" / "mdnrnn-m1.safetensors")
    b = weights(tmp_path / "killed" / "mdnrnn-m1.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_bundle_gains_a_member_copied_before_training(car_data, car_bundle, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(car_bundle, out, ignore=shutil.ignore_patterns("tb", "latents.safetensors"))
    before = weights(out / "mdnrnn.safetensors")
    trainer = MDNRNNTrainer(car_data, out, out, preset="debug", device="cpu", members=2,
                            overrides={"epochs": 4})  # fmt: skip
    copied = weights(out / "mdnrnn-m1.safetensors")  # written before anything trains
    assert all(torch.equal(before[k], copied[k]) for k in before)
    info = json.loads((out / "bundle.json").read_text())
    assert "mdnrnn_members" not in info["files"]  # not listed until trained
    trainer.fit(False)
    h0, h1 = history(out / "mdnrnn.safetensors"), history(out / "mdnrnn-m1.safetensors")
    assert h0[:3] == h1[:3] and len(h0) == len(h1) == 4  # the shared past, then its own epoch
    assert h0[3]["train/loss"] != h1[3]["train/loss"]
    assert worldmodels.load(out).num_members == 2


def test_a_member_of_another_architecture_is_named(car_ensemble, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(car_ensemble, out, ignore=shutil.ignore_patterns("tb"))
    _, meta = read_checkpoint(out / "mdnrnn-m1.safetensors")
    config = dataclasses.replace(MDNRNNConfig(**meta["config"]), hidden_size=32)
    meta = {**meta, "config": dataclasses.asdict(config)}
    save_checkpoint(out / "mdnrnn-m1.safetensors", MDNRNN(config), meta)
    with pytest.raises(CorruptFileError) as error:
        worldmodels.load(out)
    message = str(error.value)
    assert "mdnrnn-m1.safetensors" in message and "hidden_size=32 (member 0: 64)" in message
    assert "\n" not in message


def test_bad_member_counts_are_refused_before_writing(car_data, car_bundle, tmp_path):
    for bad in (0, 1.5, True):
        with pytest.raises(DreamgymError, match="members"):
            MDNRNNTrainer(car_data, car_bundle, tmp_path / "x", preset="debug", members=bad)
    assert not (tmp_path / "x").exists()


def test_a_bundle_without_members_is_one_m(car_bundle):
    info = json.loads((car_bundle / "bundle.json").read_text())
    assert "mdnrnn_members" not in info["files"]
    model = worldmodels.load(car_bundle)
    assert model.num_members == 1 and model.members == [model.mdnrnn]


def test_export_and_pack_keep_the_members(car_ensemble, tmp_path):
    out = export_bundle(car_ensemble, tmp_path / "export", None)
    info = json.loads((out / "bundle.json").read_text())
    assert info["files"]["mdnrnn_members"] == ["mdnrnn-m1.safetensors", "mdnrnn-m2.safetensors"]
    tensors, _ = read_checkpoint(out / "mdnrnn-m2.safetensors")
    assert tensors["model.lstm.weight_hh_l0"].dtype == torch.float16
    assert worldmodels.load(out).num_members == 3
    files = pack(car_ensemble)
    assert "mdnrnn-m2.safetensors" in files
    assert load_packed(files).num_members == 3


def test_the_cli_trains_members(car_data, car_bundle, tmp_path, capsys):
    argv = ["train", "mdnrnn", "--data", str(car_data), "--vae", str(car_bundle), "--out",
            str(tmp_path), "--preset", "debug", "--epochs", "1", "--members", "2", "--quiet",
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    info = json.loads((tmp_path / "bundle.json").read_text())
    assert info["files"]["mdnrnn_members"] == ["mdnrnn-m1.safetensors"]
