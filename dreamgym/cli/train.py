"""``dreamgym train``: world-model components (V, M, a latent model), or an agent in a dream."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamgym.cli.common import default, given, parents
from dreamgym.errors import DreamgymError
from dreamgym.presets import preset_names


def add_parser(commands) -> None:
    from dreamgym.worldmodels.latent.train import LatentTrainer
    from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
    from dreamgym.worldmodels.vm.train_vae import VAETrainer

    train = commands.add_parser(
        "train", help="train world-model components (V, then M), or an agent in a dream"
    )
    parts = train.add_subparsers(dest="component", required=True, metavar="COMPONENT")
    vae = parts.add_parser(
        "vae",
        parents=parents("device", "quiet", "threads"),
        help="train V, the ConvVAE, on a dataset's frames",
        description="Train V on the frames of a rollout dataset. Re-running the same command "
        "resumes from the last finished epoch.",
    )
    mdn = parts.add_parser(
        "mdnrnn",
        parents=parents("device", "quiet", "threads"),
        help="train M, the MDN-RNN, on V's latents; writes a world-model bundle",
        description="Encode the dataset(s) with V (cached), then train M. OUT becomes a complete "
        "world-model bundle (V, M, initial latents, bundle.json); it may be V's run directory.",
    )
    latent = parts.add_parser(
        "latent",
        parents=parents("device", "quiet", "threads"),
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
    trainers = (("vae", vae, VAETrainer), ("mdnrnn", mdn, MDNRNNTrainer),
                ("latent", latent, LatentTrainer))  # fmt: skip
    for kind, parser, trainer in trainers:
        parser.add_argument("--out", required=True, help="run directory (resumed if it exists)")
        parser.add_argument(
            "--preset",
            choices=preset_names(kind),
            help=f"settings preset {default(trainer, 'preset')[:-1]}; debug trains in seconds)",
        )
        parser.add_argument("--epochs", type=int, help="override the preset's epochs")
        parser.add_argument("--batch-size", type=int, help="override the preset's batch size")
        parser.add_argument("--lr", type=float, help="override the preset's learning rate")
        parser.add_argument("--seed", type=int, help="override the preset's seed (0)")
        parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
        parser.add_argument(
            "--skip-corrupt", action="store_true", help="skip corrupt episode files with a warning"
        )
        parser.set_defaults(func=run)
    _add_agent_parser(parts)
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


def _add_agent_parser(parts) -> None:
    from dreamgym.agents.sb3_agent import ALGOS

    agent = parts.add_parser(
        "agent",
        parents=parents("temperature", "done_mode", "device", "quiet", "threads"),
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
        "--preset", choices=preset_names("agent"),
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
    agent.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.component == "agent":
        _run_agent(args)
        return
    overrides = {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
    }  # fmt: skip
    common = {
        "overrides": overrides, "device": args.device, "bf16": args.bf16,
        "skip_corrupt": args.skip_corrupt, **given(preset=args.preset),
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
                                **{**common, "overrides": given(**overrides)})  # fmt: skip
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


def _run_agent(args: argparse.Namespace) -> None:
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
