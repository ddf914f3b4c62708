from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from gymnasium.wrappers import RecordVideo
from helpers import model_with_heads

from dreamgym.dreams import DreamEnv
from dreamgym.dreams.video import render_video
from dreamgym.errors import DreamgymError


def test_dream_video_has_the_expected_frames_and_size(car_bundle, tmp_path):
    model = model_with_heads(car_bundle, done_bias=-5.0)  # runs to the step cap
    path = render_video(model, tmp_path / "dream.mp4", steps=24, size=128)
    frames = iio.imread(path)
    assert frames.shape == (25, 128, 128, 3)  # first frame + 24 steps
    assert frames.std() > 0


def test_compare_shows_real_reconstruction_and_dream(car_bundle, tmp_path):
    path = render_video(car_bundle, tmp_path / "compare.mp4", compare=True, steps=15, size=64)
    frames = iio.imread(path)
    assert frames.shape == (16, 64, 3 * 64, 3)
    real, recon = frames[:, :, :64].astype(float), frames[:, :, 64:128].astype(float)
    assert np.abs(real - recon).mean() > 0  # V is imperfect: the columns differ


def test_temperatures_side_by_side_as_gif(car_bundle, tmp_path):
    model = model_with_heads(car_bundle, done_bias=-5.0)
    path = render_video(
        model, tmp_path / "taus.gif", temperatures=[0.5, 1.0, 1.3], steps=6, size=64
    )
    frames = iio.imread(path)
    # 7 frames at CarRacing's 50 fps: a GIF keeps every 4th (0 and 4) at 12.5 fps.
    assert frames.shape[1:] == (64, 3 * 64, 3) and len(frames) == 2
    assert iio.immeta(path, index=0)["duration"] == 80  # ms per frame: the duration is kept
    # Same start: the first frames of the three columns agree (up to GIF palette).
    first = frames[0].astype(float)
    assert np.abs(first[:, :64] - first[:, 64:128])[20:].mean() < 8


def test_record_video_wraps_a_dream_env(car_bundle, tmp_path):
    env = DreamEnv(
        model_with_heads(car_bundle, done_bias=-5.0),
        render_mode="rgb_array",
        render_size=128,
        max_episode_steps=10,
    )
    env = RecordVideo(
        env, str(tmp_path / "videos"), episode_trigger=lambda _: True, disable_logger=True
    )
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.zeros(3, np.float32))
        done = terminated or truncated
    env.close()
    (video,) = (tmp_path / "videos").glob("*.mp4")
    frames = iio.imread(video)
    assert frames.shape[1:] == (128, 128, 3) and len(frames) >= 10


def test_bad_render_arguments(car_bundle, tmp_path):
    with pytest.raises(DreamgymError, match="must end in one of"):
        render_video(car_bundle, tmp_path / "dream.avi")
    with pytest.raises(DreamgymError, match="either --compare or --temperatures"):
        render_video(car_bundle, tmp_path / "x.mp4", compare=True, temperatures=[1.0])
    result = subprocess.run(
        [sys.executable, "-m", "dreamgym.cli", "render", "--world-model", str(car_bundle),
         "--out", str(tmp_path / "x.mp4"), "--temperatures", "hot,cold"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "comma-separated numbers" in result.stderr
    with pytest.raises(ValueError, match="temperature must be"):
        render_video(car_bundle, tmp_path / "x.mp4", temperature=0.0)
    # The refused temperature changed nothing: the dream keeps CarRacing's default tau.
    env = gym.make("Dream-CarRacing-v0", world_model=str(car_bundle))
    assert env.unwrapped.temperature == 1.0
