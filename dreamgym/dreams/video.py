"""Videos of dreams: a dream episode, a real episode beside V's reconstruction and the dream's
own rollout of the same actions, or one start dreamed at several temperatures side by side.

Frames are decoded by V at 64x64, upscaled (nearest) to a watchable size, optionally captioned
(step, predicted reward, done probability), and written as mp4 (moviepy, with imageio-ffmpeg's
bundled ffmpeg) or GIF, by the output's extension, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from dreamgym.common import validate
from dreamgym.common.io import check_writable_dir
from dreamgym.common.progress import progress as progress_bar
from dreamgym.common.threads import torch_threads
from dreamgym.dreams.agent import DreamAgent, WorldModelPolicy, check_agent_fits
from dreamgym.dreams.core import (
    DreamCore,
    check_decodes,
    check_temperature,
    resolve_temperature,
)
from dreamgym.dreams.env import upscale
from dreamgym.envs import get_env_spec, make_env
from dreamgym.errors import DreamgymError
from dreamgym.rollouts.episode import run_episode
from dreamgym.rollouts.policies import resolve_policy
from dreamgym.worldmodels import WorldModel
from dreamgym.worldmodels.bundle import resolve_world_model

VIDEO_EXTENSIONS = (".mp4", ".gif")
# GIFs store every frame whole: above this rate frames are dropped (the duration is kept), which
# makes a default 300-step Doom render ~2.5x smaller.
GIF_MAX_FPS = 15


@dataclass
class Track:
    """One column of a video: frames (T, 64, 64, 3) uint8 and per-frame captions."""

    title: str
    frames: list[np.ndarray] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Write (H, W, 3) uint8 frames to ``path`` (.mp4 or .gif), atomically; a GIF keeps every
    k-th frame at fps / k <= ``GIF_MAX_FPS``."""
    from moviepy import ImageSequenceClip

    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise DreamgymError(f"video path {str(path)!r} must end in one of {VIDEO_EXTENSIONS}")
    if not frames:
        raise DreamgymError("no frames to write")
    if path.suffix.lower() == ".gif" and fps > GIF_MAX_FPS:
        every = -(-fps // GIF_MAX_FPS)
        frames, fps = list(frames)[::every], fps / every
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    clip = ImageSequenceClip([np.ascontiguousarray(f) for f in frames], fps=fps)
    try:
        if path.suffix.lower() == ".gif":
            clip.write_gif(str(tmp), fps=fps, logger=None)
        else:
            clip.write_videofile(str(tmp), fps=fps, codec="libx264", audio=False, logger=None,
                                 pixel_format="yuv420p")  # fmt: skip
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _caption(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        xy = (4, 4 + 12 * i)
        draw.text((xy[0] + 1, xy[1] + 1), line, fill=(0, 0, 0))
        draw.text(xy, line, fill=(255, 255, 255))
    return np.asarray(image)


def compose(tracks: Sequence[Track], size: int = 256, overlay: bool = True) -> list[np.ndarray]:
    """Tracks side by side, each upscaled to ``size`` and captioned; the shortest pads by
    repeating its last frame."""
    length = max(len(t.frames) for t in tracks)
    out = []
    for i in range(length):
        columns = []
        for track in tracks:
            j = min(i, len(track.frames) - 1)
            frame = upscale(track.frames[j], size)
            lines = [track.title] if len(tracks) > 1 else []
            if overlay and track.captions:
                lines.append(track.captions[j])
            columns.append(_caption(frame, lines) if lines else frame)
        out.append(np.concatenate(columns, axis=1))
    return out


ActionSource = Callable[[torch.Tensor, int], torch.Tensor]


def action_source(model: WorldModel, agent: DreamAgent | None, policy: str,
                  seed: int) -> ActionSource:  # fmt: skip
    """Actions for a dream: the agent reading the dream's observations, or a built-in random
    policy (``random``, ``brownian``, ``repeat``) seeded with ``seed``."""
    if agent is not None:
        check_agent_fits(agent, model)
        return lambda state, t: agent.act(model.features(state, agent.observation_mode).cpu())
    chosen = resolve_policy(policy, model.action_space)
    chosen.reset(seed)
    blank = np.zeros((64, 64, 3), np.uint8)
    return lambda state, t: torch.as_tensor(chosen.act(blank))[None]


def dream_track(model: WorldModel, actions: ActionSource | Sequence[np.ndarray],
                temperature: float, seed: int, steps: int, title: str = "dream",
                start=None, stop_on_done: bool = True,
                on_step: Callable[[], object] | None = None) -> Track:  # fmt: skip
    """Dream one episode of at most ``steps`` steps, stopping when the dream says done (unless
    ``stop_on_done`` is False).

    ``actions`` is a source (called with the state and step) or a fixed sequence; ``start``
    overrides the initial state (e.g. an encoded real frame); ``on_step`` is called after each
    step (progress).
    """
    core = DreamCore(model, 1, check_temperature(temperature), max_episode_steps=steps)
    core.seed(np.random.default_rng(seed))
    core.reset_all()
    if start is not None:
        core.state = start
    track = Track(title, [core.render()[0]], ["step 0"])
    for t in range(steps):
        if callable(actions):
            action = actions(core.state, t)
        elif t < len(actions):
            action = torch.as_tensor(np.asarray(actions[t]))[None]
        else:
            break
        _, reward, terminated, _ = core.step(action.to(core.device).float())
        track.frames.append(core.render()[0])
        track.captions.append(
            f"step {t + 1} r {reward.item():+.2f} done {core.done_prob.item():.2f}"
        )
        if on_step is not None:
            on_step()
        if stop_on_done and terminated.item():
            break
    return track


def compare_tracks(model: WorldModel, agent: DreamAgent | None, policy: str,
                   temperature: float, seed: int, steps: int,
                   on_step: Callable[[], object] | None = None) -> list[Track]:  # fmt: skip
    """A real episode, V's reconstruction of each of its frames, and the dream's rollout of the
    same actions from the same first frame: where the dream drifts from reality."""
    env = make_env(model.env, max_episode_steps=steps, frame_skip=model.info.get("frame_skip", 1))
    if agent is not None:
        actor = WorldModelPolicy(agent, model)
    else:
        actor = resolve_policy(policy, model.action_space)
    episode = run_episode(env, actor, seed)
    env.close()
    captions = ["step 0"] + [f"step {t + 1} r {r:+.2f}" for t, r in enumerate(episode.rewards)]
    real = Track("real", list(episode.frames), captions)
    actions = list(episode.actions)
    frames = torch.from_numpy(episode.frames)
    recon = Track("V reconstruction", list(model.decode(model.encode(frames)).cpu().numpy()),
                  real.captions)  # fmt: skip
    start = model.encode(frames[:1])
    # The dream follows the whole real episode (its own done signal is shown, not obeyed).
    dream = dream_track(model, actions, temperature, seed, len(actions), "dream", start, False,
                        on_step)  # fmt: skip
    return [real, recon, dream]


def temperature_tracks(
    model: WorldModel,
    agent: DreamAgent | None,
    policy: str,
    temperatures: Sequence[float],
    seed: int,
    steps: int,
    on_step: Callable[[], object] | None = None,
) -> list[Track]:
    """The same start (same seed) dreamed at each temperature."""
    return [
        dream_track(
            model,
            action_source(model, agent, policy, seed),
            tau,
            seed,
            steps,
            f"tau {tau:g}",
            on_step=on_step,
        )  # fmt: skip
        for tau in temperatures
    ]


@torch_threads("inference")
def render_video(
    world_model: str | Path | WorldModel,
    out: str | Path,
    agent: DreamAgent | None = None,
    temperature: float | None = None,
    compare: bool = False,
    temperatures: Sequence[float] | None = None,
    steps: int = 300,
    seed: int = 0,
    size: int = 256,
    fps: int | None = None,
    overlay: bool = True,
    policy: str = "brownian",
    device: str = "cpu",
    progress: bool = False,
) -> Path:
    """Render a dream video to ``out`` (.mp4 or .gif); see the module docstring for the modes.

    ``agent`` (a :class:`~dreamgym.dreams.agent.DreamAgent`, e.g. a loaded controller) acts in
    the dream and, with ``compare``, in the real env; without one, the built-in ``policy`` acts.

    Raises:
        DreamgymError: bad arguments, or an agent that does not fit the world model.
    """
    if compare and temperatures:
        raise DreamgymError("choose either --compare or --temperatures, not both")
    validate.integer("steps", steps)
    validate.integer("size", size, 16)
    if Path(out).suffix.lower() not in VIDEO_EXTENSIONS:
        raise DreamgymError(f"video path {str(out)!r} must end in one of {VIDEO_EXTENSIONS}")
    for t in [temperature, *(temperatures or [])]:
        if t is not None:
            check_temperature(t)
    check_writable_dir(Path(out).parent)
    model = resolve_world_model(world_model, None, device)
    check_decodes(model)
    tau = resolve_temperature(model.env, temperature)
    # Dream steps at most (a compare video first plays its real episode).
    bar = progress_bar(total=steps * len(temperatures or [tau]), desc="render", unit="step",
                       disable=not progress)  # fmt: skip
    if compare:
        tracks = compare_tracks(model, agent, policy, tau, seed, steps, bar.update)
    elif temperatures:
        tracks = temperature_tracks(model, agent, policy, temperatures, seed, steps, bar.update)
    else:
        tracks = [dream_track(model, action_source(model, agent, policy, seed), tau, seed,
                              steps, f"dream tau {tau:g}", on_step=bar.update)]  # fmt: skip
    bar.close()
    frames = compose(tracks, size, overlay)
    return write_video(frames, out, fps or get_env_spec(model.env).render_fps)
