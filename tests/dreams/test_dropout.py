"""Dropout's Dream Land in the V+M dream: training masks per window, inference masks per episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamgym.agents import EvolutionConfig
from dreamgym.agents.run import EvolveSettings, evolve
from dreamgym.dreams.core import DreamCore
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import load
from dreamgym.worldmodels.vm.mdnrnn import MDNRNN, MDNRNNConfig, dropout_masks


def test_masks_are_inverted_dropout():
    z, h = dropout_masks(4000, 8, 24, 0.25, "cpu", torch.Generator().manual_seed(0))
    assert z.shape == (4000, 8) and h.shape == (4000, 24)
    values = torch.cat([z.flatten(), h.flatten()])
    torch.testing.assert_close(values.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs((values == 0).float().mean().item() - 0.25) < 0.01  # the rate
    assert abs(values.mean().item() - 1.0) < 0.02  # expectation kept


def test_training_dropout_keeps_shapes_and_differs_from_eval():
    torch.manual_seed(0)
    config = MDNRNNConfig(z_size=4, action_size=3, hidden_size=16, dropout=0.3)
    model = MDNRNN(config)
    z, a = torch.randn(5, 7, 4), torch.rand(5, 7, 3)
    model.eval()
    clean, (h, c) = model(z, a)
    assert h.shape == c.shape == (1, 5, 16)
    model.train()
    noisy, (h2, _) = model(z, a)
    assert noisy["mu"].shape == clean["mu"].shape == (5, 7, 4, 5)
    assert h2.shape == (1, 5, 16)
    assert not torch.allclose(noisy["mu"], clean["mu"])
    noisy["reward"].sum().backward()  # the loop trains
    assert model.lstm.weight_hh_l0.grad.abs().sum() > 0
    # Without dropout the fused step loop equals nn.LSTM's.
    plain = MDNRNN(MDNRNNConfig(z_size=4, action_size=3, hidden_size=16))
    plain.load_state_dict(model.state_dict())
    plain.train()
    ref, _ = plain(z, a)
    masks = (torch.ones(5, 4), torch.ones(5, 16))
    hc = (torch.zeros(5, 16), torch.zeros(5, 16))
    for t in range(7):
        _, hc = plain.step(z[:, t], a[:, t], None, hc, masks, heads=False)
    torch.testing.assert_close(plain.heads(hc[0])["mu"], ref["mu"][:, -1])


@pytest.mark.parametrize("rate", [-0.1, 0.95, "0.1", float("nan")])
def test_bad_rates_are_refused(car_bundle, rate):
    with pytest.raises(DreamgymError, match="dropout"):
        MDNRNNConfig(dropout=rate)
    with pytest.raises(DreamgymError, match="dropout"):
        DreamCore(load(car_bundle), 2, 1.0, dropout=rate)


def test_masks_are_drawn_per_episode_and_kept(car_bundle):
    model = load(car_bundle)
    core = DreamCore(model, 6, 1.0, dropout=0.2, max_episode_steps=5)
    core.seed(np.random.default_rng(0))
    core.reset_all()
    assert (core.state.z_mask == 1).all()  # nothing drawn before the first step
    actions = torch.zeros(6, 3)
    core.step(actions)
    first = core.state.h_mask.clone()
    torch.testing.assert_close(first.unique(), torch.tensor([0.0, 1 / 0.8]))
    assert len({tuple(row.tolist()) for row in first}) == 6  # each episode its own mask
    for _ in range(3):
        core.step(actions)
        torch.testing.assert_close(core.state.h_mask, first)  # kept within the episode
    core.reset_where(torch.tensor([True, False, False, False, False, False]))
    core.step(actions)
    assert not torch.equal(core.state.h_mask[0], first[0])  # a new episode, a new mask
    torch.testing.assert_close(core.state.h_mask[1:], first[1:])


def test_dropout_changes_the_dream_and_stays_deterministic(car_bundle):
    def trajectory(**kwargs):
        env = gym.make("Dream-CarRacing-v0", world_model=str(car_bundle), **kwargs)
        obs, _ = env.reset(seed=3)
        rewards = []
        for t in range(8):
            obs, reward, *_ = env.step(np.array([0.1 * t - 0.3, 0.5, 0.0], np.float32))
            rewards.append(reward)
        return obs, rewards

    clean, noisy = trajectory(), trajectory(dropout=0.3)
    assert not np.allclose(clean[0], noisy[0])
    again = trajectory(dropout=0.3)
    np.testing.assert_array_equal(noisy[0], again[0])  # same seed, same masks, same dream
    assert noisy[1] == again[1]
    np.testing.assert_array_equal(trajectory(dropout=0.0)[0], clean[0])  # 0: the plain dream


def test_bundle_default_and_evolution_record_the_rate(car_bundle, tmp_path):
    model = load(car_bundle)
    assert model.dream_dropout == 0.0
    model.dream_dropout = 0.15  # as a bundle trained with --dream-dropout 0.15 would have it
    assert DreamCore(model, 2, 1.0).options["dropout"] == 0.15
    assert DreamCore(model, 2, 1.0, dropout=0.0).options["dropout"] == 0.0
    settings = EvolveSettings(str(car_bundle), max_episode_steps=10, dropout=0.1,
                              evolution=EvolutionConfig(4, 1, 0.1, 5, 4, 0))  # fmt: skip
    evolve(settings, tmp_path / "evo", 1, device="cpu", progress=False)
    assert settings.dropout == 0.1
    other = EvolveSettings(str(car_bundle), max_episode_steps=10, dropout=0.2,
                           evolution=EvolutionConfig(4, 1, 0.1, 5, 4, 0))  # fmt: skip
    with pytest.raises(DreamgymError, match="dropout"):
        evolve(other, tmp_path / "evo", 2, device="cpu", progress=False)
