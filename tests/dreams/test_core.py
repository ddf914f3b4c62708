from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamgym import worldmodels
from dreamgym.dreams.core import DreamCore, run_episodes


def play(model, done_mode: str, cuda_graph: bool = False):
    core = DreamCore(model, 12, 1.0, "zh", done_mode, max_episode_steps=40)
    core.seed(np.random.default_rng(3))
    w = torch.randn(12, 3, core.observation_size, generator=torch.Generator().manual_seed(0))
    w = w.to(core.device) * 0.1

    def act(obs):
        out = torch.tanh(torch.bmm(w, obs.unsqueeze(-1)).squeeze(-1))
        return torch.stack([out[:, 0], (out[:, 1] + 1) / 2, out[:, 2].clamp(0, 1)], -1)

    return [x.cpu() for x in run_episodes(core, act, cuda_graph)]


@pytest.mark.parametrize("done_mode", ["threshold", "sample"])
def test_run_episodes_counts_each_episode_until_its_end(car_bundle, done_mode):
    model = worldmodels.load(car_bundle)
    with torch.no_grad():
        model.mdnrnn.done.bias.fill_(-2.5)  # some episodes end early under the sampled rule
    returns, lengths, by_done = play(model, done_mode)
    assert torch.isfinite(returns).all() and ((lengths >= 1) & (lengths <= 40)).all()
    assert by_done[lengths < 40].all()  # only the done rule ends an episode before the cap
    if done_mode == "threshold":  # p(done) = 0.08 < 0.5: every episode runs to the cap
        assert (lengths == 40).all() and not by_done.any()
    else:  # drawn at 0.08 per step, almost every episode ends early, at different steps
        assert by_done.float().mean() > 0.7 and len(lengths.unique()) > 3
    again = play(model, done_mode)
    assert all(torch.equal(a, b) for a, b in zip([returns, lengths, by_done], again, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("done_mode", ["threshold", "sample"])
def test_cuda_graph_replay_equals_the_eager_loop(car_bundle, done_mode):
    model = worldmodels.load(car_bundle, "cuda")
    graphed, eager = play(model, done_mode, True), play(model, done_mode, False)
    assert all(torch.equal(a, b) for a, b in zip(graphed, eager, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_host_policies_drive_a_gpu_dream(car_bundle):
    """A policy that acts on the host (numpy actions copied to the GPU each step, as the
    fidelity report's collection policies do) cannot be recorded in a CUDA graph: the default
    loop stays eager and runs them."""
    from dreamgym.fidelity.measure import dream_episodes

    model = worldmodels.load(car_bundle, "cuda")

    def host_actions(state, obs):
        return torch.as_tensor(np.tile([0.0, 0.5, 0.0], (len(obs), 1)), dtype=torch.float32,
                               device=obs.device)  # fmt: skip

    episodes = dream_episodes(model, host_actions, 6, 1.0, max_episode_steps=20)
    assert (episodes.lengths >= 1).all() and np.isfinite(episodes.returns).all()
