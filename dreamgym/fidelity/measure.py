"""The measurements behind a fidelity report: dream episodes under a policy, M's heads followed
along real episodes, and open-loop prediction of real episodes.

Everything is batched over episodes (one world-model call per step for all of them) and seeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dreamgym.dreams.agent import DreamAgent
from dreamgym.dreams.core import DreamCore, run_episodes
from dreamgym.rollouts.episode import Episode
from dreamgym.worldmodels import WorldModel, state_index, state_where

# A dream driver: (state, observation (N, F)) -> actions (N, A) on the model's device.
DreamActions = Callable[[object, torch.Tensor], torch.Tensor]


def controller_actions(controller: DreamAgent) -> DreamActions:
    """All N dreams driven by one agent (a linear controller, an SB3 agent) in one batched
    op."""
    return lambda state, obs: controller.act(obs).to(obs.device)


def policy_actions(model: WorldModel, policies: Sequence, seeds: Sequence[int]) -> DreamActions:
    """N dreams driven by N per-episode policy objects (``act(frame)``, optional
    ``reset(seed)``), each reset with its own seed. Frames are decoded only for policies that
    look at them (``observes`` is not False)."""
    for policy, seed in zip(policies, seeds, strict=True):
        reset = getattr(policy, "reset", None)
        if reset is not None:
            reset(int(seed))
    observes = any(getattr(p, "observes", True) for p in policies)
    blank = np.zeros((64, 64, 3), np.uint8)

    def act(state, obs: torch.Tensor) -> torch.Tensor:
        frames = model.decode(state).cpu().numpy() if observes else [blank] * len(policies)
        actions = np.stack([p.act(f) for p, f in zip(policies, frames, strict=True)])
        return torch.as_tensor(actions, dtype=torch.float32, device=obs.device)

    return act


@dataclass
class DreamEpisodes:
    """N dream episodes: their lengths, returns, and whether each was terminated by the done
    rule (else truncated at the cap)."""

    lengths: np.ndarray
    returns: np.ndarray
    terminated: np.ndarray


@torch.no_grad()
def dream_episodes(
    model: WorldModel,
    actions: DreamActions,
    n: int,
    temperature: float,
    done_mode: str | None = None,
    max_episode_steps: int | None = None,
    observation_mode: str | None = None,
    seed: int = 0,
) -> DreamEpisodes:
    """Run ``n`` dream episodes to their end (done rule or cap), all in one batch."""
    core = DreamCore(model, n, temperature, observation_mode, done_mode, max_episode_steps)
    core.seed(np.random.default_rng(seed))
    returns, lengths, ended_by_done = run_episodes(core, lambda obs: actions(core.state, obs))
    return DreamEpisodes(lengths.cpu().numpy(), returns.cpu().numpy().astype(np.float64),
                         ended_by_done.cpu().numpy())  # fmt: skip


def _padded(episodes: Sequence[Episode]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (N, T+1, 64, 64, 3), actions (N, T, A) and rewards (N, T), padded with the last
    frame and zeros to the longest episode."""
    t_max = max(e.length for e in episodes)
    frames = np.stack([np.concatenate([e.frames, np.repeat(e.frames[-1:], t_max - e.length, 0)])
                       for e in episodes])  # fmt: skip
    actions = np.stack([np.pad(e.actions, ((0, t_max - e.length), (0, 0))) for e in episodes])
    rewards = np.stack([np.pad(e.rewards, (0, t_max - e.length)) for e in episodes])
    return frames, actions.astype(np.float32), rewards.astype(np.float32)


