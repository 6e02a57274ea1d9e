"""Figures of the Safe RLHF study (Dai et al., arXiv 2310.12773): λ, reward and cost traces and
the reward–cost frontier."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import pandas as pd

from rm_theory.figures.common import Draw, RunTables


def safe_traces(curves: pd.DataFrame, threshold: float) -> plt.Figure:
    """Gold reward, model cost, gold cost and λ during Safe RLHF, per run (mean over seeds)."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for run, g in curves.groupby("run", sort=False):
        s = g.groupby("step")[["gold", "cost", "gold_cost", "lambda"]].mean()
        for ax, col in zip(axes, s.columns, strict=True):
            ax.plot(s.index, s[col], label=run, lw=2 if run == "lagrangian" else 1)
    for ax, title in zip(axes, ["gold reward", "cost (cost model)", "gold cost", "λ"], strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[1].axhline(threshold, color="k", ls="--", lw=0.8)
    axes[3].set_yscale("log")
    axes[0].legend(fontsize=7)
    return fig


def safe_frontier(df: pd.DataFrame, threshold: float) -> plt.Figure:
    """Final gold reward against final cost: fixed penalties (a frontier) and the Lagrangian run."""
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    s = df.groupby("run", sort=False)[["cost", "gold_cost", "gold"]].mean()
    fixed = s[s.index != "lagrangian"]
    ax.plot(fixed["cost"], fixed["gold"], "o-", color="tab:gray", label="fixed λ")
    for name, row in fixed.iterrows():
        ax.annotate(name.replace("fixed_", "λ="), (row["cost"], row["gold"]), fontsize=7)
    if "lagrangian" in s.index:
        ax.plot(
            s.loc["lagrangian", "cost"],
            s.loc["lagrangian", "gold"],
            "*",
            ms=12,
            color="tab:red",
            label="Lagrangian",
        )
    ax.axvline(threshold, color="k", ls="--", lw=0.8)
    ax.set_xlabel("E_π[cost] (cost model)")
    ax.set_ylabel("E_π[gold reward]")
    ax.legend(fontsize=8)
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """The training traces (table "curves") and the frontier, both against the config's threshold."""
    threshold, curves = run.value("threshold", 0.0), run.table("curves")
    out: dict[str, Draw] = {}
    if len(curves):
        out["safe_rlhf_traces"] = partial(safe_traces, curves, threshold)
    out["safe_rlhf_frontier"] = partial(safe_frontier, run.results, threshold)
    return out
