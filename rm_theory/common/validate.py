"""Allowed values of config fields, declared next to the fields, and one validator that walks a
config object and names every key whose value is out of range.

A schema field says what it accepts through `spec(...)` (dataclass field metadata): a set of
`choices`, a bound (`ge`, `gt`, `le`, `lt`), `nonempty`, or `keys_of` (the keys of a dict field at
the config's root, e.g. which tasks exist). A number that may be any real says why in `unbounded`
(`tests/test_validation.py` checks that every numeric field of every schema declares one or the
other). Lists are checked element by element, and no float may be NaN or infinite. What one field
cannot say alone (two sweeps that together select nothing, a folder path that names a file) a schema
says in a method `cross_checks() -> list[str]` ('key = value: why', keys relative to the schema).
Every entry point validates its whole config once, before any work, so a value that selects nothing
or a size that cannot be run fails with the key's name instead of deep in numpy or pandas.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any


class ConfigError(ValueError):
    """One or more config values outside what their field allows; the message lists each key."""


def spec(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    choices: tuple | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    nonempty: bool = False,
    keys_of: str | None = None,
    unbounded: str | None = None,
) -> Any:
    """A dataclass field with its allowed values in `metadata` (None values are never checked).

    `unbounded`: why a number may take any finite value (it declares the range "all reals")."""
    meta = {
        "choices": choices,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "nonempty": nonempty,
        "keys_of": keys_of,
        "unbounded": unbounded,
    }
    meta = {k: v for k, v in meta.items() if v is not None and v is not False}  # a bound of 0 is a bound
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def _problems_of_value(key: str, value: Any, meta: dict, root: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        out = [f"{key} = []: must not be empty"] if meta.get("nonempty") and not value else []
        for i, v in enumerate(value):
            out += _problems_of_value(f"{key}[{i}]", v, {k: x for k, x in meta.items() if k != "nonempty"}, root)
        return out
    choices = meta.get("choices")
    if "keys_of" in meta:
        choices = tuple(getattr(root, meta["keys_of"], {}) or {})
    if choices is not None and value not in choices:
        return [f"{key} = {value!r}: must be one of {', '.join(map(repr, choices))}"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    if isinstance(value, float) and not math.isfinite(value):
        # NaN passes no bound and fails none of the checks below; infinity is no size or rate either.
        return [f"{key} = {value!r}: must be a finite number"]
    bounds = (("ge", operator.ge, ">="), ("gt", operator.gt, ">"), ("le", operator.le, "<="), ("lt", operator.lt, "<"))
    for name, ok, word in bounds:
        bound = meta.get(name)
        if bound is not None and not ok(value, bound):
            return [f"{key} = {value!r}: must be {word} {bound}"]
    return []


def problems(obj: Any, root: Any | None = None, prefix: str = "") -> list[str]:
    """Every out-of-range value in a (nested) config dataclass, as 'key = value: must be ...'."""
    root = obj if root is None else root
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += problems(v, root, f"{prefix}{k}.")
        return out
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out += problems(v, root, f"{prefix[:-1]}[{i}].")
        return out
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        return out
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out += _problems_of_value(prefix + f.name, value, dict(f.metadata), root)
        out += problems(value, root, f"{prefix}{f.name}.")
    if not out and hasattr(obj, "cross_checks"):  # on values each of which its field allows
        out += [prefix + p for p in obj.cross_checks()]
    return out


def validate(obj: Any) -> None:
    """Raises ConfigError naming every key of `obj` whose value its field does not allow."""
    found = problems(obj)
    if found:
        raise ConfigError("invalid config:\n  " + "\n  ".join(found))
