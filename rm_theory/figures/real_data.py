"""Figures of the real-data study: pure functions of its results table (`results.csv`).

Rows carry a `part` column: "accuracy" (one row per train set, test set, method), "structural"
(one row per data set and M), "topology" (one row per data set, budget, seed, strategy).
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import Draw, RunTables
from rm_theory.ibn.structural import regime_curve

METHODS = ("encoder", "bow", "longer")


def accuracy_figure(df: pd.DataFrame) -> plt.Figure:
    """Held-out pairwise accuracy with bootstrap intervals per (train → test) and method."""
    d = df[df["part"] == "accuracy"]
    labels = list(
        dict.fromkeys(t if t == s else f"{s}→{t}" for s, t in zip(d["train_set"], d["test_set"], strict=True))
    )
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 2), 3.5))
    w = 0.8 / len(METHODS)
    for j, m in enumerate(METHODS):
        dm = d[d["method"] == m]
        lab = [t if t == s else f"{s}→{t}" for s, t in zip(dm["train_set"], dm["test_set"], strict=True)]
        x = np.array([labels.index(v) for v in lab], float) + (j - 1) * w
        acc = dm["accuracy"].to_numpy(float)
        err = np.abs(np.stack([acc - dm["accuracy_lo"].to_numpy(float), dm["accuracy_hi"].to_numpy(float) - acc]))
        ax.bar(x, acc, w, yerr=err, capsize=2, label=m)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("held-out pairwise accuracy")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def structural_figure(df: pd.DataFrame) -> plt.Figure:
    """F(M) measured by clustering the embeddings, with the best-fitting regime's curve."""
    d = df[df["part"] == "structural"]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for name, g in d.groupby("dataset", sort=False):
        g = g.sort_values("M")
        line = ax.errorbar(g["M"], g["F"], yerr=g["F_sem"], fmt="o", ms=3, label=f"{name} ({g['regime'].iloc[0]})")
        lead = g["fit_regime"].iloc[0] if "fit_regime" in g else g["regime"].iloc[0]
        if lead in ("polynomial", "logarithmic", "sublogarithmic"):
            M = np.geomspace(g["M"].min(), g["M"].max(), 50)
            ax.plot(
                M,
                regime_curve(M, lead, g["fit_I"].iloc[0], g["fit_alpha"].iloc[0]),
                color=line[0].get_color(),
                lw=1,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("clusters M")
    ax.set_ylabel("F(M): within-cluster IB distance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def topology_figure(df: pd.DataFrame) -> plt.Figure:
    """Chain-like vs tree-like choice of comparisons: held-out accuracy, ensemble variance and
    the IBN's mean resistance against the budget, one column per data set."""
    d = df[df["part"] == "topology"]
    names = list(dict.fromkeys(d["dataset"]))
    keys = [
        ("accuracy", "held-out accuracy"),
        ("ensemble_variance", "ensemble variance"),
        ("distance_resistance", "IBN resistance"),
    ]
    fig, axes = plt.subplots(len(keys), max(len(names), 1), squeeze=False, figsize=(3.2 * max(len(names), 1), 7))
    for j, name in enumerate(names):
        for i, (k, lab) in enumerate(keys):
            ax = axes[i, j]
            for strat, g in d[d["dataset"] == name].groupby("strategy"):
                m = g.groupby("budget")[k].agg(["mean", "std"]).reset_index()
                ax.errorbar(m["budget"], m["mean"], yerr=m["std"].fillna(0), marker="o", ms=3, label=strat)
            ax.set_xlabel("comparisons (budget)")
            ax.set_ylabel(lab)
            if i == 0:
                ax.set_title(name)
                ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """One figure per part the rows hold (accuracy, the IBN's F(M), topology)."""
    df = run.results
    parts = set(df["part"]) if "part" in df else set()
    return {
        name: partial(draw, df)
        for name, part, draw in (
            ("accuracy", "accuracy", accuracy_figure),
            ("structural_function", "structural", structural_figure),
            ("topology", "topology", topology_figure),
        )
        if part in parts
    }
