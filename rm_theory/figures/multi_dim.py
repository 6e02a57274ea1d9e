"""Figures of the multi-dimensional preference study: gold accuracy per dimension by protocol against
the budget, the Pareto front of helpfulness against the harmless rate per protocol, and the IBN's
prediction beside the measured accuracy, drawn from the run's tables "dims" and "downstream" and listed
once by `figures`. Error bars: Student t 95% intervals over seeds."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import Draw, RunTables, ci

PROTOCOL_COLORS = {
    "dual": "tab:blue",
    "single": "tab:orange",
    "sub": "tab:green",
    "ratings": "tab:purple",
    "oracle": "black",
    "reference": "tab:gray",
}
FIRST_DIMS = ("helpfulness", "harmlessness", "utility")


def _dims(df: pd.DataFrame) -> list[str]:
    rest = [d for d in dict.fromkeys(df["dim"]) if d not in FIRST_DIMS]
    return [d for d in FIRST_DIMS if d in set(df["dim"])] + rest


def accuracy_vs_budget(dims: pd.DataFrame) -> plt.Figure:
    """Held-out gold accuracy of each dimension against the budget, one line per protocol (mean and
    t interval over seeds); dashed: the Bayes learner's accuracy the IBN predicts."""
    names = _dims(dims)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax, dim in zip(axes.ravel(), names, strict=False):
        for p, g in dims[dims["dim"] == dim].groupby("protocol", sort=False):
            per = g.groupby(["budget", "seed"])[["acc", "pred_acc"]].mean().reset_index()
            s = per.groupby("budget").agg(acc=("acc", "mean"), pred=("pred_acc", "mean"))
            err = per.groupby("budget")["acc"].apply(lambda v: ci(v.to_numpy()))
            color = PROTOCOL_COLORS.get(p)
            ax.errorbar(s.index, s["acc"], yerr=err.fillna(0), marker="o", ms=3, capsize=2, label=p, color=color)
            ax.plot(s.index, s["pred"], ls="--", lw=1, color=color)
        ax.axhline(0.5, color="k", lw=0.5, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_title(dim, fontsize=9)
        ax.set_xlabel("budget (label cost)")
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("gold accuracy (dashed: IBN)")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def pareto_front(down: pd.DataFrame, budget: float) -> plt.Figure:
    """Gold helpfulness against the gold harmless rate of Safe RLHF's policies (pooled cost) over the
    threshold factors, one curve per protocol at `budget` (mean over seeds), the gold-reward policies
    (oracle) and π_ref beside them; hollow markers: the KL-optimal policies of the scalarisations."""
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    safe = down[(down["policy"] == "safe_pooled") & ((down["budget"] == budget) | (down["protocol"] == "oracle"))]
    for p, g in safe.groupby("protocol", sort=False):
        s = g.groupby("factor")[["harmless_rate", "helpfulness"]].mean().sort_values("harmless_rate")
        ax.plot(
            s["harmless_rate"], s["helpfulness"], "o-", ms=3, color=PROTOCOL_COLORS.get(p), label=f"{p} (Safe RLHF)"
        )
    kl = down[(down["policy"] == "kl") & ((down["budget"] == budget) | (down["protocol"] == "oracle"))]
    for p, g in kl.groupby("protocol", sort=False):
        s = g.groupby("weight")[["harmless_rate", "helpfulness"]].mean()
        ax.plot(s["harmless_rate"], s["helpfulness"], "o--", mfc="none", ms=4, lw=0.7, color=PROTOCOL_COLORS.get(p))
    ref = down[down["protocol"] == "reference"]
    if len(ref):
        ax.plot(ref["harmless_rate"].mean(), ref["helpfulness"].mean(), "s", color="tab:gray", label="π_ref")
    ax.set_xlabel("gold harmless rate P_π(safe)")
    ax.set_ylabel("gold helpfulness E_π")
    ax.set_title(f"budget {budget:g}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def theory_vs_measured(dims: pd.DataFrame) -> plt.Figure:
    """Left: the accuracy the IBN predicts (Bayes learner, Gaussian-edge model) against the trained
    model's, every (seed, budget, protocol, dimension). Right: each dimension's inference distance
    (exact joint posterior) at the largest budget, per protocol, relative to its prior."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for p, g in dims.groupby("protocol", sort=False):
        a1.scatter(g["pred_acc"], g["acc"], s=8, alpha=0.6, color=PROTOCOL_COLORS.get(p), label=p)
    lo = np.nanmin(dims[["acc", "pred_acc"]].to_numpy())
    a1.plot([lo, 1], [lo, 1], "k:", lw=0.8)
    a1.set_xlabel("predicted accuracy (IBN)")
    a1.set_ylabel("measured gold accuracy")
    a1.legend(fontsize=7)
    top = dims[dims["budget"] == dims["budget"].max()]
    names = _dims(top)
    protos = list(dict.fromkeys(top["protocol"]))
    width = 0.8 / max(len(protos), 1)
    for i, p in enumerate(protos):
        g = top[top["protocol"] == p].assign(rel=lambda d: d["dist"] / d["prior"]).groupby("dim")["rel"].mean()
        a2.bar(
            np.arange(len(names)) + i * width,
            [g.get(n, np.nan) for n in names],
            width,
            color=PROTOCOL_COLORS.get(p),
            label=p,
        )
    a2.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    a2.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    a2.set_ylabel("inference distance / prior")
    a2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """Accuracy and theory against the runs (table "dims"), the Pareto front at the largest budget (table
    "downstream")."""
    dims, down = run.table("dims"), run.table("downstream")
    out: dict[str, Draw] = {}
    if len(dims):
        out["accuracy_vs_budget"] = partial(accuracy_vs_budget, dims)
        out["theory_vs_measured"] = partial(theory_vs_measured, dims)
    if len(down) and len(run.results):
        out["pareto_front"] = partial(pareto_front, down, float(run.results["budget"].max()))
    return out
