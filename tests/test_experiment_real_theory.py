"""The entry points of the theory on fine-tuned reward models on their smoke configs (tiny data sets and
a tiny random BERT the run writes): real_theory's predictors and scores with intervals over replicates,
real_design's recipes and rounds, a rerun reusing finished units, and bad values named by key before
any run folder is written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from rm_theory.common.validate import ConfigError
from rm_theory.real.active import RECIPES
from rm_theory.real.model_ibn import PREDICTORS
from rm_theory.registry import steps
from rm_theory.runs import read_metrics, run_entry
from rm_theory.studies import real_design, real_theory
from tests.helpers import compose_config, run_smoke


@pytest.fixture(scope="module")
def theory(tmp_path_factory):
    out = tmp_path_factory.mktemp("real_theory")
    return out, run_smoke("real_theory", real_theory.run, out)


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    out = tmp_path_factory.mktemp("real_design")
    return out, run_smoke("real_design", real_design.run, out)


def test_real_theory_scores_every_predictor_with_intervals_over_replicates(theory):
    out, s = theory
    assert s["status"] == "ok" and s["replicates"] == 2
    df = pd.read_csv(out / "results.csv")
    assert sorted(df["replicate"].unique()) == [0, 1] and set(df["predictor"]) == set(PREDICTORS)
    for p in ("ibn_frozen", "ibn_hidden", "ibn_gradient", "fisher"):
        lo, hi = s[f"spearman_{p}_pku_ci"]
        assert lo <= s[f"spearman_{p}_pku"] <= hi
    for p in ("ibn_hidden", "ensemble"):
        lo, hi = s[f"auroc_pwrong_{p}_pku_ci"]
        assert lo <= s[f"auroc_pwrong_{p}_pku"] <= hi
    # the paired difference is the difference of the replicate means (same pairs, same model)
    piv = df.pivot(index="replicate", columns="predictor", values="auroc")
    assert s["auroc_ibn_hidden_minus_ibn_frozen_pku"] == pytest.approx((piv["ibn_hidden"] - piv["ibn_frozen"]).mean())
    # every predictor of a replicate is scored on the same held-out pairs
    assert df.groupby("replicate")["test_pairs"].nunique().max() == 1
    assert (df["test_pairs"] > 0).all() and np.isfinite(s["test_accuracy_pku"])
    for stem in ("accuracy_by_quantile", "predictor_scores"):
        assert (out / "figures" / f"{stem}.png").exists()


def test_replicates_draw_their_own_splits(theory):
    out, _ = theory
    rows = [r for r in read_metrics(out / "metrics.jsonl") if r.get("kind") == "unit"]
    assert [r["unit"] for r in rows] == ["pku:0", "pku:1"]
    scales = [r["info"]["ib_scale_frozen"] for r in rows]
    assert scales[0] != scales[1]


def test_a_rerun_into_the_folder_reuses_the_finished_units(theory):
    out, s = theory
    rows = len(read_metrics(out / "metrics.jsonl"))
    again = run_smoke("real_theory", real_theory.run, out)
    assert len(read_metrics(out / "metrics.jsonl")) == rows  # nothing trained again
    same = lambda d: {k: v for k, v in d.items() if not k.endswith("_s") and k != "wall_time_s"}  # noqa: E731
    assert same(again) == same(s)


def test_real_design_runs_every_recipe_round_by_round(design):
    out, s = design
    assert s["status"] == "ok"
    df = pd.read_csv(out / "results.csv")
    assert set(df["recipe"]) == set(RECIPES)
    assert sorted(df["labelled"].unique()) == [8, 16, 24]
    # every recipe starts from the same seed set: the same first-round accuracy in a replicate
    first = df[df["labelled"] == 8].groupby("replicate")["accuracy"].nunique()
    assert (first == 1).all()
    for r in RECIPES:
        lo, hi = s[f"accuracy_{r}_pku_ci"]
        assert lo <= s[f"accuracy_{r}_pku"] <= hi
        if r != "random":
            assert 0 <= s[f"reached_{r}_pku"] <= 2 and f"labels_saved_{r}_pku_ci" in s
    assert (out / "figures" / "accuracy_vs_labels.png").exists()


@pytest.mark.parametrize(
    ("name", "over", "key"),
    [
        ("real_design", ["active.budget=8"], r"active\.budget = 8"),
        ("real_design", ["active.recipes=[random,bandit]"], r"active\.recipes\[1\] = 'bandit'"),
        ("real_theory", ["cost=[pku]"], r"cost = \['pku'\]"),
        ("real_theory", ["replicates=1"], r"replicates = 1"),
    ],
)
def test_bad_values_are_named_by_key_before_the_run_folder_is_touched(tmp_path, name, over, key):
    study = {"real_theory": real_theory, "real_design": real_design}[name]
    cfg = compose_config(name, ["debug=smoke", *over])
    with pytest.raises(ConfigError, match=key):
        run_entry(cfg, study.run, out_dir=tmp_path / "run", overrides=["debug=smoke", *over])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["summary.json"]


@pytest.mark.parametrize("name", ["real_theory", "real_design"])
def test_the_quick_steps_resolve_to_valid_configs(name):
    _, step = steps()[name]
    cfg = compose_config(name, [f"experiment={step.preset}", *step.quick])
    assert OmegaConf.to_container(cfg)["in_domain"] == ["pku"]
