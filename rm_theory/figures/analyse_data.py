"""Figures of the IBN report of a user's data set: held-out inference distances and degrees, F(M)
with both estimates, and what the designed next batch is predicted to buy.

Legend: B round of comparisons (the design's next batch), N items, R rounds of the design.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import Draw, RunTables


def distances(dist: pd.DataFrame, deg_N: np.ndarray) -> plt.Figure:
    """Histograms of the held-out pairs' inference distances and of the items' degrees."""
    fig, axs = plt.subplots(1, 2, figsize=(8, 3.2))
    for method, color in (("resistance", "tab:blue"), ("path", "tab:gray")):
        d = dist[method].to_numpy(float) if method in dist else np.zeros(0)
        d = d[np.isfinite(d)]
        if len(d):
            axs[0].hist(d, bins=30, alpha=0.6, color=color, label=f"{method} ({len(d)} pairs)")
    axs[0].set_xlabel("inference distance of held-out pairs")
    axs[0].legend(fontsize=7)
    axs[1].hist(deg_N, bins=np.arange(deg_N.max() + 2) - 0.5 if len(deg_N) else 10, color="tab:orange")
    axs[1].set_xlabel("degree of an item (IB + HP edges)")
    fig.tight_layout()
    return fig


def structural(df: pd.DataFrame) -> plt.Figure:
    """F(M) against M per estimate, labelled with the fitted regime (or indeterminate)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    if df.empty:  # no M value at most half the items (a tiny data set), or ibn.M_values=[]
        ax.text(0.5, 0.5, "F(M) not measured:\nno M value at most half the items", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for method, g in df.groupby("method"):
        g = g.sort_values("M")
        ax.errorbar(g["M"], g["F"], yerr=g["F_sem"], fmt="o-", ms=3, label=f"{method} ({g['regime'].iloc[0]})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clusters M")
    ax.set_ylabel("F(M)")
    ax.legend(fontsize=7)
    return fig


def design_curve(design) -> plt.Figure:
    """Predicted decrease of the targets' mean resistance, comparison by comparison (`ibn.design.Design`)."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    before = design.mean_resistance_R[0]
    ax.plot(np.arange(len(design.gain_B) + 1), before - np.r_[0.0, np.cumsum(design.gain_B)], "o-", ms=3)
    ax.set_xlabel("comparisons of the next batch")
    ax.set_ylabel("mean resistance of target pairs")
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """The report's figures from its tables (distances, degrees, structural), and the design's curve
    (`extra["design"]`, named after the batch file it wrote, `extra["batch"]`) in the run itself."""
    out: dict[str, Draw] = {}
    if "distances" in run.tables and "degrees" in run.tables:
        out["distances"] = partial(distances, run.table("distances"), run.table("degrees")["degree"].to_numpy())
    if "structural" in run.tables:
        out["structural"] = partial(structural, run.table("structural"))
    if "design" in run.extra:
        out[run.extra.get("batch", "next_batch")] = partial(design_curve, run.extra["design"])
    return out
