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

from dreamgym._io import atomic_write_bytes


class RunLogger:
    """Writes one component's metrics (``name`` = ``vae``, ``mdnrnn``, ...) into a run directory."""

    def __init__(self, run_dir: Path, name: str) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
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
            if key != "epoch" and isinstance(value, (int, float)):
                writer.add_scalar(f"{self.name}/{key}", value, row["epoch"])
        writer.flush()
        self._write_csv(history)
        self._plot(history)

    def _write_csv(self, history: Sequence[dict[str, Any]]) -> None:
        fields = list(dict.fromkeys(key for row in history for key in row))
        buffer = io.StringIO()
        out = csv.DictWriter(buffer, fieldnames=fields)
        out.writeheader()
        out.writerows(history)
        atomic_write_bytes(self.run_dir / f"{self.name}-metrics.csv", buffer.getvalue().encode())

    def _plot(self, history: Sequence[dict[str, Any]]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = sorted({k.split("/", 1)[1] for row in history for k in row if "/" in k})
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
        epochs = [row["epoch"] for row in history]
        for ax, key in zip(axes[0], keys, strict=True):
            for split in ("train", "val"):
                values = [row.get(f"{split}/{key}") for row in history]
                if any(v is not None for v in values):
                    ax.plot(epochs, values, marker="o", label=split)
            ax.set_title(f"{self.name} {key}")
            ax.set_xlabel("epoch")
            ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        plt.close(fig)
        atomic_write_bytes(self.run_dir / f"{self.name}-curves.png", buffer.getvalue())

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
