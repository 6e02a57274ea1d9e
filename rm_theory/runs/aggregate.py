"""Any sweep or run folder → one tidy table, a run table and the matching figures.

A run folder holds `summary.json` (status) and, when it finished, `results.csv`. The kind of a
results table is recognised by its columns (`KINDS`), so a folder mixing experiments, a Hydra
multirun and the reproduction's `runs/` all aggregate the same way. Runs that failed or never
wrote a summary stay visible in the run table (`collect_runs`); a figure that cannot be drawn
from a table is reported, not raised.

Scripts (`python -m experiments.aggregate`) and the notebooks share these functions.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from rm_theory.runs.folder import read_json

log = logging.getLogger(__name__)

# kind -> columns a results.csv of that kind always has (checked in this order; first match wins)
KINDS: dict[str, tuple[str, ...]] = {
    "scaling": ("topology", "n", "mean_d_res"),
    "reward_models": ("topology", "n", "gold_accuracy", "ensemble_variance", "ibn_resistance"),
    "best_of_n": ("rm", "N", "gold_reward"),
    "win_rates": ("task", "a", "b", "win_rate"),
    "safe_rlhf": ("run", "gold", "gold_cost", "cost", "lambda"),
    "real_data": ("part",),
    "multi_dim": ("protocol", "budget", "n_pairs", "acc_helpfulness"),
}
# The entry point that writes each kind (to name the command in messages).
ENTRY = {
    "scaling": "ibn_scaling",
    "reward_models": "train_rm",
    "best_of_n": "best_of_n",
    "win_rates": "win_rates",
    "safe_rlhf": "safe_rlhf",
    "real_data": "real_data",
    "multi_dim": "multi_dim",
}


def _overrides(run_dir: Path) -> dict:
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).lstrip("+~").partition("=")
        out[f"override.{key}"] = value
    return out


def collect_runs(root: str | Path) -> pd.DataFrame:
    """One row per run folder under `root` (any folder with `summary.json` or `.hydra/`).

    Scalars of `summary.json` become columns; a folder whose summary is missing or unreadable is a
    row with status "missing" or "unreadable", so failed runs show up instead of vanishing.
    """
    root = Path(root)
    dirs = {p.parent for p in root.rglob("summary.json")} | {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    # Hidden folders hold copies (multi-host `.process_<i>/`), not runs of their own.
    dirs = {d for d in dirs if not any(part.startswith(".") for part in d.relative_to(root).parts)}
    rows = []
    for d in sorted(dirs):
        row: dict[str, Any] = {"run_dir": str(d.relative_to(root)) if d != root else "."}
        row.update(_overrides(d))
        path = d / "summary.json"
        try:
            summary = read_json(path)
            row.update({k: v for k, v in summary.items() if not isinstance(v, dict | list) and k != "traceback"})
        except FileNotFoundError:
            row["status"] = "missing"
        except json.JSONDecodeError:
            row["status"] = "unreadable"
        rows.append(row)
    return pd.DataFrame(rows)


def table_kind(columns) -> str | None:
    """The kind of a results table from its column names, or None if unknown."""
    cols = set(columns)
    for kind, need in KINDS.items():
        if cols.issuperset(need):
            return kind
    return None


def read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        log.warning("skipping unreadable table %s: %s", path, err)
        return None


def _run_dir(path: Path, root: Path) -> str:
    return str(path.parent.relative_to(root))


def read_results(root: str | Path, name: str = "results.csv") -> pd.DataFrame:
    """Every `name` table under `root` concatenated, with `run_dir` and `kind` columns first.

    An unreadable table is skipped with a warning,
    each table is tagged with its kind, and a table that already has `run_dir` (an earlier
    aggregate written inside the folder) is left out so aggregation is idempotent.
    """
    root = Path(root)
    frames = []
    for path in sorted(root.rglob(name)):
        df = read_csv(path)
        if df is None or "run_dir" in df:
            continue
        kind = table_kind(df.columns)
        df = df.rename(columns={"kind": "kind_"})  # a table's own "kind" column must not clash
        df.insert(0, "kind", kind)
        df.insert(0, "run_dir", _run_dir(path, root))
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["run_dir", "kind"])
    return pd.concat(frames, ignore_index=True)


@dataclasses.dataclass
class Aggregate:
    """runs: one row per run folder (status, overrides, summary scalars); table: the tidy rows of
    every results table with the run's overrides and status joined on `run_dir`."""

    root: Path
    runs: pd.DataFrame
    table: pd.DataFrame

    @property
    def failed(self) -> pd.DataFrame:
        """Runs whose status is not "ok" (failed, running, missing or unreadable summary)."""
        if self.runs.empty:
            return self.runs
        cols = [c for c in ("run_dir", "status", "error") if c in self.runs]
        status = self.runs.get("status", pd.Series("unknown", index=self.runs.index))
        return self.runs.loc[status.fillna("missing") != "ok", cols]

    def kinds(self) -> list[str]:
        return sorted(k for k in self.table.get("kind", pd.Series(dtype=object)).dropna().unique())

    def of_kind(self, kind: str) -> pd.DataFrame:
        """Rows of one kind, with the columns that kind does not have dropped."""
        rows = self.table[self.table["kind"] == kind]
        return rows.dropna(axis=1, how="all").reset_index(drop=True)


