"""The figures of an aggregated folder of runs: every figure its results tables allow (one
function per kind of table, from the study's own figure module).

Scripts (`python -m experiments.aggregate --figures`) and the notebooks share these functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd

from rm_theory.runs.aggregate import Aggregate, read_csv
from rm_theory.runs.folder import read_json

log = logging.getLogger(__name__)


def _sidecar(agg: Aggregate, kind: str, name: str) -> pd.DataFrame:
    """Another per-run table (e.g. curves.csv) of the runs of one kind, concatenated."""
    frames = []
    for d in agg.of_kind(kind)["run_dir"].unique():
        df = read_csv(agg.root / d / name) if (agg.root / d / name).exists() else None
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
    from rm_theory.figures import ibn_scaling as ibn_scaling_figs

    specs: dict[str, Callable[[], object]] = {}
    kinds = agg.kinds()
    if "scaling" in kinds:
        df = agg.of_kind("scaling")
        specs |= {
            "scaling_distance_vs_n": partial(ibn_scaling_figs.distance_vs_n, df),
            "scaling_ratio_vs_n": partial(ibn_scaling_figs.ratio_vs_n, df),
            "scaling_ratio_heatmap": partial(ibn_scaling_figs.ratio_heatmap, df),
        }
        if any(c.startswith("d_res_") for c in df):
            specs["scaling_query_heatmap"] = partial(ibn_scaling_figs.query_heatmap, df)
    if "reward_models" in kinds:
        from rm_theory.figures import train_rm as pm

        df = agg.of_kind("reward_models")
        beta = _config_value(agg, "reward_models", "labels.beta", 1.0)
        specs |= {
            "reward_models_metrics_vs_n": partial(pm.metrics_vs_n, df),
            "reward_models_theory_vs_practice": partial(pm.theory_vs_practice, df, beta),
        }
        if "cost_sign_accuracy" in df:
            specs |= {
                "reward_models_cost_vs_n": partial(pm.cost_vs_n, df),
                "reward_models_severity_accuracy": partial(pm.severity_accuracy, df),
            }
    if {"best_of_n", "win_rates", "safe_rlhf"} & set(kinds):
        from rm_theory.figures import best_of_n as bon_figs
        from rm_theory.figures import safe_rlhf as safe_figs
        from rm_theory.figures import win_rates as win_figs

        if "best_of_n" in kinds:
            specs["best_of_n_curve"] = partial(bon_figs.best_of_n_curve, agg.of_kind("best_of_n"))
        if "win_rates" in kinds:
            wins = agg.of_kind("win_rates")
            specs["win_rates_bars"] = partial(win_figs.win_rate_bars, wins)
            for axis in ("n", "incomplete_frac"):
                if axis in wins and wins[axis].nunique() > 1:
                    specs[f"win_rates_vs_{axis}"] = partial(win_figs.win_rate_vs, wins, axis)
            curves = _sidecar(agg, "win_rates", "curves.csv")
            if not curves.empty:
                specs["win_rates_overoptimisation"] = partial(win_figs.overoptimisation, curves)
        if "safe_rlhf" in kinds:
            thr = _scalar(agg, "safe_rlhf", "threshold", 0.0)
            specs["safe_rlhf_frontier"] = partial(safe_figs.safe_frontier, agg.of_kind("safe_rlhf"), thr)
            curves = _sidecar(agg, "safe_rlhf", "curves.csv")
            if not curves.empty:
                specs["safe_rlhf_traces"] = partial(safe_figs.safe_traces, curves, thr)
    if "real_data" in kinds:
        from rm_theory.figures import real_data as pr

        df = agg.of_kind("real_data")
        for part, fn in (
            ("accuracy", pr.accuracy_figure),
            ("structural", pr.structural_figure),
            ("topology", pr.topology_figure),
        ):
            if part in set(df["part"]):
                specs[f"real_data_{part}"] = partial(fn, df)
    if "multi_dim" in kinds:
        from rm_theory.figures import multi_dim as md_figs

        dims, down = _sidecar(agg, "multi_dim", "dims.csv"), _sidecar(agg, "multi_dim", "downstream.csv")
        if not dims.empty:
            specs["multi_dim_accuracy_vs_budget"] = partial(md_figs.accuracy_vs_budget, dims)
            specs["multi_dim_theory_vs_measured"] = partial(md_figs.theory_vs_measured, dims)
        if not down.empty:
            top = float(agg.of_kind("multi_dim")["budget"].max())
            specs["multi_dim_pareto_front"] = partial(md_figs.pareto_front, down, top)
    return specs


def draw_figures(agg: Aggregate, out_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """Writes every figure of `figure_specs` as PNG+PDF; returns the files and {figure: error}."""
    import matplotlib.pyplot as plt

    from rm_theory.figures.common import save

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
