# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chain vs tree: scaling of the inference distance (paper Theorem 4.5 / Table 2)
#
# Loads the newest scaling-study run under `RESULTS` (made by
# `python -m experiments.ibn_scaling experiment=ibn_scaling`) and draws its figures with
# `rm_theory.figures.ibn_scaling`: distance against n, the chain/tree ratio with its c·log n/log log n fit,
# the ratio over the study's axes, and per query distribution. Ratio > 1: tree data wins.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
import numpy as np
import pandas as pd

from rm_theory.figures import ibn_scaling as ibn_scaling_figs
from rm_theory.ibn import AXES, expand_points, ratio_table
from rm_theory.runs import latest_run

# %matplotlib inline

run = latest_run(RESULTS, "ibn_scaling")
if run is None:
    print(
        f"No scaling-study run under {RESULTS!r}. Make one with\n"
        "    python -m experiments.ibn_scaling experiment=ibn_scaling\n"
        "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
    )
else:
    df, cfg = run["results"], run["config"]
    print(f"run: {run['dir']}  ({len(df)} rows)")
    print({k: v for k, v in run["summary"].items() if not isinstance(v, dict)})

# %% [markdown]
# The run holds two sweeps: the *curve* (few points, many n) and the *map* (many points, one n).
# Their points come from the run's own config, as in `rm_theory.studies.ibn_scaling.run`.


# %%
def on_points(df: pd.DataFrame, sweep: dict) -> pd.DataFrame:
    points = {tuple(vars(p).values()) for p in expand_points({a: sweep[a] for a in AXES})}
    keep = df[list(AXES)].apply(tuple, axis=1).isin(points) & df["n"].isin(sweep["n_values"])
    return df[keep]


if run is not None:
    curve = on_points(df, cfg["curve"]) if "curve" in cfg else df
    on_map = on_points(df, cfg["map"]) if "map" in cfg else df
    print(f"curve: {len(curve)} rows, map: {len(on_map)} rows")

# %%
if run is not None:
    ibn_scaling_figs.distance_vs_n(curve)

# %%
if run is not None:
    ibn_scaling_figs.ratio_vs_n(curve)

# %%
if run is not None:
    ibn_scaling_figs.ratio_heatmap(on_map)

# %%
if run is not None and any(c.startswith("d_res_") for c in on_map):
    ibn_scaling_figs.query_heatmap(on_map)

# %% [markdown]
# ## Where does tree data win?
# chain/tree ratio of the mean effective resistance at the map's n, one row per study point.

# %%
if run is not None:
    rt = ratio_table(on_map)
    rt = rt[rt["n"] == rt["n"].max()]
    varying = [a for a in AXES if rt[a].nunique() > 1] or list(AXES)
    wins = rt.assign(tree_wins=rt["ratio"] > 1).sort_values("ratio", ascending=False)[
        [*varying, "n", "ratio", "tree_wins"]
    ]
    print(f"tree wins at {int(wins['tree_wins'].sum())} of {len(wins)} points (n = {int(rt['n'].max())})")
    display(wins.head(10 if SMOKE else len(wins)).round(3))  # noqa: F821 (IPython builtin)
    # per value of each axis: share of points where tree wins, and the geometric-mean ratio
    by_axis = pd.concat(
        {
            a: rt.groupby(a)["ratio"].agg(
                frac_tree_wins=lambda r: (r > 1).mean(), geomean_ratio=lambda r: np.exp(np.log(r).mean())
            )
            for a in varying
        },
        names=["axis", "value"],
    )
    display(by_axis.round(3))  # noqa: F821
