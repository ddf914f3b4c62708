"""The latent world model (DINO-WM, LeWM) on real CarRacing episodes: training lowers the
validation loss, runs are deterministic and resume exactly, bundles round-trip, and the model
goes through the protocol's goal dreams; the fixed pixel encoder, frozen DINOv2 and V encoders
and proprioception."""

from __future__ import annotations

import dataclasses
import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from torch.nn import functional as F

from dreamgym import worldmodels
from dreamgym.agents import ControllerSpec, DreamBackend
from dreamgym.dreams import DreamEnv, DreamVectorEnv
from dreamgym.errors import DreamgymError
from dreamgym.rollouts import RolloutDataset, load_episode
from dreamgym.worldmodels.bundle import read_info
from dreamgym.worldmodels.latent.encoders import VisionTransformer, dinov2_vits14, images_to_input
from dreamgym.worldmodels.latent.model import LatentState, LatentWorldModel
from dreamgym.worldmodels.latent.presets import latent_preset
from dreamgym.worldmodels.latent.train import INITIAL_FILE, learning_rate, train_latent
from dreamgym.worldmodels.protocol import (
    Decodes,
    HasGoalCost,
    PredictsRewardDone,
    SamplesGoals,
    rollout,
    state_assign,
    state_index,
    state_where,
)

NOISY = ("seconds", "windows_per_second")


@pytest.fixture(scope="module")
def latent_run(car_data, tmp_path_factory):
    """The debug preset trained for 3 epochs on four real 40-step CarRacing episodes."""
    out = tmp_path_factory.mktemp("latent") / "car"
    return train_latent(car_data, out, preset="debug", device="cpu", progress=False)


def frames_of(data, rows) -> torch.Tensor:
    return torch.from_numpy(np.array(RolloutDataset(data).frames()[rows]))


def test_debug_training_lowers_the_validation_loss(latent_run):
    history = latent_run.history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["val/loss"] < history[0]["val/loss"]
    assert history[-1]["val/pred"] < history[0]["val/pred"]
    assert all(row["train/sigreg"] > 0 and row["windows_per_second"] > 0 for row in history)
    out = latent_run.out
    for name in ("bundle.json", "latent.safetensors", INITIAL_FILE, "latent-metrics.csv",
                 "latent-curves.png", "latent-config.json"):  # fmt: skip
        assert (out / name).exists(), name
    info = read_info(out)
    assert info["kind"] == "latent" and info["env"] == "carracing" and info["frameskip"] == 2
    assert info["training"]["latent_epochs"] == 3


def test_same_seed_same_model_and_resume_continues_exactly(latent_run, car_data, tmp_path):
    train_latent(car_data, tmp_path, preset="debug", device="cpu", progress=False, epochs=1)
    resumed = train_latent(car_data, tmp_path, preset="debug", device="cpu", progress=False,
                           epochs=3)  # fmt: skip
    assert len(resumed.history) == 3

    def strip(history):
        return [{k: v for k, v in row.items() if k not in NOISY} for row in history]

    assert strip(resumed.history) == strip(latent_run.history)
    a, b = resumed.model.state_dict(), latent_run.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(DreamgymError, match="trained with history=2"):
        train_latent(car_data, tmp_path, preset="debug", device="cpu", progress=False, history=3)


def test_a_saved_bundle_predicts_exactly_as_the_trained_model(latent_run, car_data):
    loaded = worldmodels.load(latent_run.out)
    assert isinstance(loaded, LatentWorldModel)
    bank = latent_run.frames(latent_run.dataset.frame_offsets)
    trained = LatentWorldModel(latent_run.model, None, bank, None, read_info(latent_run.out))
    frames = frames_of(car_data, [0, 10, 50])
    actions = torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(0))
    for model in (loaded, trained):
        model.states = rollout(model, model.encode(frames), actions)
    for a, b in zip(loaded.states, trained.states, strict=True):
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.actions, b.actions)


