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
# # Real preference data
#
# Loads the newest real-data run under `RESULTS` (made by
# `python -m experiments.real_data experiment=real_accuracy`, `real_ibn` or `real_topology`)
# and draws, with `rm_theory.figures.real_data`, the parts it holds: held-out accuracy of reward heads
# on frozen encoder features; F(M) of the real data's IBN with the best-fitting structural
# regime; and chain-like vs tree-like choices of comparisons among real responses.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from IPython.display import display

from rm_theory.figures import real_data as plots_real
from rm_theory.runs import latest_run

# %matplotlib inline

run = latest_run(RESULTS, "real_data")
if run is None:
    print(
        f"No real-data run under {RESULTS!r}. Make one with\n"
        "    python -m experiments.real_data experiment=real_accuracy\n"
        "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
    )
    parts = set()
else:
    df = run["results"]
    parts = set(df["part"])
    print(f"run: {run['dir']}  parts: {sorted(parts)}")
    print({k: v for k, v in run["summary"].items() if not isinstance(v, dict | list)})

# %% [markdown]
# ## Held-out accuracy

# %%
if "accuracy" in parts:
    acc = df[df["part"] == "accuracy"].dropna(axis=1, how="all")
    display(acc[["train_set", "test_set", "method", "accuracy", "accuracy_lo", "accuracy_hi"]].round(3))
    plots_real.accuracy_figure(df)

# %% [markdown]
# ## Structural function F(M) of the real IBN

# %%
if "structural" in parts:
    plots_real.structural_figure(df)

# %% [markdown]
# ## Chain-like vs tree-like comparisons on real response groups

# %%
if "topology" in parts:
    topo = df[df["part"] == "topology"]
    cols = [c for c in ("accuracy", "ensemble_variance", "distance_resistance") if c in topo]
    display(topo.groupby(["dataset", "strategy", "budget"])[cols].mean().round(4))
    plots_real.topology_figure(df)
