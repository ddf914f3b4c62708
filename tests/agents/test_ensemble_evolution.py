"""Evolution in an ensemble's dream: the backend passes ``ensemble`` to the dream, and scores a
candidate by its worst member when asked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import member_0_only

from dreamgym import worldmodels
from dreamgym.agents import ControllerSpec, DreamBackend, EvolutionConfig
from dreamgym.agents.run import EvolveSettings, evolve
from dreamgym.cli import main
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


def test_worst_fitness_scores_every_candidate_in_the_member_where_it_does_worst(car_ensemble):
    model = worldmodels.load(car_ensemble)
    with torch.no_grad():
        model.members[1].reward.bias -= 100.0  # member 1's world pays about -100 a step
    spec = ControllerSpec.for_world_model(model)
    params = np.random.default_rng(0).normal(0, 0.5, (4, spec.num_params))

    def returns(fitness):
        backend = DreamBackend(model, spec, max_episode_steps=20, ensemble_fitness=fitness)
        return backend.returns(params, 6, 5)

    worst, drawn = returns("worst"), returns("mean")
    assert worst.shape == drawn.shape == (4, 6)
    assert (worst < -50).all()  # every candidate's returns are its member-1 episodes
    assert (drawn < -50).any() and (drawn > -50).any()  # drawn members: some episodes elsewhere
    np.testing.assert_array_equal(returns("worst"), worst)  # the same seed, the same scores


def test_pessimistic_fitness_ends_each_episode_where_one_m_foresees_an_end(car_ensemble):
    model = worldmodels.load(car_ensemble)
    with torch.no_grad():
        for m in model.members:
            m.reward.bias += 1.0 - m.reward.bias  # about 1 a step in every M
        model.members[1].done.bias += 20.0  # member 1 foresees an end at every step
    spec = ControllerSpec.for_world_model(model)
    params = np.random.default_rng(0).normal(0, 0.5, (4, spec.num_params))

    def returns(fitness):
        backend = DreamBackend(model, spec, max_episode_steps=20, done_mode="sample",
                               ensemble_fitness=fitness)  # fmt: skip
        return backend.returns(params, 6, 5)

    pessimistic, drawn = returns("pessimistic"), returns("mean")
    assert pessimistic.shape == drawn.shape == (4, 6)
    assert (pessimistic < 3).all()  # every episode ends at its first step, whichever M dreams it
    assert (drawn < 3).any() and (drawn > 10).any()  # drawn: only member 1's episodes end at once
    np.testing.assert_array_equal(returns("pessimistic"), pessimistic)  # the same seed, the same


def test_worst_fitness_with_one_m_is_the_mean(car_ensemble, tmp_path):
    single = worldmodels.load(member_0_only(car_ensemble, tmp_path / "single"))
    spec = ControllerSpec.for_world_model(single)
    params = np.random.default_rng(1).normal(0, 0.5, (3, spec.num_params))

    def returns(**kwargs):
        return DreamBackend(single, spec, max_episode_steps=20, **kwargs).returns(params, 4, 2)

    np.testing.assert_array_equal(returns(ensemble_fitness="worst"), returns())
    with pytest.raises(DreamgymError, match="ensemble fitness must be one of mean, worst"):
        returns(ensemble_fitness="min")


def test_evolution_records_and_checks_the_ensemble_fitness(car_ensemble, tmp_path):
    def settings(fitness):
        return EvolveSettings(str(car_ensemble), max_episode_steps=10, ensemble_fitness=fitness,
                              evolution=EvolutionConfig(4, 1, 0.1, 5, 4, 0))  # fmt: skip

    evolve(settings("worst"), tmp_path / "evo", 1, device="cpu", progress=False)
    with pytest.raises(DreamgymError, match="ensemble_fitness"):
        evolve(settings("mean"), tmp_path / "evo", 2, device="cpu", progress=False)
    with pytest.raises(DreamgymError, match="ensemble fitness must be one of"):
        evolve(settings("min"), tmp_path / "other", 1, device="cpu", progress=False)
    assert not (tmp_path / "other").exists()


def test_the_evolve_command_takes_the_ensemble_fitness(car_ensemble, tmp_path):
    out = tmp_path / "evo"
    assert main(["evolve", "--world-model", str(car_ensemble), "--generations", "1",
                 "--popsize", "4", "--rollouts", "1", "--max-steps", "10", "--device", "cpu",
                 "--ensemble-fitness", "worst", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert json.loads((out / "evolve-config.json").read_text())["ensemble_fitness"] == "worst"
