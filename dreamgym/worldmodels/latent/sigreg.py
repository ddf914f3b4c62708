"""SIGReg (LeJEPA): a statistic that is small when embeddings look like samples of N(0, I).

Sketched Isotropic Gaussian Regularisation tests many random one-dimensional projections of a
batch of embeddings against the standard normal with the Epps-Pulley statistic, which compares
the empirical characteristic function of each projection with the normal's, exp(-t^2 / 2).
Used as a loss term it keeps a jointly trained encoder from collapsing (every frame mapped to the
same point makes the prediction loss zero, and this statistic huge) without a target network,
stop-gradients or negative pairs. LeWM trains its world model with
``prediction MSE + 0.09 * SIGReg``.

For embeddings X (N, D):

    A = columns of a (D, M) N(0, 1) matrix, each scaled to unit norm   (redrawn on every call)
    Y = X A                                                             (N, M): M slices
    for knots t_k = 0, dt, ..., 3 (17 knots, dt = 3 / 16):
        err_k = (mean_n cos(t_k y_n) - exp(-t_k^2 / 2))^2 + (mean_n sin(t_k y_n))^2   per slice
    T = N * sum_k w_k err_k exp(-t_k^2 / 2)   with w = dt at both ends, 2 dt inside
    SIGReg = mean of T over the M slices

The weights are the trapezoid rule on [0, 3] doubled: the integrand is even in t, so this is
the integral over [-3, 3]. For samples that really are N(0, I), N * err_k has expectation
1 - exp(-t_k^2), so SIGReg is about 1 whatever N and D are (1.08 at N = 512, D = 192 in the
reference measurement); collapsed or badly scaled embeddings give hundreds.
"""

from __future__ import annotations

import torch

SLICES = 1024
KNOTS = 17
T_MAX = 3.0


def random_directions(
    dim: int,
    slices: int = SLICES,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(dim, slices) matrix of independent random unit columns."""
    a = torch.randn(dim, slices, generator=generator, device=device)
    return a / a.norm(dim=0, keepdim=True)


def epps_pulley(y: torch.Tensor, knots: int = KNOTS, t_max: float = T_MAX) -> torch.Tensor:
    """The Epps-Pulley statistic of each column of ``y`` (..., N, M) against N(0, 1): (..., M).

    Args:
        y: N samples of each of M one-dimensional variables (leading dimensions are batches of
            independent sample sets).
        knots: quadrature knots on [0, t_max] (LeJEPA: 17).
        t_max: the end of the integration range (LeJEPA: 3).
    """
    n = y.shape[-2]
    t = torch.linspace(0.0, t_max, knots, device=y.device, dtype=y.dtype)
    normal_cf = torch.exp(-0.5 * t**2)  # the N(0, 1) characteristic function, also the weight
    dt = t_max / (knots - 1)
    weights = torch.full_like(t, 2 * dt)
    weights[0] = weights[-1] = dt
    ty = y.unsqueeze(-1) * t  # (..., N, M, K)
    cos_mean = torch.cos(ty).mean(dim=-3)  # (..., M, K)
    sin_mean = torch.sin(ty).mean(dim=-3)
    err = (cos_mean - normal_cf) ** 2 + sin_mean**2
    return n * (err * (weights * normal_cf)).sum(dim=-1)


def sigreg(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    slices: int = SLICES,
    knots: int = KNOTS,
    t_max: float = T_MAX,
) -> torch.Tensor:
    """SIGReg of embeddings ``x`` (..., N, D): a scalar, differentiable in ``x``.

    Leading dimensions are independent groups (LeWM passes one group per time step, the batch
    being the samples); every group is projected on the same directions and the statistic is
    averaged over groups and slices. Computed in float32 whatever ``x``'s dtype.

    Args:
        x: the embeddings; N samples of dimension D per group.
        generator: draws the random directions (fresh ones on every call, as LeJEPA does);
            pass a seeded one for reproducible values.
        slices: the number M of random directions (LeJEPA: 256 to 1024).
        knots, t_max: the quadrature (see :func:`epps_pulley`).
    """
    if x.shape[-2] < 2:
        raise ValueError(f"SIGReg needs at least 2 samples per group, got shape {tuple(x.shape)}")
    directions = random_directions(x.shape[-1], slices, generator, x.device)
    return epps_pulley(x.float() @ directions, knots, t_max).mean()
