"""Every named preset behind one function: ``preset(kind, name, **settings)``.

Each config owns its presets beside it (``VAE_PRESETS`` in ``worldmodels/vm/vae.py``,
``EVOLUTION_PRESETS`` in ``agents/evolution.py``, ...); this module only finds them, so that the
CLI's choices and the library's configs cannot drift apart.

>>> from dreamgym.presets import preset, preset_names
>>> preset("planner", "cpu", horizon=8).samples
100
>>> preset_names("evolution")
['paper', 'small', 'debug']

Some kinds need to know the data or env they are for (keyword arguments of :func:`preset`):

=============  ==========================================  ============================
kind           config                                      needs
=============  ==========================================  ============================
``vae``        ``worldmodels.vm.vae.VAEConfig``            ``env``
``mdnrnn``     ``worldmodels.vm.mdnrnn.MDNRNNConfig``      ``env``, ``z_size``,
                                                           ``action_size``
``latent``     ``worldmodels.latent.config.LatentConfig``  ``action_size`` (and
                                                           ``proprio_size``, default 0)
``evolution``  ``agents.evolution.EvolutionConfig``        -
``planner``    ``agents.planning.PlannerConfig``           -
``agent``      ``agents.sb3_config.AgentConfig``           ``env`` (optional)
``pipeline``   ``pipeline_config.PipelineConfig``          ``env``
=============  ==========================================  ============================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dreamgym.common import validate
from dreamgym.errors import DreamgymError


@dataclass(frozen=True)
class _Kind:
    names: Callable[[dict[str, Any]], list[str]]  # context -> the preset names
    build: Callable[..., Any]  # (name, **context) -> the preset's config
    needs: tuple[str, ...] = ()  # the context it must be given
    optional: tuple[str, ...] = ()  # the context it may be given


def _vae() -> _Kind:
    from dreamgym.worldmodels.vm.vae import VAE_PRESETS, vae_preset

    return _Kind(lambda _: list(VAE_PRESETS), vae_preset, ("env",))


def _mdnrnn() -> _Kind:
    from dreamgym.worldmodels.vm.mdnrnn import MDNRNN_PRESETS, mdnrnn_preset

    return _Kind(lambda _: list(MDNRNN_PRESETS), mdnrnn_preset, ("env", "z_size", "action_size"))


def _latent() -> _Kind:
    from dreamgym.worldmodels.latent.presets import LATENT_PRESETS, latent_preset

    return _Kind(lambda _: list(LATENT_PRESETS), latent_preset, ("action_size",), ("proprio_size",))


def _evolution() -> _Kind:
    from dreamgym.agents.evolution import EVOLUTION_PRESETS, evolution_preset

    return _Kind(lambda _: list(EVOLUTION_PRESETS), evolution_preset)


def _planner() -> _Kind:
    from dreamgym.agents.planning import PLANNER_PRESETS, planner_preset

    return _Kind(lambda _: list(PLANNER_PRESETS), planner_preset)


def _agent() -> _Kind:
    from dreamgym.agents.sb3_config import AGENT_PRESETS, agent_config

    # agent_config applies the settings itself: they are checked together (AgentConfig.check)
    return _Kind(lambda _: list(AGENT_PRESETS), agent_config, (), ("env",))


def _pipeline() -> _Kind:
    from dreamgym.pipeline_config import pipeline_preset, preset_names

    return _Kind(lambda context: preset_names(context.get("env")), pipeline_preset, ("env",))


# Imported on use: the world-model kinds pull in torch, the agent kind stable-baselines3.
_KINDS: dict[str, Callable[[], _Kind]] = {
    "vae": _vae, "mdnrnn": _mdnrnn, "latent": _latent, "evolution": _evolution,
    "planner": _planner, "agent": _agent, "pipeline": _pipeline,
}  # fmt: skip
KINDS = tuple(_KINDS)


def _kind(kind: str) -> _Kind:
    return _KINDS[validate.choice("preset kind", kind, KINDS)]()


def preset_names(kind: str, env: str | None = None) -> list[str]:
    """The names of the presets of ``kind``, in their declared order; for ``pipeline``, those of
    ``env`` (without it, of every env).

    Raises:
        DreamgymError: an unknown kind or env.
    """
    return _kind(kind).names({} if env is None else {"env": env})


def preset(kind: str, name: str | None, **settings: Any) -> Any:
    """The config of the preset ``name`` of ``kind``, with ``settings`` applied.

    Args:
        kind: one of :data:`KINDS`.
        name: a name of :func:`preset_names`; for ``agent`` also None (the env's preset, else
            ``default``).
        settings: what the kind needs to know (see the module docstring: ``env``,
            ``z_size``, ...), then fields of its config that replace the preset's (None
            values are ignored).

    Raises:
        DreamgymError: an unknown kind, preset or field, a missing ``env`` or data size, or a
            bad value; each names the value and what was expected.
    """
    spec = _kind(kind)
    missing = [n for n in spec.needs if settings.get(n) is None]
    if missing:
        raise DreamgymError(f"{kind} presets need {', '.join(missing)}")
    context = {n: settings.pop(n) for n in (*spec.needs, *spec.optional) if n in settings}
    if kind == "agent":
        return spec.build(name, context.get("env"), settings)
    config = spec.build(name, **context)
    overrides = {k: v for k, v in settings.items() if v is not None}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(config)})
    if unknown:
        raise DreamgymError(f"unknown {kind} setting(s) {', '.join(unknown)}")
    config = dataclasses.replace(config, **overrides)
    if hasattr(config, "check"):
        config.check()
    return config