def aggregate(root: str | Path) -> Aggregate:
    """Runs and tidy rows of a folder of runs (a single run folder works too)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    runs = collect_runs(root)
    table = read_results(root)
    if not runs.empty and not table.empty:
        keep = ["run_dir", "status", *[c for c in runs if c.startswith("override.")]]
        per_run = runs[[c for c in keep if c in runs]].rename(columns={"status": "run_status"})
        table = table.merge(per_run, on="run_dir", how="left")
    return Aggregate(root, runs, table)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """CSV or Parquet by the file's extension (Parquet needs pyarrow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix in (".parquet", ".pq"):
        if importlib.util.find_spec("pyarrow") is None:
            raise RuntimeError(
                f"writing {path.name} needs pyarrow (pip install 'pyarrow>=14'); or write a .csv instead"
            )
        # Mixed kinds leave object columns holding numbers and strings, which Arrow rejects.
        obj = df.select_dtypes("object").columns
        df.astype({c: "string" for c in obj}).to_parquet(path, index=False)
    else:
        raise ValueError(f"unknown table format {path.suffix!r}; use .csv or .parquet")
    return path


# --------------------------------------------------------------------------------------------
# Finding and loading the runs of one kind (the notebooks' entry)
# --------------------------------------------------------------------------------------------


def _status(run_dir: Path) -> str:
    try:
        return read_json(run_dir / "summary.json").get("status", "unknown")
    except FileNotFoundError:
        return "missing"
    except json.JSONDecodeError:
        return "unreadable"


def find_runs(root: str | Path, kind: str, name: str = "results.csv") -> list[Path]:
    """Run folders under `root` whose results table is of `kind` and whose run did not fail,
    oldest first (by the table's modification time)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: {sorted(KINDS)}")
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for path in root.rglob(name):
        if _status(path.parent) == "failed":
            continue
        try:
            cols = pd.read_csv(path, nrows=0).columns
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
            continue
        if "run_dir" not in cols and table_kind(cols) == kind:
            out.append(path.parent)
    return sorted(out, key=lambda d: ((d / name).stat().st_mtime, str(d)))


def load_run(run_dir: str | Path) -> dict:
    """A run's tables and JSON: `results` (and any other *.csv by stem), `summary`, `config`."""
    run_dir = Path(run_dir)
    out: dict = {"dir": run_dir}
    for path in sorted(run_dir.glob("*.csv")):
        df = read_csv(path)
        if df is not None:
            out[path.stem] = df
    for stem in ("summary", "config"):
        try:
            out[stem] = read_json(run_dir / f"{stem}.json")
        except (FileNotFoundError, json.JSONDecodeError):
            out[stem] = {}
    return out


def latest_run(root: str | Path, kind: str) -> dict | None:
    """`load_run` of the newest run of `kind` under `root`, or None (with a log line) if none."""
    runs = find_runs(root, kind)
    if not runs:
        log.warning("no %s run under %s; make one with: python -m experiments.%s", kind, root, ENTRY[kind])
        return None
    return load_run(runs[-1])
