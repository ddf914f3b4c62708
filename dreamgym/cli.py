"""The ``dreamgym`` command: one subcommand per capability, each a thin layer over the library."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dreamgym.common import validate
from dreamgym.common.pretrained import output_beside
from dreamgym.errors import DreamgymError


def _library_default(owner: Any, name: str) -> Any:
    """The default the library declares for ``name``: a dataclass field's or a parameter's.

    The CLI's flags default to None and pass nothing then, so that this stays the only one."""
    if dataclasses.is_dataclass(owner):
        return next(f.default for f in dataclasses.fields(owner) if f.name == name)
    return inspect.signature(owner).parameters[name].default


def _default(owner: Any, name: str) -> str:
    """``(default: VALUE)`` for a flag's help, VALUE read from the library."""
    return f"(default: {_library_default(owner, name)})"


def _or_default(value: Any, owner: Any, name: str) -> Any:
    """``value``, or the library's default when the flag was not given."""
    return _library_default(owner, name) if value is None else value


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments whose flags were given: the others keep the library's defaults."""
    return {k: v for k, v in values.items() if v is not None}


def _box(space) -> str:
    """``Box(3,) low [-1, 0, 0] high [1, 1, 1]``, or one range when every dimension shares it."""
    low, high = space.low.tolist(), space.high.tolist()
    if len(set(low)) == 1 and len(set(high)) == 1:
        return f"Box{space.shape} [{low[0]:g}, {high[0]:g}]"
    fmt = lambda xs: "[" + ", ".join(f"{x:g}" for x in xs) + "]"  # noqa: E731
    return f"Box{space.shape} low {fmt(low)} high {fmt(high)}"


def _cmd_envs(args: argparse.Namespace) -> None:
    from dreamgym.envs import list_envs, make_env

    rows = [("name", "gym id", "action space", "observation", "max steps", "description")]
    for spec in list_envs():
        env = make_env(spec.name)
        try:
            action = env.action_space
            rows.append(
                (
                    spec.name,
                    spec.gym_id,
                    _box(action),
                    f"{env.observation_space.shape} {env.observation_space.dtype}",
                    str(spec.max_episode_steps),
                    spec.description,
                )
            )
        finally:
            env.close()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


def _cmd_collect(args: argparse.Namespace) -> None:
    import numpy as np

    from dreamgym.rollouts import CollectConfig, collect
    from dreamgym.rollouts.policies import BUILTIN_POLICIES

    policy = args.policy
    if args.policy_noise is not None:
        from dreamgym.agents.saved import agent_policy

        policy = _or_default(policy, CollectConfig, "policy")
        if policy in BUILTIN_POLICIES:
            raise DreamgymError(
                f"--policy-noise applies to a saved controller or agent, not to {policy!r}"
            )
        policy = agent_policy(policy, args.policy_noise)
    config = CollectConfig(
        env=args.env,
        episodes=args.episodes,
        out=Path(args.out),
        max_episode_steps=args.max_steps,
        address=args.address,
        **_given(policy=policy, workers=args.workers, seed=args.seed,
                 min_length=args.min_length, frame_skip=args.frame_skip),
    )  # fmt: skip
    result = collect(config, progress=not args.quiet)
    if result.new_episodes == 0 and result.dropped == 0:
        print(f"{args.out} already holds {result.episodes} episodes; nothing to do")
        return
    returns = np.asarray(result.returns)
    print(
        f"collected {result.new_episodes} episodes ({result.dropped} dropped as too short) in "
        f"{result.seconds:.1f} s at {result.frames_per_second:,.0f} frames/s with "
        f"{result.workers} worker(s); {args.out} holds {result.episodes} episodes"
        + (f"; mean return {returns.mean():.1f} +- {returns.std():.1f}" if len(returns) else "")
    )


def _cmd_train(args: argparse.Namespace) -> None:
    if args.component == "agent":
        _cmd_train_agent(args)
        return
    overrides = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
    }  # fmt: skip
    common = {
        "overrides": overrides, "device": args.device, "bf16": args.bf16,
        "skip_corrupt": args.skip_corrupt, **_given(preset=args.preset),
    }  # fmt: skip
    if args.component == "latent":
        from dreamgym.worldmodels.latent.train import LatentTrainer

        overrides.update(encoder=args.encoder, dinov2_weights=args.dinov2_weights, vae=args.vae,
                         frameskip=args.frameskip, history=args.history,
                         proprio=args.proprio, decoder=args.decoder,
                         reward_head=args.reward_head, rollout=args.rollout,
                         rollout_from=args.rollout_from, predictor=args.predictor,
                         pixel_grid=args.pixel_grid)  # fmt: skip
        trainer = LatentTrainer(args.data, args.out,
                                **{**common, "overrides": _given(**overrides)})  # fmt: skip
    elif args.component == "vae":
        from dreamgym.worldmodels.vm.train_vae import VAETrainer

        overrides.update(z_size=args.z_size, max_episodes=args.max_episodes)
        trainer = VAETrainer(args.data, args.out, **common)
    else:
        from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer

        overrides.update(seq_len=args.seq_len, hidden_size=args.hidden_size,
                         dropout=args.dropout, dream_dropout=args.dream_dropout)  # fmt: skip
        trainer = MDNRNNTrainer(args.data, args.vae, args.out, **common, members=args.members)
    start = trainer.epoch
    history = trainer.fit(progress=not args.quiet)
    if trainer.epoch == start:
        print(f"{args.out}: {args.component} already trained for {trainer.epoch} epochs")
        return
    last = history[-1]
    val = f", val loss {last['val/loss']:.4g}" if "val/loss" in last else ""
    print(
        f"trained {args.component} epochs {start + 1}-{trainer.epoch} on {trainer.device}: "
        f"train loss {last['train/loss']:.4g}{val} -> {args.out}"
    )


