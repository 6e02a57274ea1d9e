"""Figures of the AI-label study, as pure functions of its `results.csv` table (a `part` column:
world, theory, ablations, judges, real), listed once by `figures`. Error bars are Student t 95%
intervals over seeds (worlds); the real part's are its bootstrap intervals over held-out prompts.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import COLORS, Draw, RunTables, ci

SOURCE_COLORS = {
    "human": "tab:blue",
    "ai": "tab:orange",
    "mixed": "tab:purple",
    "safer_instruct": "tab:green",
    "ai_learned": "tab:brown",
}


def _part(df: pd.DataFrame, part: str) -> pd.DataFrame:
    return df[df["part"] == part].dropna(axis=1, how="all") if "part" in df else df.iloc[:0]


def _by_source(ax, world: pd.DataFrame, col: str) -> None:
    """Mean ± t interval over seeds of `col` against the budget, one line per source."""
    for src, g in world[world["budget"] > 0].groupby("source", sort=False):
        s = g.groupby("budget")[col].agg(["mean", ci]).reset_index()
        ax.errorbar(
            s["budget"],
            s["mean"],
            yerr=s["ci"].fillna(0),
            marker="o",
            ms=3,
            capsize=2,
            label=src,
            color=SOURCE_COLORS.get(src),
        )
    for src, ls in (("reference", ":"), ("gold", "--")):
        g = world[world["source"] == src]
        if len(g) and col in g and g[col].notna().any():
            ax.axhline(g[col].mean(), color=COLORS["gold" if src == "gold" else "ref"], ls=ls, lw=0.8, label=src)
    ax.set_xscale("log", base=2)


def accuracy_vs_budget(df: pd.DataFrame) -> plt.Figure:
    """Gold accuracy of the reward and cost models against the budget (units of a human label's cost)."""
    world = _part(df, "world")
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, col, title in zip(
        axs, ("gold_accuracy_reward", "gold_accuracy_cost"), ("reward model", "cost model"), strict=True
    ):
        _by_source(ax, world, col)
        ax.set_title(f"{title}: held-out gold accuracy", fontsize=9)
        ax.set_xlabel("budget (human-label costs)")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def harmlessness_vs_budget(df: pd.DataFrame) -> plt.Figure:
    """Harmlessness rate and helpfulness (gold) of Best-of-N and Safe RLHF against the budget."""
    world = _part(df, "world")
    fig, axs = plt.subplots(2, 2, figsize=(9, 6.2), sharex=True)
    for i, pol in enumerate(("bon", "safe_rlhf")):
        for j, what in enumerate(("harmless", "helpful")):
            ax = axs[i, j]
            _by_source(ax, world, f"{what}_{pol}")
            policy = "Best-of-N" if pol == "bon" else "Safe RLHF (exact)"
            ax.set_title(f"{policy}: {'harmless rate' if what == 'harmless' else 'helpfulness E[r*]'}", fontsize=9)
            if i == 1:
                ax.set_xlabel("budget (human-label costs)")
    axs[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def theory_predicted_vs_measured(df: pd.DataFrame) -> plt.Figure:
    """Measured reward-model error against the mixed-label IBN's prediction, one point per (seed,
    AI share, bias scale): Gaussian readings (where the prediction is exact) and Bradley–Terry labels."""
    th = _part(df, "theory").dropna(subset=["pred_mse_reward"])
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, what, label in ((axs[0], "mse_reward", "mean squared error"), (axs[1], "accuracy_reward", "gold accuracy")):
        for kind, marker in (("gauss", "o"), ("bt", "^")):
            ax.scatter(
                th[f"pred_{what}"],
                th[f"{kind}_{what}"],
                s=14,
                marker=marker,
                alpha=0.7,
                label="Gaussian readings" if kind == "gauss" else "Bradley–Terry labels",
            )
        lo = np.nanmin(th[[f"pred_{what}", f"gauss_{what}", f"bt_{what}"]].to_numpy())
        hi = np.nanmax(th[[f"pred_{what}", f"gauss_{what}", f"bt_{what}"]].to_numpy())
        ax.plot([lo, hi], [lo, hi], color=COLORS["ref"], ls="--", lw=0.8, label="y = x")
        ax.set_xlabel(f"predicted {label} (mixed IBN)")
        ax.set_ylabel(f"measured {label}")
    axs[0].set_xscale("log")
    axs[0].set_yscale("log")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def theory_vs_share(df: pd.DataFrame) -> plt.Figure:
    """Mean squared error of the reward model against the AI share of the budget, per bias scale:
    predicted (lines) and measured on Gaussian readings (points), seed means."""
    th = _part(df, "theory").dropna(subset=["pred_mse_reward"])
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for k, g in th.groupby("bias_scale"):
        m = g.groupby("ai_share")[["pred_mse_reward", "gauss_mse_reward", "bt_mse_reward"]].mean().reset_index()
        line = ax.plot(m["ai_share"], m["pred_mse_reward"], label=f"bias × {k:g}")[0]
        ax.scatter(m["ai_share"], m["gauss_mse_reward"], color=line.get_color(), s=14)
        ax.scatter(m["ai_share"], m["bt_mse_reward"], color=line.get_color(), s=14, marker="^")
    ax.set_yscale("log")
    ax.set_xlabel("AI share of the budget")
    ax.set_ylabel("reward MSE (lines: predicted; ●: Gaussian, ▲: BT)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ablations(df: pd.DataFrame) -> plt.Figure:
    """Each pipeline stage switched off: harmlessness (Safe RLHF, BoN) and cost-model accuracy."""
    ab = _part(df, "ablations")
    cols = [
        c for c in ("harmless_safe_rlhf", "harmless_bon", "gold_accuracy_cost", "pipe_safer_label_error") if c in ab
    ]
    fig, axs = plt.subplots(1, len(cols), figsize=(3.2 * len(cols), 3.2), squeeze=False)
    stages = list(dict.fromkeys(ab["stage"]))
    for ax, col in zip(axs[0], cols, strict=True):
        s = ab.groupby("stage")[col].agg(["mean", ci]).reindex(stages)
        ax.bar(range(len(stages)), s["mean"], yerr=s["ci"].fillna(0), color="tab:green", capsize=2)
        ax.set_xticks(
            range(len(stages)),
            [f"{st} off" if st != "none" else "full" for st in stages],
            rotation=45,
            ha="right",
            fontsize=7,
        )
        ax.set_title(col, fontsize=9)
    fig.tight_layout()
    return fig


def real_accuracy(df: pd.DataFrame) -> plt.Figure:
    """Held-out accuracy of heads trained on each real set (rows) on each set's test split, with the
    bootstrap interval over held-out prompts."""
    real = _part(df, "real")
    real = real[real["metric"] == "accuracy"] if "metric" in real else real
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    labels = [f"{r.train_set} → {r.test_set}" for r in real.itertuples()]
    err = np.array([real["value"] - real["lo"], real["hi"] - real["value"]])
    ax.bar(range(len(real)), real["value"], yerr=err, capsize=2, color="tab:gray")
    ax.axhline(0.5, color="black", lw=0.8, ls=":")
    ax.set_xticks(range(len(real)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("held-out pair accuracy")
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """The figures of every part the results table holds (its `part` column)."""
    df = run.results
    parts = set(df["part"].dropna()) if "part" in df else set()
    out: dict[str, Draw] = {}
    if "world" in parts:
        out |= {
            "accuracy_vs_budget": partial(accuracy_vs_budget, df),
            "harmlessness_vs_budget": partial(harmlessness_vs_budget, df),
        }
    if "theory" in parts and _part(df, "theory").get("pred_mse_reward", pd.Series(dtype=float)).notna().any():
        out |= {
            "theory_predicted_vs_measured": partial(theory_predicted_vs_measured, df),
            "theory_vs_share": partial(theory_vs_share, df),
        }
    if "ablations" in parts:
        out["ablations"] = partial(ablations, df)
    if "real" in parts:
        out["real_accuracy"] = partial(real_accuracy, df)
    return out
