"""The comparison-design study (`experiments.design`): smoke run, summary keys, paired budgets."""

import pandas as pd
import pytest

from rm_theory.studies import design as study
from tests.helpers import run_smoke


def test_smoke_run_compares_every_recipe_at_every_budget(tmp_path):
    s = run_smoke("design", study.run, tmp_path)
    assert s["status"] == "ok"
    df = pd.read_csv(tmp_path / "results.csv")
    assert set(df["recipe"]) == set(study.RECIPES) and set(df["budget"]) == {16, 32}
    for recipe in study.RECIPES:
        for col in ("mean_resistance", "bayes_gold_accuracy", "gold_accuracy", "best_of_n_gold"):
            assert f"{col}_{recipe}_32" in s
    # more comparisons never raise the targets' mean resistance (nested budgets)
    for _, g in df.groupby(["seed", "recipe"]):
        g = g.sort_values("budget")
        assert (g["mean_resistance"].diff().dropna() <= 1e-12).all()
    assert (df["comparisons"] == df["budget"]).all()
    assert (tmp_path / "figures" / "design_vs_budget.png").exists()
    # paired differences at the largest budget, each with its interval
    for other in set(study.RECIPES) - {"designed"}:
        assert f"bayes_gold_accuracy_designed_minus_{other}" in s
        assert f"mean_resistance_designed_minus_{other}_ci" in s


def test_an_unknown_recipe_is_named(tmp_path):
    # config validation names the key, the bad value and the allowed ones
    with pytest.raises(ValueError, match=r"recipes\[1\] = 'magic': must be one of 'designed'"):
        run_smoke("design", study.run, tmp_path, ["recipes=[designed,magic]"])