@dataclass
class FollowResult:
    """M's heads along real episodes, and open-loop prediction errors.

    ``done_prob[i]`` and ``reward_pred[i]`` are (T_i,): the heads after the real action a_t,
    with M having seen the real frames up to t (teacher forcing). ``ends_within[k][i]`` (T_i,)
    is the dream's own probability, from step t, that the episode ends within k steps (see
    :func:`follow_real_episodes`). The open-loop arrays are (H,) means over episodes at
    horizon 1..H (NaN where no episode reaches that horizon), for the dream and for the
    copy-the-start-frame baseline, plus ``frame_error_recon``, the
    error of V's own reconstruction of the real frame (a floor no dream can beat: the dream's
    frames are decoded, the copy baseline's are real pixels), and ``frame_error_mean_frame``,
    the error of predicting every frame as the per-pixel mean of the compared real frames
    (weighted as the horizons are averaged, so that no constant frame, a decoder's blur, scores
    lower averaged over the horizons); ``openloop_count`` says how many episodes each horizon
    averages.
    """

    done_prob: list[np.ndarray]
    ends_within: dict[int, list[np.ndarray]]
    reward_pred: list[np.ndarray]
    latent_error: np.ndarray
    latent_error_copy: np.ndarray
    frame_error: np.ndarray
    frame_error_copy: np.ndarray
    frame_error_recon: np.ndarray
    frame_error_mean_frame: np.ndarray
    openloop_count: np.ndarray


@torch.no_grad()
def expected_ends(
    model: WorldModel,
    episodes: Sequence[Episode],
    end_probability: Callable[[torch.Tensor], torch.Tensor] = lambda p: p,
    seed: int = 0,
) -> np.ndarray:
    """Per real episode, the number of episode ends the dream's done rule expects along it:
    M follows the real frames and actions (teacher forcing) and ``end_probability`` of its done
    head is summed over the episode's steps. Against the episode's own ending (1 for a death,
    0 for the time limit) it says whether the done head is honest where this policy goes: a
    dream that expects too few ends along a controller's real episodes lets it live longer in
    the dream than in the game, however well the head is calibrated on the collection
    policy's episodes.

    Returns:
        (N,) float64, one sum per episode.
    """
    lengths = np.array([e.length for e in episodes])
    frames, actions, _ = _padded(episodes)
    generator = torch.Generator(model.device).manual_seed(seed)
    state = model.encode(torch.from_numpy(frames[:, 0]).to(model.device))
    ends = np.zeros(len(episodes))
    for t in range(frames.shape[1] - 1):
        a = torch.from_numpy(actions[:, t]).to(model.device)
        _, done = model.reward_done(model.step(state, a, generator))
        ends += np.where(t < lengths, end_probability(done).double().cpu().numpy(), 0.0)
        state = model.advance(state, a, torch.from_numpy(frames[:, t + 1]).to(model.device))
    return ends


