"""A pipeline's candidate evolutions: one after another against side by side.

A pipeline with ``candidates`` K evolves K controllers in its final dream (evolution seeds one
apart). A dream evolves on one torch thread, so one after another they leave every core but
one idle; ``agents.parallel.evolve_many`` runs them in P processes instead. Here K evolutions of
the shipped CarRacing dream (``pretrained:carracing``, the ``cpu-driver`` settings: popsize 32 x 4
dream episodes at tau 1.0 with inference dropout 0.1, episodes capped at ``--steps``) are timed
both ways in this process, in fresh directories, and checked to give the same controllers.

    python benchmarks/candidates.py [--candidates 4] [--processes 2] [--generations 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from dreamgym.agents import EvolutionConfig
from dreamgym.agents.parallel import evolve_many
from dreamgym.agents.run import EvolveSettings


def jobs(root: Path, candidates: int, steps: int) -> list[tuple[EvolveSettings, Path]]:
    def settings(seed: int) -> EvolveSettings:
        return EvolveSettings(
            world_model="pretrained:carracing",
            temperature=1.0,
            dropout=0.1,
            done_mode="threshold",
            max_episode_steps=steps,
            evolution=EvolutionConfig(popsize=32, rollouts=4, eval_every=0, seed=seed),
        )

    return [(settings(j), root / f"c{j}") for j in range(candidates)]


def mean_params(out: Path) -> np.ndarray:
    return load_file(str(out / "mean" / "controller.safetensors"))["params"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300, help="dream episode cap")
    args = parser.parse_args()
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, args.processes):
            root = Path(tmp) / f"p{processes}"
            start = time.perf_counter()
            evolve_many(jobs(root, args.candidates, args.steps), args.generations, processes,
                        device="cpu", progress=False)  # fmt: skip
            seconds[processes] = time.perf_counter() - start
            print(f"{args.candidates} evolutions of {args.generations} generations, "
                  f"{processes} process(es): {seconds[processes]:.1f} s", flush=True)  # fmt: skip
        same = all(np.array_equal(mean_params(Path(tmp) / "p1" / f"c{j}"),
                                  mean_params(Path(tmp) / f"p{args.processes}" / f"c{j}"))
                   for j in range(args.candidates))  # fmt: skip
    print(f"speed-up side by side: {seconds[1] / seconds[args.processes]:.2f}x; "
          f"the same controllers both ways: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
