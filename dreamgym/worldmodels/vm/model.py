"""The V+M world model (World Models): the first implementation of the world-model protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dreamgym.common import validate
from dreamgym.errors import CorruptFileError, DreamgymError
from dreamgym.worldmodels.checkpoint import load_model, read_checkpoint
from dreamgym.worldmodels.protocol import check_feature_mode
from dreamgym.worldmodels.vm.mdnrnn import MDNRNN, MDNRNNConfig, dropout_masks, sample_mdn
from dreamgym.worldmodels.vm.vae import ConvVAE, VAEConfig, frames_to_input, output_to_frames


@dataclass
class VMState:
    """N dream states: latent z (N, Z), LSTM hidden h and cell c (N, H), ``first`` (N,), True
    until the first step (it feeds M's restart flag), the reward (N,) and done probability
    (N,) M predicted for the step that led here (zeros at a start), the episode's dropout
    masks for z (N, Z) and h (N, H) (ones without dropout) and the episode's ensemble member
    (N,) long (0 with one M); masks and member are drawn at an episode's first step."""

    z: torch.Tensor
    h: torch.Tensor
    c: torch.Tensor
    first: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    z_mask: torch.Tensor
    h_mask: torch.Tensor
    member: torch.Tensor


class VMWorldModel:
    """V (ConvVAE) + M (MDN-RNN) + the bank of first-frame latents, loaded from a bundle.

    Implements the whole protocol: reward and done heads, a decoder (V's), no goal cost.
    Features: ``zh`` [z, h] (the paper's CarRacing controller input, the default), ``z`` (V
    only), ``zch`` [z, c, h] (the original Doom controller input). Step options:
    ``temperature``, ``dropout`` and ``ensemble``.

    An ensemble of Ms (``members`` > 1, one V and one bank of initial latents): each dream
    episode draws its member uniformly at its first step and keeps it, so every episode is
    another world model and a controller cannot exploit one M's errors. ``ensemble=False``
    dreams with member 0 only; ``ensemble="cycle"`` dreams row i of the batch in member
    i mod K (to score one controller in every member, see ``agents.backends``).
    ``ensemble="pessimistic"`` draws the episode's member as ``True`` does, for its latents,
    reward and memory, but every member's done head judges every step (from the episode's
    memory) and the most fearful one rules: the dream ends where one M foresees a death that
    another does not (K times the M work per step). ``mdnrnn`` is member 0, the M that
    :meth:`advance` uses.

    Args:
        vae: the trained V.
        mdnrnn: the trained M, or the Ms of an ensemble (member 0 first), all of one
            architecture.
        initial_mu, initial_logvar: (E, Z) V outputs of the recorded first frames.
        info: the bundle's metadata (env, action bounds, ...).
        device: where every operation runs.
    """

    def __init__(
        self,
        vae: ConvVAE,
        mdnrnn: MDNRNN | Sequence[MDNRNN],
        initial_mu: torch.Tensor,
        initial_logvar: torch.Tensor,
        info: dict[str, Any],
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.vae = vae.to(self.device).eval()
        members = [mdnrnn] if isinstance(mdnrnn, MDNRNN) else list(mdnrnn)
        self.members = [m.to(self.device).eval() for m in members]
        self.mdnrnn = self.members[0]
        self.initial_mu = initial_mu.to(self.device)
        self.initial_std = torch.exp(0.5 * initial_logvar.to(self.device))
        self.info = info
        self.env = info["env"]
        self.action_space = gym.spaces.Box(
            np.asarray(info["action_low"], np.float32), np.asarray(info["action_high"], np.float32)
        )
        self.z_size = self.mdnrnn.config.z_size
        self.hidden_size = self.mdnrnn.config.hidden_size
        self.dream_dropout = self.mdnrnn.config.dream_dropout

    feature_modes = ("zh", "z", "zch")
    step_options = ("temperature", "dropout", "ensemble")

    @property
    def num_members(self) -> int:
        """How many Ms the ensemble holds (1: a single M)."""
        return len(self.members)

    def feature_size(self, mode: str | None = None) -> int:
        mode = check_feature_mode(self, mode)
        return self.z_size + self.hidden_size * (len(mode) - 1)

    def _start(self, z: torch.Tensor) -> VMState:
        n = len(z)
        h, c = (torch.zeros(n, self.hidden_size, device=self.device) for _ in range(2))
        zeros = torch.zeros(n, device=self.device)
        first = torch.ones(n, dtype=torch.bool, device=self.device)
        z_mask = torch.ones(n, self.z_size, device=self.device)
        h_mask = torch.ones(n, self.hidden_size, device=self.device)
        member = torch.zeros(n, dtype=torch.long, device=self.device)
        return VMState(z, h, c, first, zeros, zeros.clone(), z_mask, h_mask, member)

    @torch.no_grad()
    def initial_state(self, n: int, generator: torch.Generator | None = None) -> VMState:
        """z sampled from a random recorded first frame's (mu, logvar); LSTM state zero."""
        pick = torch.randint(len(self.initial_mu), (n,), generator=generator, device=self.device)
        eps = torch.randn((n, self.z_size), generator=generator, device=self.device)
        return self._start(self.initial_mu[pick] + self.initial_std[pick] * eps)

    @torch.no_grad()
    def step(
        self,
        state: VMState,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        dropout: float | None = None,
        ensemble: bool | str = True,
    ) -> VMState:
        """One M step for N dreams: z' sampled at ``temperature`` (see ``sample_mdn``), M's
        inputs dropped out at rate ``dropout`` (default M's ``dream_dropout``) with the masks of
        each episode, by the ensemble member of each episode (``ensemble=False``: member 0
        for all; ``"cycle"``: member i mod K for row i; ``"pessimistic"``: as True, with the
        highest of all members' done probabilities); masks and member are drawn where the
        episode takes its first step."""
        rate = self.dream_dropout if dropout is None else validate.fraction("dropout", dropout)
        member = state.member
        # Drawn for every row and kept where an episode starts: no data-dependent branch, so the
        # step stays free of host syncs (a captured CUDA graph replays it as is).
        if ensemble == "cycle":
            member = torch.arange(len(member), device=self.device) % self.num_members
        elif ensemble and self.num_members > 1:
            fresh = torch.randint(self.num_members, member.shape, generator=generator,
                                  device=self.device)  # fmt: skip
            member = torch.where(state.first, fresh, member)
        elif not ensemble:
            member = torch.zeros_like(member)
        masks = None
        z_mask, h_mask = state.z_mask, state.h_mask
        if rate > 0:
            fresh_masks = dropout_masks(len(state.z), self.z_size, self.hidden_size, rate,
                                        self.device, generator)  # fmt: skip
            first = state.first.unsqueeze(1)
            z_mask = torch.where(first, fresh_masks[0], z_mask)
            h_mask = torch.where(first, fresh_masks[1], h_mask)
            masks = (z_mask, h_mask)
        inputs = (state.z, action.to(self.device, torch.float32), state.first,
                  (state.h, state.c), masks)  # fmt: skip
        if ensemble and self.num_members > 1:  # "cycle" and "pessimistic" too
            heads, (h, c) = self._ensemble_step(member, *inputs, self.device.type == "cuda",
                                                pessimistic=ensemble == "pessimistic")  # fmt: skip
        else:
            heads, (h, c) = self.mdnrnn.step(*inputs)
        z = sample_mdn(heads["logits"], heads["mu"], heads["logsigma"], temperature, generator)
        done = torch.sigmoid(heads["done_logit"])
        return VMState(z, h, c, torch.zeros_like(state.first), heads["reward"], done,
                       z_mask, h_mask, member)  # fmt: skip

    def _ensemble_step(
        self,
        member: torch.Tensor,
        z: torch.Tensor,
        action: torch.Tensor,
        first: torch.Tensor,
        hc: tuple[torch.Tensor, torch.Tensor],
        masks: tuple[torch.Tensor, torch.Tensor] | None,
        every_row: bool,
        pessimistic: bool = False,
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Each row stepped by its member's M: (heads, (h, c)) as ``MDNRNN.step`` returns.

        ``every_row`` (on CUDA) runs every member on every row and picks each row's: K times
        the (cheap) GPU work but no host sync, so the step stays capturable in a CUDA graph.
        Else (on a CPU, where compute is the cost) each member steps only its own rows.
        ``pessimistic`` runs every member on every row and gives each row the highest done
        logit among them.
        """
        if every_row or pessimistic:
            outs = [m.step(z, action, first, hc, masks) for m in self.members]

            def pick(values: list[torch.Tensor]) -> torch.Tensor:
                stacked = torch.stack(values)
                index = member.view(1, -1, *[1] * (stacked.dim() - 2))
                return stacked.gather(0, index.expand(1, *stacked.shape[1:])).squeeze(0)

            heads = {key: pick([o[0][key] for o in outs]) for key in outs[0][0]}
            if pessimistic:  # a logit's max is its probability's max
                heads["done_logit"] = torch.stack([o[0]["done_logit"] for o in outs]).amax(0)
            return heads, (pick([o[1][0] for o in outs]), pick([o[1][1] for o in outs]))
        heads: dict[str, torch.Tensor] = {}
        h, c = torch.empty_like(hc[0]), torch.empty_like(hc[1])
        for k, m in enumerate(self.members):
            rows = (member == k).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            sub = m.step(z[rows], action[rows], first[rows], (hc[0][rows], hc[1][rows]),
                         None if masks is None else (masks[0][rows], masks[1][rows]))  # fmt: skip
            for key, value in sub[0].items():
                if key not in heads:
                    heads[key] = value.new_empty((len(z), *value.shape[1:]))
                heads[key].index_copy_(0, rows, value)
            h.index_copy_(0, rows, sub[1][0])
            c.index_copy_(0, rows, sub[1][1])
        return heads, (h, c)

    def reward_done(self, state: VMState) -> tuple[torch.Tensor, torch.Tensor]:
        return state.reward, state.done

    def features(self, state: VMState, mode: str | None = None) -> torch.Tensor:
        mode = check_feature_mode(self, mode)
        parts = {"z": [state.z], "zh": [state.z, state.h], "zch": [state.z, state.c, state.h]}
        return torch.cat(parts[mode], dim=1)

    @torch.no_grad()
    def decode(self, state: VMState) -> torch.Tensor:
        return output_to_frames(self.vae.decode(state.z))

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> VMState:
        """z = V's mean for each frame; LSTM state zero."""
        mu, _ = self.vae.encode(frames_to_input(frames.to(self.device)))
        return self._start(mu)

    @torch.no_grad()
    def advance(self, state: VMState, action: torch.Tensor, frames: torch.Tensor) -> VMState:
        """Follow the real game: M steps on the action, z becomes V's encoding of ``frames``.

        An ensemble advances with member 0: its members start from the same weights (see
        :class:`~dreamgym.worldmodels.vm.train_mdnrnn.MDNRNNTrainer`), so their h spaces stay
        close and a controller evolved in the ensemble's dream reads member 0's features.
        """
        _, (h, c) = self.mdnrnn.step(
            state.z, action.to(self.device, torch.float32), state.first, (state.h, state.c)
        )
        seen = self.encode(frames)
        return VMState(seen.z, h, c, torch.zeros_like(state.first), seen.reward, seen.done,
                       state.z_mask, state.h_mask, seen.member)  # fmt: skip


def _required(path: Path) -> Path:
    if not path.exists():
        raise DreamgymError(f"world-model bundle file {str(path)!r} is missing")
    return path


BUNDLE_KIND = "vae-mdnrnn"
# bundle.json's ``files`` key listing an ensemble's members 1..K-1 (member 0 is ``mdnrnn``).
MEMBERS_KEY = "mdnrnn_members"
# The settings every member must share with member 0.
_MEMBER_FIELDS = ("z_size", "action_size", "hidden_size", "n_mixtures", "restart_flag")


def _load_member(root: Path, name: str, first: MDNRNNConfig, env: str) -> MDNRNN:
    """Ensemble member ``name`` of the bundle ``root``, checked against member 0's config."""
    path = _required(root / name)
    tensors, meta = read_checkpoint(path)
    config = MDNRNNConfig(**meta["config"])
    differ = [f"{key}={getattr(config, key)!r} (member 0: {getattr(first, key)!r})"
              for key in _MEMBER_FIELDS if getattr(config, key) != getattr(first, key)]  # fmt: skip
    if meta["env"] != env:
        differ.append(f"env={meta['env']!r} (the bundle: {env!r})")
    if differ:
        raise CorruptFileError(
            f"ensemble member {str(path)!r} does not match member 0: " + ", ".join(differ)
        )
    mdnrnn = MDNRNN(config)
    load_model(mdnrnn, tensors, path)
    return mdnrnn


def load_vm(root: Path, info: dict[str, Any], device: str | torch.device) -> VMWorldModel:
    """Load a ``vae-mdnrnn`` bundle, checking that V, M and the bundle agree.

    ``files`` may list an ensemble's further Ms under ``"mdnrnn_members"``; each must share
    member 0's architecture (z, action and hidden sizes, mixtures, restart flag) and env.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    files = info["files"]
    vae_path, m_path = _required(root / files["vae"]), _required(root / files["mdnrnn"])
    initial_path = _required(root / files["initial_latents"])
    vae_tensors, vae_meta = read_checkpoint(vae_path)
    m_tensors, m_meta = read_checkpoint(m_path)
    vae_config, m_config = VAEConfig(**vae_meta["config"]), MDNRNNConfig(**m_meta["config"])
    action_size = len(info["action_low"])
    problems = []
    if vae_config.z_size != m_config.z_size:
        problems.append(f"V has z_size={vae_config.z_size} but M has z_size={m_config.z_size}")
    if m_config.action_size != action_size:
        problems.append(f"M has action_size={m_config.action_size} but the env has {action_size}")
    for name, meta in (("V", vae_meta), ("M", m_meta)):
        if meta["env"] != info["env"]:
            problems.append(f"{name} was trained on {meta['env']!r}, the bundle is {info['env']!r}")
    if problems:
        raise CorruptFileError(
            f"world-model bundle {str(root)!r} is inconsistent: " + "; ".join(problems)
        )
    vae = ConvVAE(vae_config.z_size)
    load_model(vae, vae_tensors, vae_path)
    mdnrnn = MDNRNN(m_config)
    load_model(mdnrnn, m_tensors, m_path)
    members = [mdnrnn] + [_load_member(root, name, m_config, info["env"])
                          for name in files.get(MEMBERS_KEY, [])]  # fmt: skip
    try:
        bank = load_file(str(initial_path))
    except (SafetensorError, OSError) as exc:
        raise CorruptFileError(
            f"initial-latent bank {str(initial_path)!r} is corrupt: {exc}"
        ) from exc
    if bank["mu"].shape[1:] != (m_config.z_size,):
        raise CorruptFileError(
            f"initial-latent bank {str(initial_path)!r} has shape "
            f"{tuple(bank['mu'].shape)}, expected (E, {m_config.z_size})"
        )
    # Float32 whatever the file holds (exported bundles may store fp16).
    return VMWorldModel(vae, members, bank["mu"].float(), bank["logvar"].float(), info, device)