def _cmd_train_agent(args: argparse.Namespace) -> None:
    import json

    from dreamgym.agents.sb3_agent import AGENT_JSON, train_agent

    net_arch = None
    if args.net_arch is not None:
        try:
            net_arch = tuple(int(x) for x in args.net_arch.split(","))
        except ValueError:
            raise DreamgymError(
                f"--net-arch must be comma-separated layer sizes, got {args.net_arch!r}"
            ) from None
    overrides = {"algo": args.algo, "timesteps": args.timesteps, "num_envs": args.num_envs,
                 "learning_rate": args.lr, "net_arch": net_arch, "seed": args.seed,
                 "temperature": args.temperature, "observation_mode": args.observation,
                 "done_mode": args.done_mode, "dropout": args.dropout,
                 "max_episode_steps": args.max_steps,
                 "checkpoint_every": args.checkpoint_every}  # fmt: skip
    out = Path(args.out)
    before = json.loads((out / AGENT_JSON).read_text()).get("timesteps") if (
        out / AGENT_JSON).is_file() else None  # fmt: skip
    agent, meta = train_agent(args.world_model, out, preset=args.preset, overrides=overrides,
                              device=args.device, progress=not args.quiet)  # fmt: skip
    if before == meta["timesteps"]:
        print(f"{out}: {meta['algo']} agent already trained for {meta['timesteps']} steps")
        return
    print(f"trained {meta['algo']} agent for {meta['timesteps']} dream steps "
          f"({meta['observation_mode']} observations) -> {out}")  # fmt: skip
    print(f"next: dreamgym evaluate --controller {out} --backend real")


def _add_train_agent_parser(parts) -> None:
    from dreamgym.agents.sb3_agent import AGENT_PRESETS, ALGOS

    agent = parts.add_parser(
        "agent",
        parents=_parents("temperature", "done_mode", "device", "quiet", "threads"),
        help="train a stable-baselines3 agent (PPO, SAC, TD3) in a world model's batched dream",
        description="Trains an SB3 policy on the batched dream (CPU or GPU) and saves agent.zip "
        "(SB3's file, a pickle: load only agents you trained or trust) beside agent.json, which "
        "names its world model and observation mode. The directory is a policy wherever a "
        "controller is (evaluate, render, collect --policy, fidelity --controller). Re-running "
        "the same command resumes from the last checkpoint.",
    )
    agent.add_argument("--world-model", required=True, help="world-model bundle or pretrained:NAME")
    agent.add_argument("--out", required=True, help="agent directory (resumed if it holds one)")
    agent.add_argument("--algo", choices=ALGOS, help="override the preset's algorithm (ppo)")
    agent.add_argument(
        "--preset", choices=list(AGENT_PRESETS),
        help="settings preset (default: the one named after the world model's env, else "
        "default; debug trains in seconds)",
    )  # fmt: skip
    agent.add_argument("--timesteps", type=int, help="override the preset's dream steps")
    agent.add_argument("--num-envs", type=int, help="override the preset's dreams per step")
    agent.add_argument("--lr", type=float, help="override the preset's learning rate")
    agent.add_argument("--net-arch", help="override the preset's hidden layers, e.g. 64,64")
    agent.add_argument("--seed", type=int, help="override the preset's seed (0)")
    agent.add_argument("--observation",
                       help="agent input: one of the world model's feature modes (default: the "
                       "model's, V+M's zh)")  # fmt: skip
    agent.add_argument("--dropout", type=float,
                       help="the dream's inference dropout (default: the bundle's)")  # fmt: skip
    agent.add_argument("--max-steps", type=int, help="dream episode cap (default: the env's)")
    agent.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                       help="override the preset's steps between checkpoints")  # fmt: skip
    agent.set_defaults(func=_cmd_train)


