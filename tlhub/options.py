"""Declared options of a component (backbone, head, policy, data source) and their validation."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

from tlhub.errors import did_you_mean

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table"}


@dataclass(frozen=True)
class Opt:
    """One option: its name, type, default (``REQUIRED`` if none) and a one-line meaning.

    ``check``: for a value of the right type, '' when it is allowed, else why not ("must be in [0, 1)").
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple | None = None
    check: Callable[[Any], str] | None = None


REQUIRED = object()


def check_value(path: str, value: Any, typ: type, choices: tuple | None = None) -> list[str]:
    """Errors for one value against a type (ints are accepted where floats are)."""
    ok = isinstance(value, typ) and not (typ in (int, float) and isinstance(value, bool))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        return [f"{path}: expected {_TYPE_NAMES.get(typ, typ.__name__)}, got {value!r}"]
    if typ is float and not math.isfinite(value):
        return [f"{path}: expected a finite number, got {value!r}"]
    if typ is int and abs(value) > sys.maxsize:  # TOML's own limit; beyond it torch and range() overflow
        return [f"{path}: out of range (at most {sys.maxsize} in size), got {value!r}"]
    if choices is not None and value not in choices:
        return [f"{path}: must be one of {', '.join(map(repr, choices))}, got {value!r}"
                + did_you_mean(str(value), [str(c) for c in choices])]
    return []


def resolve_options(path: str, given: dict, declared: tuple[Opt, ...]) -> tuple[dict, list[str]]:
    """Merge ``given`` over the declared defaults; return (options, errors)."""
    errors: list[str] = []
    by_name = {o.name: o for o in declared}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            errors.append(f"{path}.{key}: unknown option{did_you_mean(key, by_name)} (known: {known})")
            continue
        opt = by_name[key]
        errs = check_value(f"{path}.{key}", value, opt.type, opt.choices)
        why = opt.check(value) if opt.check is not None and not errs else ""
        errors += errs + ([f"{path}.{key}: {why}, got {value!r}"] if why else [])
        out[key] = float(value) if opt.type is float and not isinstance(value, bool) and isinstance(value, (int, float)) else value
    for opt in declared:
        if opt.name not in out and opt.name not in given:
            if opt.default is REQUIRED:
                errors.append(f"{path}.{opt.name}: required option is missing ({opt.help})")
            else:
                out[opt.name] = opt.default
    return out, errors