def test_states_follow_the_protocol(latent_run, car_data):
    model = worldmodels.load(latent_run.out)
    assert isinstance(model, worldmodels.WorldModel) and isinstance(model, HasGoalCost)
    assert not isinstance(model, Decodes) and not isinstance(model, PredictsRewardDone)
    assert model.action_space.shape == (6,)  # frameskip 2 x CarRacing's 3 actions
    assert model.feature_modes == ("latent",) and model.feature_size() == 32
    frames = frames_of(car_data, [0, 1])
    state = model.encode(frames)
    assert state.tokens.shape == (2, 2, 1, 32) and state.proprio.shape == (2, 2, 0)
    assert torch.equal(state.tokens[:, 0], state.tokens[:, 1])  # the frame repeated
    assert model.features(state).shape == (2, 32)
    action = torch.tensor([[0.5, 0.3, 0.0] * 2, [-0.5, 0.0, 0.2] * 2])
    stepped = model.step(state, action)
    assert torch.equal(stepped.tokens[:, 0], state.tokens[:, 1])  # the history moved on
    assert not torch.equal(stepped.tokens[:, 1], state.tokens[:, 1])
    assert torch.equal(stepped.actions[:, -1], torch.zeros(2, 6))
    torch.testing.assert_close(stepped.actions[:, 0], model.net.normalise_actions(action))
    seen = model.advance(state, action, frames_of(car_data, [2, 3]))
    assert torch.equal(seen.tokens[:, 1], model.encode(frames_of(car_data, [2, 3])).tokens[:, 1])
    assert torch.equal(model.cost(state, state), torch.zeros(2))
    assert (model.cost(stepped, state_index(state, slice(0, 1))) > 0).all()
    with pytest.raises(DreamgymError, match="no proprio term in its goal cost"):
        model.proprio_weight = 10.0
    mixed = state_where(torch.tensor([True, False]), state, stepped)
    assert torch.equal(mixed.tokens[0], state.tokens[0])
    assert torch.equal(mixed.tokens[1], stepped.tokens[1])
    assert torch.equal(state_assign(state, torch.tensor([1]), state_index(stepped, [1])).tokens,
                       mixed.tokens)  # fmt: skip
    with pytest.raises(DreamgymError, match="blocks of 2 actions of 3"):
        model.step(state, torch.zeros(2, 3))
    first = model.initial_state(5, torch.Generator().manual_seed(0))
    again = model.initial_state(5, torch.Generator().manual_seed(0))
    assert isinstance(first, LatentState) and torch.equal(first.tokens, again.tokens)


def test_goal_dreams_take_it(latent_run, car_data):
    model = worldmodels.load(latent_run.out)
    goal = model.encode(frames_of(car_data, [30]))
    env = DreamEnv(world_model=model, goal=goal, max_episode_steps=4)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.zeros(6, np.float32))
    assert obs.shape == (32,) and reward < 0 and not terminated
    vector = DreamVectorEnv(3, world_model=model, goal=goal, max_episode_steps=4)
    obs, _ = vector.reset(seed=0)
    _, reward, *_ = vector.step(np.zeros((3, 6), np.float32))
    assert obs.shape == (3, 32) and (reward < 0).all()
    with pytest.raises(DreamgymError, match="predicts no reward"):
        DreamEnv(world_model=model)
    with pytest.raises(DreamgymError, match="no decoder"):
        DreamEnv(world_model=model, goal=goal, render_mode="rgb_array")
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (6,)


def test_goal_conditioned_dreams_draw_recorded_starts_and_goals(latent_run):
    model = worldmodels.load(latent_run.out)
    assert isinstance(model, SamplesGoals) and model.goal_threshold > 0
    starts, goals = model.goal_pairs(5, torch.Generator().manual_seed(0))
    assert (model.cost(starts, goals) > 0).all()
    env = DreamEnv(world_model=model, goal="sample", max_episode_steps=4)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64,)  # the state's 32 latent values, then the goal's
    _, reward, *_ = env.step(np.zeros(6, np.float32))
    assert reward < 0
    vector = DreamVectorEnv(4, world_model=model, goal="sample", max_episode_steps=3)
    obs, _ = vector.reset(seed=0)
    goals = obs[:, 32:].copy()
    for _ in range(3):
        obs, _, terminated, truncated, _ = vector.step(np.zeros((4, 6), np.float32))
    assert truncated.all() and np.allclose(obs[:, 32:], goals)
    obs, *_ = vector.step(np.zeros((4, 6), np.float32))  # the autoreset: new starts, new goals
    assert not np.allclose(obs[:, 32:], goals)