def _add_train_parser(commands) -> None:
    from dreamgym.worldmodels.latent.train import LatentTrainer
    from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
    from dreamgym.worldmodels.vm.train_vae import VAETrainer

    train = commands.add_parser(
        "train", help="train world-model components (V, then M), or an agent in a dream"
    )
    parts = train.add_subparsers(dest="component", required=True, metavar="COMPONENT")
    vae = parts.add_parser(
        "vae",
        parents=_parents("device", "quiet", "threads"),
        help="train V, the ConvVAE, on a dataset's frames",
        description="Train V on the frames of a rollout dataset. Re-running the same command "
        "resumes from the last finished epoch.",
    )
    mdn = parts.add_parser(
        "mdnrnn",
        parents=_parents("device", "quiet", "threads"),
        help="train M, the MDN-RNN, on V's latents; writes a world-model bundle",
        description="Encode the dataset(s) with V (cached), then train M. OUT becomes a complete "
        "world-model bundle (V, M, initial latents, bundle.json); it may be V's run directory.",
    )
    latent = parts.add_parser(
        "latent",
        parents=_parents("device", "quiet", "threads"),
        help="train a latent world model (DINO-WM / LeWM); writes a world-model bundle",
        description="Train an encoder and a predictor on a dataset (presets: cpu = pooled "
        "pixels and a convolutional predictor, what 2 CPU cores plan Push-T with; cpu-vit = a "
        "tiny ViT trained with SIGReg, LeWM-style; paper = frozen DINOv2 patches, DINO-WM, for "
        "a GPU; debug = seconds). Re-running resumes.",
    )
    latent.add_argument("--data", required=True, action="append", help="rollout dataset(s)")
    latent.add_argument("--encoder", choices=["vit-tiny", "pixels", "dinov2", "vae"],
                        help="override the preset's encoder")  # fmt: skip
    latent.add_argument(
        "--dinov2-weights", help="DINOv2 ViT-S/14 checkpoint (.pth or .safetensors)"
    )
    latent.add_argument("--vae", help="with --encoder vae: a trained V's run directory")
    latent.add_argument(
        "--pixel-grid", type=int, metavar="G",
        help="with --encoder pixels: frames are pooled to G x G colour pixels",
    )  # fmt: skip
    latent.add_argument("--predictor", choices=["transformer", "conv"],
                        help="override the preset's predictor: DINO-WM's transformer, or a "
                        "convolutional one over pooled pixels (--encoder pixels)")  # fmt: skip
    latent.add_argument("--frameskip", type=int, help="real steps per model step (DINO-WM: 5)")
    latent.add_argument("--history", type=int, help="frames the predictor sees (DINO-WM: 3)")
    latent.add_argument(
        "--proprio",
        action=argparse.BooleanOptionalAction,
        help="embed and predict the agent's proprioception (needs data that records it); it "
        "then counts in the goal cost, as in DINO-WM (default: the preset's)",
    )
    latent.add_argument("--decoder", action="store_true", default=None,
                        help="also train a frame decoder (dreams then render)")  # fmt: skip
    latent.add_argument(
        "--reward-head", action="store_true", default=None,
        help="also train reward and done heads from the data (dreams then need no goal, and "
        "controllers can be evolved in them with --frameskip 1)",
    )  # fmt: skip
    latent.add_argument("--rollout", type=int, metavar="K",
                        help="also train on K model steps imagined from real histories, the "
                        "history sliding as in planning (default: the preset's)")  # fmt: skip
    latent.add_argument("--rollout-from", type=int, metavar="EPOCH",
                        help="the first epoch (from 0) with the rollout loss")  # fmt: skip
    vae.add_argument("--data", required=True, help="rollout dataset directory")
    vae.add_argument(
        "--max-episodes", type=int, help="train on a seeded subset of this many episodes"
    )
    mdn.add_argument(
        "--data",
        required=True,
        action="append",
        help="rollout dataset directory; repeat it to train on several datasets of one env and "
        "action space (the paper's iterative training: re-run with a new dataset added and a "
        "larger --epochs to continue M on all the data)",
    )
    for parser, trainer in ((vae, VAETrainer), (mdn, MDNRNNTrainer), (latent, LatentTrainer)):
        parser.add_argument("--out", required=True, help="run directory (resumed if it exists)")
        parser.add_argument(
            "--preset",
            choices=(
                ["paper", "cpu", "cpu-vit", "debug"]
                if parser is latent
                else ["paper", "small", "debug"]
            ),
            help=f"settings preset {_default(trainer, 'preset')[:-1]}; debug trains in seconds)",
        )
        parser.add_argument("--epochs", type=int, help="override the preset's epochs")
        parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
        parser.add_argument("--lr", type=float, help="override the preset's learning rate")
        parser.add_argument("--seed", type=int, help="override the preset's seed (0)")
        parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
        parser.add_argument(
            "--skip-corrupt", action="store_true", help="skip corrupt episode files with a warning"
        )
        parser.set_defaults(func=_cmd_train)
    _add_train_agent_parser(parts)
    vae.add_argument("--z-size", type=int, help="latent size (default: 32 CarRacing, 64 Doom)")
    mdn.add_argument("--vae", required=True, help="V's run directory")
    mdn.add_argument("--seq-len", type=int, help="override the preset's sequence length")
    mdn.add_argument("--hidden-size", type=int, help="override the preset's LSTM size")
    mdn.add_argument(
        "--dropout",
        type=float,
        help="training dropout of M's z and h, one mask per window (default 0)",
    )
    mdn.add_argument("--dream-dropout", type=float,
                     help="the bundle's default inference dropout in dreams, one mask per dream "
                     "episode (Dropout's Dream Land: 0.1; default 0)")  # fmt: skip
    mdn.add_argument("--members", type=int, metavar="K",
                     help="train an ensemble of K Ms, one after the other, from the same start "
                     "with their own sampling seeds; each dream episode then dreams with one "
                     "drawn at its start (default: as many as OUT holds, 1 for a new "
                     "run)")  # fmt: skip


def _shared_flags() -> dict[str, argparse.ArgumentParser]:
    """Flags that several commands share, each declared once: argparse parent parsers, passed as
    ``parents=[...]`` to the commands that take them."""

    def parent(*args: str, **kwargs) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument(*args, **kwargs)
        return parser

    return {
        "device": parent("--device", default="auto",
                         help="torch device of this process: auto | cpu | cuda[:N] "
                         "(default: %(default)s)"),
        "quiet": parent("--quiet", action="store_true", help="no progress bars"),
        # Not on collect, envs and export: collect runs torch in its Ray workers only.
        "threads": parent("--threads", type=int, metavar="N",
                          help="torch threads of this process (default: chosen for the kind of "
                          "work, as the README's 'Threads' says; Ray workers keep theirs)"),
        "address": parent("--address",
                          help="Ray cluster to join, e.g. 'auto' after `ray start --head`, or "
                          "HOST:PORT (default: a local Ray)"),
        "temperature": parent("--temperature", type=float,
                              help="dream tau (default: the env's, e.g. 1.0; Doom 1.15)"),
        "done_mode": parent(
            "--done-mode",
            choices=["threshold", "sample", "calibrated"],
            help="dream episode end: done probability > 0.5 (the paper), drawn from it, or drawn "
            "from it recalibrated on held-out episodes (default: calibrated when the bundle has "
            "a calibration, else threshold)",
        ),
    }  # fmt: skip


def _parents(*names: str) -> list[argparse.ArgumentParser]:
    """The parent parsers of the shared flags ``names`` (keys of :func:`_shared_flags`)."""
    shared = _shared_flags()
    return [shared[name] for name in names]


def _evolve_presets() -> dict[str, Any]:
    """``dreamgym evolve --preset``'s ES settings: the paper's are EvolutionConfig's defaults."""
    from dreamgym.agents import EvolutionConfig

    return {"paper": EvolutionConfig(),
            "small": EvolutionConfig(popsize=32, rollouts=4, eval_every=10, eval_rollouts=64),
            "debug": EvolutionConfig(popsize=8, rollouts=2, eval_every=2, eval_rollouts=8),
            }  # fmt: skip


