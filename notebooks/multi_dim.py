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
# # Multi-dimensional preferences: dual against single labels at equal cost
#
# Loads the newest run of `python -m experiments.multi_dim experiment=multi_dim` (also
# `multi_dim_sub`, `multi_dim_armorm`, `multi_dim_metric`) under `RESULTS` and draws its figures with
# `rm_theory.figures.multi_dim`: gold accuracy per dimension by protocol against the budget (dashed:
# the IBN's prediction), the Pareto front of helpfulness against the harmless rate per protocol, and
# the IBN's predicted accuracy against the measured one. The theory is `docs/multi_dim_theory.md`.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from IPython.display import display

from rm_theory.figures import multi_dim as figs
from rm_theory.runs import latest_run

# %matplotlib inline

run = latest_run(RESULTS, "multi_dim")
if run is None:
    print(
        f"No multi_dim run under {RESULTS!r}. Make one with\n"
        "    python -m experiments.multi_dim experiment=multi_dim\n"
        "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
    )
else:
    df, dims, down, s = run["results"], run["dims"], run["downstream"], run["summary"]
    print(f"run: {run['dir']}  ({len(df)} trained ensembles, protocols {sorted(set(df['protocol']))})")

# %% [markdown]
# The headline at the largest budget: each number a mean over seeds (each its own world) with its
# Student t 95% half-width; dual − single is paired by seed, Holm-adjusted over its family.

# %%
if run is not None:
    keys = sorted(k for k in s if k.startswith(("acc_", "harmless_rate_", "helpfulness_", "single_ceiling", "largest")))
    display({k: s[k] for k in keys if not k.endswith("_ci")})

# %% [markdown]
# Per dimension: held-out gold accuracy, the accuracy the IBN predicts, and the inference distance
# (exact joint posterior; `dist_own` the dimension's own network), mean over seeds.

# %%
if run is not None:
    cols = ["acc", "pred_acc", "dist", "dist_own", "prior", "ens_var"]
    display(dims.groupby(["protocol", "budget", "dim"])[cols].mean().round(4).head(40 if SMOKE else 400))

# %%
if run is not None:
    figs.accuracy_vs_budget(dims)

# %%
if run is not None:
    figs.pareto_front(down, df["budget"].max())

# %%
if run is not None:
    figs.theory_vs_measured(dims)
