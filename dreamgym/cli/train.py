"""``dreamgym train``: world-model components (V, M, a latent model), or an agent in a dream."""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamgym.cli.common import add_config_flags, config_values, default, given, parents
from dreamgym.presets import preset_names

# The config fields that each trainer's flags set (their types and help: the configs').
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "seed")
VAE_FLAGS = (*TRAIN_FLAGS, "z_size", "max_episodes")
MDNRNN_FLAGS = (*TRAIN_FLAGS, "seq_len", "hidden_size", "dropout", "dream_dropout",
                "length_batches")  # fmt: skip
LATENT_FLAGS = (*TRAIN_FLAGS, "encoder", "dinov2_weights", "vae", "pixel_grid", "predictor",
                "frameskip", "history", "proprio", "decoder", "reward_head", "rollout",
                "rollout_from")  # fmt: skip
LATENT_METAVARS = {"pixel_grid": "G", "rollout": "K", "rollout_from": "EPOCH"}
# AgentConfig's temperature and done_mode: the shared --temperature and --done-mode.
AGENT_FLAGS = ("algo", "timesteps", "num_envs", "learning_rate", "net_arch", "seed",
               "observation_mode", "dropout", "max_episode_steps", "checkpoint_every")  # fmt: skip
AGENT_RENAME = {"learning_rate": "--lr", "observation_mode": "--observation",
                "max_episode_steps": "--max-steps"}  # fmt: skip


def add_parser(commands) -> None:
    from dreamgym.worldmodels.latent.config import ENCODERS, PREDICTORS, LatentConfig
    from dreamgym.worldmodels.latent.train import LatentTrainer
    from dreamgym.worldmodels.vm.mdnrnn import MDNRNNConfig
    from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
    from dreamgym.worldmodels.vm.train_vae import VAETrainer
    from dreamgym.worldmodels.vm.vae import VAEConfig

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
    vae.add_argument("--data", required=True, help="rollout dataset directory")
    mdn.add_argument(
        "--data",
        required=True,
        action="append",
        help="rollout dataset directory; repeat it to train on several datasets of one env and "
        "action space (the paper's iterative training: re-run with a new dataset added and a "
        "larger --epochs to continue M on all the data)",
    )
    mdn.add_argument("--vae", required=True, help="V's run directory")
    trainers = (("vae", vae, VAETrainer), ("mdnrnn", mdn, MDNRNNTrainer),
                ("latent", latent, LatentTrainer))  # fmt: skip
    for kind, parser, trainer in trainers:
        parser.add_argument("--out", required=True, help="run directory (resumed if it exists)")
        parser.add_argument(
            "--preset",
            choices=preset_names(kind),
            help=f"settings preset {default(trainer, 'preset')[:-1]}; debug trains in seconds)",
        )
        parser.add_argument("--bf16", action="store_true",
                            help="bf16 autocast: a GPU's; on a CPU with AVX512-BF16 it speeds "
                            "up the latent conv predictor, not V or M")  # fmt: skip
        parser.add_argument(
            "--skip-corrupt", action="store_true", help="skip corrupt episode files with a warning"
        )
        parser.set_defaults(func=run)
    add_config_flags(vae, VAEConfig, VAE_FLAGS)
    add_config_flags(mdn, MDNRNNConfig, MDNRNN_FLAGS)
    add_config_flags(latent, LatentConfig, LATENT_FLAGS, metavar=LATENT_METAVARS,
                     choices={"encoder": ENCODERS, "predictor": PREDICTORS})  # fmt: skip
    _add_agent_parser(parts)
    mdn.add_argument("--members", type=int, metavar="K",
                     help="train an ensemble of K Ms, one after the other, from the same start "
                     "with their own sampling seeds; each dream episode then dreams with one "
                     "drawn at its start (default: as many as OUT holds, 1 for a new "
                     "run)")  # fmt: skip


def _add_agent_parser(parts) -> None:
    from dreamgym.agents.sb3_config import ALGOS, AgentConfig

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
    agent.add_argument(
        "--preset", choices=preset_names("agent"),
        help="settings preset (default: the one named after the world model's env, else "
        "default; debug trains in seconds)",
    )  # fmt: skip
    add_config_flags(agent, AgentConfig, AGENT_FLAGS, rename=AGENT_RENAME,
                     choices={"algo": ALGOS}, metavar={"checkpoint_every": "STEPS"})  # fmt: skip
    agent.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    if args.component == "agent":
        _run_agent(args)
        return
    common = {
        "device": args.device, "bf16": args.bf16, "skip_corrupt": args.skip_corrupt,
        **given(preset=args.preset),
    }  # fmt: skip
    if args.component == "latent":
        from dreamgym.worldmodels.latent.config import LatentConfig
        from dreamgym.worldmodels.latent.train import LatentTrainer

        overrides = given(**config_values(args, LatentConfig, LATENT_FLAGS))
        trainer = LatentTrainer(args.data, args.out, overrides=overrides, **common)
    elif args.component == "vae":
        from dreamgym.worldmodels.vm.train_vae import VAETrainer
        from dreamgym.worldmodels.vm.vae import VAEConfig

        overrides = config_values(args, VAEConfig, VAE_FLAGS)
        trainer = VAETrainer(args.data, args.out, overrides=overrides, **common)
    else:
        from dreamgym.worldmodels.vm.mdnrnn import MDNRNNConfig
        from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer

        overrides = config_values(args, MDNRNNConfig, MDNRNN_FLAGS)
        trainer = MDNRNNTrainer(args.data, args.vae, args.out, overrides=overrides, **common,
                                members=args.members)  # fmt: skip
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
    from dreamgym.agents.sb3_config import AgentConfig

    overrides = {**config_values(args, AgentConfig, AGENT_FLAGS, AGENT_RENAME),
                 "temperature": args.temperature, "done_mode": args.done_mode}  # fmt: skip
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
