"""The fidelity statistics on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from dreamgym.fidelity import metrics


def test_ks_statistic():
    x = np.arange(100)
    assert metrics.ks_statistic(x, x) == 0.0
    assert metrics.ks_statistic(x, x + 1000) == 1.0
    # Half of b lies beyond all of a: the CDFs differ by 0.5 there.
    assert metrics.ks_statistic(np.arange(10), np.r_[np.arange(5), np.arange(100, 105)]) == 0.5


def test_auroc_known_cases():
    labels = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    scores = np.arange(100.0)
    assert metrics.auroc(scores, labels) == 1.0
    assert metrics.auroc(-scores, labels) == 0.0
    assert metrics.auroc(np.ones(100), labels) == 0.5  # all tied: no discrimination
    # One inversion among 2 x 2 pairs: 3 of 4 pairs ranked right.
    assert metrics.auroc(np.array([0.1, 0.6, 0.5, 0.9]), np.array([0, 0, 1, 1], bool)) == 0.75
    assert np.isnan(metrics.auroc(scores, np.zeros(100, bool)))


def test_shuffled_done_head_has_auroc_near_half():
    rng = np.random.default_rng(0)
    labels = rng.random(20_000) < 0.05
    good = np.where(labels, rng.normal(2, 1, labels.shape), rng.normal(0, 1, labels.shape))
    assert metrics.auroc(good, labels) > 0.9
    assert metrics.auroc(rng.permutation(good), labels) == pytest.approx(0.5, abs=0.03)


def test_reliability_of_a_calibrated_and_an_inflated_head():
    rng = np.random.default_rng(1)
    p = rng.choice([0.05, 0.3, 0.8], size=60_000)
    y = rng.random(len(p)) < p
    ece, rows = metrics.reliability(p, y)
    assert ece < 0.01
    assert [r["count"] for r in rows] == [int((p == v).sum()) for v in (0.05, 0.3, 0.8)]
    # A head that says 3x the true rate (as a positive class weight does) is miscalibrated.
    inflated, _ = metrics.reliability(np.minimum(p * 3, 1.0), y)
    assert inflated > 0.25


def test_ends_within_labels_only_terminated_episodes():
    labels = metrics.ends_within(np.array([5, 4]), np.array([True, False]), k=2)
    assert labels[0].tolist() == [False, False, False, True, True]
    assert labels[1].tolist() == [False] * 4  # truncated: it never ended
    assert metrics.ends_within(np.array([3]), np.array([True]), k=1)[0].tolist() == [
        False,
        False,
        True,
    ]


def test_summary_and_tolerance():
    s = metrics.summary(np.arange(1, 101))
    assert (s["n"], s["mean"], s["p50"]) == (100, 50.5, 50.5)
    assert metrics.within(110, 100, 0.25) and not metrics.within(130, 100, 0.25)
    assert metrics.within(-0.2, 0.0, 0.25)  # |real| floored at 1
    assert metrics.relative_gap(200, 100) == 1.0
