"""Functions named as ``"package.module:function"`` (bundle-kind and policy-file loaders, an env's
goal-success rule), imported on first use so that naming one costs no import."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dreamgym.errors import DreamgymError


def resolve_callable(name: str, what: str = "function") -> Callable[..., Any]:
    """The function ``name`` (``"package.module:function"``) names, its module imported.

    Args:
        name: the module's dotted path, a colon, the function's name in it.
        what: what ``name`` is for, to name it in an error (e.g. ``"loader of kind 'latent'"``).

    Raises:
        DreamgymError: one line naming ``name`` when it is not of that form, its module does
            not import, or the module has no callable of that name.
    """
    module, colon, function = name.partition(":") if isinstance(name, str) else ("", "", "")
    if not (module and colon and function):
        raise DreamgymError(f"{what} {name!r} must be 'package.module:function'")
    try:
        found = getattr(importlib.import_module(module), function, None)
    except ImportError as exc:
        raise DreamgymError(f"{what} {name!r}: module {module!r} does not import ({exc})") from None
    if not callable(found):
        raise DreamgymError(f"{what} {name!r}: module {module!r} has no function {function!r}")
    return found
