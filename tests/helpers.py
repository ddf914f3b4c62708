"""Real world models with chosen head weights, for testing the dream's episode logic."""

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
