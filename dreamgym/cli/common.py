"""What the commands share: the shared flags (parent parsers), the flags of a config's fields
(declared from the config), and the library's defaults."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dreamgym.errors import DreamgymError


def library_default(owner: Any, name: str) -> Any:
    """The default the library declares for ``name``: a dataclass field's or a parameter's.

    The CLI's flags default to None and pass nothing then, so that this stays the only one."""
    if dataclasses.is_dataclass(owner):
        return next(f.default for f in dataclasses.fields(owner) if f.name == name)
    return inspect.signature(owner).parameters[name].default


def default(owner: Any, name: str) -> str:
    """``(default: VALUE)`` for a flag's help, VALUE read from the library."""
    return f"(default: {library_default(owner, name)})"


def or_default(value: Any, owner: Any, name: str) -> Any:
    """``value``, or the library's default when the flag was not given."""
    return library_default(owner, name) if value is None else value


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments whose flags were given: the others keep the library's defaults."""
    return {k: v for k, v in values.items() if v is not None}


def shared_flags() -> dict[str, argparse.ArgumentParser]:
    """Flags that several commands share, each declared once: argparse parent parsers, passed as
    ``parents=[...]`` to the commands that take them."""

    def parent(*args: str, **kwargs) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument(*args, **kwargs)
        return parser

    return {
        "device": parent("--device", default="auto",
                         help="torch device of this process: auto | cpu | cuda[:N] "
                         "(default: %(default)s)"),
        "quiet": parent("--quiet", action="store_true", help="no progress bars"),
        # Not on collect, envs and export: collect runs torch in its Ray workers only.
        "threads": parent("--threads", type=int, metavar="N",
                          help="torch threads of this process (default: chosen for the kind of "
                          "work, as the README's 'Threads' says; Ray workers keep theirs)"),
        "address": parent("--address",
                          help="Ray cluster to join, e.g. 'auto' after `ray start --head`, or "
                          "HOST:PORT (default: a local Ray)"),
        "temperature": parent("--temperature", type=float,
                              help="dream tau (default: the env's, e.g. 1.0; Doom 1.15)"),
        "done_mode": parent(
            "--done-mode",
            choices=["threshold", "sample", "calibrated"],
            help="dream episode end: done probability > 0.5 (the paper), drawn from it, or drawn "
            "from it recalibrated on held-out episodes (default: calibrated when the bundle has "
            "a calibration, else threshold)",
        ),
    }  # fmt: skip


def parents(*names: str) -> list[argparse.ArgumentParser]:
    """The parent parsers of the shared flags ``names`` (keys of :func:`shared_flags`)."""
    shared = shared_flags()
    return [shared[name] for name in names]


def field_help(config: type) -> dict[str, str]:
    """Each field's description in ``config``'s docstring (its Google-style ``Attributes:``
    section, the one home of what a setting means), as one line; ``a, b: text`` describes both.

    Raises:
        TypeError: ``config`` has no ``Attributes:`` section.
    """
    lines = inspect.cleandoc(config.__doc__ or "").splitlines()
    if "Attributes:" not in lines:
        raise TypeError(f"{config.__name__}'s docstring has no 'Attributes:' section")
    entries: list[tuple[list[str], list[str]]] = []
    for line in lines[lines.index("Attributes:") + 1 :]:
        if line and not line.startswith(" "):
            break  # the next section
        entry = re.fullmatch(r" {4}(\w+(?:, \w+)*): (.*)", line)
        if entry:
            entries.append((entry[1].split(", "), [entry[2]]))
        elif line.strip() and entries:
            entries[-1][1].append(line.strip())
    helps = {}
    for names, text in entries:
        line = " ".join(text).replace("``", "").rstrip(".")
        helps.update(dict.fromkeys(names, line))
    return helps


