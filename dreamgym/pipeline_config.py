"""The pipeline's settings: :class:`PipelineConfig`, its stages, and the presets that fill it.

A preset is declared once: the generic ones in :data:`PIPELINE_PRESETS`, an env's own choices
and recipes in its ``RealEnvSpec.pipeline_presets`` (``dreamgym.envs.registry``);
:func:`pipeline_preset` resolves a name for an env. ``dreamgym.pipeline`` runs a config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dreamgym.envs import PAPER
from dreamgym.errors import DreamgymError


@dataclass
class PipelineConfig:
    """Every setting of a pipeline run (see :func:`pipeline_preset`).

    ``iteration_*`` configure the paper's iterative training (``iterations`` rounds): episodes
    collected by the last controller with Gaussian noise on its outputs, capped at
    ``iteration_steps`` steps (default: ``max_steps``); M continues ``iteration_epochs`` more
    epochs per round on all the data.

    ``candidates`` > 1 evolves that many controllers in the final dream (evolution seeds one
    apart) and keeps the one whose ``select_episodes`` real episodes score best. Their weights are
    trained only in the dream; the real episodes only choose among them, on seeds of their own, and
    the evaluate stage then scores the chosen one on other seeds (a pick by real score inflates
    the score it was picked on). The paper evolves once; evolution seeds in one dream moved the
    real CarRacing score by hundreds (docs/carracing.md). The evolutions run side by side, one
    process per core the run is given (``Pipeline.candidate_processes``): a dream evolves on one
    thread, so on 2 cores 4 candidates take about the time of 2.

    ``members`` > 1 makes the final world model (the one the controller is trained in) an
    ensemble of that many Ms (``train mdnrnn --members``): each dream episode draws one. With
    iterative training the members start from the previous round's M and differ in their sampling
    seeds, so their memories stay close enough for one controller to read any of them.

    ``ensemble_fitness`` is how an ensemble's evolutions score a candidate: ``mean`` (each dream
    episode draws its M), ``worst`` (the candidate plays its rollouts in every M and is scored
    in the M where it does worst; K times the episodes) or ``pessimistic`` (each episode draws
    its M, and every M's done head judges its steps, the highest end probability ruling; see
    ``agents.backends.DreamBackend``).

    ``final_rollouts`` sets the dream episodes per candidate of the evolutions in the final dream
    (the controllers the run keeps; default ``rollouts``); earlier iterations' evolutions, whose
    controllers only collect data, keep ``rollouts``.

    ``extra_policies`` names more built-in collection policies and their episode counts
    (``{"hold": 120}``): the collect stage runs each beside ``policy`` (into ``data-NAME/``, with
    seeds of its own), M trains on them in every round (V on ``policy``'s episodes only), and the
    baseline stage scores each as it scores ``policy``. The paper collects with one policy; a
    dream trained only on it can forgive behaviour it never showed (on Doom, holding one strafe:
    docs/evolution.md).

    ``agent`` other than ``cmaes`` (``ppo``, ``sac``, ``td3``) trains that SB3 agent in the final
    dream instead of the final evolution (earlier iterations still evolve controllers to collect
    with), at the agent preset ``agent_preset`` (default: ``debug`` for the debug pipeline, else
    the env's, see ``dreamgym.agents.sb3_config.agent_config``); ``dream_steps``,
    ``temperature``, ``done_mode``, ``observation_mode`` and ``seed`` apply to it as to the
    evolution. With ``candidates`` > 1 the select stage trains that many agents (seeds one apart)
    and keeps the one that scores best in ``select_episodes`` real episodes, as for controllers:
    on Doom, five PPO seeds in one dream scored 418 to 743 in the game with dream returns that
    did not tell them apart (docs/agents.md).
    """

    env: str
    preset: str
    episodes: int
    policy: str
    max_steps: int | None
    min_length: int
    extra_policies: dict[str, int] = field(default_factory=dict)
    vae_overrides: dict[str, Any] = field(default_factory=dict)
    mdnrnn_overrides: dict[str, Any] = field(default_factory=dict)
    generations: int = 4
    popsize: int = 8
    rollouts: int = 2
    eval_every: int = 2
    eval_rollouts: int = 8
    dream_steps: int | None = None
    evaluate_episodes: int = 4
    real_steps: int | None = None
    render_steps: int = 100
    temperatures: tuple[float, ...] = (0.5, 1.0, 1.15, 1.3)
    model_preset: str = "debug"
    temperature: float | None = None
    done_mode: str | None = None
    observation_mode: str = "zh"
    bias: bool = True
    iterations: int = 0
    iteration_episodes: int = 100
    iteration_noise: float = 0.3
    iteration_epochs: int = 10
    iteration_warm_start: bool = False
    iteration_steps: int | None = None
    fidelity_episodes: int = 256
    fidelity_real_episodes: int = 20
    candidates: int = 1
    select_episodes: int = 0
    members: int = 1
    ensemble_fitness: str = "mean"
    final_rollouts: int | None = None
    seed: int = 0
    agent: str = "cmaes"
    agent_preset: str | None = None


AGENTS = ("cmaes", "ppo", "sac", "td3")


def evaluation_seed(seed: int) -> int:
    """Base seed of a run's evaluate and baseline episodes: apart from the collection's ``seed``."""
    return seed + 1


def stage_names(config: PipelineConfig) -> list[str]:
    """The stages of a run, in order (iteration K adds collect_K, train_mdnrnn_K, evolve_K; an
    SB3 agent replaces the last evolve[_K] by train_agent[_K])."""
    names = ["collect", "train_vae", "train_mdnrnn", "evolve"]
    for k in range(1, config.iterations + 1):
        names += [f"collect_{k}", f"train_mdnrnn_{k}", f"evolve_{k}"]
    if config.agent != "cmaes":
        names[-1] = names[-1].replace("evolve", "train_agent")
    if config.candidates > 1:
        names.append("select")
    return names + ["evaluate", "baseline", "fidelity", "render"]


# The generic presets: the settings each gives PipelineConfig (PAPER values are the env's);
# an env's own choices and recipes (RealEnvSpec.pipeline_presets) go on top.
# - debug: minutes on 2 CPU cores (the tests and the README's main command);
# - small: a real but short run (tens of minutes);
# - cpu: the best result 2 CPU cores reached with the env's first recipe (docs/fidelity.md);
# - paper: the paper's sizes (a GPU and a Ray cluster).
PIPELINE_PRESETS: dict[str, dict[str, Any]] = {
    "debug": dict(
        episodes=12, max_steps=None, min_length=0, vae_overrides={"epochs": 3},
        mdnrnn_overrides={"epochs": 60}, generations=4, popsize=8, rollouts=2, eval_every=2,
        eval_rollouts=8, evaluate_episodes=4, render_steps=150, model_preset="debug",
        fidelity_episodes=32, fidelity_real_episodes=2,
    ),
    "small": dict(
        episodes=200, max_steps=None, min_length=0, vae_overrides={"epochs": 5},
        mdnrnn_overrides={"epochs": 20}, generations=30, popsize=32, rollouts=4,
        eval_every=10, eval_rollouts=64, evaluate_episodes=10, render_steps=300,
        model_preset="small", fidelity_episodes=128, fidelity_real_episodes=10,
    ),
    "cpu": dict(
        episodes=150, max_steps=None, min_length=0,
        vae_overrides={"epochs": 3, "max_episodes": 40}, mdnrnn_overrides={"epochs": 20},
        generations=15, popsize=32, rollouts=4, eval_every=5, eval_rollouts=64,
        evaluate_episodes=100, render_steps=500, model_preset="small",
        fidelity_episodes=128, fidelity_real_episodes=5,
    ),
    "paper": dict(
        episodes=10_000, max_steps=None, min_length=0, generations=PAPER,
        popsize=64, rollouts=16, eval_every=25, eval_rollouts=1024, evaluate_episodes=100,
        render_steps=1000, model_preset="paper", observation_mode=PAPER, bias=PAPER,
        fidelity_episodes=1024, fidelity_real_episodes=100,
    ),
}  # fmt: skip


def preset_names(env: str | None = None) -> list[str]:
    """The pipeline presets of ``env`` (the generic ones, then the env's own recipes); without
    ``env``, those of every env."""
    from dreamgym.envs import get_env_spec, list_envs

    specs = [get_env_spec(env)] if env else list_envs()
    extra = {n for spec in specs for n in spec.pipeline_presets if n not in PIPELINE_PRESETS}
    return [*PIPELINE_PRESETS, *sorted(extra)]


def pipeline_preset(preset: str, env: str) -> PipelineConfig:
    """The preset ``preset`` for ``env``: a generic preset of :data:`PIPELINE_PRESETS`, then
    the env's own choices (``RealEnvSpec.pipeline_presets``, see ``dreamgym.envs.registry``).

    An env may add recipes of its own under new names (a preset name never changes meaning):
    their settings name the preset they start from as ``"base"`` (a generic preset or another
    of the env's recipes); their ``vae_overrides`` / ``mdnrnn_overrides`` add to the base
    recipe's.

    Raises:
        DreamgymError: an unknown preset or env.
    """
    from dreamgym.envs import get_env_spec

    spec = get_env_spec(env)
    known = preset_names(env)
    if preset not in known:
        raise DreamgymError(
            f"unknown pipeline preset {preset!r} for {env}; known: {', '.join(known)}"
        )
    own, base = {}, preset
    while True:  # an env recipe names the preset it builds on; the generic one ends the chain
        step = dict(spec.pipeline_presets.get(base, {}))
        parent = step.pop("base", base)
        # A recipe's model overrides add to those of the recipe it builds on.
        merged = {k: {**step[k], **own[k]} for k in own if k.endswith("_overrides") and k in step}
        own = {**step, **own, **merged}
        if parent == base:
            break
        base = parent
    generic = spec.paper.fill(PIPELINE_PRESETS[base])
    settings = {"policy": spec.collection_policy, **generic, **own}
    return PipelineConfig(env, preset, **settings)
