"""Figures of the fine-tuned reward-model study: pure functions of its tables (`results.csv`: one row
per train set, test set and method; `curves.csv`: the training rows of metrics.jsonl)."""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import Draw, RunTables

METHODS = ("finetuned", "vector", "frozen", "vector_frozen", "bow", "longer")
LABELS = {
    "finetuned": "fine-tuned",
    "vector": "fine-tuned vector model (its set's head)",
    "frozen": "frozen-feature heads",
    "vector_frozen": "frozen-feature vector heads",
    "bow": "bag of words",
    "longer": "prefer longer",
}


def curves_table(train_rows: list[dict]) -> pd.DataFrame:
    """One row per logged training chunk (set, objective, step), the last copy of a step a resumed
    run logged twice, with the pairs seen so far."""
    cols = ["set", "objective", "step", "pairs", "loss", "acc", "val_accuracy"]
    if not train_rows:
        return pd.DataFrame(columns=[*cols, "pairs_seen"])
    d = pd.DataFrame(train_rows)
    d = d.reindex(columns=cols).drop_duplicates(["set", "objective", "step"], keep="last")
    d = d.sort_values(["set", "objective", "step"]).reset_index(drop=True)
    d["pairs_seen"] = d.groupby(["set", "objective"])["pairs"].cumsum()
    return d


def _label(s: str, t: str) -> str:
    return t if s == t else f"{s}→{t}"


def accuracy_figure(df: pd.DataFrame) -> plt.Figure:
    """Held-out pairwise accuracy with its interval per (train set → test set) and method."""
    labels = list(dict.fromkeys(_label(s, t) for s, t in zip(df["train_set"], df["test_set"], strict=True)))
    methods = [m for m in METHODS if m in set(df["method"])]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) + 2), 3.8))
    w = 0.8 / len(methods)
    for j, m in enumerate(methods):
        dm = df[df["method"] == m]
        x = np.array([labels.index(_label(s, t)) for s, t in zip(dm["train_set"], dm["test_set"], strict=True)])
        acc = dm["accuracy"].to_numpy(float)
        err = np.abs(np.stack([acc - dm["accuracy_lo"].to_numpy(float), dm["accuracy_hi"].to_numpy(float) - acc]))
        ax.bar(x + (j - (len(methods) - 1) / 2) * w, acc, w, yerr=err, capsize=2, label=LABELS[m])
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("held-out pairwise accuracy (95% CI)")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def learning_curve(curves: pd.DataFrame) -> plt.Figure:
    """Training loss and validation accuracy (pairs of validation prompts, never the held-out
    ones) against the training pairs seen, one line per set and objective."""
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5))
    for (name, obj), g in curves.groupby(["set", "objective"], sort=False):
        lab = name if obj == "reward" else f"{name} ({obj})"
        line = ax_l.plot(g["pairs_seen"], g["loss"], lw=1, label=lab)[0]
        v = g.dropna(subset=["val_accuracy"])
        if len(v):
            ax_a.plot(v["pairs_seen"], v["val_accuracy"], marker="o", ms=3, color=line.get_color(), label=lab)
    ax_l.set_xlabel("training pairs seen")
    ax_l.set_ylabel("training loss")
    ax_a.set_xlabel("training pairs seen")
    ax_a.set_ylabel("validation accuracy")
    ax_a.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax_l.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """Held-out accuracy per (train set → test set) and method; the learning curve (table "curves")
    where the run logged training rows."""
    out: dict[str, Draw] = {}
    if len(run.results):
        out["accuracy"] = partial(accuracy_figure, run.results)
    curves = run.table("curves")
    if len(curves):
        out["learning_curve"] = partial(learning_curve, curves)
    return out
