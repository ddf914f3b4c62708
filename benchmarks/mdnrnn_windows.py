"""M on whole episodes: random batches against batches of similar length, in the same process.

A batch runs every window for as many steps as its longest, so under whole-episode windows
(``seq_len`` = the time limit) a batch of random TakeCover episodes computes mostly padding.
This times ``MDNRNNTrainer.train_epoch`` on the same Doom episodes with the paper's random
batches and with ``length_batches``, and prints the steps each computes (real and padded), the
epoch time and the ratio. Also printed: the steps a batch would compute padded to ``seq_len``
itself, which M's batches computed before they were cut at their longest window.

    python benchmarks/mdnrnn_windows.py                 # collects 256 repeat episodes first
    python benchmarks/mdnrnn_windows.py --data DATA     # or uses a Doom dataset of yours
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from dreamgym.rollouts import CollectConfig, RolloutDataset, collect
from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
from dreamgym.worldmodels.vm.train_vae import VAETrainer


def computed_steps(trainer: MDNRNNTrainer) -> tuple[int, int]:
    """(steps, steps with padding) of one epoch's batches, drawn without advancing the run."""
    state = trainer.rng.bit_generator.state
    batches = trainer.epoch_batches()
    trainer.rng.bit_generator.state = state
    windows = [np.minimum(trainer.dataset.lengths[b], trainer.config.seq_len) for b in batches]
    return sum(int(w.sum()) for w in windows), sum(len(w) * int(w.max()) for w in windows)


def run(data: Path, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        VAETrainer(data, tmp, preset="small", overrides={"epochs": 1, "max_episodes": 16},
                   device="cpu").fit(progress=False)  # fmt: skip
        limit = int(RolloutDataset(data).meta["max_episode_steps"])
        seconds = {}
        for sorted_batches in (False, True):
            out = Path(tmp) / f"m-{sorted_batches}"
            overrides = {"seq_len": limit, "length_batches": sorted_batches, "val_fraction": 0.0}
            m = MDNRNNTrainer(data, tmp, out, preset="small", device="cpu", overrides=overrides)
            steps, padded = computed_steps(m)
            m.train_epoch()  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                m.train_epoch()
            seconds[sorted_batches] = (time.perf_counter() - start) / repeats
            name = "length batches" if sorted_batches else "random batches"
            print(f"{name:15}: {steps:,} steps, {padded:,} with padding, "
                  f"{seconds[sorted_batches]:.1f} s per epoch")  # fmt: skip
        batches = -(-len(m.train_eps) // m.config.batch_size)
        print(f"padded to seq_len {limit}: {batches * m.config.batch_size * limit:,} steps")
        print(f"ratio (random / length batches, epoch time): {seconds[False] / seconds[True]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a Doom TakeCover rollout dataset")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            collect(CollectConfig(env="doom-takecover", episodes=256, out=data, workers=2),
                    progress=False)  # fmt: skip
        run(data, args.repeats)


if __name__ == "__main__":
    main()
