"""Run directories: resolved config, metrics as CSV + TensorBoard, and loss-curve plots.

A run's metric history lives in its checkpoint (so a resumed run keeps it); this module writes the
human-facing copies: ``<name>-metrics.csv`` (rewritten atomically from the history every epoch),
TensorBoard event files under ``tb/``, and ``<name>-curves.png``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamgym.common.io import atomic_write_bytes

# Panel titles and y-axis labels of the metrics dreamgym logs (others: the metric's own name).
PANELS: dict[str, tuple[str, str]] = {
    "loss": ("total loss", "loss"),
    "recon": ("reconstruction", "squared error, summed over pixels"),
    "kl": ("KL(q(z|x) || N(0, I))", "nats per frame"),
    "nll": ("next-z mixture NLL", "nats per latent dimension"),
    "reward": ("reward head", "squared error"),
    "done": ("done head", "weighted cross-entropy"),
    "pred": ("next-embedding prediction", "squared error"),
    "sigreg": ("SIGReg (isotropy of embeddings)", "test statistic"),
    "fitness": ("population fitness", "mean return over rollouts"),
    "es": ("CMA-ES step size", "sigma"),
    "eval": ("ES mean, evaluated", "return (mean +- std)"),
}


class RunLogger:
    """Writes one component's metrics (``name`` = ``vae``, ``mdnrnn``, ...) into a run directory.

    Rows are ``{x_key: step, "group/metric": value, ...}``. The plot has one panel per metric
    with a line per group (``train/loss`` beside ``val/loss``) or, with ``panels="group"``, one
    panel per group with a line per metric; a ``group/std`` value is drawn as a band around
    ``group/mean``.
    """

    def __init__(self, run_dir: Path, name: str, x_key: str = "epoch",
                 panels: str = "metric") -> None:  # fmt: skip
        self.run_dir = Path(run_dir)
        self.name = name
        self.x_key = x_key
        self.panels = panels
        self._writer = None

    def _tensorboard(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb" / self.name))
        return self._writer

    def log(self, history: Sequence[dict[str, Any]]) -> None:
        """Record the newest row of ``history`` (a list of {"epoch", metric: value} rows)."""
        row = history[-1]
        writer = self._tensorboard()
        for key, value in row.items():
            if key != self.x_key and isinstance(value, (int, float)):
                writer.add_scalar(f"{self.name}/{key}", value, row[self.x_key])
        writer.flush()
        self._write_csv(history)
        self._plot(history)

    def _write_csv(self, history: Sequence[dict[str, Any]]) -> None:
        # A fixed order (the x column, then the rest sorted): a resumed run's rows come back
        # from JSON with sorted keys, and its file must read as the uninterrupted run's.
        others = sorted({key for row in history for key in row} - {self.x_key})
        fields = [self.x_key, *others]
        buffer = io.StringIO()
        out = csv.DictWriter(buffer, fieldnames=fields)
        out.writeheader()
        out.writerows(history)
        atomic_write_bytes(self.run_dir / f"{self.name}-metrics.csv", buffer.getvalue().encode())

    def _plot(self, history: Sequence[dict[str, Any]]) -> None:
        # The object-oriented API: no pyplot, so a notebook's plotting backend is left alone.
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        keys = sorted({k for row in history for k in row if "/" in k})
        by_panel: dict[str, list[str]] = {}
        for key in keys:
            group, metric = key.split("/", 1)
            if metric != "std":
                by_panel.setdefault(metric if self.panels == "metric" else group, []).append(key)
        fig = Figure(figsize=(4.5 * len(by_panel), 3.2))
        axes = fig.subplots(1, len(by_panel), squeeze=False)
        for ax, (panel, panel_keys) in zip(axes[0], sorted(by_panel.items()), strict=True):
            for key in panel_keys:
                points = [(row[self.x_key], row[key]) for row in history if key in row]
                xs, ys = zip(*points, strict=True)
                label = key.split("/")[0] if self.panels == "metric" else key.split("/")[1]
                ax.plot(xs, ys, marker="." if len(xs) > 30 else "o", label=label)
                std_key = key.rsplit("/", 1)[0] + "/std"
                if key.endswith("/mean") and std_key in keys:
                    stds = [row[std_key] for row in history if key in row]
                    ax.fill_between(
                        xs,
                        [y - s for y, s in zip(ys, stds, strict=True)],
                        [y + s for y, s in zip(ys, stds, strict=True)],
                        alpha=0.2,
                    )
            title, ylabel = PANELS.get(panel, (panel, panel))
            ax.set_title(f"{self.name}: {title}", fontsize=10)
            ax.set_xlabel(self.x_key)
            ax.set_ylabel(ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        atomic_write_bytes(self.run_dir / f"{self.name}-curves.png", buffer.getvalue())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
