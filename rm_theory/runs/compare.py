"""Two run folders' `summary.json` files compared key by key (a refactor, a new machine or a new
library version must give the same numbers for the same seed; STYLE.md "Reproducible").

Every `summary.json` under each folder is matched by its path relative to the folder (a single run,
or the reproduction's `runs/<step>/`). Timing keys (wall-clock seconds) differ from run to run and
are left out by default.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

from rm_theory.runs.folder import read_json

TIMING = re.compile(r"(^|_)(s|seconds|wall_time_s|time_s)$|_s$")


@dataclasses.dataclass(frozen=True)
class Difference:
    run: str  # summary path relative to the folders
    key: str
    a: object
    b: object


def _equal(a, b, rtol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rtol, abs_tol=0.0) or a == b


def _relative(v, root: Path):
    if isinstance(v, str) and v.startswith(str(root.resolve())):
        return "<folder>" + v[len(str(root.resolve())) :]
    return v


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flat(v, f"{key}.")
        else:
            out[key] = v
    return out


def compare_summaries(a: str | Path, b: str | Path, rtol: float = 0.0, timing: bool = False) -> list[Difference]:
    """Every differing scalar (or missing key, or missing run) between folders a and b.

    rtol = 0 asks for identical numbers; `timing=True` compares the wall-clock keys too. The
    traceback of a failed run is not compared (its error message is).
    """
    a, b = Path(a), Path(b)
    runs_a = {p.relative_to(a).as_posix(): p for p in a.rglob("summary.json")}
    runs_b = {p.relative_to(b).as_posix(): p for p in b.rglob("summary.json")}
    diffs = [Difference(r, "<run>", r in runs_a, r in runs_b) for r in sorted(runs_a.keys() ^ runs_b.keys())]
    for r in sorted(runs_a.keys() & runs_b.keys()):
        sa, sb = _flat(read_json(runs_a[r])), _flat(read_json(runs_b[r]))
        # a path inside the run's own folder is compared relative to that folder
        sa = {k: _relative(v, a) for k, v in sa.items()}
        sb = {k: _relative(v, b) for k, v in sb.items()}
        for key in sorted(sa.keys() | sb.keys()):
            if key == "traceback" or (not timing and TIMING.search(key)):
                continue
            va, vb = sa.get(key, "<missing>"), sb.get(key, "<missing>")
            if not _equal(va, vb, rtol):
                diffs.append(Difference(r, key, va, vb))
    return diffs
