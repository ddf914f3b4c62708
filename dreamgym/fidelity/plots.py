"""The fidelity report's figures (matplotlib's object API: no pyplot, no backend switch)."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure


def plot_survival(report: dict[str, Any]) -> Figure:
    """Episode-length histograms, dream vs real side by side, one panel per policy.

    A panel whose every episode, dream and real, ran to the cap says nothing by its lengths: it
    shows the returns instead, and says why in its title."""
    rows = report["survival"]
    cap = report["config"]["max_episode_steps"]
    fig = Figure(figsize=(3.6 * len(rows), 3.2))
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    for ax, row in zip(axes, rows, strict=True):
        title = row["name"][:40]
        lengths = row["lengths"]["real"] + row["lengths"]["dream"]
        if min(lengths) == cap and "returns" in row:
            values, label = row["returns"], "episode return"
            title += f"\nevery episode ran to the {cap}-step cap:\nreturns shown"
        else:
            values, label = row["lengths"], "episode length (steps)"
        low, high = min(values["real"] + values["dream"]), max(values["real"] + values["dream"])
        bins = np.linspace(low, high if high > low else low + 1, 21)
        # Side by side, so that neither bar hides the other.
        ax.hist([values["real"], values["dream"]], bins=bins, density=True, label=["real", "dream"])
        ax.set_title(title, fontsize=8)
        ax.set_xlabel(label)
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
            curves.append(("_mean_frame", "the real frames' mean frame (a blur)"))
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
