"""The statistics of a fidelity report, in plain numpy: distributions, discrimination, calibration.

Each function takes arrays and returns numbers, so each is tested on constructed cases (a dream
that replays the real episodes is faithful; a shuffled done head has AUROC ~0.5).
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def summary(values: np.ndarray) -> dict[str, float]:
    """Count, mean, std and the :data:`QUANTILES` of a sample (e.g. episode lengths)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("summary of an empty sample")
    out = {"n": int(len(x)), "mean": float(x.mean()), "std": float(x.std())}
    for q, v in zip(QUANTILES, np.quantile(x, QUANTILES), strict=True):
        out[f"p{round(q * 100)}"] = float(v)
    return out


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if len(a) == 0 or len(b) == 0:
        raise ValueError("KS statistic of an empty sample")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), np.float64)
    # Runs of equal values: each gets the mean of the ranks it spans.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)); NaN without both classes.

    The probability that a random positive scores above a random negative (ties count half).
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def reliability(
    probs: np.ndarray, labels: np.ndarray, bins: int = 10
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the reliability curve over ``bins`` equal-width bins.

    Returns ``(ece, rows)``; each row of a non-empty bin holds its ``count``, mean predicted
    probability ``confidence`` and observed frequency ``frequency``. ECE = sum over bins of
    count / N * |confidence - frequency|.
    """
    p = np.clip(np.asarray(probs, np.float64), 0.0, 1.0)
    y = np.asarray(labels, np.float64)
    if len(p) == 0:
        raise ValueError("calibration of an empty sample")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n == 0:
            continue
        confidence, frequency = float(p[inside].mean()), float(y[inside].mean())
        ece += n / len(p) * abs(confidence - frequency)
        rows.append({"bin": b, "count": n, "confidence": confidence, "frequency": frequency})
    return float(ece), rows


def ends_within(lengths: np.ndarray, terminated: np.ndarray, k: int) -> list[np.ndarray]:
    """Per episode, the (T,) labels "the episode terminates within the next k steps".

    Step t (0-based, the t-th action) is positive when the episode terminated (not truncated)
    and t >= T - k: with k = 1 only the last step, the one the done head should fire on.
    """
    out = []
    for length, term in zip(lengths, terminated, strict=True):
        t = np.arange(int(length))
        out.append((t >= length - k) & bool(term))
    return out


def relative_gap(dream: float, real: float) -> float:
    """(dream - real) / |real|, with |real| floored at 1 so that near-zero scores stay finite."""
    return float((dream - real) / max(abs(real), 1.0))


def within(dream: float, real: float, tolerance: float) -> bool:
    """Whether ``dream`` is within ``tolerance`` of ``real`` (relative: :func:`relative_gap`)."""
    return abs(relative_gap(dream, real)) <= tolerance
