"""The fidelity report's figures (matplotlib's object API: no pyplot, no backend switch)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure


def plot_survival(report: dict[str, Any]) -> Figure:
    """Episode-length histograms, dream vs real, one panel per policy."""
    rows = report["survival"]
    fig = Figure(figsize=(3.6 * len(rows), 3))
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    longest = max(max(r["lengths"]["real"] + r["lengths"]["dream"]) for r in rows)
    bins = np.linspace(0, longest, 31)
    for ax, row in zip(axes, rows, strict=True):
        ax.hist(row["lengths"]["real"], bins=bins, alpha=0.6, density=True, label="real")
        ax.hist(row["lengths"]["dream"], bins=bins, alpha=0.6, density=True, label="dream")
        ax.set_title(row["name"][:40], fontsize=9)
        ax.set_xlabel("episode length (steps)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_reliability(report: dict[str, Any]) -> Figure:
    """Observed frequency of an episode ending at a step vs the done head's probability."""
    rows = report["done"]["reliability"]
    fig = Figure(figsize=(4, 3.6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="calibrated")
    ax.plot([r["confidence"] for r in rows], [r["frequency"] for r in rows], marker="o",
            label=f"done head (ECE {report['done']['ece']:.3f})")  # fmt: skip
    ax.set_xlabel("predicted P(episode ends at this step)")
    ax.set_ylabel("observed frequency")
    ax.set_title("done-head reliability", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_openloop(report: dict[str, Any]) -> Figure:
    """Latent and frame error of open-loop prediction vs horizon, beside copying the start."""
    o = report["openloop"]
    horizons = np.arange(1, len(o["latent_error"]) + 1)
    fig = Figure(figsize=(8, 3))
    axes = fig.subplots(1, 2)
    panels = (("latent_error", "latent MSE per dimension"),
              ("frame_error", "decoded-frame MSE (pixels in [0, 1])"))  # fmt: skip
    for ax, (key, label) in zip(axes, panels, strict=True):
        curves = [("", "dream"), ("_copy", "copy the start frame")]
        if key == "frame_error":
            curves.append(("_recon", "V's reconstruction (floor)"))
        for suffix, name in curves:
            values = np.array([np.nan if v is None else v for v in o[key + suffix]])
            ax.plot(horizons, values, label=name)
        ax.set_xlabel("horizon (steps)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("open-loop prediction of held-out real episodes", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig
