"""Figures of the ideal-learner study, as pure functions of its tables (`studies.ideal_learner`).

* `accuracy_vs_n`: the exact learner's held-out gold accuracy (the Bayes ceiling) against n, chain vs
  tree, with the accuracy its posterior predicts (dashed) and the neural families at their n;
* `variance_scatter`: per pair, each family's ensemble variance against the exact posterior variance;
* `convergence`: randomised-prior ensembles against the exact posterior as K grows;
* `best_of_n`: gold reward of the Best-of-N pick on μ − κσ against N.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import COLORS, Draw, RunTables, ci

FAMILY_MARKERS = {"mlp": "s", "transformer": "^", "prefix": "D", "anchored": "*"}


def accuracy_vs_n(df: pd.DataFrame, neural: pd.DataFrame) -> plt.Figure:
    kinds = list(dict.fromkeys(df["kind"]))
    budgets = list(dict.fromkeys(df["budget"]))
    fig, axs = plt.subplots(
        len(budgets), len(kinds), figsize=(3.8 * len(kinds), 3.0 * len(budgets)), squeeze=False, sharey=True
    )
    for i, budget in enumerate(budgets):
        for j, kind in enumerate(kinds):
            ax = axs[i, j]
            sub = df[(df["budget"] == budget) & (df["kind"] == kind)]
            for topo, g in sub.groupby("topology"):
                agg = g.groupby("n")["bayes_gold_accuracy"].agg(["mean", ci])
                ax.errorbar(
                    agg.index, agg["mean"], yerr=agg["ci"], marker="o", color=COLORS.get(topo), label=f"{topo} exact"
                )
                exp = g.groupby("n")["bayes_expected_accuracy"].mean()
                ax.plot(exp.index, exp.values, ls="--", color=COLORS.get(topo), alpha=0.7, label=f"{topo} Φ(|μ|/σ)")
            if kind == "independent" and budget == "comparisons" and len(neural):
                for (fam, topo), g in neural.groupby(["family", "topology"]):
                    agg = g.groupby("n")["gold_accuracy"].mean()
                    ax.scatter(
                        agg.index,
                        agg.values,
                        marker=FAMILY_MARKERS.get(fam, "x"),
                        color=COLORS.get(topo),
                        label=f"{fam} ({topo})",
                        zorder=3,
                    )
            ax.set_xscale("log", base=2)
            ax.set_title(f"{kind}, equal {budget}", fontsize=9)
            ax.set_xlabel("n (chain comparisons' budget)")
            if j == 0:
                ax.set_ylabel("held-out gold accuracy")
    axs[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def variance_scatter(pairs: pd.DataFrame) -> plt.Figure:
    fams = list(dict.fromkeys(pairs["family"]))
    fig, axs = plt.subplots(1, len(fams), figsize=(3.2 * len(fams), 3.0), squeeze=False)
    for ax, fam in zip(axs[0], fams, strict=True):
        g = pairs[pairs["family"] == fam]
        for topo, h in g.groupby("topology"):
            ax.scatter(h["exact"], np.maximum(h["ensemble"], 1e-8), s=3, alpha=0.3, color=COLORS.get(topo), label=topo)
        lo, hi = g["exact"].min(), g["exact"].max()
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(fam, fontsize=9)
        ax.set_xlabel("exact posterior variance")
    axs[0, 0].set_ylabel("ensemble variance of r(a) − r(b)")
    axs[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def convergence(conv: pd.DataFrame) -> plt.Figure:
    fig, axs = plt.subplots(1, 2, figsize=(7.5, 3.0))
    for lik, g in conv.groupby("likelihood"):
        for topo, h in g.groupby("topology"):
            agg = h.groupby("K")[["median_rel_err", "spearman"]].mean()
            ls = "-" if lik == "gaussian" else "--"
            axs[0].plot(
                agg.index, agg["median_rel_err"], ls=ls, marker="o", color=COLORS.get(topo), label=f"{lik}, {topo}"
            )
            axs[1].plot(agg.index, agg["spearman"], ls=ls, marker="o", color=COLORS.get(topo))
    K = np.array(sorted(conv["K"].unique()), float)
    # Sampling error of a variance from K exact samples: median |χ²_{K−1}/(K−1) − 1| ≈ 0.674·√(2/(K−1)).
    axs[0].plot(K, 0.674 * np.sqrt(2 / (K - 1)), color="gray", lw=0.8, label="exact samples")
    for ax, lab in zip(axs, ["median |ens/exact − 1|", "Spearman per pair"], strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ensemble size K")
        ax.set_ylabel(lab)
    axs[0].set_yscale("log")
    axs[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def best_of_n(bon: pd.DataFrame) -> plt.Figure:
    topos = list(dict.fromkeys(bon["topology"]))
    fig, axs = plt.subplots(1, len(topos), figsize=(3.8 * len(topos), 3.0), squeeze=False, sharey=True)
    for ax, topo in zip(axs[0], topos, strict=True):
        g = bon[bon["topology"] == topo]
        for kappa, h in g.groupby("kappa"):
            agg = h.groupby("N")["gold_reward"].agg(["mean", ci])
            ax.errorbar(agg.index, agg["mean"], yerr=agg["ci"], marker="o", label=f"μ − {kappa:g}σ")
        ora = g.groupby("N")["oracle"].mean()
        ax.plot(ora.index, ora.values, color="k", ls=":", label="gold best")
        ax.set_xscale("log", base=2)
        ax.set_title(f"exact learner, {topo} data", fontsize=9)
        ax.set_xlabel("N")
    axs[0, 0].set_ylabel("gold reward of the pick")
    axs[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """Accuracy against n (with the neural families of table "neural"), and each part the run has:
    per-pair variances ("pairs"), anchored ensembles' convergence ("convergence"), Best-of-N."""
    out: dict[str, Draw] = {"accuracy_vs_n": partial(accuracy_vs_n, run.results, run.table("neural"))}
    for name, table, draw in (
        ("variance_scatter", "pairs", variance_scatter),
        ("anchored_convergence", "convergence", convergence),
        ("best_of_n", "best_of_n", best_of_n),
    ):
        if len(run.table(table)):
            out[name] = partial(draw, run.table(table))
    return out
