"""Figures of the chain-vs-tree scaling study (paper Theorem 4.5 / Table 2): distance against n, the
chain/tree ratio with its c·log n / log log n fit, and heat maps of the ratio over the study axes.
"""

from __future__ import annotations

from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rm_theory.figures.common import Draw, RunTables, by_topology
from rm_theory.ibn.scaling import AXES, fit_log_ratio, ratio_table


def _label(point: dict) -> str:
    return ", ".join(f"{k}={point[k]}" for k in point)


def varying_axes(df: pd.DataFrame, axes=AXES) -> list[str]:
    return [a for a in axes if a in df and df[a].nunique() > 1]


def flat_value(df: pd.DataFrame, column: str, rtol: float = 1e-9) -> float | None:
    """The mean of `column` over seeds when, within every seed, chain and tree give it the same value
    at every n (the row carries nothing); None otherwise.

    The path distance of the tree geometry is such a column: the inductive-bias path between two
    responses (through their common prefix) is shorter than any route over a comparison edge of
    variance ξ² = 4 (or a Fisher variance ≥ 4/β²), so no data set changes it.
    """
    if column not in df or df[column].isna().all():
        return None
    per_seed = df.groupby("seed")[column] if "seed" in df else [(None, df[column])]
    for _, v in per_seed:
        v = v.to_numpy(float)
        if not np.allclose(v, v[0], rtol=rtol, atol=0.0):
            return None
    return float(df.groupby("seed")[column].first().mean() if "seed" in df else df[column].iloc[0])


