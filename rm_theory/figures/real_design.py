"""Figures of which real pairs to label (`studies.real_design`): held-out accuracy against the labels
each recipe bought, and the share of random's labels each recipe saved. Error bars: Student t 95%
over replicates."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import pandas as pd

from rm_theory.figures.common import Draw, RunTables, ci
from rm_theory.figures.real_theory import COLORS, sets_axes


def accuracy_vs_labels(df: pd.DataFrame) -> plt.Figure:
    """Held-out accuracy against labelled pairs, per recipe (mean ± interval over replicates)."""
    sets, fig, axs = sets_axes(df)
    for ax, name in zip(axs, sets, strict=True):
        for recipe, g in df[df["set"] == name].groupby("recipe", sort=False):
            s = g.groupby("labelled")["accuracy"].agg(["mean", ci]).reset_index()
            ax.errorbar(
                s["labelled"],
                s["mean"],
                yerr=s["ci"].fillna(0),
                marker="o",
                ms=3,
                capsize=2,
                label=recipe,
                color=COLORS.get(recipe),
            )
        ax.set_xlabel("labelled pairs")
        ax.set_title(name, fontsize=8)
    axs[0].set_ylabel("held-out accuracy")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    return {"accuracy_vs_labels": partial(accuracy_vs_labels, run.results)}