def _cmd_evolve(args: argparse.Namespace) -> None:
    from dreamgym.agents.run import EvolveSettings, evolve

    preset = _evolve_presets()[args.preset]
    overrides = {"popsize": args.popsize, "rollouts": args.rollouts, "sigma0": args.sigma0,
                 "eval_every": args.eval_every, "eval_rollouts": args.eval_rollouts,
                 "seed": args.seed}  # fmt: skip
    config = dataclasses.replace(preset, **_given(**overrides))
    backend = _or_default(args.backend, EvolveSettings, "backend")
    settings = EvolveSettings(
        world_model=args.world_model,
        backend=backend,
        temperature=args.temperature,
        observation_mode=args.observation,
        bias=not args.no_bias,
        max_episode_steps=args.max_steps,
        done_mode=args.done_mode,
        init=args.init,
        evolution=config,
        dropout=args.dropout,
    )
    out = Path(args.out or output_beside(args.world_model, f"evolve-{backend}"))
    evolution = evolve(settings, out, args.generations, workers=args.workers,
                       address=args.address, device=args.device,
                       progress=not args.quiet)  # fmt: skip
    print(
        f"evolved {evolution.generation} generations ({backend} backend): best candidate "
        f"fitness {evolution.best_fitness:.2f}; controllers in {out / 'best'} and {out / 'mean'}"
    )


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from dreamgym.agents.evaluate import evaluate_controller
    from dreamgym.agents.saved import load_agent
    from dreamgym.common.io import atomic_write_json, check_writable_dir
    from dreamgym.common.pretrained import resolve_controller

    load_agent(args.controller)  # a missing controller is named before anything is made
    backend = _or_default(args.backend, evaluate_controller, "backend")
    seed = _or_default(args.seed, evaluate_controller, "seed")
    beside = output_beside(resolve_controller(args.controller), f"evaluation-{backend}.json")
    out = Path(args.out or beside)
    check_writable_dir(out.parent)  # before the episodes, so that none are run for nothing
    returns = evaluate_controller(
        args.controller, backend=backend, world_model=args.world_model,
        temperature=args.temperature, max_episode_steps=args.max_steps, address=args.address,
        seed=seed, device=args.device, done_mode=args.done_mode, progress=not args.quiet,
        **_given(episodes=args.episodes, workers=args.workers),
    )  # fmt: skip
    atomic_write_json(out, {"backend": backend, "episodes": len(returns),
                            "mean": float(returns.mean()), "std": float(returns.std()),
                            "returns": returns.tolist(), "seed": seed})  # fmt: skip
    print(f"{backend}: {returns.mean():.1f} +- {returns.std():.1f} over {len(returns)} "
          "episodes")  # fmt: skip
    print(f"wrote {out}" + ("" if args.out else " (choose where with --out)"))


def _add_agent_parsers(commands) -> None:
    from dreamgym.agents.evaluate import evaluate_controller
    from dreamgym.agents.run import EvolveSettings

    presets = _evolve_presets()
    evolve = commands.add_parser(
        "evolve",
        parents=_parents("temperature", "done_mode", "address", "device", "quiet", "threads"),
        help="evolve a linear controller with CMA-ES, in the dream or the real env (resumable)",
        description="CMA-ES over the paper's linear controller. Re-running the same command "
        "resumes after the last finished generation.",
    )
    evolve.add_argument("--world-model", required=True, help="world-model bundle directory")
    evolve.add_argument(
        "--backend",
        choices=["dream", "real"],
        help="where candidates are scored: the dream or the real env "
        f"{_default(EvolveSettings, 'backend')}",
    )
    evolve.add_argument(
        "--generations",
        type=int,
        required=True,
        help="generations to reach (a resumed run continues to this many)",
    )
    evolve.add_argument(
        "--preset",
        choices=list(presets),
        default="paper",
        help="ES settings (default: %(default)s; "
        + "; ".join(
            f"{name}: popsize {c.popsize}, {c.rollouts} rollouts, sigma0 {c.sigma0}"
            for name, c in presets.items()
        )
        + ")",
    )
    evolve.add_argument("--popsize", type=int, help="candidates per generation")
    evolve.add_argument("--rollouts", type=int, help="episodes per candidate")
    evolve.add_argument("--sigma0", type=float, help="CMA-ES's initial step size")
    evolve.add_argument("--eval-every", type=int, help="evaluate the ES mean every K generations")
    evolve.add_argument("--eval-rollouts", type=int, help="episodes of that evaluation")
    evolve.add_argument("--seed", type=int, help="seed of the search and its rollouts (0)")
    evolve.add_argument(
        "--observation",
        help="controller input: one of the world model's feature modes (V+M: zh = [z, h], the "
        "default; z; zch = [z, c, h])",
    )
    evolve.add_argument("--no-bias", action="store_true", help="controller without bias")
    evolve.add_argument(
        "--init",
        help="warm start: a saved controller directory whose parameters the search starts from",
    )
    evolve.add_argument("--max-steps", type=int, help="episode cap (default: the real env's)")
    evolve.add_argument("--dropout", type=float,
                        help="the dream's inference dropout in M, a fresh mask per episode "
                        "(default: the bundle's)")  # fmt: skip
    evolve.add_argument("--out", help="run directory (default: WORLD_MODEL/evolve-BACKEND)")
    evolve.add_argument(
        "--workers", type=int,
        help="Ray actors: the real backend's episodes (default 2); with the dream backend, "
        "shards each generation's dream over this many actors (default: one process; with "
        "--address, one actor per GPU of the cluster)",
    )  # fmt: skip
    evolve.set_defaults(func=_cmd_evolve)

    evaluate = commands.add_parser(
        "evaluate",
        parents=_parents("temperature", "done_mode", "address", "device", "quiet", "threads"),
        help="mean +- std return of a saved controller or agent over many episodes",
        description="Scores a saved controller (a directory, or pretrained:NAME) or SB3 agent "
        "(a `dreamgym train agent` directory) over many "
        "episodes in the real env (episodes spread over Ray workers) or in the dream, prints "
        "mean +- std and writes every episode's return to JSON.",
    )
    evaluate.add_argument("--controller", required=True,
                          help="controller directory, pretrained:NAME, or agent "
                          "directory")  # fmt: skip
    evaluate.add_argument(
        "--episodes", type=int, help=f"episodes {_default(evaluate_controller, 'episodes')}"
    )
    evaluate.add_argument("--backend", choices=["dream", "real"],
                          help="the real env or the dream "
                          + _default(evaluate_controller, "backend"))  # fmt: skip
    evaluate.add_argument("--world-model", help="default: the one the controller was trained for")
    evaluate.add_argument("--max-steps", type=int, help="episode cap (default: the env's)")
    evaluate.add_argument(
        "--workers",
        type=int,
        help=f"Ray workers (real env) {_default(evaluate_controller, 'workers')}",
    )
    evaluate.add_argument(
        "--seed", type=int, help=f"seed of the episodes {_default(evaluate_controller, 'seed')}"
    )
    evaluate.add_argument(
        "--out",
        help="where the JSON of per-episode returns goes (default: "
        "CONTROLLER/evaluation-BACKEND.json; ./NAME/evaluation-BACKEND.json for pretrained:NAME)",
    )
    evaluate.set_defaults(func=_cmd_evaluate)


