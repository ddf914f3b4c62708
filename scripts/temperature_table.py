"""The World Models paper's temperature table, reproduced on one world model.

For each temperature tau, a controller is evolved in the dream at that tau, then scored in the
dream (at the same tau) and in the real game; the table puts the paper's figures beside ours.
The paper's lesson: at low tau the controller exploits the dream (it learns that fireballs never
come) and fails in the real game; at tau a little above 1 the dream is harder than the game and
the controller transfers::

    python scripts/temperature_table.py --world-model pretrained:doom-takecover --out runs/taus
    python scripts/temperature_table.py --world-model runs/doom/worldmodel-1 --out runs/taus \\
        --generations 30 --popsize 32 --rollouts 8 --episodes 100 --device cuda

Each temperature's evolution and scores are saved as they finish (``OUT/tau-X/``,
``OUT/table.json``), so re-running the command resumes. ``OUT/table.md`` is the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from dreamgym.agents import EvolutionConfig
from dreamgym.agents.evaluate import evaluate_controller
from dreamgym.agents.run import EvolveSettings, evolve
from dreamgym.common import validate
from dreamgym.common.io import atomic_write_bytes, atomic_write_json
from dreamgym.errors import DreamgymError

# Ha & Schmidhuber (2018), DoomTakeCover trained in the dream, 100 real trials (tau: dream, real).
PAPER = {
    0.10: ("2086 +- 140", "193 +- 58"),
    0.50: ("2060 +- 277", "196 +- 50"),
    1.00: ("1145 +- 690", "868 +- 511"),
    1.15: ("918 +- 546", "1092 +- 556"),
    1.30: ("732 +- 269", "753 +- 139"),
}
PAPER_RANDOM = "210 +- 108"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world-model", default="pretrained:doom-takecover")
    parser.add_argument("--out", required=True, help="run directory (re-running resumes)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=sorted(PAPER))
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--popsize", type=int, default=32)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=100, help="dream and real episodes")
    parser.add_argument("--done-mode", help="the dream's done rule (default: the bundle's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="Ray workers for the real game")
    parser.add_argument("--address", help="Ray cluster to join")
    parser.add_argument("--device", default="auto", help="where the dreams run")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evolve and score a controller at each temperature; returns the table (also on disk)."""
    for name in ("generations", "popsize", "rollouts", "episodes", "workers"):
        validate.integer(name, getattr(args, name))
    for tau in args.temperatures:
        validate.positive("temperature", tau)
    out = Path(args.out)
    table_path = out / "table.json"
    table = json.loads(table_path.read_text()) if table_path.exists() else {"rows": {}}
    table["world_model"] = args.world_model
    for tau in args.temperatures:
        key = f"{tau:g}"
        if key in table["rows"]:
            continue
        print(f"== tau {key}", flush=True)
        settings = EvolveSettings(
            args.world_model, "dream", temperature=tau, done_mode=args.done_mode,
            evolution=EvolutionConfig(args.popsize, args.rollouts, 0.1, 10, 64, args.seed),
        )  # fmt: skip
        evolved = evolve(settings, out / f"tau-{key}", args.generations, device=args.device)
        controller = out / f"tau-{key}" / "mean"
        row: dict[str, Any] = {"best_fitness": evolved.best_fitness}
        for backend in ("dream", "real"):
            returns = evaluate_controller(
                controller, args.episodes, backend, temperature=tau, workers=args.workers,
                address=args.address, seed=args.seed + 1, device=args.device,
                done_mode=args.done_mode, progress=True,
            )  # fmt: skip
            row[backend] = {"mean": float(np.mean(returns)), "std": float(np.std(returns)),
                            "episodes": len(returns)}  # fmt: skip
        table["rows"][key] = row
        atomic_write_json(table_path, table)
    atomic_write_bytes(out / "table.md", markdown(table, args).encode())
    return table


def markdown(table: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"# The temperature table on `{table['world_model']}`",
        "",
        f"Each row: a controller evolved in the dream at tau ({args.generations} generations of "
        f"{args.popsize} x {args.rollouts}), scored over {args.episodes} episodes in the dream at "
        "the same tau and in the real game. The paper's figures (its model, 10,000 episodes) "
        "beside ours.",
        "",
        "| tau | dream | real | paper: dream | paper: real |",
        "|---:|---:|---:|---:|---:|",
    ]
    for key, row in sorted(table["rows"].items(), key=lambda kv: float(kv[0])):
        paper = PAPER.get(round(float(key), 2), ("-", "-"))
        ours = [f"{row[b]['mean']:.1f} +- {row[b]['std']:.1f}" for b in ("dream", "real")]
        lines.append(f"| {key} | {' | '.join(ours)} | {paper[0]} | {paper[1]} |")
    lines += ["", f"The paper's random policy: {PAPER_RANDOM} in the real game."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        table = run(args)
    except DreamgymError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(markdown(table, args), end="")


if __name__ == "__main__":
    main()
