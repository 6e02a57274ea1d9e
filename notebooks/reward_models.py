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
# # Reward and cost models trained on chain vs tree data (paper §4–5, theory vs practice)
#
# Loads the newest reward-model run under `RESULTS` (made by
# `python -m experiments.train_rm experiment=train_rm`; also `theory_vs_practice`,
# `train_rm_regimes`, `train_rm_safety`, `train_rm_metric`) and draws its figures with
# `rm_theory.figures.train_rm`: accuracy, ensemble variance and IBN resistance against n; the
# ensemble's variance against the IBN's resistance (an ideal Bayesian learner sits on y = x);
# and, when the run trained cost models, their sign accuracy.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from rm_theory.figures import train_rm as plots_models
from rm_theory.runs import latest_run

# %matplotlib inline

run = latest_run(RESULTS, "train_rm")
if run is None:
    print(
        f"No reward-model run under {RESULTS!r}. Make one with\n"
        "    python -m experiments.train_rm experiment=train_rm\n"
        "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
    )
else:
    df, cfg = run["results"], run["config"]
    beta = float(cfg.get("labels", {}).get("beta", 1.0))  # the rewards live on the scale β·r*
    print(f"run: {run['dir']}  ({len(df)} trained ensembles, β = {beta})")
    print({k: v for k, v in run["summary"].items() if not isinstance(v, dict | list)})

# %% [markdown]
# Mean over seeds per regime, topology and n.

# %%
if run is not None:
    cols = [
        c
        for c in (
            "gold_accuracy",
            "label_accuracy",
            "ensemble_variance",
            "ibn_resistance",
            "spearman",
            "ece",
            "cost_sign_accuracy",
            "safer_gold_accuracy",
        )
        if c in df
    ]
    display(df.groupby(["regime", "topology", "n"])[cols].mean().round(4))  # noqa: F821

# %%
if run is not None:
    plots_models.metrics_vs_n(df)

# %%
if run is not None:
    plots_models.theory_vs_practice(df, beta)

# %%
if run is not None and "cost_sign_accuracy" in df:
    plots_models.cost_vs_n(df)
    plots_models.severity_accuracy(df)

# %%
if run is not None and "categories" in run:
    display(run["categories"].head(20 if SMOKE else 200))  # noqa: F821
