from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.vm.train_vae import VAETrainer, load_vae
from dreamgym.worldmodels.vm.vae import ConvVAE, frames_to_input, output_to_frames, vae_loss


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_paper():
    assert n_params(ConvVAE(32)) == 4_348_547  # CarRacing
    assert n_params(ConvVAE(64)) == 4_446_915  # Doom


def test_shapes():
    model = ConvVAE(32)
    x = torch.rand(5, 3, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 32)
    assert model.encoder(x).shape == (5, 1024)
    recon, _, _ = model(x)
    assert recon.shape == (5, 3, 64, 64)
    assert recon.min() >= 0 and recon.max() <= 1


def test_loss_equals_an_independent_computation():
    g = torch.Generator().manual_seed(0)
    x, recon = torch.rand(4, 3, 64, 64, generator=g), torch.rand(4, 3, 64, 64, generator=g)
    mu = torch.randn(4, 8, generator=g)
    logvar = torch.randn(4, 8, generator=g) * 0.5
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    squared = ((x - recon) ** 2).flatten(1).sum(1).mean()
    losses = vae_loss(x, recon, mu, logvar, kl_tolerance=0.5)
    torch.testing.assert_close(losses["recon"], squared)
    torch.testing.assert_close(losses["kl"], kl.mean())
    torch.testing.assert_close(losses["loss"], squared + kl.clamp(min=0.5 * 8).mean())
    # With mu = 0 and logvar = 0 the KL is 0 and the free-bits floor (0.5 per dim) applies.
    floor = vae_loss(x, recon, torch.zeros(4, 8), torch.zeros(4, 8), 0.5)
    torch.testing.assert_close(floor["loss"] - floor["recon"], torch.tensor(4.0))


def test_frame_conversion_round_trips():
    frames = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    x = frames_to_input(frames)
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32
    assert torch.equal(output_to_frames(x), frames)


@pytest.mark.slow
def test_training_and_validation_loss_fall_on_real_carracing(car_data, tmp_path):
    history = VAETrainer(
        car_data, tmp_path, preset="debug", overrides={"epochs": 4}, device="cpu"
    ).fit(progress=False)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["train/loss"] < 0.7 * history[0]["train/loss"]
    assert history[-1]["val/loss"] < history[0]["val/loss"]
    for name in (
        "vae-metrics.csv",
        "vae-curves.png",
        "vae-reconstructions.png",
        "vae.json",
        "vae-config.json",
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert list((tmp_path / "tb" / "vae").glob("events.out.tfevents.*"))
    assert (tmp_path / "vae-metrics.csv").read_text().count("\n") == 5


@pytest.mark.slow
def test_resume_continues_exactly_where_it_stopped(car_data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    VAETrainer(car_data, straight, preset="debug", overrides={"epochs": 3}).fit(False)
    VAETrainer(car_data, resumed, preset="debug", overrides={"epochs": 2}).fit(False)
    trainer = VAETrainer(car_data, resumed, preset="debug", overrides={"epochs": 3})
    assert trainer.epoch == 2
    trainer.fit(False)
    a, meta_a = load_vae(straight)
    b, meta_b = load_vae(resumed)
    assert meta_b["epoch"] == 3 and len(meta_b["history"]) == 3
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    with pytest.raises(DreamgymError, match="batch_size=32.*batch_size=8 is refused"):
        VAETrainer(car_data, resumed, preset="debug", overrides={"batch_size": 8})


def test_save_load_gives_identical_outputs(car_bundle):
    model, meta = load_vae(car_bundle)
    again, _ = load_vae(car_bundle / "vae.safetensors")
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(model.encode(x)[0], again.encode(x)[0])
    assert meta["env"] == "carracing" and meta["config"]["z_size"] == 32


def test_corrupt_or_missing_checkpoint_is_a_clear_error(car_bundle, tmp_path):
    data = (car_bundle / "vae.safetensors").read_bytes()
    broken = tmp_path / "vae.safetensors"
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptFileError, match="vae.safetensors"):
        load_vae(broken)
    with pytest.raises(DreamgymError, match="does not exist"):
        load_vae(tmp_path / "nothing.safetensors")


@pytest.mark.slow
def test_frames_on_device_train_exactly_like_the_memory_map(car_data, tmp_path):
    runs = []
    for on_device in (False, True):
        out = tmp_path / str(on_device)
        trainer = VAETrainer(
            car_data, out, preset="debug", overrides={"epochs": 1}, frames_on_device=on_device
        )
        assert (trainer.device_frames is not None) == on_device
        runs.append(trainer.fit(False)[0]["train/loss"])
    assert runs[0] == runs[1]