def preset_values(kind: str) -> Callable[[str], str]:
    """For :func:`add_config_flags`: a field's value in each preset of ``kind`` (a kind whose
    presets need no context, such as ``evolution``), e.g. ``the preset's: paper 64, debug 8``,
    or the one value that they share."""
    from dreamgym.presets import preset, preset_names

    configs = {name: preset(kind, name) for name in preset_names(kind)}

    def values(name: str) -> str:
        if len({repr(getattr(c, name)) for c in configs.values()}) == 1:
            return str(getattr(next(iter(configs.values())), name))
        return "the preset's: " + ", ".join(f"{p} {getattr(c, name)}" for p, c in configs.items())

    return values


def add_config_flags(
    parser: argparse.ArgumentParser,
    config: type,
    fields: Sequence[str],
    *,
    rename: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[str]] | None = None,
    metavar: Mapping[str, str] | None = None,
    default: Callable[[str], str] = lambda _: "the preset's",
) -> tuple[str, ...]:
    """A flag per field of the dataclass ``config`` (``--seq-len`` for ``seq_len``), its type
    from the field's annotation and its help from the docstring (:func:`field_help`), so that
    both are declared once, beside the config. Each flag defaults to None (not given: the
    preset's or the config's value stays) and its ``dest`` is the field's name.

    Args:
        parser: the command's parser.
        config: the dataclass.
        fields: the fields that get a flag, in the help's order.
        rename: flags named otherwise than the field (``{"learning_rate": "--lr"}``).
        choices: the values a field takes (the library's constants, e.g. ``ALGOS``).
        metavar: the help's name of a field's value.
        default: the help's default of a field (``(default: ...)``), unless the docstring
            states it; the preset's by default.

    Returns:
        ``fields``, for :func:`config_values`.

    Raises:
        TypeError: a field without description, or of a type that no flag parses.
    """
    helps, hints = field_help(config), typing.get_type_hints(config)
    rename, choices, metavar = rename or {}, choices or {}, metavar or {}
    for name in fields:
        if name not in helps:
            raise TypeError(f"{config.__name__}.{name} is not described under 'Attributes:'")
        text = helps[name].replace("%", "%%")
        if "(default:" not in text:
            text += f" (default: {default(name)})"
        flag = rename.get(name, _flag(name))
        kind = _flag_type(hints[name])
        kwargs: dict[str, Any] = {"dest": name, "help": text, "default": None}
        if kind is bool:
            # Optional booleans (None: decided from the data) can be set either way.
            optional = hints[name] is not bool
            kwargs["action"] = argparse.BooleanOptionalAction if optional else "store_true"
        else:
            # A list of integers is parsed by config_values: its error is one line.
            kwargs["type"] = str if kind is _integers else kind
            if name in choices:
                kwargs["choices"] = choices[name]
            if name in metavar or kind is _integers:
                kwargs["metavar"] = metavar.get(name, "N,N,...")
            elif name in rename and name not in choices:  # named after the flag, as the rest
                kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()
        parser.add_argument(flag, **kwargs)
    return tuple(fields)


def config_values(
    args: argparse.Namespace,
    config: type,
    fields: Sequence[str],
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The values of the flags that :func:`add_config_flags` declared, by field (None: not
    given); lists of integers (``--net-arch 64,64``) are parsed here, so that a bad one is a
    one-line error.

    Raises:
        DreamgymError: a list of integers that is not one.
    """
    values = {name: getattr(args, name) for name in fields}
    hints = typing.get_type_hints(config)
    for name, value in values.items():
        if value is not None and _flag_type(hints[name]) is _integers:
            values[name] = _integers((rename or {}).get(name, _flag(name)), value)
    return values


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _integers(flag: str, text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise DreamgymError(
            f"{flag} must be comma-separated integers, e.g. 64,64, got {text!r}"
        ) from None


def _flag_type(annotation: Any) -> Any:
    """What parses a field of type ``annotation`` (None allowed: the flag's "not given")."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1:
            return _flag_type(kinds[0])
    if annotation in (int, float, str, bool):
        return annotation
    if annotation == tuple[int, ...]:
        return _integers
    raise TypeError(f"no flag parses a field of type {annotation}")
