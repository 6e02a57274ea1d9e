"""Figures of the win-rate study (paper §5: PPO/DPO win rates, over-optimisation, the
incomplete-response ablation and data-size scaling)."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import COLORS, Draw, RunTables, ci


def win_rate_bars(wins: pd.DataFrame) -> plt.Figure:
    """Win rate win/(win+lose) per comparison and task (95% t interval over seeds: a seed's rows are
    averaged first, so rows of several n or fractions are never counted as seeds); ties are left out."""
    comps = list(dict.fromkeys(zip(wins["a"], wins["b"], strict=True)))
    tasks = list(dict.fromkeys(wins["task"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(comps)), 3.8))
    width = 0.8 / max(len(tasks), 1)
    per_seed = wins.groupby(["task", "a", "b", "seed"], sort=False)["win_rate"].mean()
    for i, task in enumerate(tasks):
        m = [per_seed.loc[(task, a, b)].mean() if (task, a, b) in per_seed.index else np.nan for a, b in comps]
        e = [ci(per_seed.loc[(task, a, b)]) if (task, a, b) in per_seed.index else np.nan for a, b in comps]
        ax.bar(np.arange(len(comps)) + i * width, m, width, yerr=e, capsize=2, label=task)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(comps)) + 0.4 - width / 2, [f"{a}\nvs {b}" for a, b in comps], fontsize=7)
    ax.set_ylabel("win rate (ties excluded)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return fig


def overoptimisation(curves: pd.DataFrame) -> plt.Figure:
    """Gold reward and RM reward against KL(π‖π_ref) during PPO, per task and reward model."""
    tasks = list(dict.fromkeys(curves["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = curves[curves["task"] == task]
        for rm, g in sub.groupby("rm"):
            s = g.groupby("step")[["kl", "gold", "rm"]].mean()
            ax.plot(s["kl"], s["gold"], "-o", ms=2, color=COLORS.get(rm), label=f"gold ({rm} RM)")
            ax.plot(s["kl"], s["rm"], "--", color=COLORS.get(rm), alpha=0.6, label=f"RM score ({rm} RM)")
        ax.set_xlabel("KL(π‖π_ref)")
        ax.set_title(task)
    axes[0, 0].set_ylabel("expected reward")
    axes[0, 0].legend(fontsize=7)
    return fig


def win_rate_vs(
    wins: pd.DataFrame,
    axis: str,
    pairs=(("ppo_tree", "ppo_chain"), ("ppo_tree", "ref"), ("ppo_chain", "ref")),
) -> plt.Figure:
    """Win rates against a study axis (data size n, or the fraction of incomplete responses)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for a, b in pairs:
        sub = wins[(wins.a == a) & (wins.b == b)]
        if len(sub) == 0:
            continue
        per_seed = sub.groupby([axis, "seed"])["win_rate"].mean().reset_index()
        s = per_seed.groupby(axis)["win_rate"].agg(["mean", ci])
        ax.errorbar(s.index, s["mean"], yerr=s["ci"], marker="o", capsize=2, label=f"{a} vs {b}")
    if axis == "n":
        ax.set_xscale("log", base=2)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlabel(axis)
    ax.set_ylabel("win rate (ties excluded)")
    ax.legend(fontsize=8)
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """The study's figures: the win rates of the headline's rows (table "base"; every row without it),
    the over-optimisation traces (table "curves"), and the win rates against each axis that varies."""
    wins, curves = run.results, run.table("curves")
    out: dict[str, Draw] = {"win_rates": partial(win_rate_bars, run.table("base", wins))}
    if len(curves):
        out["overoptimisation"] = partial(overoptimisation, curves)
    for axis in ("n", "incomplete_frac"):
        if axis in wins and wins[axis].nunique() > 1:
            out[f"win_rate_vs_{axis}"] = partial(win_rate_vs, wins, axis)
    return out
