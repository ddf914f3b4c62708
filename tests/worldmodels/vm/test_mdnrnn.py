from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import distributions as D
from torch.nn import functional as F

from dreamgym.worldmodels.vm.mdnrnn import (
    MDNRNN,
    MDNRNNConfig,
    mdn_log_prob,
    mdnrnn_losses,
    mdnrnn_preset,
    sample_mdn,
)
from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer


def random_mixture(shape, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*shape, k, generator=g),
        torch.randn(*shape, k, generator=g) * 2,
        torch.randn(*shape, k, generator=g) * 0.5 - 0.5,
    )


def test_parameter_count_is_the_papers_plus_documented_extras():
    model = MDNRNN(MDNRNNConfig(z_size=32, action_size=3, hidden_size=256))
    heads = 2 * (256 + 1)  # reward and done
    torch_second_lstm_bias = 4 * 256
    assert sum(p.numel() for p in model.parameters()) == 422_368 + heads + torch_second_lstm_bias


def test_mdn_log_likelihood_equals_mixture_same_family_per_dimension():
    logits, mu, logsigma = random_mixture((4, 7, 32))
    target = torch.randn(4, 7, 32) * 2
    reference = D.MixtureSameFamily(
        D.Categorical(logits=logits), D.Normal(mu, logsigma.exp())
    ).log_prob(target)
    torch.testing.assert_close(mdn_log_prob(target, logits, mu, logsigma), reference)


def test_losses_equal_independent_computations_and_ignore_padding():
    config = MDNRNNConfig(z_size=3, action_size=2, done_pos_weight=10.0)
    logits, mu, logsigma = random_mixture((2, 4, 3))
    g = torch.Generator().manual_seed(1)
    heads = {
        "logits": logits,
        "mu": mu,
        "logsigma": logsigma,
        "reward": torch.randn(2, 4, generator=g),
        "done_logit": torch.randn(2, 4, generator=g),
    }
    next_z, reward = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, generator=g)
    done = torch.tensor([[0, 0, 0, 1], [0, 1, 0, 0]], dtype=torch.bool)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    losses = mdnrnn_losses(heads, next_z, reward, done, mask, config)
    valid = mask.flatten()
    mixture = D.MixtureSameFamily(D.Categorical(logits=logits), D.Normal(mu, logsigma.exp()))
    nll = -mixture.log_prob(next_z).mean(-1).flatten()[valid].mean()
    mse = ((heads["reward"] - reward) ** 2).flatten()[valid].mean()
    d, x = done.flatten()[valid].float(), heads["done_logit"].flatten()[valid]
    bce = -(10 * d * F.logsigmoid(x) + (1 - d) * F.logsigmoid(-x)).mean()
    torch.testing.assert_close(losses["nll"], nll)
    torch.testing.assert_close(losses["reward"], mse)
    torch.testing.assert_close(losses["done"], bce)
    torch.testing.assert_close(losses["loss"], nll + mse + bce)


def test_batched_step_equals_the_sequence_forward():
    model = MDNRNN(MDNRNNConfig(z_size=8, action_size=2, hidden_size=16, restart_flag=True))
    z, a = torch.randn(3, 5, 8), torch.randn(3, 5, 2)
    restart = torch.zeros(3, 5, dtype=torch.bool)
    restart[:, 0] = True
    heads, _ = model(z, a, restart)
    state = (torch.zeros(3, 16), torch.zeros(3, 16))
    for t in range(5):
        step_heads, state = model.step(z[:, t], a[:, t], restart[:, t], state)
        for key in heads:
            torch.testing.assert_close(step_heads[key], heads[key][:, t])


def sample_many(logits, mu, logsigma, tau, n=200_000):
    g = torch.Generator().manual_seed(0)
    expand = [t.expand(n, *t.shape[1:]) for t in (logits, mu, logsigma)]
    return sample_mdn(*expand, tau, g)


def test_temperature_one_matches_the_mixture_moments():
    logits, mu, logsigma = random_mixture((1, 3), seed=3)
    samples = sample_many(logits, mu, logsigma, 1.0)
    pi, sigma = logits.softmax(-1), logsigma.exp()
    mean = (pi * mu).sum(-1)
    var = (pi * (sigma**2 + mu**2)).sum(-1) - mean**2
    torch.testing.assert_close(samples.mean(0), mean[0], atol=0.03, rtol=0)
    torch.testing.assert_close(samples.var(0), var[0], rtol=0.03, atol=0)


