"""The DINO-WM predictor: frame-block causal attention, shapes, and the paper's size."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import assert_frame_causal

from dreamgym.worldmodels.latent.predictors import Predictor, PredictorConfig, frame_causal_mask

SMALL = PredictorConfig(frames=3, tokens=4, token_dim=16, action_dim=6, proprio_dim=4,
                        action_emb=3, proprio_emb=2, depth=2, heads=2, head_dim=8,
                        mlp=32)  # fmt: skip


def inputs(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, 3, 4, 16, generator=g)
    actions = torch.randn(batch, 3, 6, generator=g)
    proprio = torch.randn(batch, 3, 4, generator=g)
    return tokens, actions, proprio


def test_mask_lets_a_frame_see_its_own_and_earlier_frames_only():
    mask = frame_causal_mask(3, 2)
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                             [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],
                            dtype=torch.bool)  # fmt: skip
    assert torch.equal(mask, expected)


def test_predictions_for_a_frame_ignore_later_frames():
    torch.manual_seed(0)
    model = Predictor(SMALL).eval()
    tokens, actions, proprio = inputs()
    pred, pred_proprio = model(tokens, actions, proprio)
    assert pred.shape == (2, 3, 4, 16) and pred_proprio.shape == (2, 3, 4)
    assert_frame_causal(model, tokens, actions, proprio)
    # Earlier frames do change the prediction for a later one.
    changed = tokens.clone()
    changed[:, 0] += 5.0
    assert (model(changed, actions, proprio)[0][:, 2] - pred[:, 2]).abs().max() > 1e-5
    residual = Predictor(dataclasses.replace(SMALL, residual=True)).eval()
    assert_frame_causal(residual, tokens, actions, proprio)


def test_a_shorter_history_gives_the_same_first_predictions():
    torch.manual_seed(0)
    model = Predictor(SMALL).eval()
    tokens, actions, proprio = inputs()
    full, _ = model(tokens, actions, proprio)
    short, _ = model(tokens[:, :2], actions[:, :2], proprio[:, :2])
    torch.testing.assert_close(short, full[:, :2], rtol=0, atol=1e-6)


def test_without_proprio_and_bad_shapes():
    model = Predictor(PredictorConfig(frames=2, tokens=1, token_dim=8, action_dim=3, depth=1,
                                      heads=2, head_dim=4, mlp=16))  # fmt: skip
    pred, proprio = model(torch.randn(5, 2, 1, 8), torch.randn(5, 2, 3))
    assert pred.shape == (5, 2, 1, 8) and proprio is None
    with pytest.raises(ValueError, match="do not fit"):
        model(torch.randn(5, 3, 1, 8), torch.randn(5, 3, 3))
    with_proprio = Predictor(SMALL)
    with pytest.raises(ValueError, match="needs proprio"):
        with_proprio(*inputs()[:2])


def test_residual_predictor_copies_until_trained_and_stays_causal():
    torch.manual_seed(0)
    model = Predictor(dataclasses.replace(SMALL, residual=True)).eval()
    tokens, actions, proprio = inputs()
    with torch.no_grad():
        for layer in (model.head, model.proprio_skip):
            layer.weight.zero_()
            layer.bias.zero_()
    pred, pred_proprio = model(tokens, actions, proprio)
    torch.testing.assert_close(pred, tokens, rtol=0, atol=0)
    torch.testing.assert_close(pred_proprio, proprio, rtol=0, atol=0)
    # The linear path: next proprio = proprio + W [proprio, actions] + b, read per frame.
    with torch.no_grad():
        model.proprio_skip.weight[0, 4] = 2.0  # the first proprio dim gains 2 x action 0
    _, moved = model(tokens, actions, proprio)
    torch.testing.assert_close(moved[..., 0], proprio[..., 0] + 2 * actions[..., 0])
    later = [x.clone() for x in (tokens, actions, proprio)]
    for x in later:
        x[:, 2:] += 5.0
    torch.testing.assert_close(model(*later)[1][:, :2], moved[:, :2], rtol=0, atol=1e-6)
    assert Predictor(dataclasses.replace(SMALL, proprio_dim=0, residual=True)).proprio_skip is None


def test_dino_wm_shape():
    """DINO-WM: 196 DINOv2 tokens of 384 + 10-d action and proprio embeddings = 404-wide
    tokens; 6 blocks of 16 heads x 64 and MLP 2048."""
    config = PredictorConfig(frames=3, tokens=196, token_dim=384, action_dim=2 * 5,
                             proprio_dim=4)  # fmt: skip
    assert config.width == 404
    model = Predictor(config)
    assert model.pos_embed.shape == (1, 3 * 196, 404)
    assert model.blocks[0].attn.qkv.weight.shape == (3 * 16 * 64, 404)
    norms, qkv, proj = 2 * 2 * 404, 404 * 3072 + 3072, 1024 * 404 + 404
    block = norms + qkv + proj + (404 * 2048 + 2048) + (2048 * 404 + 404)
    embeddings = 3 * 196 * 404 + (10 * 10 + 10) + (4 * 10 + 10)
    read_out = 2 * 404 + 404 * (384 + 4) + 384 + 4  # the next tokens and proprio (4)
    assert sum(p.numel() for p in model.parameters()) == 6 * block + embeddings + read_out
    assert 6 * block + embeddings + read_out == 20_298_332