def test_presets_and_bad_settings(car_data, tmp_path):
    cpu, vit = latent_preset("cpu", 2, 4), latent_preset("cpu-vit", 2, 4)
    paper = latent_preset("paper", 2, 4)
    cpu_shape = (cpu.encoder, cpu.pixel_grid, cpu.predictor, cpu.conv_channels, cpu.history,
                 cpu.frameskip, cpu.rollout, cpu.rollout_from, cpu.lr, cpu.lr_schedule,
                 cpu.epochs)  # fmt: skip
    assert cpu_shape == ("pixels", 16, "conv", 32, 3, 5, 3, 0, 1e-3, "cosine", 40)
    # cpu-long, cpu-hour and cpu-hour-bf16 are cpu trained longer (the last in bf16)
    assert dataclasses.replace(latent_preset("cpu-long", 2, 4), epochs=40) == cpu
    assert dataclasses.replace(latent_preset("cpu-hour", 2, 4), epochs=40) == cpu
    hour_bf16 = latent_preset("cpu-hour-bf16", 2, 4)
    assert (hour_bf16.epochs, hour_bf16.bf16) == (200, True)
    assert dataclasses.replace(hour_bf16, epochs=40, bf16=False) == cpu
    vit_shape = (vit.encoder, vit.patch_size, vit.vit_dim, vit.vit_depth, vit.history,
                 vit.frameskip, vit.lr, vit.lr_schedule, vit.residual, vit.predictor,
                 vit.epochs)  # fmt: skip
    assert vit_shape == ("vit-tiny", 16, 128, 4, 3, 5, 5e-4, "cosine", True, "transformer", 40)
    paper_shape = (paper.encoder, paper.image_size, paper.depth, paper.heads, paper.mlp,
                   paper.lr_schedule, paper.residual)  # fmt: skip
    assert paper_shape == ("dinov2", 196, 6, 16, 2048, "constant", False)
    # Both read proprio when the data records it (DINO-WM), and train without it otherwise.
    assert paper.uses_proprio and cpu.uses_proprio and vit.uses_proprio
    assert not latent_preset("cpu", 2).uses_proprio
    with pytest.raises(DreamgymError, match="unknown latent preset"):
        latent_preset("huge", 2)
    with pytest.raises(DreamgymError, match="as long as one window"):
        train_latent(car_data, tmp_path, preset="debug", device="cpu", frameskip=30)
    with pytest.raises(DreamgymError, match="no proprio arrays"):
        train_latent(car_data, tmp_path / "p", preset="debug", device="cpu", proprio=True)
    with pytest.raises(DreamgymError, match="vit_tokens"):
        train_latent(car_data, tmp_path / "t", preset="debug", device="cpu", vit_tokens=3)


