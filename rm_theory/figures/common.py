"""Helpers every figure module shares: colours of the recipes, error bars, writing PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from rm_theory.common.stats import ci_half_width

COLORS = {"chain": "tab:blue", "tree": "tab:orange", "gold": "black", "ref": "tab:gray"}


def ci(values) -> float:
    """Half-width of the 95% interval over units (seeds); NaN (no bar) with a single unit."""
    return ci_half_width(values)


def save(fig, path_stem: str | Path) -> list[Path]:
    """Writes `fig` as `<stem>.png` and `<stem>.pdf` and closes it."""
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    out = [path_stem.with_suffix(".png"), path_stem.with_suffix(".pdf")]
    for p in out:
        fig.savefig(p, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return out


def by_topology(ax, df, col: str) -> None:
    """Mean ± s.d. of `col` against n, one line per topology (chain, tree), on `ax`."""
    for topo, gt in df.groupby("topology"):
        s = gt.groupby("n")[col].agg(["mean", "std"]).reset_index()
        ax.errorbar(
            s["n"], s["mean"], yerr=s["std"].fillna(0), marker="o", ms=3, capsize=2, label=topo, color=COLORS.get(topo)
        )