def _cmd_render(args: argparse.Namespace) -> None:
    from dreamgym.dreams.video import render_video

    temperatures = None
    if args.temperatures:
        try:
            temperatures = [float(t) for t in args.temperatures.split(",")]
        except ValueError:
            raise DreamgymError(
                f"--temperatures must be comma-separated numbers, got {args.temperatures!r}"
            ) from None
    agent = None
    if args.controller:
        from dreamgym.agents.saved import load_agent

        agent, _ = load_agent(args.controller)
    path = render_video(
        args.world_model, args.out, agent=agent, temperature=args.temperature,
        compare=args.compare, temperatures=temperatures, fps=args.fps,
        overlay=not args.no_overlay, device=args.device, progress=not args.quiet,
        **_given(steps=args.steps, seed=args.seed, size=args.size, policy=args.policy),
    )  # fmt: skip
    print(f"wrote {path}")


def _add_render_parser(commands) -> None:
    from dreamgym.dreams.video import render_video

    render = commands.add_parser(
        "render",
        parents=_parents("temperature", "device", "quiet", "threads"),
        help="render a dream (or real vs dream, or several temperatures) to mp4/gif",
        description="Decode a dream episode with V into a video. --compare shows a real episode, "
        "V's reconstruction of it and the dream's rollout of the same actions side by side; "
        "--temperatures dreams one start at several temperatures.",
    )
    render.add_argument("--world-model", required=True, help="world-model bundle directory")
    render.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    render.add_argument("--controller",
                        help="controller or agent directory (default: --policy)")  # fmt: skip
    render.add_argument(
        "--policy", help=f"random | brownian | repeat {_default(render_video, 'policy')}"
    )
    render.add_argument("--compare", action="store_true", help="real | V reconstruction | dream")
    render.add_argument("--temperatures", help="e.g. 0.5,1.0,1.15,1.3")
    render.add_argument(
        "--steps", type=int, help=f"episode length cap {_default(render_video, 'steps')}"
    )
    render.add_argument("--seed", type=int, help=_default(render_video, "seed"))
    render.add_argument("--size", type=int,
                        help=f"frame side in pixels {_default(render_video, 'size')}")  # fmt: skip
    render.add_argument("--fps", type=int, help="default: the real env's")
    render.add_argument("--no-overlay", action="store_true", help="no captions")
    render.set_defaults(func=_cmd_render)


def _cmd_pipeline(args: argparse.Namespace) -> None:
    from dreamgym.envs import get_env_spec
    from dreamgym.pipeline import Pipeline, pipeline_preset

    get_env_spec(args.env)  # an unknown env fails before anything is written
    config = pipeline_preset(args.preset, args.env)
    if args.iterations is not None:
        if args.iterations < 0:
            raise DreamgymError(f"--iterations must be >= 0, got {args.iterations}")
        config = dataclasses.replace(config, iterations=args.iterations)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.agent is not None:
        config = dataclasses.replace(config, agent=args.agent)
    pipeline = Pipeline(config, args.out, address=args.address, device=args.device,
                        progress=not args.quiet, **_given(workers=args.workers))  # fmt: skip
    report = pipeline.run()
    scores, base = report["stages"]["evaluate"], report["stages"]["baseline"]
    print(
        f"pipeline done: dream {scores['dream']['mean']:.1f} +- {scores['dream']['std']:.1f}, "
        f"real {scores['real']['mean']:.1f} +- {scores['real']['std']:.1f} (collection policy "
        f"{base['mean']:.1f} +- {base['std']:.1f}); report in {Path(args.out) / 'report.md'}"
    )
    from dreamgym.dreams.registration import dream_id

    out, gym_id = Path(args.out), dream_id(args.env)
    print("next steps:")
    print(f"  watch the dream: {out / 'videos' / 'dream.mp4'} (also compare.mp4, temperatures.mp4)")
    if gym_id is not None:
        print(f"  play in it: gym.make({gym_id!r}, world_model={str(pipeline.bundle())!r})")
    if args.preset == "debug":
        print("  a dream worth training in: --preset small (tens of minutes) or cpu (about an "
              "hour on 2 cores), with another --out")  # fmt: skip


