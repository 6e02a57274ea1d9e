"""JSON in run folders: plain JSON types from numpy, jax, dataclasses and paths (NaN and infinity as
strings, read back as floats), and files written atomically."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(x: Any) -> Any:
    """Plain JSON types from numpy/jax scalars and arrays, dataclasses and paths; NaN/inf as strings."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist") and not isinstance(x, str):
        return to_jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, np.generic):
        return to_jsonable(x.item())
    return x


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def from_jsonable(row: dict) -> dict:
    """A logged row's values as they were: the strings `to_jsonable` wrote for NaN and ±inf back to
    floats (a resumed table then equals an uninterrupted one)."""
    return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in row.items()}


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a killed run never leaves half a summary


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
