"""Figures of the Best-of-N study (paper §5, Best-of-N with N = 2^2 … 2^9)."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import pandas as pd

from rm_theory.figures.common import COLORS, Draw, RunTables, ci


def best_of_n_curve(df: pd.DataFrame) -> plt.Figure:
    """Gold reward of the kept response against N, per reward model (CI over seeds)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    per_seed = df.groupby(["rm", "N", "seed"])["gold_reward"].mean().reset_index()
    for rm, g in per_seed.groupby("rm"):
        s = g.groupby("N")["gold_reward"].agg(["mean", ci])
        ax.errorbar(
            s.index,
            s["mean"],
            yerr=s["ci"],
            marker="o",
            capsize=2,
            label=f"{rm} RM" if rm != "gold" else "gold (ceiling)",
            color=COLORS.get(rm),
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (candidates from π_ref)")
    ax.set_ylabel("gold reward of kept response")
    ax.legend()
    ax.set_title("Best-of-N")
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    return {"best_of_n": partial(best_of_n_curve, run.results)}
