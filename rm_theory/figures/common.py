"""Helpers every figure module shares: colours of the recipes, error bars, writing PNG and PDF, and
what a study's list of figures is drawn from (`RunTables`).

Each study's figure module has one list of its figures, `figures(run: RunTables) -> {name: draw}`
(named in the registry of studies): the study draws it into its run folder (`save_figures`), and
aggregation draws it for a folder of runs (`figures.aggregate`), so no figure is listed twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

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


@dataclasses.dataclass(frozen=True)
class RunTables:
    """What a study's figures are drawn from, alike for one run in memory and a folder of runs.

    results: the rows of results.csv; tables: its other tables by name (`curves.csv` as "curves", or a
    subset the study selects); config: the run's config (its dataclass, or config.json as a dict);
    extra: anything else a figure needs that no table holds (only a run in memory has it)."""

    results: pd.DataFrame
    tables: Mapping[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    config: Any = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def table(self, name: str, default: pd.DataFrame | None = None) -> pd.DataFrame:
        """A table by name; `default` (an empty table if None) where the run has none."""
        if name in self.tables:
            return self.tables[name]
        return pd.DataFrame() if default is None else default

    def value(self, dotted: str, default: Any = None) -> Any:
        """A config value by its dotted key (`labels.beta`), or `default` where it has none."""
        node = self.config
        for key in dotted.split("."):
            if isinstance(node, Mapping):
                node = node.get(key, default)
            elif node is not None and hasattr(node, key):
                node = getattr(node, key)
            else:
                return default
        return default if node is None else node


Draw = Callable[[], plt.Figure]


def save_figures(figures: Mapping[str, Draw], folder: str | Path) -> list[Path]:
    """Draws each figure of a study's list into `folder/<name>.png` and `.pdf`."""
    return [path for name, draw in figures.items() for path in save(draw(), Path(folder) / name)]
