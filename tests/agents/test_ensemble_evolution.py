"""Evolution in an ensemble's dream: the backend passes ``ensemble`` to the dream."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import member_0_only

from dreamgym import worldmodels
from dreamgym.agents import ControllerSpec, DreamBackend, EvolutionConfig
from dreamgym.agents.run import EvolveSettings, evolve
from dreamgym.errors import DreamgymError


def test_ensemble_false_evaluates_in_member_0s_dream(car_ensemble, tmp_path):
    ensemble = worldmodels.load(car_ensemble)
    single = worldmodels.load(member_0_only(car_ensemble, tmp_path / "single"))
    spec = ControllerSpec.for_world_model(ensemble)
    params = np.random.default_rng(0).normal(0, 0.5, (4, spec.num_params))

    def returns(model, **kwargs):
        return DreamBackend(model, spec, max_episode_steps=20, **kwargs).returns(params, 8, 5)

    alone = returns(single)
    np.testing.assert_array_equal(returns(ensemble, ensemble=False), alone)
    assert not np.array_equal(returns(ensemble), alone)


def test_evolution_records_and_checks_the_ensemble_setting(car_ensemble, tmp_path):
    def settings(ensemble):
        return EvolveSettings(str(car_ensemble), max_episode_steps=10, ensemble=ensemble,
                              evolution=EvolutionConfig(4, 1, 0.1, 5, 4, 0))  # fmt: skip

    evolve(settings(False), tmp_path / "evo", 1, device="cpu", progress=False)
    with pytest.raises(DreamgymError, match="ensemble"):
        evolve(settings(True), tmp_path / "evo", 2, device="cpu", progress=False)
    with pytest.raises(DreamgymError, match="ensemble must be True or False"):
        evolve(settings("yes"), tmp_path / "other", 1, device="cpu", progress=False)
    assert not (tmp_path / "other").exists()
