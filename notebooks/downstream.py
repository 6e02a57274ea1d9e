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
# # Downstream: Best-of-N, win rates of RLHF policies, Safe RLHF (paper §5)
#
# Loads, from under `RESULTS`, the newest run of each downstream entry point and draws its
# figures with `rm_theory.figures.best_of_n`, `win_rates` and `safe_rlhf`. Each part is
# skipped, with the command that makes it, when its run is missing:
#
# * `python -m experiments.best_of_n experiment=best_of_n`
# * `python -m experiments.win_rates experiment=win_rate_table` (also `data_scaling`,
#   `incomplete_ablation`, `overoptimisation`)
# * `python -m experiments.safe_rlhf experiment=safe_rlhf`

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from IPython.display import display

from rm_theory.figures import best_of_n as best_of_n_figs
from rm_theory.figures import safe_rlhf as safe_rlhf_figs
from rm_theory.figures import win_rates as win_rates_figs
from rm_theory.runs import latest_run

# %matplotlib inline

bon, wr, safe = (latest_run(RESULTS, k) for k in ("best_of_n", "win_rates", "safe_rlhf"))
for name, run in (("best_of_n", bon), ("win_rates", wr), ("safe_rlhf", safe)):
    print(
        f"{name:10s}",
        run["dir"] if run else f"no run under {RESULTS!r}, part skipped; make one with python -m experiments.{name}",
    )

# %% [markdown]
# ## Best-of-N
# Gold reward of the response kept by each reward model among N samples of π_ref.

# %%
if bon is not None:
    df = bon["results"]
    display(df.groupby(["rm", "N"])["gold_reward"].mean().unstack("rm").round(4))
    best_of_n_figs.best_of_n_curve(df)

# %% [markdown]
# ## Win rates
# PPO/DPO policies trained with the chain and tree reward models, judged by the gold reward
# (ties excluded from the rate); then the RM score and gold reward against KL during PPO.

# %%
if wr is not None:
    wins = wr["results"]
    display(wins.groupby(["a", "b"], sort=False)[["win", "lose", "tie", "win_rate"]].mean().round(3))
    win_rates_figs.win_rate_bars(wins)
    for axis in ("n", "incomplete_frac"):
        if wins[axis].nunique() > 1:
            win_rates_figs.win_rate_vs(wins, axis)

# %%
if wr is not None and "curves" in wr:
    win_rates_figs.overoptimisation(wr["curves"])

# %%
if wr is not None:
    for name in ("policies", "annotation_cost"):
        if name in wr:
            print(name)
            display(wr[name].head(12 if SMOKE else 100).round(4))

# %% [markdown]
# ## Safe RLHF
# The Lagrangian run against fixed cost penalties: training traces, then the final
# reward/cost frontier. The dashed line is the cost threshold.

# %%
if safe is not None:
    thr = float(safe["summary"].get("threshold", safe["config"].get("threshold", 0.0)))
    cols = ["gold", "gold_cost", "cost", "lambda", "kl"]
    display(safe["results"].groupby("run", sort=False)[cols].mean().round(4))
    if "curves" in safe:
        safe_rlhf_figs.safe_traces(safe["curves"], thr)
    safe_rlhf_figs.safe_frontier(safe["results"], thr)
