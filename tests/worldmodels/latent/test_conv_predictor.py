"""The convolutional predictor over pooled pixels: frame-causal, its first predictions read a
start's history, it copies until trained, and on real Push-T episodes it learns to predict
better than copying, through training and the protocol."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_frame_causal

from dreamgym import worldmodels
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset
from dreamgym.worldmodels.latent.config import LatentConfig
from dreamgym.worldmodels.latent.predictors import ConvPredictor, ConvPredictorConfig
from dreamgym.worldmodels.latent.train import train_latent
from dreamgym.worldmodels.protocol import rollout

EPOCHS = 6
SMALL = ConvPredictorConfig(frames=3, grid=4, channels=8, action_dim=6, proprio_dim=4)


def inputs(seed=0, batch=2, frames=3):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, frames, 1, 48, generator=g)
    actions = torch.randn(batch, frames, 6, generator=g)
    proprio = torch.randn(batch, frames, 4, generator=g)
    return tokens, actions, proprio


def trained_looking(config=SMALL) -> ConvPredictor:
    """A predictor whose read-outs are not zero (as after training)."""
    torch.manual_seed(0)
    model = ConvPredictor(config).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.out.weight, std=0.1)
    return model


def test_predictions_for_a_frame_ignore_later_frames_and_last_reads_the_last():
    model = trained_looking()
    tokens, actions, proprio = inputs()
    pred, pred_proprio = model(tokens, actions, proprio)
    assert pred.shape == (2, 3, 1, 48) and pred_proprio.shape == (2, 3, 4)
    assert_frame_causal(model, tokens, actions, proprio, moves=1e-4)
    # Every frame of the history counts.
    changed = tokens.clone()
    changed[:, 0] += 5.0
    assert (model(changed, actions, proprio)[0][:, 2] - pred[:, 2]).abs().max() > 1e-4


def test_a_windows_first_predictions_read_a_starts_history():
    """Teacher forcing's first predictions see what planning's first steps see: the first
    frame repeated with zero actions before it (``LatentWorldModel.encode``)."""
    model = trained_looking()
    tokens, actions, proprio = inputs()
    pred, pred_proprio = model(tokens, actions, proprio)
    for t in range(2):
        rows = [0] * (2 - t) + list(range(t + 1))  # H = 3 frames ending at t
        start = actions[:, rows].clone()
        start[:, : 2 - t] = 0.0
        hist, hist_proprio = model(tokens[:, rows], start, proprio[:, rows], last=True)
        torch.testing.assert_close(hist[:, 0], pred[:, t], rtol=0, atol=1e-5)
        torch.testing.assert_close(hist_proprio[:, 0], pred_proprio[:, t], rtol=0, atol=1e-5)


def test_it_copies_until_trained_and_the_proprio_path():
    model = ConvPredictor(SMALL).eval()
    tokens, actions, proprio = inputs()
    with torch.no_grad():
        for layer in (model.proprio_head, model.proprio_skip):
            layer.weight.zero_()
            layer.bias.zero_()
        pred, pred_proprio = model(tokens, actions, proprio)
        torch.testing.assert_close(pred, tokens, rtol=0, atol=0)
        torch.testing.assert_close(pred_proprio, proprio, rtol=0, atol=0)
        model.proprio_skip.weight[0, 4] = 2.0  # the first proprio dim gains 2 x action 0
        moved = model(tokens, actions, proprio)[1]
    torch.testing.assert_close(moved[..., 0], proprio[..., 0] + 2 * actions[..., 0])


def test_without_proprio_bad_shapes_and_bad_settings():
    model = ConvPredictor(ConvPredictorConfig(frames=2, grid=4, channels=4, action_dim=3))
    pred, proprio = model(torch.randn(5, 2, 1, 48), torch.randn(5, 2, 3))
    assert pred.shape == (5, 2, 1, 48) and proprio is None
    with pytest.raises(ValueError, match="do not fit"):
        model(torch.randn(5, 3, 1, 48), torch.randn(5, 3, 3))
    with pytest.raises(ValueError, match="proprio"):
        ConvPredictor(SMALL)(*inputs()[:2])
    with pytest.raises(ValueError, match="even grid"):
        ConvPredictor(ConvPredictorConfig(grid=5))
    for settings, words in (({"predictor": "lstm"}, "predictor must be one of"),
                            ({"predictor": "conv"}, "needs encoder='pixels'"),
                            ({"predictor": "conv", "encoder": "pixels", "pixel_grid": 7},
                             "pixel_grid=7")):  # fmt: skip
        with pytest.raises(DreamgymError, match=words):
            LatentConfig(action_size=2, **settings).check()


@pytest.mark.slow
def test_it_learns_push_t_better_than_copying_through_the_protocol(pusht_data, tmp_path):
    """Real Push-T episodes: after a little training the model's own step (``rollout``, from a
    real history) predicts the next frames better than copying the current one."""
    run = train_latent(pusht_data, tmp_path, preset="debug", device="cpu", progress=False,
                       encoder="pixels", pixel_grid=8, predictor="conv", proprio=True,
                       rollout=2, epochs=EPOCHS, windows_per_epoch=256)  # fmt: skip
    assert run.history[-1]["val/pred"] < run.history[0]["val/pred"]
    assert "val/rollout" in run.history[-1]
    model = worldmodels.load(tmp_path)
    assert model.feature_size() == 3 * 8 * 8 and model.uses_proprio
    fs, steps = model.config.frameskip, 3
    errors, copies = [], []
    for index in range(len(RolloutDataset(pusht_data))):
        episode = RolloutDataset(pusht_data).episode(index)
        for start in range(0, episode.length - steps * fs, 7):
            rows = [start + k * fs for k in range(steps + 1)]
            frames = torch.from_numpy(episode.frames[rows])
            proprio = torch.from_numpy(episode.proprio[rows]).float()
            blocks = torch.from_numpy(
                episode.actions[start : start + steps * fs].reshape(steps, -1)
            ).float()
            state = model.encode(frames[:1], proprio[:1])
            imagined = rollout(model, state, blocks[None])
            real = model.embed(frames[1:])
            errors.append(torch.stack([s.tokens[0, -1] for s in imagined]) - real)
            copies.append(state.tokens[0, -1] - real)
    error = torch.stack(errors).pow(2).mean()
    copy = torch.stack(copies).pow(2).mean()
    assert error < 0.8 * copy


def test_bf16_training_learns_is_saved_and_a_resumed_run_keeps_it(pusht_data, tmp_path):
    """bf16 autocast (``bf16=True``, ``--bf16``) trains the conv predictor on real Push-T
    episodes; the setting is the run's: resuming without it keeps it, and asking for it on a
    run trained in fp32 is refused."""
    settings = dict(preset="debug", device="cpu", progress=False, encoder="pixels",
                    pixel_grid=8, predictor="conv", rollout=2, windows_per_epoch=128)  # fmt: skip
    run = train_latent(pusht_data, tmp_path / "bf16", bf16=True, epochs=3, **settings)
    assert run.config.bf16 and run.bf16
    assert run.history[-1]["val/pred"] < run.history[0]["val/pred"]
    resumed = train_latent(pusht_data, tmp_path / "bf16", epochs=4, **settings)
    assert resumed.config.bf16 and resumed.bf16 and len(resumed.history) == 4
    train_latent(pusht_data, tmp_path / "fp32", epochs=1, **settings)
    with pytest.raises(DreamgymError, match="bf16"):
        train_latent(pusht_data, tmp_path / "fp32", bf16=True, epochs=2, **settings)
