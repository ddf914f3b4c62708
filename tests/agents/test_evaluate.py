from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from ray import cloudpickle

from dreamgym import worldmodels
from dreamgym.agents import Controller, ControllerSpec
from dreamgym.agents.evaluate import evaluate_agent
from dreamgym.errors import DreamgymError

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class FullGas:
    """An agent that is not a controller: it reads V's latent only and always accelerates.
    (Pickled by value: Ray's workers cannot import this test module.)"""

    observation_mode = "z"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[0.0, 1.0, 0.0]]).expand(len(obs), 3)


def test_episodes_spread_over_workers_give_the_same_returns(ray_local, car_bundle):
    model = worldmodels.load(car_bundle)
    spec = ControllerSpec.for_world_model(model)
    controller = Controller(spec, np.random.default_rng(0).normal(0, 0.1, spec.num_params))
    one = evaluate_agent(controller, model, 4, "real", max_episode_steps=30, workers=1, seed=5)
    two = evaluate_agent(controller, model, 4, "real", max_episode_steps=30, workers=2, seed=5)
    assert one.shape == (4,) and np.isfinite(one).all() and np.array_equal(one, two)
    assert len(set(one.tolist())) > 1  # every episode has its own track


def test_any_agent_over_a_world_model_is_evaluated(ray_local, car_bundle):
    model = worldmodels.load(car_bundle)
    dream = evaluate_agent(FullGas(), model, 6, "dream", max_episode_steps=20, seed=1)
    assert dream.shape == (6,) and np.array_equal(
        dream, evaluate_agent(FullGas(), model, 6, "dream", max_episode_steps=20, seed=1)
    )
    # Inference dropout in M, a fresh mask per episode: another dream, the same for a seed.
    dropped = evaluate_agent(FullGas(), model, 6, "dream", max_episode_steps=20, seed=1,
                             dropout=0.5)  # fmt: skip
    again = evaluate_agent(FullGas(), model, 6, "dream", max_episode_steps=20, seed=1,
                           dropout=0.5)  # fmt: skip
    assert not np.array_equal(dropped, dream) and np.array_equal(dropped, again)
    with pytest.raises(DreamgymError, match="dropout 0.1 is the dream's; the real env has none"):
        evaluate_agent(FullGas(), model, 2, "real", dropout=0.1)
    real = evaluate_agent(FullGas(), model, 2, "real", max_episode_steps=20, workers=2)
    assert real.shape == (2,) and np.isfinite(real).all()
    with pytest.raises(DreamgymError, match="episodes must be an integer >= 1"):
        evaluate_agent(FullGas(), model, 0)


def test_the_real_evaluations_progress_bar_says_what_it_evaluates(ray_local, car_bundle,
                                                                   tmp_path, capsys):  # fmt: skip
    from dreamgym.agents.evaluate import evaluate_controller

    model = worldmodels.load(car_bundle)
    evaluate_agent(FullGas(), model, 2, "real", max_episode_steps=10, workers=1, progress=True)
    assert "evaluate (real): 2/2 ep (100%)" in capsys.readouterr().err
    Controller(ControllerSpec.for_world_model(model)).save(tmp_path / "c", car_bundle)
    evaluate_controller(tmp_path / "c", 2, "real", max_episode_steps=10, workers=1, progress=True)
    err = capsys.readouterr().err
    assert "evaluate controller (real): 2/2 ep (100%)" in err and "collect" not in err