def distance_vs_n(df: pd.DataFrame, columns=("mean_d_res", "mean_d_path")) -> plt.Figure:
    """Mean inference distance against n, chain vs tree (mean ± s.d. over seeds), one panel per point.

    A row whose distance is flat in every panel (`flat_value`: chain and tree equal at every n) is
    left out and named in a note under the figure; one flat in some panels only is annotated there.
    """
    axes_vary = varying_axes(df)
    groups = list(df.groupby(axes_vary)) if axes_vary else [((), df)]
    columns = [c for c in columns if c in df]
    flat = {c: [flat_value(g, c) for _, g in groups] for c in columns}
    dropped = [c for c in columns if all(v is not None for v in flat[c])]
    if len(dropped) == len(columns):
        dropped = []  # nothing would be left: annotate instead
    shown = [c for c in columns if c not in dropped]
    size = (3.6 * len(groups), 3.2 * len(shown))
    fig, axs = plt.subplots(len(shown), len(groups), figsize=size, squeeze=False, sharex=True)
    for j, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        for i, col in enumerate(shown):
            ax = axs[i, j]
            by_topology(ax, g, col)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_ylabel(col)
            if flat[col][j] is not None:
                note = f"flat: chain = tree = {flat[col][j]:.3g} at every n\n(no comparison edge on a shortest path)"
                ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize=6)
            if i == 0:
                ax.set_title(_label(dict(zip(axes_vary, key, strict=True))), fontsize=7)
            if i == len(shown) - 1:
                ax.set_xlabel("n (comparisons of the chain budget)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    if dropped:
        notes = [
            f"{c} left out: chain = tree at every n in every panel "
            f"(d = {', '.join(dict.fromkeys(f'{v:.3g}' for v in flat[c]))}); no comparison edge lies on a shortest path"
            for c in dropped
        ]
        fig.text(0.01, 0.0, "\n".join(notes), fontsize=6, ha="left", va="top")
    return fig


def ratio_vs_n(df: pd.DataFrame, column: str = "mean_d_res", fit_point: dict | None = None) -> plt.Figure:
    """chain/tree distance ratio against n per point, with c·log n/log log n fitted to each."""
    rt = ratio_table(df, column)
    axes_vary = varying_axes(rt)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, g in rt.groupby(axes_vary) if axes_vary else [((), rt)]:
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values("n")
        label = _label(dict(zip(axes_vary, key, strict=True))) or "ratio"
        line = ax.plot(g["n"], g["ratio"], marker="o", ms=3, label=label)
        if len(g) >= 2:
            c, r2 = fit_log_ratio(g["n"].to_numpy(), g["ratio"].to_numpy())
            nn = np.geomspace(g["n"].min(), g["n"].max(), 50)
            ax.plot(
                nn,
                c * np.log(nn) / np.log(np.log(nn)),
                ls="--",
                color=line[0].get_color(),
                lw=1,
                label=f"fit c={c:.3f}, R²={r2:.2f}",
            )
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("n")
    ax.set_ylabel(f"chain / tree ({column})")
    ax.set_title("ratio > 1: tree data gives smaller inference distance", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def ratio_heatmap(
    df: pd.DataFrame,
    column: str = "mean_d_res",
    rows=("geometry", "regime", "label_variance"),
    cols=("shape", "budget", "temperature"),
    n: int | None = None,
) -> plt.Figure:
    """log2 of the chain/tree ratio at one n over the main axes (red: tree wins; blue: chain wins)."""
    rt = ratio_table(df, column)
    n = int(rt["n"].max()) if n is None else n
    rt = rt[rt["n"] == n]
    rows = [r for r in rows if r in rt and rt[r].nunique() > 1] or [rows[0]]
    cols = [c for c in cols if c in rt and rt[c].nunique() > 1] or [cols[0]]
    pv = rt.pivot_table(index=rows, columns=cols, values="ratio", aggfunc="mean")
    val = np.log2(pv.to_numpy(dtype=float))
    lim = max(1e-3, float(np.nanmax(np.abs(val)))) if np.isfinite(val).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * pv.shape[1], 1.0 + 0.42 * pv.shape[0]))
    im = ax.imshow(val, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in np.ndenumerate(pv.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fmt = lambda k: "/".join(map(str, k)) if isinstance(k, tuple) else str(k)
    ax.set_xticks(range(pv.shape[1]), [fmt(k) for k in pv.columns], rotation=60, ha="right", fontsize=6)
    ax.set_yticks(range(pv.shape[0]), [fmt(k) for k in pv.index], fontsize=6)
    ax.set_xlabel("/".join(cols), fontsize=7)
    ax.set_ylabel("/".join(rows), fontsize=7)
    ax.set_title(f"chain/tree {column} at n={n} (cell = ratio; colour = log2)", fontsize=8)
    fig.colorbar(im, ax=ax, label="log2(chain/tree)")
    fig.tight_layout()
    return fig


def query_heatmap(df: pd.DataFrame, metric: str = "res", n: int | None = None) -> plt.Figure:
    """chain/tree ratio per query distribution (rows) and study point (columns) at one n."""
    cols = [c for c in df.columns if c.startswith(f"d_{metric}_")]
    frames = []
    for c in cols:
        rt = ratio_table(df, c)
        rt["query"] = c.removeprefix(f"d_{metric}_")
        frames.append(rt)
    rt = pd.concat(frames)
    n = int(rt["n"].max()) if n is None else n
    rt = rt[rt["n"] == n]
    axes_vary = varying_axes(rt) or ["label_variance"]
    rt["point"] = rt[axes_vary].astype(str).agg("/".join, axis=1)
    pv = rt.pivot_table(index="query", columns="point", values="ratio", aggfunc="mean")
    val = np.log2(pv.to_numpy(dtype=float))
    lim = max(1e-3, float(np.nanmax(np.abs(val)))) if np.isfinite(val).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.5 + 0.5 * pv.shape[1], 1.0 + 0.4 * pv.shape[0]))
    im = ax.imshow(val, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(pv.shape[1]), list(pv.columns), rotation=70, ha="right", fontsize=5)
    ax.set_yticks(range(pv.shape[0]), list(pv.index), fontsize=7)
    ax.set_xlabel("/".join(axes_vary), fontsize=7)
    ax.set_title(f"log2 chain/tree d_{metric} per query distribution, n={n}", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def figures(run: RunTables) -> dict[str, Draw]:
    """The study's figures: distance and ratio against n on the curve's rows (table "curve"), the heat
    maps on the map's rows (table "map"); every row where a table is not given. An axis that selects
    no rows (`map.n_values=[]`) skips its figures."""
    curve, on_map = run.table("curve", run.results), run.table("map", run.results)
    out: dict[str, Draw] = {}
    if len(curve):
        out |= {"distance_vs_n": partial(distance_vs_n, curve), "ratio_vs_n": partial(ratio_vs_n, curve)}
    if len(on_map):
        out["ratio_heatmap"] = partial(ratio_heatmap, on_map)
        if any(c.startswith("d_res_") for c in on_map):
            out["ratio_heatmap_queries"] = partial(query_heatmap, on_map)
    return out