def _add_pipeline_parser(commands) -> None:
    from dreamgym.pipeline import Pipeline, preset_names

    pipeline = commands.add_parser(
        "pipeline",
        parents=_parents("address", "device", "quiet", "threads"),
        help="collect -> train V -> train M -> evolve -> evaluate -> render, resumable",
        description="The whole World Models recipe in one command. Re-running it resumes at the "
        "first unfinished stage. The debug preset takes minutes on 2 CPU cores.",
    )
    pipeline.add_argument("--env", required=True, help="carracing | doom-takecover | ...")
    pipeline.add_argument(
        "--preset", default="debug",
        help=f"{' | '.join(preset_names())} (default: debug; cpu-driver is CarRacing's)",
    )  # fmt: skip
    pipeline.add_argument("--out", required=True, help="run directory")
    pipeline.add_argument(
        "--iterations",
        type=int,
        help="rounds of the paper's iterative training after the first evolution: collect with "
        "the controller (+ noise), continue M on all data, evolve again (default: the preset's)",
    )
    pipeline.add_argument(
        "--seed", type=int,
        help="base seed of the data, training and evolution: an independent run (default: 0)",
    )  # fmt: skip
    pipeline.add_argument(
        "--agent", choices=["cmaes", "ppo", "sac", "td3"],
        help="the final agent: the paper's linear controller evolved with CMA-ES (default), or "
        "an SB3 agent trained in the final dream (docs/agents.md)",
    )  # fmt: skip
    pipeline.add_argument(
        "--workers", type=int, help=f"Ray workers {_default(Pipeline, 'workers')}"
    )
    pipeline.set_defaults(func=_cmd_pipeline)


def _cmd_fidelity(args: argparse.Namespace) -> None:
    from dreamgym.fidelity import FidelityConfig, FidelityReport

    config = FidelityConfig(
        temperature=args.temperature, done_mode=args.done_mode, probes=not args.no_probes,
        max_episode_steps=args.max_steps, address=args.address,
        **_given(dream_episodes=args.episodes, real_episodes=args.real_episodes,
                 held_out=args.held_out, horizon=args.horizon, seed=args.seed,
                 workers=args.workers),
    )  # fmt: skip
    out = Path(args.out or output_beside(args.world_model, "fidelity"))
    fidelity = FidelityReport(args.world_model, out, data=args.data, policy=args.policy,
                              controllers=args.controller or (), config=config,
                              device=args.device, progress=not args.quiet)  # fmt: skip
    report = fidelity.run()
    print("\n".join(report["verdicts"]))
    held_out = report["held_out"]
    if held_out["source"] == "collected":
        print(f"held-out real episodes: {report['held_out_episodes']} collected by this "
              f"report ({held_out['reason']}; policy {held_out['policy']}, seed "
              f"{held_out['seed']})")  # fmt: skip
    print("wrote " + ", ".join(str(f) for f in fidelity.files))
    print(f"real episodes in {out / 'real'}")


def _add_fidelity_parser(commands) -> None:
    from dreamgym.fidelity import FidelityConfig

    fidelity = commands.add_parser(
        "fidelity",
        parents=_parents("temperature", "done_mode", "address", "device", "quiet", "threads"),
        help="measure whether a dream can be trusted, against held-out real episodes",
        description="Compares the dream with held-out real episodes: survival under the "
        "collection policy, probe policies (constant actions) and controllers (dream vs real), "
        "the done head's discrimination and calibration, the reward head, and open-loop "
        "prediction. Prints one verdict per check; writes fidelity.md/.json and plots.",
    )
    fidelity.add_argument(
        "--world-model", required=True, help="world-model bundle directory, or pretrained:NAME"
    )
    fidelity.add_argument(
        "--data",
        help="held-out real episodes (default: the bundle's validation episodes; when they are "
        "not on this machine, --held-out episodes collected into OUT/real/held-out)",
    )
    fidelity.add_argument("--policy", help="the data's collection policy (default: the data's)")
    fidelity.add_argument(
        "--controller",
        action="append",
        help="a saved controller or agent to compare, or pretrained:NAME (repeatable)",
    )
    fidelity.add_argument(
        "--episodes",
        type=int,
        help="dream episodes per policy " + _default(FidelityConfig, "dream_episodes"),
    )
    fidelity.add_argument(
        "--real-episodes",
        type=int,
        help="real episodes per probe or controller " + _default(FidelityConfig, "real_episodes"),
    )
    fidelity.add_argument(
        "--held-out",
        type=int,
        help=f"held-out episodes followed {_default(FidelityConfig, 'held_out')}",
    )
    fidelity.add_argument(
        "--horizon", type=int, help=f"open-loop horizon {_default(FidelityConfig, 'horizon')}"
    )
    fidelity.add_argument("--no-probes", action="store_true", help="skip the probe policies")
    fidelity.add_argument("--max-steps", type=int, help="episode cap (default: the bundle's)")
    fidelity.add_argument("--seed", type=int, help=_default(FidelityConfig, "seed"))
    fidelity.add_argument(
        "--workers",
        type=int,
        help=f"Ray workers (real episodes) {_default(FidelityConfig, 'workers')}",
    )
    fidelity.add_argument(
        "--out",
        help="report directory (default: WORLD_MODEL/fidelity; ./NAME/fidelity for "
        "pretrained:NAME)",
    )
    fidelity.set_defaults(func=_cmd_fidelity)


