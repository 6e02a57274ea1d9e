"""Figures of the theory on fine-tuned reward models (`studies.real_theory`): held-out accuracy by a
predictor's quintile, and each predictor's AUROC and Spearman. Error bars: Student t 95% over
replicates. `COLORS` and `sets_axes` are shared with `figures.real_design`."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import Draw, RunTables, ci

COLORS = {
    "ibn_frozen": "tab:gray",
    "ibn_hidden": "tab:green",
    "ibn_gradient": "tab:olive",
    "fisher": "tab:purple",
    "ensemble": "tab:blue",
    "margin": "tab:red",
    "random": "tab:gray",
    "ibn": "tab:green",
    "disagreement": "tab:blue",
    "same_prompt": "tab:orange",
    "one_per_prompt": "tab:brown",  # the recipes of real_design ("fisher" as the predictor)
}


def sets_axes(df: pd.DataFrame, width: float = 3.6):
    sets = list(dict.fromkeys(df["set"]))
    fig, axs = plt.subplots(1, len(sets), figsize=(width * len(sets), 3.2), squeeze=False)
    return sets, fig, axs[0]


def accuracy_by_quantile(df: pd.DataFrame) -> plt.Figure:
    """Held-out accuracy in each quantile of each predictor (lowest predicted uncertainty first)."""
    cols = sorted((c for c in df if c.startswith("acc_q")), key=lambda c: int(c[5:]))
    sets, fig, axs = sets_axes(df)
    for ax, name in zip(axs, sets, strict=True):
        g = df[df["set"] == name]
        for pred, gp in g.groupby("predictor", sort=False):
            m = [gp[c].mean() for c in cols]
            e = [ci(gp[c].dropna()) for c in cols]
            ax.errorbar(
                np.arange(1, len(cols) + 1),
                m,
                yerr=np.nan_to_num(e),
                marker="o",
                ms=3,
                capsize=2,
                label=pred,
                color=COLORS.get(pred),
            )
        ax.set_title(
            f"{name} ({int(g['test_pairs'].mean())} held-out pairs, {g['replicate'].nunique()} replicates)", fontsize=8
        )
        ax.set_xlabel("quantile of the predictor (1 = lowest)")
        ax.set_xticks(range(1, len(cols) + 1))
    axs[0].set_ylabel("held-out accuracy")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def predictor_bars(df: pd.DataFrame) -> plt.Figure:
    """AUROC for an error and Spearman against the ensemble's variance, per predictor and set."""
    sets, fig, axs = sets_axes(df, 4.2)
    for ax, name in zip(axs, sets, strict=True):
        g = df[df["set"] == name]
        preds = list(dict.fromkeys(g["predictor"]))
        x = np.arange(len(preds))
        bars = ((-0.27, "auroc", None), (0.0, "auroc_pwrong", ".."), (0.27, "spearman", "//"))
        for off, col, hatch in bars:
            if col not in g:
                continue
            s = g.groupby("predictor", sort=False)[col].agg(["mean", ci]).reindex(preds)
            ax.bar(
                x + off,
                s["mean"],
                0.27,
                yerr=s["ci"].fillna(0),
                capsize=2,
                hatch=hatch,
                label=col,
                color=[COLORS.get(p, "tab:gray") for p in preds],
                alpha=0.8,
            )
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set_xticks(x, preds, rotation=30, fontsize=7)
        ax.set_title(name, fontsize=8)
    axs[0].legend(
        fontsize=7,
        title="AUROC for an error: plain, of the variance; dotted, of P(wrong sign).\n"
        "Hatched: Spearman with the ensemble's variance",
        title_fontsize=6,
    )
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    df = run.results
    return {"accuracy_by_quantile": partial(accuracy_by_quantile, df), "predictor_scores": partial(predictor_bars, df)}
