"""SIGReg: about 1 for standard normal embeddings, large for collapsed or badly scaled ones, and
equal to the Epps-Pulley integral computed independently."""

from __future__ import annotations

import math

import pytest
import torch

from dreamgym.worldmodels.latent.sigreg import epps_pulley, random_directions, sigreg


def normal(n=512, d=192, seed=0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def seeded(seed=1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_values_match_the_reference_measurements():
    x = normal()
    # Reference (N = 512, D = 192, M = 1024): 1.08 for N(0, I), 540 collapsed, 265 for 3 N(0, I).
    assert 0.9 < sigreg(x, seeded()).item() < 1.25
    collapsed = x[:1].expand(512, 192)
    assert 400 < sigreg(collapsed, seeded()).item() < 700
    assert 220 < sigreg(3 * x, seeded()).item() < 320


def test_directions_are_unit_and_redrawn_each_call_but_seedable():
    g = seeded()
    a, b = random_directions(8, 16, g), random_directions(8, 16, g)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(16))
    assert not torch.equal(a, b)
    x = normal(64, 8)
    assert sigreg(x, seeded(3)).item() == sigreg(x, seeded(3)).item()
    g = seeded(3)
    assert sigreg(x, g).item() != sigreg(x, g).item()


def test_epps_pulley_equals_the_integral_over_the_symmetric_range():
    """The doubled trapezoid on [0, 3] is the trapezoid on [-3, 3] of the complex form."""
    y = normal(100, 5) * 0.7 + 0.2
    t = torch.linspace(-3, 3, 33, dtype=torch.float64)
    ecf = torch.exp(1j * y.double()[..., None] * t).mean(0)  # (5, 33)
    integrand = (ecf - torch.exp(-0.5 * t**2)).abs() ** 2 * torch.exp(-0.5 * t**2)
    expected = 100 * torch.trapezoid(integrand, t, dim=-1)
    torch.testing.assert_close(epps_pulley(y.double()), expected)


def test_groups_are_averaged_and_the_statistic_is_differentiable():
    x = normal(3 * 64, 16).view(3, 64, 16).requires_grad_()
    whole = sigreg(x, seeded())
    per_group = [sigreg(x[i], seeded()) for i in range(3)]
    torch.testing.assert_close(whole, torch.stack(per_group).mean())
    whole.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_large_samples_approach_the_expectation():
    """E[SIGReg] for N(0, I) is the weighted integral of 1 - exp(-t^2), about 1.06."""
    t = torch.linspace(0, 3, 17, dtype=torch.float64)
    w = torch.full_like(t, 2 * 3 / 16)
    w[0] = w[-1] = 3 / 16
    expected = ((1 - torch.exp(-(t**2))) * torch.exp(-0.5 * t**2) * w).sum().item()
    assert expected == pytest.approx(math.sqrt(2 * math.pi) - math.sqrt(2 * math.pi / 3), abs=0.02)
    assert sigreg(normal(2048, 32), seeded()).item() == pytest.approx(expected, rel=0.1)


def test_one_sample_is_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        sigreg(torch.zeros(1, 4))
