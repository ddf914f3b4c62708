"""M: the World Models MDN-RNN, with reward and done heads.

An LSTM reads [z_t, a_t] (plus a restart flag, 1 on an episode's first step, as the Doom model
did) and its output h_{t+1} parameterises, **separately for every latent dimension**, a mixture
of K Gaussians over z_{t+1} (the original's per-dimension mixture; the ctallec/world-models port
shares one mixture weight vector across dimensions, a different model). Linear heads on h_{t+1}
predict the reward r_t (MSE) and whether the episode ends after a_t (BCE, positive class weighted).

Shapes, with B batch, T time, Z latent size, K mixtures, A action size:

    x = [z_t, a_t(, restart_t)]                 (B, T, Z + A (+ 1))
    h = LSTM(x)                                 (B, T, H)
    mdn = Linear(h)                             (B, T, Z * K * 3)
      -> logits, mu, logsigma                   (B, T, Z, K) each
    reward = Linear(h)                          (B, T)
    done_logit = Linear(h)                      (B, T)

Differences from the paper, on purpose: the reward head (the original CarRacing M had none), and
PyTorch's LSTM, which has two bias vectors where TensorFlow's had one (so the parameter count is
1,024 above the paper's 422,368 for CarRacing even without the heads).

Dropout (Dropout's Dream Land, Wellmer & Kwok 2021): with ``dropout`` > 0, training drops units of
the latent input z_t and of the recurrent input h_t with one mask per sequence (variational
dropout, as Keras' LSTM ``dropout`` / ``recurrent_dropout``; the action is never dropped), scaled
by 1 / (1 - p). A dream may do the same at inference (``dream_dropout``): each dream episode draws
its own masks at its first step and keeps them, so every episode is a slightly different world
model and a controller cannot exploit one model's errors. Where Keras draws one mask per gate,
this draws one per input, as Gal & Ghahramani's tied variant does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dreamgym.common import validate
from dreamgym.envs import PAPER, get_env_spec

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
DONE_BIAS_INIT = -3.0


@dataclass
class MDNRNNConfig:
    """M's architecture and training settings.

    Attributes:
        z_size: latent size (V's).
        action_size: the real env's action size.
        hidden_size: LSTM units (paper: 256 CarRacing, 512 Doom).
        n_mixtures: Gaussians per latent dimension (paper: 5).
        restart_flag: feed a 1-on-first-step flag (the Doom model did).
        done_pos_weight: weight of the positive class in the done BCE (paper: 10).
        reward_weight: weight of the reward MSE in the total loss.
        done_weight: weight of the done BCE in the total loss.
        epochs: passes over the training episodes; each episode gives one random window per epoch,
            so with 10,000 episodes and batch 100 an epoch is 100 steps (paper: 4,000 steps).
        seq_len: steps per training window (paper: 999 CarRacing, 500 Doom).
        batch_size: windows per step (paper: 100).
        lr: Adam learning rate (paper: 1e-3).
        lr_decay: multiplicative decay per step (paper Doom: 0.99999; 1.0 keeps lr fixed).
        grad_clip: gradient norm clip (paper: 1.0).
        val_fraction: fraction of episodes held out for validation.
        seed: seeds the split, windows and the z re-sampling.
        dropout: training dropout rate of z_t and h_t (one mask per window; 0: none).
        dream_dropout: the dream's default inference dropout rate (one mask per dream episode;
            Dropout's Dream Land: 0.1 after training at 0.05). Dreams may override it.
        length_batches: batch windows of similar length (each pool of a few random batches
            sorted by window length) instead of the paper's random batches: a batch computes every
            window for as many steps as its longest, so mixed lengths (whole TakeCover episodes
            run from 100 to 2,100 steps) waste most of an epoch on padding.
    """

    z_size: int = 32
    action_size: int = 3
    hidden_size: int = 256
    n_mixtures: int = 5
    restart_flag: bool = False
    done_pos_weight: float = 10.0
    reward_weight: float = 1.0
    done_weight: float = 1.0
    epochs: int = 40
    seq_len: int = 999
    batch_size: int = 100
    lr: float = 1e-3
    lr_decay: float = 1.0
    grad_clip: float = 1.0
    val_fraction: float = 0.05
    seed: int = 0
    dropout: float = 0.0
    dream_dropout: float = 0.0
    length_batches: bool = False

    def __post_init__(self) -> None:
        self.dropout = validate.fraction("dropout", self.dropout)
        self.dream_dropout = validate.fraction("dream_dropout", self.dream_dropout)


Masks = tuple[torch.Tensor, torch.Tensor]


def dropout_masks(
    n: int,
    z_size: int,
    hidden_size: int,
    rate: float,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> Masks:
    """Inverted-dropout masks for N sequences: z (N, Z) and h (N, H), entries 0 or 1 / (1 - p)."""
    keep = 1.0 - rate
    masks = torch.rand(n, z_size + hidden_size, generator=generator, device=device) < keep
    masks = masks.float() / keep
    return masks[:, :z_size], masks[:, z_size:]


# Named presets: the settings each differs from MDNRNNConfig's defaults in; PAPER values are
# the env's. paper: the reference settings per env; small; debug: seconds on a CPU (the tests).
MDNRNN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"restart_flag": PAPER, "hidden_size": PAPER, "seq_len": PAPER, "lr_decay": PAPER},
    "small": {"restart_flag": PAPER, "hidden_size": 256, "epochs": 20, "seq_len": 200,
              "batch_size": 32},
    "debug": {"restart_flag": PAPER, "hidden_size": 64, "epochs": 8, "seq_len": 32,
              "batch_size": 16},
}  # fmt: skip


def mdnrnn_preset(name: str, env: str, z_size: int, action_size: int) -> MDNRNNConfig:
    """The preset ``name`` of :data:`MDNRNN_PRESETS` for ``env``'s data (V's ``z_size``, the
    env's ``action_size``).

    Raises:
        DreamgymError: an unknown preset or env.
    """
    validate.preset("MDN-RNN", name, MDNRNN_PRESETS)
    settings = get_env_spec(env).paper.fill(MDNRNN_PRESETS[name])
    return MDNRNNConfig(z_size=z_size, action_size=action_size, **settings)


class MDNRNN(nn.Module):
    """LSTM + per-dimension mixture density head + reward and done heads."""

    def __init__(self, config: MDNRNNConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.input_size = c.z_size + c.action_size + int(c.restart_flag)
        self.lstm = nn.LSTM(self.input_size, c.hidden_size, batch_first=True)
        self.mdn = nn.Linear(c.hidden_size, c.z_size * c.n_mixtures * 3)
        self.reward = nn.Linear(c.hidden_size, 1)
        self.done = nn.Linear(c.hidden_size, 1)
        # Episode ends are rare: start the done head near p = 0.05 rather than 0.5, so that an
        # untrained or barely trained M does not end every dream at its first step.
        nn.init.constant_(self.done.bias, DONE_BIAS_INIT)

    def inputs(
        self, z: torch.Tensor, action: torch.Tensor, restart: torch.Tensor | None
    ) -> torch.Tensor:
        """Concatenate [z, a(, restart)] along the last dimension."""
        parts = [z, action]
        if self.config.restart_flag:
            if restart is None:
                raise ValueError("this M reads a restart flag; pass restart")
            parts.append(restart.to(z.dtype).unsqueeze(-1))
        return torch.cat(parts, dim=-1)

    def heads(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """LSTM outputs (..., H) -> mixture params (..., Z, K), reward (...), done logit (...)."""
        c = self.config
        params = self.mdn(h).view(*h.shape[:-1], c.z_size, c.n_mixtures, 3)
        return {
            "logits": params[..., 0],
            "mu": params[..., 1],
            "logsigma": params[..., 2],
            "reward": self.reward(h).squeeze(-1),
            "done_logit": self.done(h).squeeze(-1),
        }

    def forward(
        self,
        z: torch.Tensor,
        action: torch.Tensor,
        restart: torch.Tensor | None = None,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Run M over (B, T) steps from ``state`` (zeros by default).

        In training mode with ``dropout`` > 0, each window draws masks for z and h (see the
        module docstring) and the steps run one fused cell call at a time.

        Returns the heads (see :meth:`heads`) for every step and the final (h, c), each
        (1, B, H).
        """
        c = self.config
        if not (self.training and c.dropout > 0):
            out, state = self.lstm(self.inputs(z, action, restart), state)
            return self.heads(out), state
        b, t = z.shape[:2]
        masks = dropout_masks(b, c.z_size, c.hidden_size, c.dropout, z.device)
        if state is None:
            hc = (z.new_zeros(b, c.hidden_size), z.new_zeros(b, c.hidden_size))
        else:
            hc = (state[0][0], state[1][0])
        outs = []
        for i in range(t):
            r = None if restart is None else restart[:, i]
            _, hc = self.step(z[:, i], action[:, i], r, hc, masks, heads=False)
            outs.append(hc[0])
        return self.heads(torch.stack(outs, 1)), (hc[0][None], hc[1][None])

    def step(
        self,
        z: torch.Tensor,
        action: torch.Tensor,
        restart: torch.Tensor | None,
        state: tuple[torch.Tensor, torch.Tensor],
        masks: Masks | None = None,
        heads: bool = True,
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """One batched step: z (N, Z), action (N, A), state (h, c) each (N, H) -> heads, (h, c).

        Uses the LSTM's weights through one fused cell call (no per-env Python loop).
        ``masks`` (see :func:`dropout_masks`) multiply z and the recurrent h; ``heads=False``
        skips the heads (and returns an empty dict).
        """
        h_in = state[0]
        if masks is not None:
            z, h_in = z * masks[0], h_in * masks[1]
        x = self.inputs(z, action, restart)
        h, c = torch.lstm_cell(
            x, (h_in, state[1]), self.lstm.weight_ih_l0, self.lstm.weight_hh_l0,
            self.lstm.bias_ih_l0, self.lstm.bias_hh_l0,
        )  # fmt: skip
        return (self.heads(h) if heads else {}), (h, c)


def mdn_log_prob(
    target: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor
) -> torch.Tensor:
    """log p(target) per latent dim: target (..., Z), params (..., Z, K) -> (..., Z)."""
    t = target.unsqueeze(-1)
    log_normal = -0.5 * ((t - mu) * torch.exp(-logsigma)) ** 2 - logsigma - LOG_SQRT_2PI
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + log_normal, dim=-1)


def mdnrnn_losses(
    heads: dict[str, torch.Tensor],
    next_z: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    mask: torch.Tensor,
    config: MDNRNNConfig,
) -> dict[str, torch.Tensor]:
    """Masked losses over (B, T): {"loss", "nll", "reward", "done"}.

    ``nll`` is the mixture negative log-likelihood averaged over valid steps and latent
    dimensions; ``reward`` the MSE; ``done`` the BCE with ``done_pos_weight`` on positives.
    """
    m = mask.float()
    count = m.sum().clamp(min=1)
    logp = mdn_log_prob(next_z.float(), *(heads[k].float() for k in ("logits", "mu", "logsigma")))
    nll = -(logp.mean(-1) * m).sum() / count
    reward_loss = ((heads["reward"].float() - reward) ** 2 * m).sum() / count
    pos_weight = torch.tensor(config.done_pos_weight, device=mask.device)
    done_loss = F.binary_cross_entropy_with_logits(
        heads["done_logit"].float(), done.float(), pos_weight=pos_weight, reduction="none"
    )
    done_loss = (done_loss * m).sum() / count
    total = nll + config.reward_weight * reward_loss + config.done_weight * done_loss
    return {"loss": total, "nll": nll, "reward": reward_loss, "done": done_loss}


def fit_logit_offset(logits: np.ndarray, labels: np.ndarray) -> float:
    """The offset b for which sum(sigmoid(logits + b)) equals the number of positive labels.

    A one-parameter recalibration of the done head, fitted on held-out episodes: training with
    positives weighted x``done_pos_weight`` inflates the head's odds, so that drawing episode ends
    from its probabilities ends dreams too early; with b added, the expected number of ends along
    real episodes matches the observed one.
    """
    logits = np.asarray(logits, np.float64)
    target = float(np.sum(labels))
    if target <= 0 or target >= len(logits):
        raise ValueError(f"need both classes to calibrate, got {target:g} of {len(logits)}")
    lo, hi = -50.0, 50.0
    for _ in range(100):  # bisection: the sum is increasing in b
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logits + mid)))).sum() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def sample_mdn(
    logits: torch.Tensor,
    mu: torch.Tensor,
    logsigma: torch.Tensor,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample z' from per-dimension mixtures at temperature tau: params (N, Z, K) -> (N, Z).

    The World Models semantics: the mixture logits are divided by tau and renormalised separately
    for every latent dimension, one component is picked per dimension, and
    z' = mu_k + exp(logsigma_k) * sqrt(tau) * N(0, 1). tau -> 0 approaches the most likely
    component's mean; tau = 1 samples the mixture itself.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    # Components first, (K, N, Z): a scan along the short last dimension is CUDA's slow case
    # (it took 85% of a batched dream step on an H200); along the first it is one cheap pass.
    probs = torch.softmax(logits.movedim(-1, 0) / temperature, dim=0)
    u = torch.rand(probs.shape[1:], generator=generator, device=probs.device)
    # Inverse-CDF pick: the first component whose cumulative probability exceeds u.
    k = (probs.cumsum(0) < u).sum(0).clamp(max=probs.shape[0] - 1).unsqueeze(-1)
    mu_k = mu.gather(-1, k).squeeze(-1)
    sigma_k = logsigma.gather(-1, k).squeeze(-1).exp()
    eps = torch.randn(mu_k.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu_k + sigma_k * math.sqrt(temperature) * eps
