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
# # The theory on fine-tuned reward models
#
# Loads the newest run of each of two studies under `RESULTS` and draws them with
# `rm_theory.figures.real_theory` and `rm_theory.figures.real_design`:
#
# * `python -m experiments.real_theory experiment=real_theory`: does the IBN of a fine-tuned model (its
#   hidden states, its head's gradient features) predict where its ensemble is unsure and which
#   held-out pairs it gets wrong, beside the frozen-encoder IBN and the ensemble's own variance?
# * `python -m experiments.real_design experiment=real_design`: which real pairs to label (IBN
#   A-optimal, random, disagreement, Fisher D-optimal, same prompt, one pair per prompt).
#
# Intervals are Student t over replicates (independent prompt splits and training seeds).

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from IPython.display import display

from rm_theory.figures import real_design as plots_design
from rm_theory.figures import real_theory as plots_theory
from rm_theory.runs import latest_run

# %matplotlib inline

theory = latest_run(RESULTS, "real_theory")
design = latest_run(RESULTS, "real_design")
for name, run in (("real_theory", theory), ("real_design", design)):
    if run is None:
        print(
            f"No {name} run under {RESULTS!r}. Make one with\n"
            f"    python -m experiments.{name} experiment={name}\n"
            "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
        )
    else:
        print(f"{name}: {run['dir']}")

# %% [markdown]
# ## Each predictor against the ensemble's variance and its errors
#
# `auroc`: of the variance alone for a wrong prediction; `auroc_pwrong`: of the Gaussian posterior's
# probability of a wrong sign, Φ(−|Δ̂|/√v); `spearman`: per pair, against the ensemble's variance.

# %%
if theory is not None:
    df = theory["results"]
    cols = ["auroc", "auroc_pwrong", "spearman"]
    display(df.groupby(["set", "predictor"], sort=False)[cols].agg(["mean", "std", "count"]).round(3))
    plots_theory.predictor_bars(df)

# %% [markdown]
# ## Held-out accuracy by the predictor's quintile

# %%
if theory is not None:
    plots_theory.accuracy_by_quantile(df)

# %% [markdown]
# ## Held-out accuracy against labelled pairs, per recipe

# %%
if design is not None:
    s = design["summary"]
    saved = {k: v for k, v in s.items() if k.startswith(("labels_saved_", "accuracy_")) and not k.endswith("_ci")}
    display(saved)
    plots_design.accuracy_vs_labels(design["results"])
