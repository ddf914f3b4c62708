"""Shared test helpers: real world models with chosen head weights (for the dream's episode
logic), and the frame-causality check of the latent predictors."""

from __future__ import annotations

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