@torch.no_grad()
def follow_real_episodes(
    model: WorldModel,
    episodes: Sequence[Episode],
    temperature: float,
    horizon: int = 100,
    seed: int = 0,
    openloop_temperature: float = 1e-3,
    done_k: Sequence[int] = (),
    end_probability: Callable[[torch.Tensor], torch.Tensor] = lambda p: p,
    done_samples: int = 8,
) -> FollowResult:
    """Teacher-forced heads and open-loop prediction over real ``episodes``, batched.

    Each episode gets an open-loop start t0 (step 0 for every other episode, as a dream's reset;
    a random step with at least ``horizon`` steps after it, when there is one, for the rest):
    the model follows the real frames up to t0, then dreams on alone with the real actions, and
    its latent and decoded frame are compared with V's encoding of the real frames (latent MSE
    per dimension, pixel MSE in [0, 1] units), beside the baseline that copies frame t0. The
    open-loop dream is the model's point prediction (``openloop_temperature``, near 0: each
    step takes the most likely mixture component's mean), since a sample's error mostly
    measures the sampling noise. The heads read M's memory before any sampling, so
    ``temperature`` only sets the (unused) sampled latents of the teacher-forced pass.

    For each k in ``done_k``, the chance that the episode ends within k steps of step t is the
    dream's own: from M's memory at t, ``done_samples`` dreams at ``temperature`` go on alone
    with the real actions (the last one repeated past the episode's end) and end at each step
    with ``end_probability`` of the done head's probability (the dream's done rule); the score
    is 1 minus their mean survival over the k steps. The one-step probability alone is the
    wrong score for k > 1: a head that times deaths exactly gives 0 two steps before one.
    Skipped when no episode ends by termination (there is nothing to discriminate).
    """
    n = len(episodes)
    lengths = np.array([e.length for e in episodes])
    frames, actions, _ = _padded(episodes)
    rng = np.random.default_rng(seed)
    t0 = np.array([
        0 if i % 2 == 0 or length <= horizon else int(rng.integers(0, length - horizon + 1))
        for i, length in enumerate(lengths)
    ])  # fmt: skip
    generator = torch.Generator(model.device).manual_seed(seed)
    device = model.device

    def frames_at(t: int) -> torch.Tensor:
        return torch.from_numpy(frames[:, t]).to(device)

    # V+M's latent alone ("z"); a model without that mode is compared on its default features.
    latent_mode = "z" if "z" in model.feature_modes else None

    def latent(state) -> torch.Tensor:
        return model.features(state, latent_mode).float()

    def pixels(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0

    forced = model.encode(frames_at(0))  # teacher-forced state
    mixed = forced  # teacher-forced before t0, dreaming from t0 on
    start_frame = pixels(frames_at(0))
    start_latent = latent(forced)
    t0_t = torch.as_tensor(t0, device=device)
    done_prob = np.zeros((n, frames.shape[1] - 1), np.float32)
    reward_pred = np.zeros_like(done_prob)
    done_k = sorted(done_k) if any(e.terminated for e in episodes) else []
    ends = {k: np.zeros_like(done_prob) for k in done_k}
    imagined_actions = _repeat_last_action(actions, lengths, max(done_k, default=0))
    imagination = torch.Generator(model.device).manual_seed(seed + 1)
    sums = {k: np.zeros(horizon)
            for k in ("latent", "latent_copy", "frame", "frame_copy", "frame_recon")}  # fmt: skip
    count = np.zeros(horizon)
    # Per horizon: the sum of the compared real frames and of their mean squared pixel, from
    # which the mean-frame baseline's error follows once the mean frame is known.
    frame_sums = torch.zeros(horizon, *frames.shape[2:], dtype=torch.float64, device=device)
    square_sums = np.zeros(horizon)
    for t in range(frames.shape[1] - 1):
        if done_k:
            alive = np.flatnonzero(lengths > t)
            survival = _imagined_survival(
                model,
                state_index(forced, _rows(alive, device)),
                actions=imagined_actions[alive, t:],
                ks=done_k,
                samples=done_samples,
                temperature=temperature,
                end_probability=end_probability,
                generator=imagination,
            )
            for k in done_k:
                ends[k][alive, t] = 1.0 - survival[k]
        a = torch.from_numpy(actions[:, t]).to(device)
        reward, done = model.reward_done(model.step(forced, a, generator, temperature=temperature))
        done_prob[:, t], reward_pred[:, t] = done.cpu().numpy(), reward.cpu().numpy()
        dreamed = model.step(mixed, a, generator, temperature=openloop_temperature)
        real_next = frames_at(t + 1)
        forced = model.advance(forced, a, real_next)
        mixed = state_where(t0_t > t, forced, dreamed)
        at_start = t0_t == t + 1
        start_frame = torch.where(at_start[:, None, None, None], pixels(real_next), start_frame)
        start_latent = torch.where(at_start[:, None], latent(forced), start_latent)
        h = t - t0  # the horizon (0-based) of this step's prediction
        valid = (h >= 0) & (h < horizon) & (t < lengths)
        if not valid.any():
            continue
        rows = torch.as_tensor(np.flatnonzero(valid), device=device)
        target_latent, target_frame = latent(forced)[rows], pixels(real_next)[rows]
        decoded = pixels(model.decode(state_index(mixed, rows)))
        reconstructed = pixels(model.decode(state_index(forced, rows)))
        errors = {
            "latent": ((latent(mixed)[rows] - target_latent) ** 2).mean(1),
            "latent_copy": ((start_latent[rows] - target_latent) ** 2).mean(1),
            "frame": ((decoded - target_frame) ** 2).mean((1, 2, 3)),
            "frame_copy": ((start_frame[rows] - target_frame) ** 2).mean((1, 2, 3)),
            "frame_recon": ((reconstructed - target_frame) ** 2).mean((1, 2, 3)),
        }
        for key, value in errors.items():
            np.add.at(sums[key], h[valid], value.cpu().numpy())
        np.add.at(count, h[valid], 1)
        frame_sums.index_add_(0, torch.as_tensor(h[valid], device=device), target_frame.double())
        np.add.at(square_sums, h[valid], (target_frame.double() ** 2).mean((1, 2, 3)).cpu().numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {k: np.where(count > 0, v / np.maximum(count, 1), np.nan) for k, v in sums.items()}
    means["frame_mean_frame"] = _mean_frame_error(frame_sums.cpu().numpy(), square_sums, count)
    return FollowResult(
        done_prob=[done_prob[i, : lengths[i]] for i in range(n)],
        ends_within={k: [p[i, : lengths[i]] for i in range(n)] for k, p in ends.items()},
        reward_pred=[reward_pred[i, : lengths[i]] for i in range(n)],
        latent_error=means["latent"], latent_error_copy=means["latent_copy"],
        frame_error=means["frame"], frame_error_copy=means["frame_copy"],
        frame_error_recon=means["frame_recon"],
        frame_error_mean_frame=means["frame_mean_frame"], openloop_count=count,
    )  # fmt: skip


def _mean_frame_error(frame_sums: np.ndarray, square_sums: np.ndarray,
                      count: np.ndarray) -> np.ndarray:  # fmt: skip
    """(H,) pixel MSE of predicting every frame as one mean frame, from per-horizon sums of the
    real frames (H, 64, 64, 3) and of their mean squared pixel (H,), over ``count`` (H,) frames.

    The mean frame averages the per-horizon means, so that it is the constant frame with the
    lowest error averaged over the horizons: E_h[(c - x)^2] = c^2 - 2 c m_h + E_h[x^2]."""
    valid = count > 0
    out = np.full(len(count), np.nan)
    if not valid.any():
        return out
    per_horizon = frame_sums[valid] / count[valid, None, None, None]
    mean_frame = per_horizon.mean(0)
    out[valid] = ((mean_frame**2).mean() - 2 * (per_horizon * mean_frame).mean((1, 2, 3))
                  + square_sums[valid] / count[valid])  # fmt: skip
    return out


def _rows(rows: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(rows, dtype=torch.long, device=device)


def _repeat_last_action(actions: np.ndarray, lengths: np.ndarray, extra: int) -> np.ndarray:
    """(N, T + extra, A): each episode's actions, its last one repeated past its end."""
    out = np.concatenate([actions, np.repeat(actions[:, -1:], extra, 1)], 1)
    for i, length in enumerate(lengths):
        out[i, length:] = actions[i, length - 1]
    return out


def _imagined_survival(
    model: WorldModel,
    start,
    actions: np.ndarray,
    ks: Sequence[int],
    samples: int,
    temperature: float,
    end_probability: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator,
) -> dict[int, np.ndarray]:
    """For M states ``start`` and their next actions (M, >= max(ks), A): the mean over
    ``samples`` dreams of the chance to survive k steps, per k, (M,) each."""
    m = len(actions)
    state = state_index(start, _rows(np.repeat(np.arange(m), samples), model.device))
    alive = torch.ones(m * samples, device=model.device)
    out = {}
    for j in range(max(ks)):
        a = torch.from_numpy(np.repeat(actions[:, j], samples, 0)).to(model.device)
        state = model.step(state, a, generator, temperature=temperature)
        alive = alive * (1.0 - end_probability(model.reward_done(state)[1].float()))
        if j + 1 in ks:
            out[j + 1] = alive.view(m, samples).mean(1).cpu().numpy()
    return out
