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
# # Preference data built without annotators
#
# Loads the newest AI-label run under `RESULTS` (made by `python -m experiments.ai_labels
# experiment=ai_labels`, or `experiment=ai_labels_real` for the real-data part) and draws, with
# `rm_theory.figures.ai_labels`, the parts it holds: gold accuracy and harmlessness against the budget
# per source of labels (human, AI judge, mixed, the Safer-Instruct pipeline, a learned judge); the
# mixed-label IBN's predictions against the runs (`docs/ai_labels_theory.md`); each pipeline stage
# switched off; heads trained on Safer-Instruct's and PKU-SafeRLHF's pairs, each evaluated on both.

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from IPython.display import display

from rm_theory.figures import ai_labels as figs
from rm_theory.runs import latest_run

# %matplotlib inline

run = latest_run(RESULTS, "ai_labels")
if run is None:
    print(
        f"No AI-label run under {RESULTS!r}. Make one with\n"
        "    python -m experiments.ai_labels experiment=ai_labels\n"
        "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
    )
    df, parts = None, set()
else:
    df = run["results"]
    parts = set(df["part"].dropna())
    print(f"run: {run['dir']}  parts: {sorted(parts)}")
    summary = run["summary"]
    print(
        {
            k: v
            for k, v in summary.items()
            if k.startswith(("harmless_", "gold_accuracy_")) and k.endswith("_minus_human")
        }
    )

# %% [markdown]
# ## Accuracy and harmlessness against the budget, per source of labels

# %%
if "world" in parts:
    world = df[df["part"] == "world"]
    cols = ["pairs", "gold_accuracy_reward", "gold_accuracy_cost", "harmless_bon", "harmless_safe_rlhf"]
    display(world.groupby(["source", "budget"])[cols].mean().round(3))
    figs.accuracy_vs_budget(df)
    figs.harmlessness_vs_budget(df)

# %% [markdown]
# ## The mixed-label IBN against the runs

# %%
if "theory" in parts:
    figs.theory_predicted_vs_measured(df)
    figs.theory_vs_share(df)

# %% [markdown]
# ## The pipeline's stages, each switched off

# %%
if "ablations" in parts:
    figs.ablations(df)

# %% [markdown]
# ## Real data: Safer-Instruct's automatic pairs and PKU-SafeRLHF's human pairs

# %%
if "real" in parts:
    real = df[df["part"] == "real"]
    display(real[["train_set", "test_set", "metric", "value", "lo", "hi", "n"]].round(3))
    figs.real_accuracy(df)
