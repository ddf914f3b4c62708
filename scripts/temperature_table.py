"""The World Models paper's temperature table, reproduced on one world model.

For each temperature tau and each evolution seed, a controller is evolved in the dream at that
tau, then scored in the dream (at the same tau) and in the real game (episode seeds: the evolution
seed + 1); the table puts the paper's figures beside ours. Seeds matter: one controller's real
score moves by hundreds from one evolution seed to the next.
The paper's lesson: at low tau the controller exploits the dream (it learns that fireballs never
come) and fails in the real game; at tau a little above 1 the dream is harder than the game and
the controller transfers::

    python scripts/temperature_table.py --world-model pretrained:doom-takecover --out runs/taus
    python scripts/temperature_table.py --world-model runs/doom/worldmodel-1 --out runs/taus \\
        --seeds 0 1 2 --workers 15 --device cuda

``--dropout P`` evolves and scores every dream with inference dropout P in M, a fresh mask per
dream episode (Dropout's Dream Land's lever), in a table of its own.

Each temperature's evolution and scores are saved as they finish (``OUT/seed-S/tau-X/``,
``OUT/seed-S/table.json``), so re-running the command resumes. ``OUT/table.md`` is the table.
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
    parser.add_argument(
        "--dropout", type=float, help="the dream's inference dropout in M (default: the bundle's)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="evolution seeds")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers for the real game")
    parser.add_argument("--address", help="Ray cluster to join")
    parser.add_argument("--device", default="auto", help="where the dreams run")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    """Evolve and score a controller at each temperature for each seed; returns the tables (also
    on disk), by seed."""
    for name in ("generations", "popsize", "rollouts", "episodes", "workers"):
        validate.integer(name, getattr(args, name))
    for seed in args.seeds:
        validate.integer("seed", seed, 0)
    for tau in args.temperatures:
        validate.positive("temperature", tau)
    return {seed: run_seed(args, seed) for seed in args.seeds}


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One evolution seed's rows, resuming ``OUT/seed-S``."""
    out = Path(args.out) / f"seed-{seed}"
    table_path = out / "table.json"
    table = json.loads(table_path.read_text()) if table_path.exists() else {"rows": {}}
    if table.setdefault("world_model", args.world_model) != args.world_model:
        raise DreamgymError(
            f"{str(out)!r} holds a table for world model {table['world_model']!r}, not "
            f"{args.world_model!r}; use another --out"
        )
    # Tables written before the option had none: the bundle's own (None).
    if table["rows"] and table.get("dropout") != args.dropout:
        raise DreamgymError(
            f"{str(out)!r} holds a table for dropout {table.get('dropout')}, not "
            f"{args.dropout}; use another --out"
        )
    table["dropout"] = args.dropout
    for tau in args.temperatures:
        key = f"{tau:g}"
        if key in table["rows"]:
            continue
        print(f"== seed {seed}, tau {key}", flush=True)
        settings = EvolveSettings(
            args.world_model, "dream", temperature=tau, done_mode=args.done_mode,
            evolution=EvolutionConfig(args.popsize, args.rollouts, 0.1, 10, 64, seed),
            dropout=args.dropout,
        )  # fmt: skip
        evolved = evolve(settings, out / f"tau-{key}", args.generations, device=args.device)
        controller = out / f"tau-{key}" / "mean"
        row: dict[str, Any] = {"best_fitness": evolved.best_fitness}
        for backend in ("dream", "real"):
            returns = evaluate_controller(
                controller, args.episodes, backend, temperature=tau, workers=args.workers,
                address=args.address, seed=seed + 1, device=args.device,
                done_mode=args.done_mode, progress=True,
                dropout=args.dropout if backend == "dream" else None,
            )  # fmt: skip
            row[backend] = {"mean": float(np.mean(returns)), "std": float(np.std(returns)),
                            "episodes": len(returns)}  # fmt: skip
        table["rows"][key] = row
        atomic_write_json(table_path, table)
    return table


def markdown(tables: dict[int, dict[str, Any]], args: argparse.Namespace) -> str:
    """The table: per tau, each seed's mean dream and real score and the mean of the seeds' real
    scores, beside the paper's; then every run's mean +- std."""
    seeds = sorted(tables)
    taus = sorted({key for t in tables.values() for key in t["rows"]}, key=float)
    world_model = next(iter(tables.values()))["world_model"]
    per_seed = " / ".join(str(s) for s in seeds)
    dropout = next(iter(tables.values())).get("dropout")
    lines = [
        f"# The temperature table on `{world_model}`"
        + ("" if dropout is None else f", inference dropout {dropout:g}"),
        "",
        f"Each row: for each evolution seed, a controller evolved in the dream at tau "
        f"({args.generations} generations of {args.popsize} x {args.rollouts}), scored over "
        f"{args.episodes} episodes in the dream at the same tau and in the real game. The "
        "paper's figures (its model, 10,000 episodes, one controller) beside ours.",
        "",
        f"| tau | dream (seeds {per_seed}) | real (seeds {per_seed}) | real, mean of the seeds "
        "| paper: dream | paper: real |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    runs = ["", "| tau | seed | dream | real |", "|---:|---:|---:|---:|"]
    for key in taus:
        rows = [tables[s]["rows"].get(key) for s in seeds]
        cells = [" / ".join("-" if r is None else f"{r[b]['mean']:.0f}" for r in rows)
                 for b in ("dream", "real")]  # fmt: skip
        real = [r["real"]["mean"] for r in rows if r is not None]
        paper = PAPER.get(round(float(key), 2), ("-", "-"))
        lines.append(f"| {key} | {cells[0]} | {cells[1]} | {np.mean(real):.1f} | "
                     f"{paper[0]} | {paper[1]} |")  # fmt: skip
        for seed, row in zip(seeds, rows, strict=True):
            if row is not None:
                ours = [f"{row[b]['mean']:.1f} +- {row[b]['std']:.1f}" for b in ("dream", "real")]
                runs.append(f"| {key} | {seed} | {' | '.join(ours)} |")
    lines += ["", f"The paper's random policy: {PAPER_RANDOM} in the real game.", *runs]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        tables = run(args)
    except DreamgymError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    text = markdown(tables, args)
    atomic_write_bytes(Path(args.out) / "table.md", text.encode())
    print(text, end="")


if __name__ == "__main__":
    main()
