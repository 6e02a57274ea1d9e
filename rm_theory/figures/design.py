"""Figures of the comparison-design study: each measure against the budget, one line per recipe
(solid: the targets the design saw; dashed: held-out targets no recipe saw)."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import pandas as pd

from rm_theory.figures.common import Draw, RunTables, ci

MEASURES = (
    ("mean_resistance", "IBN mean resistance (targets)"),
    ("bayes_gold_accuracy", "exact learner gold accuracy"),
    ("gold_accuracy", "neural ensemble gold accuracy"),
    ("best_of_n_gold", "Best-of-N gold reward (exact learner)"),
)
RECIPE_COLORS = {
    "designed": "tab:green",
    "chain": "tab:blue",
    "tree": "tab:orange",
    "disagreement": "tab:purple",
    "random": "tab:gray",
}


def against_budget(df: pd.DataFrame) -> plt.Figure:
    """Mean ± 95% interval over seeds of every measure against the budget, per recipe; a measure's
    `<col>_heldout` column, where present, as a dashed line."""
    fig, axs = plt.subplots(1, len(MEASURES), figsize=(4 * len(MEASURES), 3.2))
    for ax, (col, title) in zip(axs, MEASURES, strict=True):
        for recipe, g in df.groupby("recipe", sort=False):
            for c, style, label in ((col, "-", recipe), (f"{col}_heldout", "--", None)):
                if c not in g:
                    continue
                s = g.groupby("budget")[c].agg(["mean", ci]).reset_index()
                ax.errorbar(
                    s["budget"],
                    s["mean"],
                    yerr=s["ci"].fillna(0),
                    marker="o",
                    ms=3,
                    capsize=2,
                    ls=style,
                    label=label,
                    color=RECIPE_COLORS.get(recipe),
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget (comparisons)")
        ax.set_title(title, fontsize=8)
    axs[0].legend(fontsize=7, title="dashed: held-out targets", title_fontsize=6)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    return {"design_vs_budget": partial(against_budget, run.results)}
