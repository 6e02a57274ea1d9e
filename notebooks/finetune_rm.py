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
# # Fine-tuned reward models on real preference data
#
# Loads the newest run of `python -m experiments.finetune_rm` (presets `finetune_quick`,
# `finetune_paper`, `finetune_rm`, `finetune_vector`) under `RESULTS` and draws its figures with
# `rm_theory.figures.finetune_rm`: held-out accuracy per data set and method (the fine-tuned model,
# a vector model's head for that set, the frozen-feature heads, bag of words, "prefer the longer
# response"), and the learning curve on validation prompts. Intervals: percentile bootstrap over
# held-out prompts, one training seed; differences are paired (the same held-out pairs).

# %% tags=["parameters"]
import os

RESULTS = os.environ.get("RM_THEORY_RESULTS", "outputs")
SMOKE = os.environ.get("RM_THEORY_SMOKE") == "1"

# %%
from IPython.display import display

from rm_theory.figures import finetune_rm as figs
from rm_theory.runs import latest_run

# %matplotlib inline

run = latest_run(RESULTS, "finetune_rm")
if run is None:
    print(
        f"No finetune_rm run under {RESULTS!r}. Make one with\n"
        "    python -m experiments.finetune_rm experiment=finetune_paper\n"
        "and point RM_THEORY_RESULTS at its folder (or a parent of it)."
    )
else:
    df, s = run["results"], run["summary"]
    print(f"run: {run['dir']}  (model {s.get('model')}, {s.get('model_parameters')} parameters)")

# %% [markdown]
# Held-out accuracy with its interval and pair count, per train set, test set and method.

# %%
if run is not None:
    cols = ["train_set", "test_set", "method", "accuracy", "accuracy_lo", "accuracy_hi", "accuracy_n"]
    display(df[[c for c in cols if c in df]].round(3))

# %%
if run is not None:
    figs.accuracy_figure(df)

# %%
if run is not None and "curves" in run and len(run["curves"]):
    figs.learning_curve(run["curves"])

# %% [markdown]
# The vector reward model (issue 26; `vector.sets`): one head per data set on one fine-tuned trunk.
# `vector_minus_separate_<set>` is its head's accuracy minus the set's own model's on the same
# held-out pairs (`vector_frozen_*`: the same for the frozen-feature heads); the harm head, negated,
# is scored as a cost (`vector_cost_sign_accuracy_<set>`: safe ⇔ cost ≤ 0).

# %%
if run is not None:
    vec = {k: v for k, v in s.items() if k.startswith("vector_") and ("accuracy" in k or "minus" in k)}
    display(vec if vec else "this run trained no vector model (vector.sets is empty)")