def test_the_cosine_schedule_warms_up_and_anneals(latent_run, car_data, tmp_path):
    config = dataclasses.replace(latent_preset("debug", 3), lr=1e-3, lr_schedule="cosine",
                                 warmup=0.1)  # fmt: skip
    rates = [learning_rate(config, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert rates[10] == rates[9]  # the decay starts at the peak
    assert all(a > b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert rates[-1] < 1e-6 and rates[55] == pytest.approx(5e-4)
    assert learning_rate(latent_preset("debug", 3), 77, 100) == latent_preset("debug", 3).lr
    kw = {"preset": "debug", "device": "cpu", "progress": False, "lr_schedule": "cosine"}
    cosine = train_latent(car_data, tmp_path / "cosine", **kw)
    assert cosine.history[-1]["val/loss"] != latent_run.history[-1]["val/loss"]
    with pytest.raises(DreamgymError, match="lr_schedule must be one of"):
        train_latent(car_data, tmp_path / "bad", **{**kw, "lr_schedule": "linear"})


@pytest.mark.slow
def test_the_rollout_loss_imagines_as_planning_does(latent_run, car_data, tmp_path):
    run = train_latent(car_data, tmp_path, preset="debug", device="cpu", progress=False,
                       rollout=3, rollout_from=1)  # fmt: skip
    history = run.history

    def strip(row):
        return {k: v for k, v in row.items() if k not in NOISY}

    # Off before rollout_from (the same first epoch as without it), then on.
    assert strip(history[0]) == strip(latent_run.history[0])
    assert all("train/rollout" in row and "val/rollout" in row for row in history[1:])
    assert history[-1]["val/rollout"] > 0
    # The loss is the error of the protocol's own imagination: encode the first frame, follow
    # the second, then roll the recorded action blocks out (the history H = 2 slides).
    run.model.eval()
    batch = run.windows(run.val_eps, 4, np.random.default_rng(0))
    assert batch["frames"].shape[1] == 2 + 3 and batch["actions"].shape[1] == 4
    with torch.no_grad():
        terms = run.losses(batch, torch.Generator().manual_seed(0))
    model = worldmodels.load(run.out)
    frames, actions = batch["frames"], batch["actions"]
    state = model.advance(model.encode(frames[:, 0]), actions[:, 0], frames[:, 1])
    imagined = torch.stack([s.tokens[:, -1] for s in rollout(model, state, actions[:, 1:])], 1)
    target = model.embed(frames[:, 2:].flatten(0, 1)).view_as(imagined)
    assert terms["rollout"].item() == pytest.approx(F.mse_loss(imagined, target).item(), rel=1e-5)
    with pytest.raises(DreamgymError, match="rollout must be an integer >= 0"):
        train_latent(car_data, tmp_path / "bad", preset="debug", device="cpu", rollout=-1)
    with pytest.raises(DreamgymError, match="as long as a rollout window"):
        train_latent(car_data, tmp_path / "long", preset="debug", device="cpu", progress=False,
                     rollout=30)  # fmt: skip


def proprio_copy(data, out):
    """``data`` with a learnable 4-d proprio array per frame (the car's summed actions)."""
    out.mkdir()
    for name in ("dataset.json", "manifest.jsonl"):
        shutil.copy(data / name, out / name)
    for line in (data / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        episode = load_episode(data / entry["file"])
        summed = np.cumsum(np.concatenate([np.zeros((1, 3)), episode.actions]), axis=0)
        time = np.arange(len(summed))[:, None] / 40
        episode.proprio = np.concatenate([summed, time], axis=1).astype(np.float32)
        episode.save(out / entry["file"])
    return out


def test_proprio_is_embedded_predicted_and_part_of_the_cost(car_data, tmp_path):
    data = proprio_copy(car_data, tmp_path / "data")
    run = train_latent(data, tmp_path / "out", preset="debug", device="cpu", progress=False,
                       proprio=True, epochs=2, proprio_emb=3)  # fmt: skip
    assert run.config.uses_proprio and "val/proprio" in run.history[-1]
    model = worldmodels.load(tmp_path / "out")
    frames = frames_of(data, [0, 5])
    with pytest.raises(DreamgymError, match="pass proprio"):
        model.encode(frames)
    proprio = torch.from_numpy(RolloutDataset(data).frame_info()["proprio"][[0, 5]])
    state = model.encode(frames, proprio)
    assert state.proprio.shape == (2, 2, 4)  # z-scored proprio
    stepped = model.step(state, torch.zeros(2, 6))
    assert stepped.proprio.shape == (2, 2, 4)
    assert not torch.equal(stepped.proprio[:, 1], state.proprio[:, 1])
    other = model.encode(frames, proprio + 1.0)
    assert torch.equal(model.cost(state, state), torch.zeros(2))
    assert (model.cost(other, state) > 0).all()  # same frames, other proprio
    proprio_term = model.cost(other, state)
    model.proprio_weight = 10.0  # DINO-WM's alpha; the token terms are equal here
    assert torch.allclose(model.cost(other, state), 10 * proprio_term)
    with pytest.raises(DreamgymError, match="proprio weight must be a finite number >= 0"):
        model.proprio_weight = -1.0
    assert model.initial_state(3).proprio.shape == (3, 2, 4)


def test_a_frozen_dinov2_encoder_from_a_file(car_data, tmp_path):
    torch.manual_seed(0)
    dinov2 = VisionTransformer(dinov2_vits14(28))
    weights = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(dinov2.state_dict(), weights)
    out = tmp_path / "out"
    run = train_latent(car_data, out, preset="debug", device="cpu", progress=False,
                       encoder="dinov2", dinov2_weights=str(weights), image_size=28, epochs=1,
                       windows_per_epoch=16, val_windows=8)  # fmt: skip
    assert run.model.encoder is None and run.frozen.tokens == 4 and run.frozen.dim == 384
    assert all(not p.requires_grad for p in run.frozen.parameters())
    weights.unlink()  # the bundle holds its own copy
    model = worldmodels.load(out)
    assert read_info(out)["files"]["encoder"] == "dinov2.safetensors"
    assert model.feature_size() == 4 * 384
    frames = frames_of(car_data, [0, 7])
    state = model.encode(frames)
    assert state.tokens.shape == (2, 2, 4, 384)
    with torch.no_grad():  # the patch tokens of the original weights, on ImageNet-normalised input
        patches = dinov2.eval()(images_to_input(frames, 28))[:, 1:]
    assert torch.equal(state.tokens[:, -1], patches)
    assert model.step(state, torch.zeros(2, 6)).tokens.shape == (2, 2, 4, 384)


def test_a_frozen_vae_encoder(car_data, tmp_path):
    from dreamgym.worldmodels.vm.train_vae import VAETrainer

    VAETrainer(car_data, tmp_path / "v", preset="debug", overrides={"epochs": 1},
               device="cpu").fit(False)  # fmt: skip
    run = train_latent(car_data, tmp_path / "out", preset="debug", device="cpu", progress=False,
                       encoder="vae", vae=str(tmp_path / "v"), epochs=2)  # fmt: skip
    assert run.history[-1]["val/pred"] < run.history[0]["val/pred"]
    assert "train/sigreg" not in run.history[-1]  # nothing to keep from collapsing
    model = worldmodels.load(tmp_path / "out")
    assert model.feature_size() == 32  # V's z
    frames = frames_of(car_data, [3])
    mu = model.frozen.model.encode(frames.permute(0, 3, 1, 2).float() / 255)[0]
    torch.testing.assert_close(model.encode(frames).tokens[:, -1, 0], mu)


def test_the_pixel_encoder_pools_centres_and_scales_frames(car_data, tmp_path):
    out = tmp_path / "out"
    run = train_latent(car_data, out, preset="debug", device="cpu", progress=False,
                       encoder="pixels", pixel_grid=4, epochs=2)  # fmt: skip
    assert run.history[-1]["val/pred"] < run.history[0]["val/pred"]
    assert "train/sigreg" not in run.history[-1] and run.frozen is None
    assert not list(run.model.encoder.parameters())  # nothing of it is trained
    assert "encoder" not in read_info(out)["files"]  # its mean and scale are in the model file
    model = worldmodels.load(out)
    assert model.feature_size() == 3 * 4 * 4
    frames = RolloutDataset(car_data).frames()
    tokens = model.encode(torch.from_numpy(np.array(frames))).tokens[:, -1, 0].double()
    # fitted on the frames: about centred, a dimension's variance 1 on average
    assert tokens.mean(0).abs().max() < 0.5 and 0.7 < tokens.var(0).mean() < 1.3
    # each token is the frame's mean colour over a 16 x 16 cell (64 px frames), centred, scaled
    cell = frames[5, :16, 16:32].reshape(-1, 3).astype(np.float64).mean(0) / 255
    enc = model.net.encoder
    expected = (cell - enc.mean.view(3, 4, 4)[:, 0, 1].double().numpy()) * float(enc.scale)
    np.testing.assert_allclose(tokens[5].view(3, 4, 4)[:, 0, 1].numpy(), expected, rtol=1e-4)


@pytest.mark.slow
def test_readouts_decode_and_predict_rewards_without_touching_the_core(car_data, latent_run,
                                                                       tmp_path):  # fmt: skip
    """A decoder and reward/done heads, trained on detached embeddings: the encoder and the
    predictor learn exactly what they learn without them, and the model now renders and can
    be dreamed in (and evolved in) without a goal."""
    run = train_latent(car_data, tmp_path, preset="debug", device="cpu", progress=False,
                       decoder=True, reward_head=True)  # fmt: skip
    with pytest.raises(DreamgymError, match="--frameskip 1"):  # debug: blocks of 2 actions
        ControllerSpec.for_world_model(worldmodels.load(tmp_path))
    core = {k: v for k, v in run.model.state_dict().items()
            if not k.startswith(("decoder.", "heads."))}  # fmt: skip
    plain = latent_run.model.state_dict()
    assert core.keys() == plain.keys()
    assert all(torch.equal(v, plain[k]) for k, v in core.items())
    first, last = run.history[0], run.history[-1]
    for key in ("val/decoder", "val/reward", "val/done"):
        assert last[key] < first[key], key
    model = worldmodels.load(tmp_path)
    assert isinstance(model, Decodes) and isinstance(model, PredictsRewardDone)
    assert (tmp_path / "latent-reconstructions.png").stat().st_size > 0
    assert not isinstance(worldmodels.load(latent_run.out), Decodes | PredictsRewardDone)
    env = DreamEnv(tmp_path, render_mode="rgb_array")  # no goal: rewards from the head
    check_env(env, skip_render_check=False)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward) and env.render().shape == (64, 64, 3)
    frames = torch.from_numpy(RolloutDataset(car_data).episode(0).frames[:8])
    decoded = model.decode(model.encode(frames)).float()
    assert decoded.shape == (8, 64, 64, 3)
    assert (decoded - frames.float()).abs().mean() < (frames.float() - 127.5).abs().mean()

    one = train_latent(car_data, tmp_path / "one", preset="debug", device="cpu", progress=False,
                       decoder=True, reward_head=True, frameskip=1, epochs=1)  # fmt: skip
    model = worldmodels.load(one.out)
    spec = ControllerSpec.for_world_model(model)  # a comparison with V+M: evolved in the dream
    params = np.random.default_rng(0).normal(0, 0.1, (3, spec.num_params))
    returns = DreamBackend(model, spec, max_episode_steps=20).returns(params, 2, seed=0)
    assert returns.shape == (3, 2) and np.isfinite(returns).all()
