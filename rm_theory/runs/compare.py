"""Two run folders' `summary.json` files compared key by key (a refactor, a new machine or a new
library version must give the same numbers for the same seed; STYLE.md "Reproducible").

Every `summary.json` under each folder is matched by its path relative to the folder (a single run,
or the reproduction's `runs/<step>/`); hidden folders (an earlier run's outputs set aside in
`.previous/`, multi-host copies) are not runs. Timing keys (wall-clock seconds) differ from run to
run and are left out by default. A summary that cannot be read is a difference naming its file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

from rm_theory.runs.jsonio import read_json

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


def summaries(folder: Path) -> dict[str, Path]:
    """`summary.json` files under a folder, by path relative to it; hidden folders left out."""
    found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("summary.json")}
    return {r: p for r, p in found.items() if not any(part.startswith(".") for part in Path(r).parts[:-1])}


def _read_summary(path: Path) -> dict | str:
    """A summary's contents, or what is wrong with the file (naming it, and how to recover)."""
    try:
        out = read_json(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        out = f"{type(err).__name__}: {err}"
    if isinstance(out, dict):
        return out
    what = out if isinstance(out, str) else f"a JSON {type(out).__name__}, not an object"
    return f"{path} is not a readable summary ({what}); rerun that run (or delete its folder) to compare it"


def compare_summaries(a: str | Path, b: str | Path, rtol: float = 0.0, timing: bool = False) -> list[Difference]:
    """Every differing scalar (or missing key, missing run, or unreadable summary, key
    "<unreadable>") between folders a and b.

    rtol = 0 asks for identical numbers; `timing=True` compares the wall-clock keys too. The
    traceback of a failed run is not compared (its error message is).
    """
    a, b = Path(a), Path(b)
    runs_a, runs_b = summaries(a), summaries(b)
    diffs = [Difference(r, "<run>", r in runs_a, r in runs_b) for r in sorted(runs_a.keys() ^ runs_b.keys())]
    for r in sorted(runs_a.keys() & runs_b.keys()):
        ra, rb = _read_summary(runs_a[r]), _read_summary(runs_b[r])
        if isinstance(ra, str) or isinstance(rb, str):
            diffs.append(
                Difference(r, "<unreadable>", ra if isinstance(ra, str) else "ok", rb if isinstance(rb, str) else "ok")
            )
            continue
        sa, sb = _flat(ra), _flat(rb)
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
