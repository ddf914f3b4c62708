"""World-model training throughput: the trainers against bare PyTorch loops.

V: images/s of ``VAETrainer.train_epoch`` (frames read from the dataset's memory map, uint8 until
the device) against a bare loop over the same model size on a batch already on the device.
M: optimizer steps/s of ``MDNRNNTrainer.train_epoch`` (windows gathered and z re-sampled per
batch) against a bare loop on tensors already on the device. The ratio trainer/bare is the
trainer's overhead (target >= 0.8 on CPU). With CUDA, the same runs on the GPU too.

    python benchmarks/train_throughput.py                 # collects a small CarRacing set first
    python benchmarks/train_throughput.py --data DATA     # or uses yours
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dreamgym.rollouts import CollectConfig, collect
from dreamgym.worldmodels.vm.mdnrnn import MDNRNN, mdnrnn_losses
from dreamgym.worldmodels.vm.train_mdnrnn import MDNRNNTrainer
from dreamgym.worldmodels.vm.train_vae import VAETrainer
from dreamgym.worldmodels.vm.vae import ConvVAE, vae_loss


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def bare_vae(batch: int, device: torch.device, bf16: bool, repeats: int) -> float:
    model = ConvVAE(32).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, 64, 64, device=device)

    def step():
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            recon, mu, logvar = model(x)
        loss = vae_loss(x, recon, mu, logvar, 0.5)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch / timed(step, device, repeats)


def bare_mdnrnn(trainer: MDNRNNTrainer, device: torch.device, repeats: int) -> float:
    c = trainer.config
    model = MDNRNN(c).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr)
    b, t = c.batch_size, c.seq_len
    z, next_z = (
        torch.randn(b, t, c.z_size, device=device),
        torch.randn(b, t, c.z_size, device=device),
    )
    action = torch.randn(b, t, c.action_size, device=device)
    reward, done = (
        torch.randn(b, t, device=device),
        torch.zeros(b, t, dtype=torch.bool, device=device),
    )
    mask = torch.ones(b, t, dtype=torch.bool, device=device)
    restart = torch.zeros(b, t, dtype=torch.bool, device=device)

    def step():
        heads, _ = model(z, action, restart if c.restart_flag else None)
        loss = mdnrnn_losses(heads, next_z, reward, done, mask, c)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()

    return 1 / timed(step, device, repeats)


def run(data: Path, device: torch.device, vae_batch: int, bf16: bool, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vae = VAETrainer(
            data,
            tmp,
            preset="paper",
            device=str(device),
            bf16=bf16,
            overrides={"batch_size": vae_batch, "val_fraction": 0.0, "epochs": 1},
        )
        frames = len(vae.train_rows)
        trainer_rate = frames / timed(lambda: vae.train_epoch(progress=False), device, repeats)
        bare_rate = bare_vae(vae_batch, device, bf16, repeats * max(1, frames // vae_batch))
        print(
            f"{device.type:5} V  batch {vae_batch:5} {'bf16' if bf16 else 'fp32'}: trainer "
            f"{trainer_rate:9,.0f} img/s   bare {bare_rate:9,.0f} img/s   "
            f"ratio {trainer_rate / bare_rate:.2f}"
        )
        vae.fit(progress=False)  # one epoch, to give M a V
        m = MDNRNNTrainer(
            data,
            tmp,
            tmp,
            preset="paper",
            device=str(device),
            overrides={"batch_size": 8, "seq_len": 100, "val_fraction": 0.0, "epochs": 1},
        )
        steps = -(-len(m.train_eps) // m.config.batch_size)
        trainer_rate = steps / timed(m.train_epoch, device, repeats)
        bare_rate = bare_mdnrnn(m, device, repeats * steps)
        print(
            f"{device.type:5} M  batch 8 x 100 steps, H={m.config.hidden_size}: trainer "
            f"{trainer_rate:7,.1f} steps/s   bare {bare_rate:7,.1f} steps/s   "
            f"ratio {trainer_rate / bare_rate:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a CarRacing rollout dataset")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            collect(
                CollectConfig(
                    env="carracing", episodes=16, out=data, workers=2, max_episode_steps=100
                ),
                progress=False,
            )
        if not args.gpu_only:
            run(data, torch.device("cpu"), vae_batch=100, bf16=False, repeats=args.repeats)
        if torch.cuda.is_available():
            run(data, torch.device("cuda"), vae_batch=1024, bf16=True, repeats=args.repeats)


if __name__ == "__main__":
    main()