def _cmd_plan(args: argparse.Namespace) -> None:
    import numpy as np

    from dreamgym.agents.goals import (
        OraclePolicy,
        UniformPolicy,
        evaluate_goal_reaching,
        markdown,
        pair_set,
        summary_lines,
    )
    from dreamgym.agents.planning import Planner, PlannerPolicy, planner_preset
    from dreamgym.common.device import resolve_device
    from dreamgym.common.io import atomic_write_bytes, atomic_write_json
    from dreamgym.dreams.video import write_video
    from dreamgym.rollouts import RolloutDataset
    from dreamgym.worldmodels import load

    if args.proprio_weight is not None:
        validate.real("proprio weight", args.proprio_weight, 0.0)
    episodes = _or_default(args.episodes, pair_set, "pairs")
    offset = _or_default(args.goal_offset, pair_set, "offset")
    pair_seed = _or_default(args.pair_seed, pair_set, "seed")
    budget = _or_default(args.budget, evaluate_goal_reaching, "budget")
    seed = _or_default(args.seed, PlannerPolicy, "seed")
    validate.integer("budget", budget)
    model = load(args.world_model, resolve_device(args.device))
    config = planner_preset(args.preset, method=args.planner, samples=args.samples,
                            iterations=args.iterations, horizon=args.horizon,
                            execute=args.execute, temperature=args.temperature,
                            energy=args.energy)  # fmt: skip
    Planner(model, config)  # refuses a model without a goal cost before any work
    if args.proprio_weight is not None:
        if not hasattr(model, "proprio_weight"):
            raise DreamgymError("--proprio-weight needs a latent world model trained with proprio")
        model.proprio_weight = args.proprio_weight
    out = Path(args.out or output_beside(args.world_model, "plan"))
    pairs = pair_set(model.info, pairs=episodes, offset=offset, seed=pair_seed, data=args.data,
                     collect_to=out, progress=not args.quiet,
                     **_given(workers=args.workers))  # fmt: skip
    if not pairs.held_out:
        print(f"warning: planning on training pairs ({pairs.note})", flush=True)
    dataset = RolloutDataset(pairs.data)
    low, high = model.action_space.low, model.action_space.high
    real = len(model.info["action_low"])

    policies = {"planner": lambda k, pair: PlannerPolicy(
        model, config, pair.goal_frame, seed=seed + k, budget=budget,
        goal_proprio=pair.goal_proprio)}  # fmt: skip
    if not args.no_baselines:
        policies["random"] = lambda k, pair: UniformPolicy(low[:real], high[:real], seed + k)
        policies["oracle"] = lambda k, pair: OraclePolicy(
            dataset.episode(pair.episode).actions[pair.start : pair.start + pair.offset]
        )
    say = None if args.quiet else (lambda line: print(line, flush=True))
    report = evaluate_goal_reaching(model.env, pairs, policies, pairs=episodes, offset=offset,
                                    budget=budget, seed=pair_seed, videos=args.videos,
                                    progress=say)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    videos = []
    for name, result in report["policies"].items():
        for k, r in enumerate(result["results"]):
            frames = r.pop("frames")
            if frames:
                goal = dataset.episode(r["episode"]).frames[r["start"] + offset]
                videos.append(write_video([np.concatenate([f, goal], axis=1) for f in frames],
                                          out / f"{name}-{k}.mp4", fps=10))  # fmt: skip
    for line in summary_lines(report):
        print(line)
    report["planner"] = {**dataclasses.asdict(config),
                         "proprio_weight": getattr(model, "proprio_weight", None)}  # fmt: skip
    atomic_write_json(out / "plan.json", report)
    title = f"Goal reaching: {model.env}, {model.info.get('source', args.world_model)}"
    atomic_write_bytes(out / "plan.md", markdown(report, title).encode())
    print(f"report in {out / 'plan.json'} and {out / 'plan.md'}")
    if videos:
        print(f"videos (agent | goal): {', '.join(str(v) for v in videos)}")


def _add_plan_parser(commands) -> None:
    from dreamgym.agents.goals import evaluate_goal_reaching, pair_set
    from dreamgym.agents.planning import PlannerPolicy

    plan = commands.add_parser(
        "plan",
        parents=_parents("device", "quiet", "threads"),
        help="reach goals by planning in a world model (CEM or MPPI + MPC), measured the "
        "DINO-WM way",
        description="Draws start/goal pairs from held-out recorded episodes (the goal: the "
        "state GOAL_OFFSET recorded steps later), plans with CEM or MPPI in the world model, "
        "acts in the real env for BUDGET steps, and reports the success rate beside the random "
        "policy and a replay oracle on the same pairs, overall and by how far the goal moves "
        "the block. Writes plan.json, plan.md and videos (agent | goal).",
    )
    plan.add_argument("--world-model", required=True, help="a bundle with a goal cost")
    plan.add_argument("--data", help="held-out episodes with states (default: the trainer's "
                      "validation episodes when there are enough, else episodes that plan "
                      "collects into OUT with a seed outside the training data's)")  # fmt: skip
    plan.add_argument(
        "--episodes", type=int, help=f"start/goal pairs {_default(pair_set, 'pairs')}"
    )
    plan.add_argument("--planner", choices=["cem", "mppi"],
                      help="cem or mppi (default: the preset's, cem)")  # fmt: skip
    plan.add_argument("--preset", default="cpu", choices=["cpu", "dino-wm", "vjepa2-ac", "debug"],
                      help="planner preset (default: cpu)")  # fmt: skip
    plan.add_argument("--samples", type=int, help="override the preset's samples")
    plan.add_argument("--iterations", type=int, help="override the preset's iterations")
    plan.add_argument("--horizon", type=int, help="override the preset's horizon")
    plan.add_argument("--execute", type=int, help="plan steps executed before replanning")
    plan.add_argument("--temperature", type=float,
                      help="MPPI's lambda, in standard deviations of the costs (default: "
                      "0.1)")  # fmt: skip
    plan.add_argument("--energy", choices=["mse", "l1"],
                      help="the goal cost's distance: mse (DINO-WM) or l1 (V-JEPA 2-AC; the "
                      "vjepa2-ac preset's) (default: the preset's, else the model's)")  # fmt: skip
    plan.add_argument("--proprio-weight", type=float,
                      help="weight of the proprio term in a latent model's goal cost (default: 1, "
                      "DINO-WM's objective; docs/planning.md measures others)")  # fmt: skip
    plan.add_argument(
        "--budget",
        type=int,
        help=f"env steps per pair {_default(evaluate_goal_reaching, 'budget')}",
    )
    plan.add_argument(
        "--goal-offset", type=int, help=f"goal steps ahead {_default(pair_set, 'offset')}"
    )
    plan.add_argument(
        "--pair-seed", type=int, help=f"seed of the pairs {_default(pair_set, 'seed')}"
    )
    plan.add_argument("--seed", type=int, help=f"planner seed {_default(PlannerPolicy, 'seed')}")
    plan.add_argument("--videos", type=int, default=3, help="pairs filmed per policy")
    plan.add_argument("--workers", type=int, help="Ray workers collecting held-out episodes")
    plan.add_argument("--no-baselines", action="store_true", help="skip random and oracle")
    plan.add_argument("--out", help="report directory (default: WORLD_MODEL/plan)")
    plan.set_defaults(func=_cmd_plan)


