"""The shared validators: every public boundary (CLI values, constructor arguments, configs)
checks its numbers with these, so that every bad value gets the same kind of one-line error
naming the value and what was expected (a :class:`~dreamgym.errors.DreamgymError`, exit status 2
in the CLI), before anything is written."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Collection
from typing import Any

from dreamgym.errors import DreamgymError


def integer(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer >= ``minimum`` (booleans are not integers)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DreamgymError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def optional_integer(name: str, value: Any, minimum: int = 1) -> int | None:
    """None, or :func:`integer`."""
    return None if value is None else integer(name, value, minimum)


def real(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
) -> float:
    """``value`` as a float when it is a finite real number within the bounds (booleans and
    strings are refused, not coerced)."""
    low = "" if minimum is None else (f"> {minimum:g}" if strict_minimum else f">= {minimum:g}")
    high = "" if maximum is None else f"<= {maximum:g}"
    expected = " ".join(["a finite number", " and ".join(b for b in (low, high) if b)]).strip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise DreamgymError(f"{name} must be {expected}, got {value!r}")
    low_ok = minimum is None or (value > minimum if strict_minimum else value >= minimum)
    if not low_ok or (maximum is not None and value > maximum):
        raise DreamgymError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """A finite number > 0 (temperatures, standard deviations)."""
    return real(name, value, 0.0, strict_minimum=True)


def fraction(name: str, value: Any) -> float:
    """A dropout rate: a finite number in [0, 0.9] (above, too few units are left to model)."""
    return real(name, value, 0.0, 0.9)


def choice(name: str, value: Any, allowed: Collection[str]) -> str:
    """``value`` when it is one of ``allowed``."""
    if value not in allowed:
        raise DreamgymError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def preset(kind: str, name: Any, known: Collection[str]) -> str:
    """``name`` when it is one of the ``known`` presets of ``kind`` (``"VAE"``, ``"planner"``)."""
    if name not in known:
        raise DreamgymError(f"unknown {kind} preset {name!r}; known: {', '.join(known)}")
    return name


def preset_config(kind: str, name: Any, presets: dict[str, Any], **overrides: Any) -> Any:
    """The config of the named preset of ``kind`` with ``overrides`` applied (None ignored),
    checked by its ``check()``."""
    preset(kind, name, presets)
    config = dataclasses.replace(
        presets[name], **{k: v for k, v in overrides.items() if v is not None}
    )
    config.check()
    return config


def ray_address(address: str | None) -> None:
    """Check the Ray cluster ``address`` (else ``$RAY_ADDRESS``) names, before anything is
    written: nobody listening or a refused token is an error now. Ray is imported only when
    there is an address."""
    if address or os.environ.get("RAY_ADDRESS"):
        from dreamgym.common.cluster import check_address

        check_address(address)
