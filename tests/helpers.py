"""Shared test helpers: real world models with chosen head weights (for the dream's episode
logic), and the frame-causality check of the latent predictors."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from dreamgym import worldmodels


def model_with_heads(bundle: Path, done_bias: float, reward_bias: float = 0.0):
    """A fresh copy of the bundle's model whose done and reward heads output constants."""
    model = worldmodels.load(bundle)
    with torch.no_grad():
        for head, bias in ((model.mdnrnn.done, done_bias), (model.mdnrnn.reward, reward_bias)):
            head.weight.zero_()
            head.bias.fill_(bias)
    return model


def member_0_only(bundle: Path, out: Path) -> Path:
    """A copy of the ensemble ``bundle`` in ``out`` that lists only its member 0 (one M)."""
    shutil.copytree(bundle, out, ignore=shutil.ignore_patterns("tb", "mdnrnn-m*"))
    info = json.loads((out / "bundle.json").read_text())
    del info["files"]["mdnrnn_members"]
    (out / "bundle.json").write_text(json.dumps(info))
    return out


def damage_member(path: Path, member: str = "frames.npy") -> None:
    """Flip bytes in the middle of one member's compressed data of the .npz at ``path``: its
    zip directory (and every other member) stays intact, the member no longer decompresses."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    raw = bytearray(path.read_bytes())
    name_size, extra_size = (int.from_bytes(raw[info.header_offset + k : info.header_offset + k
                                                + 2], "little") for k in (26, 28))  # fmt: skip
    start = info.header_offset + 30 + name_size + extra_size  # after the local file header
    middle = start + info.compress_size // 2
    raw[middle : middle + 32] = bytes(b ^ 0xFF for b in raw[middle : middle + 32])
    path.write_bytes(bytes(raw))
    with zipfile.ZipFile(path) as archive:  # the directory still reads; the member does not
        assert archive.testzip() == member


def run(env, seed: int, actions: np.ndarray):
    """Reset with ``seed``, play ``actions``; returns the list of step outputs."""
    out = [env.reset(seed=seed)[0]]
    for action in actions:
        out.append(env.step(action))
    return out


def assert_frame_causal(model, tokens, actions, proprio, moves: float = 1e-5) -> None:
    """A predictor's outputs for frames 0..t ignore later frames (within 1e-6) and depend on
    the frame after t (by more than ``moves``), and ``last=True`` reads out the last one."""
    pred, pred_proprio = model(tokens, actions, proprio)
    frames = tokens.shape[1]
    for t in range(frames):
        changed = [x.clone() for x in (tokens, actions, proprio)]
        for x in changed:
            x[:, t + 1 :] += 5.0
        other, other_proprio = model(*changed)
        torch.testing.assert_close(other[:, : t + 1], pred[:, : t + 1], rtol=0, atol=1e-6)
        torch.testing.assert_close(other_proprio[:, : t + 1], pred_proprio[:, : t + 1],
                                   rtol=0, atol=1e-6)  # fmt: skip
        if t < frames - 1:
            assert (other[:, t + 1 :] - pred[:, t + 1 :]).abs().max() > moves
    last, last_proprio = model(tokens, actions, proprio, last=True)
    torch.testing.assert_close(last, pred[:, -1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(last_proprio, pred_proprio[:, -1:], rtol=0, atol=1e-6)
