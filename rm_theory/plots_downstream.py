"""Figures of the downstream studies, each a pure function of a tidy table (paper §5)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COLORS = {"chain": "tab:blue", "tree": "tab:orange", "gold": "black", "ref": "tab:gray"}


def _ci(g: pd.Series) -> float:
    return float(1.96 * g.std(ddof=1) / np.sqrt(len(g))) if len(g) > 1 else 0.0


def best_of_n_curve(df: pd.DataFrame) -> plt.Figure:
    """Gold reward of the kept response against N, per reward model (CI over seeds)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    per_seed = df.groupby(["rm", "N", "seed"])["gold_reward"].mean().reset_index()
    for rm, g in per_seed.groupby("rm"):
        s = g.groupby("N")["gold_reward"].agg(["mean", _ci])
        ax.errorbar(
            s.index,
            s["mean"],
            yerr=s["_ci"],
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


def win_rate_bars(wins: pd.DataFrame) -> plt.Figure:
    """Win rate win/(win+lose) per comparison and task (CI over seeds); ties are left out."""
    comps = list(dict.fromkeys(zip(wins["a"], wins["b"], strict=True)))
    tasks = list(dict.fromkeys(wins["task"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(comps)), 3.8))
    width = 0.8 / max(len(tasks), 1)
    for i, task in enumerate(tasks):
        sub = wins[wins["task"] == task]
        m = [sub[(sub.a == a) & (sub.b == b)]["win_rate"].mean() for a, b in comps]
        e = [_ci(sub[(sub.a == a) & (sub.b == b)]["win_rate"]) for a, b in comps]
        ax.bar(np.arange(len(comps)) + i * width, m, width, yerr=e, capsize=2, label=task)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xticks(
        np.arange(len(comps)) + 0.4 - width / 2, [f"{a}\nvs {b}" for a, b in comps], fontsize=7
    )
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
            ax.plot(
                s["kl"], s["rm"], "--", color=COLORS.get(rm), alpha=0.6, label=f"RM score ({rm} RM)"
            )
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
        s = per_seed.groupby(axis)["win_rate"].agg(["mean", _ci])
        ax.errorbar(s.index, s["mean"], yerr=s["_ci"], marker="o", capsize=2, label=f"{a} vs {b}")
    if axis == "n":
        ax.set_xscale("log", base=2)
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlabel(axis)
    ax.set_ylabel("win rate (ties excluded)")
    ax.legend(fontsize=8)
    return fig


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
