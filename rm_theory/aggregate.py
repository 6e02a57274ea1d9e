"""Any sweep or run folder → one tidy table, a run table and the matching figures (issue 6).

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
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd

from rm_theory.results import collect_runs, read_json

log = logging.getLogger(__name__)

# kind -> columns a results.csv of that kind always has (checked in this order; first match wins)
KINDS: dict[str, tuple[str, ...]] = {
    "scaling": ("topology", "n", "mean_d_res"),
    "reward_models": ("topology", "n", "gold_accuracy", "ensemble_variance", "ibn_resistance"),
    "best_of_n": ("rm", "N", "gold_reward"),
    "win_rates": ("task", "a", "b", "win_rate"),
    "safe_rlhf": ("run", "gold", "gold_cost", "cost", "lambda"),
    "real_data": ("part",),
}
# The entry point that writes each kind (to name the command in messages).
ENTRY = {"scaling": "ibn_scaling", "reward_models": "train_rm", "best_of_n": "best_of_n",
         "win_rates": "win_rates", "safe_rlhf": "safe_rlhf", "real_data": "real_data"}


def table_kind(columns) -> str | None:
    """The kind of a results table from its column names, or None if unknown."""
    cols = set(columns)
    for kind, need in KINDS.items():
        if cols.issuperset(need):
            return kind
    return None


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        log.warning("skipping unreadable table %s: %s", path, err)
        return None


def _run_dir(path: Path, root: Path) -> str:
    return str(path.parent.relative_to(root))


def read_results(root: str | Path, name: str = "results.csv") -> pd.DataFrame:
    """Every `name` table under `root` concatenated, with `run_dir` and `kind` columns first.

    Like `results.collect_tables`, but per file: an unreadable table is skipped with a warning,
    each table is tagged with its kind, and a table that already has `run_dir` (an earlier
    aggregate written inside the folder) is left out so aggregation is idempotent.
    """
    root = Path(root)
    frames = []
    for path in sorted(root.rglob(name)):
        df = _read_csv(path)
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
            raise RuntimeError(f"writing {path.name} needs pyarrow (pip install 'pyarrow>=14'); "
                               "or write a .csv instead")
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
        df = _read_csv(path)
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
        log.warning("no %s run under %s; make one with: python -m experiments.%s",
                    kind, root, ENTRY[kind])
        return None
    return load_run(runs[-1])


# --------------------------------------------------------------------------------------------
# Figures per kind
# --------------------------------------------------------------------------------------------


def _sidecar(agg: Aggregate, kind: str, name: str) -> pd.DataFrame:
    """Another per-run table (e.g. curves.csv) of the runs of one kind, concatenated."""
    frames = []
    for d in agg.of_kind(kind)["run_dir"].unique():
        df = _read_csv(agg.root / d / name) if (agg.root / d / name).exists() else None
        if df is not None:
            frames.append(df.assign(run_dir=d))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _scalar(agg: Aggregate, kind: str, key: str, default: float) -> float:
    """A summary scalar shared by the runs of one kind (the first run's), e.g. a threshold."""
    dirs = set(agg.of_kind(kind)["run_dir"])
    if key in agg.runs:
        vals = agg.runs.loc[agg.runs["run_dir"].isin(dirs), key].dropna()
        if len(vals):
            return float(vals.iloc[0])
    return default


def _config_value(agg: Aggregate, kind: str, dotted: str, default: float) -> float:
    for d in agg.of_kind(kind)["run_dir"].unique():
        try:
            node = read_json(agg.root / d / "config.json")
            for k in dotted.split("."):
                node = node[k]
            return float(node)
        except (FileNotFoundError, KeyError, TypeError, json.JSONDecodeError):
            continue
    return default


def figure_specs(agg: Aggregate) -> dict[str, Callable[[], object]]:
    """name → zero-argument function drawing one figure, for every known kind in the table."""
    from rm_theory import plotting

    specs: dict[str, Callable[[], object]] = {}
    kinds = agg.kinds()
    if "scaling" in kinds:
        df = agg.of_kind("scaling")
        specs |= {"scaling_distance_vs_n": partial(plotting.distance_vs_n, df),
                  "scaling_ratio_vs_n": partial(plotting.ratio_vs_n, df),
                  "scaling_ratio_heatmap": partial(plotting.ratio_heatmap, df)}
        if any(c.startswith("d_res_") for c in df):
            specs["scaling_query_heatmap"] = partial(plotting.query_heatmap, df)
    if "reward_models" in kinds:
        from rm_theory import plots_models as pm

        df = agg.of_kind("reward_models")
        beta = _config_value(agg, "reward_models", "labels.beta", 1.0)
        specs |= {"reward_models_metrics_vs_n": partial(pm.metrics_vs_n, df),
                  "reward_models_theory_vs_practice": partial(pm.theory_vs_practice, df, beta)}
        if "cost_sign_accuracy" in df:
            specs |= {"reward_models_cost_vs_n": partial(pm.cost_vs_n, df),
                      "reward_models_severity_accuracy": partial(pm.severity_accuracy, df)}
    if {"best_of_n", "win_rates", "safe_rlhf"} & set(kinds):
        from rm_theory import plots_downstream as pdn

        if "best_of_n" in kinds:
            specs["best_of_n_curve"] = partial(pdn.best_of_n_curve, agg.of_kind("best_of_n"))
        if "win_rates" in kinds:
            wins = agg.of_kind("win_rates")
            specs["win_rates_bars"] = partial(pdn.win_rate_bars, wins)
            for axis in ("n", "incomplete_frac"):
                if axis in wins and wins[axis].nunique() > 1:
                    specs[f"win_rates_vs_{axis}"] = partial(pdn.win_rate_vs, wins, axis)
            curves = _sidecar(agg, "win_rates", "curves.csv")
            if not curves.empty:
                specs["win_rates_overoptimisation"] = partial(pdn.overoptimisation, curves)
        if "safe_rlhf" in kinds:
            thr = _scalar(agg, "safe_rlhf", "threshold", 0.0)
            specs["safe_rlhf_frontier"] = partial(pdn.safe_frontier, agg.of_kind("safe_rlhf"), thr)
            curves = _sidecar(agg, "safe_rlhf", "curves.csv")
            if not curves.empty:
                specs["safe_rlhf_traces"] = partial(pdn.safe_traces, curves, thr)
    if "real_data" in kinds:
        from rm_theory import plots_real as pr

        df = agg.of_kind("real_data")
        for part, fn in (("accuracy", pr.accuracy_figure), ("structural", pr.structural_figure),
                         ("topology", pr.topology_figure)):
            if part in set(df["part"]):
                specs[f"real_data_{part}"] = partial(fn, df)
    return specs


def draw_figures(agg: Aggregate, out_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """Writes every figure of `figure_specs` as PNG+PDF; returns the files and {figure: error}."""
    import matplotlib.pyplot as plt

    from rm_theory.plotting import save

    out_dir = Path(out_dir)
    written, errors = [], {}
    for name, draw in figure_specs(agg).items():
        try:
            written += save(draw(), out_dir / name)
        except Exception as err:  # one bad table must not cost the other figures
            errors[name] = f"{type(err).__name__}: {err}"
            plt.close("all")
            log.warning("figure %s failed: %s", name, errors[name])
    return written, errors