def test_temperature_near_zero_collapses_to_the_most_likely_mean():
    logits, mu, logsigma = random_mixture((1, 3), seed=3)
    samples = sample_many(logits, mu, logsigma, 1e-6, n=10_000)
    best = mu.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)[0]
    assert samples.std(0).max() < 1e-2
    torch.testing.assert_close(samples.mean(0), best, atol=1e-3, rtol=0)
    spreads = [
        sample_many(logits, mu, logsigma, tau, 20_000).std(0).mean().item()
        for tau in (0.1, 0.5, 1.0, 1.5)
    ]
    assert spreads == sorted(spreads)


def test_bad_temperature_raises():
    logits, mu, logsigma = random_mixture((1, 3))
    for tau in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            sample_mdn(logits, mu, logsigma, tau)


def test_presets_follow_the_paper():
    car = mdnrnn_preset("paper", "carracing", 32, 3)
    doom = mdnrnn_preset("paper", "doom-takecover", 64, 1)
    assert (car.hidden_size, car.seq_len, car.n_mixtures, car.restart_flag) == (256, 999, 5, False)
    assert (doom.hidden_size, doom.seq_len, doom.lr_decay, doom.restart_flag) == (
        512,
        500,
        0.99999,
        True,
    )
    assert car.batch_size == doom.batch_size == 100 and car.grad_clip == 1.0
    assert car.done_pos_weight == 10.0


@pytest.mark.slow
def test_training_and_validation_loss_fall(car_data, car_bundle, tmp_path):
    trainer = MDNRNNTrainer(car_data, car_bundle, tmp_path, preset="debug",
                            overrides={"epochs": 40}, device="cpu")  # fmt: skip
    untrained = trainer.evaluate()
    history = trainer.fit(progress=False)
    first, last = history[:5], history[-5:]
    assert np.mean([r["train/loss"] for r in last]) < np.mean([r["train/loss"] for r in first])
    assert history[-1]["val/nll"] < untrained["val/nll"] - 0.05
    assert history[-1]["val/loss"] < untrained["val/loss"]
    assert (tmp_path / "bundle.json").exists() and (tmp_path / "vae.safetensors").exists()


def test_windows_stay_inside_episodes(car_data, car_bundle):
    trainer = MDNRNNTrainer(car_data, car_bundle, car_bundle, preset="debug")
    episodes = np.array([0, 2, 1])
    trainer.config.seq_len = 50  # longer than the 40-step episodes: padded and masked
    batch = trainer.batch(episodes, random_start=False, sample_z=False)
    assert batch["mask"].sum(1).tolist() == [40, 40, 40]
    for b, i in enumerate(episodes):
        first = trainer.dataset.frame_offsets[i]
        torch.testing.assert_close(
            batch["z"][b, :40], torch.from_numpy(trainer.mu[first : first + 40])
        )
        torch.testing.assert_close(
            batch["next_z"][b, :40], torch.from_numpy(trainer.mu[first + 1 : first + 41])
        )
        episode = trainer.dataset.episode(i)
        torch.testing.assert_close(batch["action"][b, :40], torch.from_numpy(episode.actions))
        assert not batch["action"][b, 40:].any()
    assert batch["restart"][:, 0].all() and not batch["restart"][:, 1:].any()


def test_resumed_training_matches_uninterrupted(car_data, car_bundle, tmp_path):
    def weights(out):
        trainer = MDNRNNTrainer(car_data, car_bundle, out, preset="debug")
        return trainer.model.state_dict()

    MDNRNNTrainer(
        car_data, car_bundle, tmp_path / "a", preset="debug", overrides={"epochs": 4}
    ).fit(False)
    MDNRNNTrainer(
        car_data, car_bundle, tmp_path / "b", preset="debug", overrides={"epochs": 2}
    ).fit(False)
    MDNRNNTrainer(
        car_data, car_bundle, tmp_path / "b", preset="debug", overrides={"epochs": 4}
    ).fit(False)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_done_calibration_offset_matches_the_observed_number_of_ends():
    from dreamgym.worldmodels.vm.mdnrnn import fit_logit_offset

    rng = np.random.default_rng(0)
    logits = rng.normal(-2.0, 1.5, 5_000)  # a head that predicts far too many ends
    labels = np.zeros(5_000, bool)
    labels[:50] = True
    b = fit_logit_offset(logits, labels)
    assert b < 0
    assert (1 / (1 + np.exp(-(logits + b)))).sum() == pytest.approx(50, rel=1e-6)
    with pytest.raises(ValueError, match="both classes"):
        fit_logit_offset(logits, np.zeros(5_000, bool))
