"""The real environments dreamgym knows, by short name, and their Gymnasium ids."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from dreamgym.common import validate
from dreamgym.errors import DreamgymError


@dataclass(frozen=True)
class PaperDefaults:
    """What the World Models paper (Ha & Schmidhuber, 2018) and its reference code chose for an
    env. Presets, dreams and controllers start from these.

    Attributes:
        z_size: V's latent size (CarRacing 32, Doom 64).
        hidden_size: M's LSTM units (CarRacing 256, Doom 512).
        seq_len: M's training sequence length (CarRacing 999, Doom 500).
        lr_decay: M's learning-rate decay per step (Doom 0.99999).
        restart_flag: whether M reads a flag that marks an episode's first step (Doom).
        temperature: the dream's default tau (CarRacing 1.0, Doom 1.15).
        observation_mode: the controller's input (CarRacing [z, h], Doom [z, c, h]).
        bias: whether the controller has a bias (Doom's has none).
        generations: CMA-ES generations of the paper's run (CarRacing 1,800, Doom 200).
    """

    z_size: int = 32
    hidden_size: int = 256
    seq_len: int = 999
    lr_decay: float = 1.0
    restart_flag: bool = False
    temperature: float = 1.0
    observation_mode: str = "zh"
    bias: bool = True
    generations: int = 1800

    def fill(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` with every :data:`PAPER` value replaced by this env's field of that name
        (how a preset says "the paper's value for the env")."""
        return {k: getattr(self, k) if v is PAPER else v for k, v in settings.items()}


class _Paper:
    def __repr__(self) -> str:
        return "PAPER"


PAPER: Any = _Paper()
"""A preset's value that stands for the env's own :class:`PaperDefaults` field of the same name
(see :meth:`PaperDefaults.fill`)."""


ActionMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RealEnvSpec:
    """One real environment: every fact dreamgym needs about it, in one place.

    Attributes:
        name: the short name used by the CLI and in datasets (``"carracing"``).
        gym_id: the id registered with Gymnasium on ``import dreamgym``.
        entry_point: ``"module:Class"`` of the env.
        max_episode_steps: the default time limit in agent steps.
        kwargs: fixed constructor arguments (e.g. the ViZDoom scenario).
        description: one line for ``dreamgym envs``.
        probe_actions: named constant actions that fidelity reports hold for a whole episode, in
            the dream and in the real game, to expose dreams an agent could exploit (e.g.
            "keep strafing left"); empty for an env with no obvious probes.
        render_fps: frames per second of videos and of the dream's ``render_fps``.
        paper: the World Models paper's choices for this env.
        collection_policy: the policy that collects the first rollouts (a policy name).
        controller_actions: maps a controller's tanh outputs in [-1, 1] (..., A) to actions;
            ``None``: linearly onto the action space's bounds.
        pipeline_presets: per pipeline preset, the settings that differ from the generic preset
            (``dreamgym.pipeline_config.pipeline_preset``), e.g. ``{"small": {"max_steps": 300}}``.
        aliases: other names users know it by (the upstream Gymnasium id), accepted wherever a
            name is: ``"CarRacing-v3"`` for ``carracing``.
        goal_success: for goal-reaching envs, ``"module:function"`` of ``success(state,
            goal_state) -> bool array`` on the states that episodes record (``info["state"]``).
        goal_proprio: the components of ``info["proprio"]`` that a goal fixes, which a latent
            model's goal cost compares (Push-T: the agent's x, y, not its velocity); None: all.
        goal_object: the components of the recorded state that place the object a goal moves
            (Push-T: the block's x, y in px); how far they move from a pair's start to its goal
            is the pair's difficulty. None: goal reports give no breakdown.
        goal_object_bins: the edges (in the state's units) that goal reports break success
            down by the object's move (Push-T: below 15 px, 15-50 px, 50 px and more).
    """

    name: str
    gym_id: str
    entry_point: str
    max_episode_steps: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    probe_actions: dict[str, tuple[float, ...]] = field(default_factory=dict)
    render_fps: int = 30
    paper: PaperDefaults = field(default_factory=PaperDefaults)
    collection_policy: str = "brownian"
    controller_actions: ActionMap | None = None
    pipeline_presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    goal_success: str | None = None
    goal_proprio: tuple[int, ...] | None = None
    goal_object: tuple[int, ...] | None = None
    goal_object_bins: tuple[float, ...] = ()
    world_model: str = "vae-mdnrnn"
    aliases: tuple[str, ...] = ()


def carracing_actions(out: torch.Tensor) -> torch.Tensor:
    """The paper's CarRacing mapping: steer = x0, gas = (x1 + 1) / 2, brake = clip(x2, 0, 1)."""
    return torch.stack([out[..., 0], (out[..., 1] + 1) / 2, out[..., 2].clamp(0, 1)], -1)


_CAR = "dreamgym.envs.carracing:CarRacing64"
_DOOM = "dreamgym.envs.doom:Doom64"

_DOOM_SCENARIOS = {
    # name: (scenario cfg, id stem, time limit, description)
    "doom-takecover": ("take_cover", "DoomTakeCover", 2100, "dodge fireballs; +1 per tic alive"),
    "doom-defend-center": ("defend_the_center", "DoomDefendCenter", 2100, "turn and shoot"),
    "doom-defend-line": ("defend_the_line", "DoomDefendLine", 2100, "turn and shoot"),
    "doom-health-gathering": ("health_gathering", "DoomHealthGathering", 2100, "find medkits"),
    "doom-basic": ("basic", "DoomBasic", 300, "strafe and shoot one monster"),
    "doom-predict-position": ("predict_position", "DoomPredictPosition", 300, "rocket a target"),
}

_DOOM_PAPER = PaperDefaults(
    z_size=64, hidden_size=512, seq_len=500, lr_decay=0.99999, restart_flag=True,
    temperature=1.15, observation_mode="zch", bias=False, generations=200,
)  # fmt: skip
_DOOM_PIPELINE: dict[str, dict[str, Any]] = {
    # Episodes end by death: keep them whole (no caps) so that M sees deaths.
    "small": {"min_length": 101},
    # The best 2 CPU cores reached in about an hour (docs/fidelity.md): many cheap episodes,
    # V on a subset, a long-trained M on the paper's sequence length (most windows are whole
    # episodes from their first step, so M can track the damage taken so far), the calibrated
    # done rule at the paper's tau 1.15, and one round of the paper's iterative training (a
    # second round made the shipped controller worse in every run so far).
    "cpu": {
        "episodes": 1000, "vae_overrides": {"epochs": 4, "max_episodes": 120},
        "mdnrnn_overrides": {"epochs": 40, "seq_len": 500}, "generations": 30, "rollouts": 8,
        "eval_every": 10, "eval_rollouts": 128, "temperature": 1.15, "done_mode": "calibrated",
        "iterations": 1, "iteration_episodes": 200, "fidelity_episodes": 256,
        "fidelity_real_episodes": 20,
    },
    # cpu, with 120 episodes that hold one action from start to end (a third strafe left, a
    # third right, a third stand still) beside repeat's: repeat never shows a whole episode of
    # one strafe, and seed 1's cpu dream forgave exactly that (docs/evolution.md "Seeds").
    "cpu-hold": {"base": "cpu", "extra_policies": {"hold": 120}},
    # cpu-hold whose final M is an ensemble of 3 (each continued from the first round's M with
    # its own sampling seed) and whose final evolution scores every candidate in the M where
    # it does worst (its 8 dream episodes in each M): cpu-hold's controllers found dreams
    # about twice as kind as the game (docs/evolution.md); CarRacing's worst-M fitness
    # (docs/carracing.md) keeps a controller out of one M's errors.
    "cpu-hold-ensemble": {"base": "cpu-hold", "members": 3, "ensemble_fitness": "worst"},
    # cpu-hold-ensemble with a second controller evolved in the final dream (side by side with
    # the first on 2 cores: about no extra wall time) and the better of the two on 20 real
    # episodes kept: the dream still pays about 1.6x what the game does (docs/evolution.md).
    "cpu-hold-ensemble-c2": {"base": "cpu-hold-ensemble", "candidates": 2, "select_episodes": 20},
    # cpu-hold-ensemble-c2 whose Ms train with Dropout's Dream Land's dropout (0.05 on z and h,
    # one mask per window) and dream with inference dropout 0.1, a fresh mask per dream episode:
    # their Doom controller rose from 767 without inference dropout to 933 with 0.1; on top of
    # the worst of 3 Ms, seed 2 fell from 792.5 to 361.0 (docs/evolution.md).
    "cpu-hold-ensemble-c2-dropout": {
        "base": "cpu-hold-ensemble-c2",
        "mdnrnn_overrides": {"dropout": 0.05, "dream_dropout": 0.1},
    },
    # cpu-hold-ensemble-c2 with a second round of the paper's iterative training (200 noisy
    # real episodes of the first round's controller, M continued 10 more epochs before the
    # final ensemble): the final controllers' dreams still pay 1.6-2x what the game does, in
    # states that only a better controller reaches. Seed 2: the final dream is more honest for
    # its controller (1.37x kinder than the game against 1.57x), which scores about the same
    # in the game (772.9 against one round's 757.4; docs/evolution.md).
    "cpu-hold-ensemble-c2-i2": {"base": "cpu-hold-ensemble-c2", "iterations": 2},
    # cpu-hold-ensemble-c2 with four times the collected episodes (4,000 repeat, 480 hold; the
    # paper collects 10,000) and M's epochs cut to keep its training windows (and time) the
    # same: the paper's M saw each of its episodes a few times, ours saw each about 40 times.
    # Seed 2: a harsher dream and a worse controller (560.5 against one round's 757.4 on the
    # smaller data; docs/evolution.md).
    "cpu-hold-ensemble-c2-4x": {
        "base": "cpu-hold-ensemble-c2", "episodes": 4000, "extra_policies": {"hold": 480},
        "mdnrnn_overrides": {"epochs": 10}, "iteration_epochs": 3,
    },
    # cpu-hold-ensemble-c2 with the paper's Doom M of 512 LSTM units (256 before) trained for
    # half the epochs: one step of it costs about 2.09x the 256-unit M's on 2 cores, so its
    # training time stays that of the base's M. Seed 2: a much better first dream (its round-0
    # controller 737.5), the same final controller (785.5 against 757.4 and 792.5), and 115
    # minutes, its dream steps twice as dear (docs/evolution.md).
    "cpu-hold-ensemble-c2-512": {
        "base": "cpu-hold-ensemble-c2", "iteration_epochs": 5,
        "mdnrnn_overrides": {"hidden_size": _DOOM_PAPER.hidden_size, "epochs": 20},
    },
    # cpu-hold-ensemble-c2 whose Ms train on whole episodes (windows of the time limit, all
    # from the first step, in batches of similar length): with the paper's 500-step windows a
    # longer episode gives M a window from a random step with an empty memory, while a dream
    # runs from its first step. Seed 2: a final dream that passes the collection policy's
    # fidelity bars (survival 0.79x, done AUROC 0.92) and a worse controller (462.6, 419.5 on
    # fresh seeds, against one round's 757.4), its dream 1.7x kinder than the game where it
    # goes; 63.7 min (docs/evolution.md).
    "cpu-hold-ensemble-c2-whole": {
        "base": "cpu-hold-ensemble-c2",
        "mdnrnn_overrides": {"seq_len": _DOOM_SCENARIOS["doom-takecover"][2],
                             "length_batches": True},
    },
    # cpu-hold-ensemble-c2 whose final evolutions dream pessimistically: each episode draws
    # its M, and the episode ends with the highest end probability of the 3 Ms' done heads
    # (the dream ends where they disagree about a death), instead of scoring each candidate in
    # its worst M: every controller so far found its final dream about 1.5x kinder than the
    # game, a part of it the done head's where the controller goes. Seed 0, on the same final
    # dream as cpu-hold-ensemble-c2's seed 0: 733.9 against its 562.6, but over four evolution
    # seeds per rule 345.8 against 466.9 on average (docs/evolution.md).
    "cpu-hold-ensemble-c2-pessimistic": {
        "base": "cpu-hold-ensemble-c2", "ensemble_fitness": "pessimistic",
    },
    "paper": {"min_length": 101},
}  # fmt: skip

REAL_ENVS: dict[str, RealEnvSpec] = {
    "carracing": RealEnvSpec(
        "carracing",
        "Real-CarRacing-v0",
        _CAR,
        1000,
        description="Gymnasium CarRacing-v3, dashboard cropped, 64x64",
        probe_actions={
            "idle": (0.0, 0.0, 0.0),
            "full gas": (0.0, 1.0, 0.0),
            "gas, steer left": (-1.0, 0.5, 0.0),
            "gas, steer right": (1.0, 0.5, 0.0),
        },
        render_fps=50,
        controller_actions=carracing_actions,
        aliases=("CarRacing-v3",),
        # Short tracks in the small presets: a full lap of a poor driver is 1,000 slow steps.
        pipeline_presets={
            "debug": {"max_steps": 100, "dream_steps": 100, "real_steps": 100},
            "small": {"max_steps": 300, "dream_steps": 300, "real_steps": 300},
            # A controller trained only in the dream that drives (docs/carracing.md): episodes
            # of the road driver (standing, crawling and driving on the road, swerving off it
            # and back), V on 40 of them, M trained with Dropout's Dream Land's dropout and
            # dreaming with a fresh inference-dropout mask every episode, then one round of
            # the paper's iterative training (the first controller's own noisy, shorter
            # episodes show M what its errors led to; a second round made it worse).
            "cpu-driver": {
                "base": "cpu",
                "policy": "road-driver",
                "episodes": 110,
                "vae_overrides": {"epochs": 1, "max_episodes": 40},
                "mdnrnn_overrides": {
                    "epochs": 200,
                    "seq_len": 200,
                    "dropout": 0.05,
                    "dream_dropout": 0.1,
                },
                "generations": 60,
                "popsize": 32,
                "rollouts": 4,
                "eval_every": 10,
                "eval_rollouts": 64,
                "iterations": 1,
                "iteration_episodes": 50,
                "iteration_steps": 500,
                "iteration_epochs": 120,
                "fidelity_real_episodes": 5,
            },
            # cpu-driver, then three more controllers evolved in its final dream with other
            # seeds and the one that drives best over 20 real tracks kept (evolution seeds
            # moved the real score by hundreds); scored again on 100 other tracks.
            "cpu-driver-select": {
                "base": "cpu-driver",
                "candidates": 4,
                "select_episodes": 20,
            },
            # cpu-driver-select whose final dream is an ensemble of 3 Ms, each continued from
            # the first round's M with its own sampling seed: a controller must drive in all
            # three worlds, not in one M's errors (docs/carracing.md).
            "cpu-driver-ensemble": {
                "base": "cpu-driver-select",
                "members": 3,
            },
            # cpu-driver-ensemble whose final controllers are evolved with the paper's 16 dream
            # episodes per candidate (4 before): a candidate's fitness is less a matter of which
            # tracks and which M its few episodes drew.
            "cpu-driver-ensemble-r16": {
                "base": "cpu-driver-ensemble",
                "final_rollouts": 16,
            },
            # cpu-driver-ensemble with 40 episodes that hold one random action from start to
            # end beside the road driver's: the car circles, crawls off the road or stands,
            # which the road driver never does for long; the ensemble's final dreams forgave
            # exactly that (the steering and idle probes). Measured: the probes stay
            # exploitable, and seeds move both ways (docs/carracing.md).
            "cpu-driver-ensemble-hold": {
                "base": "cpu-driver-ensemble",
                "extra_policies": {"hold": 40},
            },
            # cpu-driver-ensemble-hold choosing among 8 controllers evolved in its final dream
            # (4 before): in one dream, evolution seeds land between about 200 and 650 in the
            # real game, and the dream does not tell them apart. Measured on two seeds: no
            # new candidate beat the first pick; more candidates do not rescue a dream.
            "cpu-driver-ensemble-hold-c8": {
                "base": "cpu-driver-ensemble-hold",
                "candidates": 8,
            },
            # cpu-driver-ensemble with twice the road driver's episodes (220): in one dream,
            # evolution seeds land hundreds apart in the real game, a dream not yet faithful
            # enough to rank controllers; Dropout's Dream Land trained on 5,120 episodes.
            # Measured over 100 real tracks: seed 2 784.3 (110 episodes: 473.6), seed 0 564.3
            # (480.6), seed 1 362.7 (751.7).
            "cpu-driver-ensemble-220": {
                "base": "cpu-driver-ensemble",
                "episodes": 220,
            },
            # cpu-driver-ensemble-220 whose final controllers are scored in the M where they do
            # worst: each candidate plays its 4 dream episodes in every one of the 3 Ms (3x the
            # final evolutions' episodes; the first round's M is one M, so its evolution is
            # unchanged). Drawing one M per episode, a candidate can earn its fitness in the M
            # whose errors pay it. Measured over 100 real tracks: seed 0 700.7 (-220: 564.3),
            # seed 1 719.5 (362.7), seed 2 560.7 (784.3); the shipped pretrained:carracing is
            # seed 0's run (docs/carracing.md).
            "cpu-driver-ensemble-220-worst": {
                "base": "cpu-driver-ensemble-220",
                "ensemble_fitness": "worst",
            },
        },
    ),  # fmt: skip
}
for _name, (_scenario, _stem, _limit, _text) in _DOOM_SCENARIOS.items():
    REAL_ENVS[_name] = RealEnvSpec(
        _name,
        f"Real-{_stem}-v0",
        _DOOM,
        _limit,
        {"scenario": _scenario},
        f"ViZDoom {_scenario}: {_text}, 64x64",
        # Axis 0 strafes left below -1/3 and right above +1/3 (see doom.py).
        probe_actions={"strafe left": (-1.0,), "stand still": (0.0,), "strafe right": (1.0,)}
        if _scenario == "take_cover"
        else {},
        render_fps=35,
        paper=_DOOM_PAPER,
        collection_policy="repeat",
        pipeline_presets=_DOOM_PIPELINE,
        aliases=(f"Vizdoom{_stem[4:]}-v0",),  # ViZDoom's own Gymnasium id
    )

# Push-T is DINO-WM's benchmark, not the World Models paper's: ``paper`` keeps the generic
# defaults (V+M sizes and CMA-ES settings nobody chose for it). Relative moves of a 2-D target
# need no controller mapping (tanh outputs are the moves). Time limit and fps are gym-pusht's.
REAL_ENVS["pusht"] = RealEnvSpec(
    "pusht",
    "Real-PushT-v0",
    "dreamgym.envs.pusht:PushT",
    300,
    description="gym-pusht Push-T: push the T onto its goal, relative moves (100 px), 64x64",
    probe_actions={
        "stay": (0.0, 0.0),
        "right": (0.5, 0.0),
        "left": (-0.5, 0.0),
        "down": (0.0, 0.5),
        "up": (0.0, -0.5),
    },
    render_fps=10,
    collection_policy="weak-expert",
    goal_success="dreamgym.envs.pusht:success",
    goal_proprio=(0, 1),
    goal_object=(2, 3),
    goal_object_bins=(15.0, 50.0),
    world_model="latent",
    aliases=("gym_pusht/PushT-v0",),
)


def register_real_env(spec: RealEnvSpec, replace: bool = False) -> None:
    """Add a real env to dreamgym (``dreamgym collect --env NAME``, datasets, dreams, presets).

    Args:
        spec: everything about the env; its ``entry_point`` must build an env with 64x64x3
            uint8 observations and a continuous (Box) action space.
        replace: allow replacing an env of the same name.

    Raises:
        DreamgymError: the name is taken (and ``replace`` is False).
    """
    if spec.name in REAL_ENVS and not replace:
        raise DreamgymError(f"a real env called {spec.name!r} is already registered")
    REAL_ENVS[spec.name] = spec
    if spec.gym_id in gym.registry:
        del gym.registry[spec.gym_id]
    _register_with_gym(spec)


def _register_with_gym(spec: RealEnvSpec) -> None:
    gym.register(spec.gym_id, entry_point=spec.entry_point,
                 max_episode_steps=spec.max_episode_steps, kwargs=dict(spec.kwargs))  # fmt: skip


def register_real_envs() -> None:
    """Register every real env with Gymnasium (idempotent)."""
    for spec in REAL_ENVS.values():
        if spec.gym_id not in gym.registry:
            _register_with_gym(spec)


def list_envs() -> list[RealEnvSpec]:
    """Every real environment dreamgym knows, sorted by name."""
    return [REAL_ENVS[name] for name in sorted(REAL_ENVS)]


def _name_key(name: str) -> str:
    """A name without case, version suffix and punctuation (``"CarRacing-v3"``: ``carracing``)."""
    return re.sub(r"[^a-z0-9]", "", re.sub(r"-v\d+$", "", name.lower()))


def canonical_env_name(name: str) -> str:
    """The registered short name for ``name`` written in any case, with or without punctuation
    or a version, as its Gymnasium id or an alias (``"CarRacing"``, ``"Real-CarRacing-v0"``,
    ``"CarRacing-v3"``, ``"VizdoomTakeCover-v0"``, ``"doom_takecover"``); unknown names
    unchanged."""
    wanted = _name_key(name)
    for spec in REAL_ENVS.values():
        if wanted in {_name_key(n) for n in (spec.name, spec.gym_id, *spec.aliases)}:
            return spec.name
    return name


def get_env_spec(name: str) -> RealEnvSpec:
    """The spec of the real env called ``name``.

    Raises:
        DreamgymError: for an unknown name, listing the known ones.
    """
    try:
        return REAL_ENVS[name]
    except KeyError:
        raise DreamgymError(
            f"unknown environment {name!r}; known environments: {', '.join(sorted(REAL_ENVS))}"
        ) from None


def make_env(
    name: str,
    *,
    max_episode_steps: int | None = None,
    frame_skip: int = 1,
    render_mode: str | None = None,
) -> gym.Env:
    """Build the real env called ``name`` (see :func:`list_envs`) through ``gym.make``.

    Args:
        name: a short name such as ``"carracing"`` or ``"doom-takecover"``.
        max_episode_steps: time limit in agent steps; default the env's own.
        frame_skip: repeat each action this many frames.
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        DreamgymError: for an unknown name or a bad argument.
    """
    spec = get_env_spec(name)
    validate.optional_integer("max_episode_steps", max_episode_steps)
    validate.integer("frame_skip", frame_skip)
    register_real_envs()
    return gym.make(
        spec.gym_id,
        max_episode_steps=max_episode_steps or spec.max_episode_steps,
        frame_skip=frame_skip,
        render_mode=render_mode,
    )
