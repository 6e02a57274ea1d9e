"""Figures of the reward/cost-model study, as pure functions of its `results.csv` table.

One row of the table is one trained ensemble: columns `regime`, `topology`, `n`, `seed` and the
metrics of `evaluate` (`gold_accuracy`, `ensemble_variance`, `ibn_resistance`, …).
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import COLORS, Draw, RunTables, by_topology
from rm_theory.rm.evaluate import correlation

MARKERS = {"polynomial": "o", "logarithmic": "s", "sublogarithmic": "^"}


def _panels(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if "regime" in df and df["regime"].nunique() > 1:
        return [(f"regime={k}", g) for k, g in df.groupby("regime", sort=False)]
    return [("", df)]


def metrics_vs_n(
    df: pd.DataFrame,
    columns=("gold_accuracy", "ensemble_variance", "ibn_resistance"),
    log_y=("ensemble_variance", "ibn_resistance"),
) -> plt.Figure:
    """Each metric against n, chain vs tree, mean ± s.d. over seeds; one column per regime."""
    columns = [c for c in columns if c in df]
    panels = _panels(df)
    fig, axs = plt.subplots(
        len(columns),
        len(panels),
        figsize=(3.8 * len(panels), 2.9 * len(columns)),
        squeeze=False,
        sharex=True,
    )
    for j, (title, g) in enumerate(panels):
        for i, col in enumerate(columns):
            ax = axs[i, j]
            by_topology(ax, g, col)
            ax.set_xscale("log", base=2)
            if col in log_y:
                ax.set_yscale("log")
            ax.set_ylabel(col)
            if i == 0:
                ax.set_title(title, fontsize=8)
                ax.legend(fontsize=7)
            if i == len(columns) - 1:
                ax.set_xlabel("n (comparisons of the chain budget)")
    fig.tight_layout()
    return fig


def theory_vs_practice(df: pd.DataFrame, beta: float = 1.0) -> plt.Figure:
    """Ensemble variance of r(y1) − r(y2) against the IBN's mean resistance, one point per trained ensemble.

    The ensemble's rewards live on the scale β·r*, so its variance is divided by β² to sit beside the
    IBN's posterior variance of r* differences; y = x marks where an ideal Bayesian learner would be.
    """
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    x, y = df["ibn_resistance"].to_numpy(float), df["ensemble_variance"].to_numpy(float) / beta**2
    sizes = 10 + 30 * np.log2(df["n"] / df["n"].min() + 1)
    for (topo, regime), g in df.groupby(["topology", "regime"]):
        ax.scatter(
            g["ibn_resistance"],
            g["ensemble_variance"] / beta**2,
            s=sizes[g.index],
            alpha=0.7,
            color=COLORS.get(topo),
            marker=MARKERS.get(regime, "o"),
            label=f"{topo}, {regime}",
        )
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.any():
        lo, hi = min(x[ok].min(), y[ok].min()), max(x[ok].max(), y[ok].max())
        ax.plot([lo, hi], [lo, hi], color=COLORS["ref"], lw=0.8, ls="--", label="y = x (ideal learner)")
    c = correlation(x, y)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("IBN mean resistance on query pairs")
    ax.set_ylabel("ensemble variance of r(y1) − r(y2) / β²")
    ax.set_title(
        f"Pearson (log–log) r = {c['pearson_log']:.2f}, Spearman ρ = {c['spearman']:.2f}\nmarker size ∝ log n",
        fontsize=8,
    )
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def cost_vs_n(df: pd.DataFrame) -> plt.Figure:
    """Cost-model sign and safer-pair accuracy against n, chain vs tree."""
    return metrics_vs_n(
        df,
        columns=(
            "cost_sign_accuracy",
            "cost_sign_accuracy_gold",
            "safer_gold_accuracy",
            "cost_ensemble_variance",
        ),
        log_y=("cost_ensemble_variance",),
    )


def severity_accuracy(df: pd.DataFrame) -> plt.Figure:
    """Cost sign accuracy against the gold label per severity level at the largest n, chain vs tree."""
    top = df[df["n"] == df["n"].max()]
    cols = [f"sign_accuracy_severity{s}" for s in range(4) if f"sign_accuracy_severity{s}" in top]
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    topos = sorted(top["topology"].unique())
    w = 0.8 / max(len(topos), 1)
    for i, topo in enumerate(topos):
        g = top[top["topology"] == topo][cols]
        ax.bar(
            np.arange(len(cols)) + i * w,
            g.mean(),
            w,
            yerr=g.std().fillna(0),
            capsize=2,
            label=topo,
            color=COLORS.get(topo),
        )
    ax.set_xticks(
        np.arange(len(cols)) + w * (len(topos) - 1) / 2,
        ["safe", "minor", "moderate", "severe"][: len(cols)],
    )
    ax.set_ylabel(f"sign accuracy (n = {int(df['n'].max())})")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """The study's figures; the cost model's where the runs trained one."""
    df = run.results
    out: dict[str, Draw] = {
        "accuracy_variance_vs_n": partial(metrics_vs_n, df),
        "theory_vs_practice": partial(theory_vs_practice, df, run.value("labels.beta", 1.0)),
    }
    if "cost_sign_accuracy" in df:
        out |= {"cost_vs_n": partial(cost_vs_n, df), "severity_accuracy": partial(severity_accuracy, df)}
    return out
