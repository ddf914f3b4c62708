"""Ensembles of Ms in the V+M dream: each episode dreams with one member, drawn at its start."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import member_0_only

from dreamgym.dreams.core import DreamCore
from dreamgym.errors import DreamgymError
from dreamgym.worldmodels import load


def test_each_episode_keeps_the_member_drawn_at_its_start(car_ensemble):
    model = load(car_ensemble)
    core = DreamCore(model, 16, 1.0, max_episode_steps=50, dropout=0.2)
    core.seed(np.random.default_rng(0))
    core.reset_all()
    assert (core.state.member == 0).all()  # nothing drawn before the first step
    actions = torch.zeros(16, 3)
    core.step(actions)
    first = core.state.member.clone()
    assert set(first.tolist()) == {0, 1, 2}  # different episodes, different members
    masks = core.state.h_mask.clone()
    for _ in range(3):
        core.step(actions)
        assert torch.equal(core.state.member, first)  # kept for the episode's life
        assert torch.equal(core.state.h_mask, masks)  # dropout still applies on top
    core.reset_where(torch.ones(16, dtype=torch.bool))
    core.step(actions)
    assert not torch.equal(core.state.member, first)  # new episodes draw again


def test_cycle_pins_env_i_to_member_i_mod_k(car_ensemble):
    core = DreamCore(load(car_ensemble), 7, 1.0, max_episode_steps=50, ensemble="cycle")
    core.seed(np.random.default_rng(0))
    core.reset_all()
    for _ in range(2):
        core.step(torch.zeros(7, 3))
        assert core.state.member.tolist() == [0, 1, 2, 0, 1, 2, 0]
    with pytest.raises(DreamgymError, match="ensemble must be True, False, 'cycle' or 'pessim"):
        DreamCore(load(car_ensemble), 7, 1.0, ensemble="draw")


def test_each_row_steps_with_its_members_m(car_ensemble):
    model = load(car_ensemble)
    g = torch.Generator().manual_seed(0)
    state = model.initial_state(6, g)
    member = torch.tensor([0, 1, 2, 2, 1, 0])
    action = torch.rand(6, 3, generator=g)
    inputs = (state.z, action, state.first, (state.h, state.c), None)
    heads, (h, _) = model._ensemble_step(member, *inputs, False)
    every, (h_every, _) = model._ensemble_step(member, *inputs, True)  # the CUDA way
    for k, m in enumerate(model.members):
        own, (own_h, _) = m.step(*inputs)
        rows = member == k
        torch.testing.assert_close(heads["mu"][rows], own["mu"][rows])
        torch.testing.assert_close(h[rows], own_h[rows])
    torch.testing.assert_close(every["mu"], heads["mu"])
    torch.testing.assert_close(h_every, h)


def test_pessimistic_dream_ends_by_the_most_fearful_member(car_ensemble):
    model = load(car_ensemble)
    with torch.no_grad():
        model.members[2].done.bias += 3.0  # member 2 foresees ends the others do not

    def dream(ensemble):
        core = DreamCore(model, 12, 1.0, max_episode_steps=50, done_mode="sample",
                         ensemble=ensemble)  # fmt: skip
        core.seed(np.random.default_rng(0))
        core.reset_all()
        before = core.state
        core.step(torch.full((12, 3), 0.2))
        return before, core

    before, drawn = dream(True)
    _, pessimistic = dream("pessimistic")
    member = drawn.state.member
    assert set(member.tolist()) == {0, 1, 2}
    # The same members, latents and memories: only the end probability changes.
    for field in ("member", "z", "h", "c", "reward"):
        torch.testing.assert_close(getattr(pessimistic.state, field), getattr(drawn.state, field))
    inputs = (before.z, torch.full((12, 3), 0.2), before.first, (before.h, before.c), None)
    every = torch.stack([torch.sigmoid(m.step(*inputs)[0]["done_logit"]) for m in model.members])
    torch.testing.assert_close(pessimistic.done_prob, every.max(0).values)
    torch.testing.assert_close(pessimistic.done_prob, every[2])  # member 2 rules every row
    own = member == 2
    torch.testing.assert_close(drawn.done_prob[own], every[2][own])
    assert (drawn.done_prob[~own] < pessimistic.done_prob[~own]).all()


def trajectory(bundle, steps: int = 8, **kwargs):
    env = gym.make("Dream-CarRacing-v0", world_model=str(bundle), **kwargs)
    obs, _ = env.reset(seed=3)
    observations = [obs]
    for t in range(steps):
        obs, *_ = env.step(np.array([0.1 * t - 0.3, 0.5, 0.0], np.float32))
        observations.append(obs)
    return np.stack(observations)


def test_same_seed_same_dream_and_ensemble_false_is_member_0(car_ensemble, tmp_path):
    dream = trajectory(car_ensemble)
    np.testing.assert_array_equal(dream, trajectory(car_ensemble))
    single = trajectory(member_0_only(car_ensemble, tmp_path / "single"))
    np.testing.assert_array_equal(trajectory(car_ensemble, ensemble=False), single)
    core = DreamCore(load(car_ensemble), 64, 1.0)
    core.seed(np.random.default_rng(0))
    core.reset_all()
    core.step(torch.zeros(64, 3))
    assert (core.state.member != 0).any()  # so the ensemble dreams differ from member 0's
    vector = gym.make_vec("Dream-CarRacing-v0", num_envs=64, world_model=str(car_ensemble),
                          vectorization_mode="vector_entry_point", ensemble=False)  # fmt: skip
    vector.reset(seed=0)
    vector.step(np.zeros((64, 3), np.float32))
    assert (vector.unwrapped.core.state.member == 0).all()