def _cmd_export(args: argparse.Namespace) -> None:
    from dreamgym.export import export_bundle, export_run

    if args.run:
        out = export_run(args.run, args.out, name=args.name,
                         **_given(hardware=args.hardware, commit=args.commit))  # fmt: skip
    else:
        out = export_bundle(args.world_model, args.out, controller=args.controller)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"exported to {out} ({size / 2**20:.1f} MiB)")


def _add_export_parser(commands) -> None:
    from dreamgym.export import export_run

    export = commands.add_parser(
        "export",
        help="write a small float16 copy of a world model and its controller, to share",
        description="Writes the world model's weights in float16 without training state, the "
        "controller beside it (relocatable), and for a pipeline run (--run) a MODEL_CARD.md "
        "with its data, scores, fidelity, float16 agreement and checksums. dreamgym's "
        "pretrained models are made this way.",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a finished pipeline run directory")
    source.add_argument("--world-model", help="a world-model bundle directory")
    export.add_argument("--controller", help="with --world-model: a controller to include")
    export.add_argument("--out", required=True, help="a new or empty directory")
    export.add_argument("--name", help="with --run: the model's short name (default: OUT's name)")
    export.add_argument(
        "--hardware", help=f"with --run: the training machine {_default(export_run, 'hardware')}"
    )
    export.add_argument(
        "--commit", help=f"with --run: the dreamgym commit {_default(export_run, 'commit')}"
    )
    export.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    from dreamgym import __version__
    from dreamgym.rollouts import CollectConfig

    parser = argparse.ArgumentParser(
        prog="dreamgym", description="Train agents inside learned world models ('dreams')."
    )
    parser.add_argument("--version", action="version", version=f"dreamgym {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = commands.add_parser(
        "envs",
        help="list the real environments and their spaces",
        description="The real environments dreamgym can collect from, train on and dream of: "
        "their names (for --env), Gymnasium ids, action spaces, frames and episode caps.",
    )
    envs.set_defaults(func=_cmd_envs)

    collect = commands.add_parser(
        "collect",
        parents=_parents("address", "quiet"),
        help="collect episodes from a real env on Ray (resumable)",
        description="Collect episodes from a real environment in parallel on Ray. Each episode "
        "is written atomically to DATA/episode_NNNNNN.npz; re-running the same command after a "
        "kill completes the missing episodes.",
    )
    collect.add_argument("--env", required=True, help="real env name (see `dreamgym envs`)")
    collect.add_argument("--episodes", type=int, required=True, help="episodes the dataset holds")
    collect.add_argument("--out", required=True, help="dataset directory")
    collect.add_argument(
        "--policy",
        help="random | brownian | repeat (random action held 1-10 steps) | a saved policy file, "
        f"controller or agent directory {_default(CollectConfig, 'policy')}",
    )
    collect.add_argument(
        "--policy-noise",
        type=float,
        metavar="SIGMA",
        help="with a saved controller as --policy: add Gaussian noise of this std to its tanh "
        "outputs (clipped to [-1, 1]) for exploration, seeded per episode (an agent: to its "
        "actions scaled to [-1, 1])",
    )
    collect.add_argument(
        "--workers", type=int, help=f"Ray workers {_default(CollectConfig, 'workers')}"
    )
    collect.add_argument("--seed", type=int, help=f"base seed {_default(CollectConfig, 'seed')}")
    collect.add_argument("--max-steps", type=int, help="time limit per episode (default: env's)")
    collect.add_argument(
        "--min-length",
        type=int,
        help="drop episodes with fewer steps (the Doom recipe drops <= 100 frames: 101) "
        + _default(CollectConfig, "min_length"),
    )
    collect.add_argument(
        "--frame-skip",
        type=int,
        help=f"repeat each action N frames {_default(CollectConfig, 'frame_skip')}",
    )
    collect.set_defaults(func=_cmd_collect)
    _add_train_parser(commands)
    _add_agent_parsers(commands)
    _add_render_parser(commands)
    _add_pipeline_parser(commands)
    _add_fidelity_parser(commands)
    _add_export_parser(commands)
    _add_plan_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dreamgym`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if isinstance(getattr(args, "env", None), str):
        from dreamgym.envs.registry import canonical_env_name

        args.env = canonical_env_name(args.env)  # "CarRacing", "Real-CarRacing-v0" work too
    # Warnings (an episode skipped, a cache rebuilt) as one line each, like the errors.
    formatwarning = warnings.formatwarning
    warnings.formatwarning = lambda message, *_, **__: (
        f"dreamgym {args.command}: warning: {message}\n"
    )
    threads = getattr(args, "threads", None)
    try:
        if threads is not None:
            from dreamgym.common.threads import set_threads

            set_threads(threads)
        args.func(args)
    except DreamgymError as exc:
        print(f"dreamgym {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"dreamgym {args.command}: interrupted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    finally:  # the process as it was, for callers of main() in Python
        warnings.formatwarning = formatwarning
        if threads is not None:
            from dreamgym.common.threads import set_threads

            set_threads(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
