"""The comparison-design study (`experiments.design`): smoke run, summary keys, paired budgets."""

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from rm_theory.config.common import make_space
from rm_theory.config.design import DesignSchema
from rm_theory.runs import apply_smoke, override_keys
from rm_theory.studies import design as study
from tests.helpers import compose_config, run_smoke


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
    # paired differences at the largest budget, each with its interval and its Holm-adjusted p-value
    for other in set(study.RECIPES) - {"designed"}:
        assert f"bayes_gold_accuracy_designed_minus_{other}" in s
        assert f"mean_resistance_designed_minus_{other}_ci" in s
        for m in study.TARGET_MEASURES:
            assert f"{m}_designed_minus_{other}_heldout" in s and f"{m}_designed_minus_{other}_heldout_p_holm" in s
    assert "Holm" in s["multiple_comparisons"]
    # every target measure also on held-out targets, which no recipe saw
    for recipe in study.RECIPES:
        for m in study.TARGET_MEASURES:
            assert f"{m}_{recipe}_32_heldout" in s and f"{m}_{recipe}_32_heldout_ci" in s
    assert not df["mean_resistance"].equals(df["mean_resistance_heldout"])
    assert s["unreachable_targets"] == df["unreachable_targets"].sum() == 0
    assert s["target_ties_heldout"] == df.loc[df["seed"] == 0, "target_ties_heldout"].iloc[0]


def test_an_unknown_recipe_is_named(tmp_path):
    # config validation names the key, the bad value and the allowed ones
    with pytest.raises(ValueError, match=r"recipes\[1\] = 'magic': must be one of 'designed'"):
        run_smoke("design", study.run, tmp_path, ["recipes=[designed,magic]"])


def _cfg(over=()):
    """The smoke config as a run sees it."""
    return OmegaConf.to_object(
        apply_smoke(compose_config("design", ["debug=smoke", *over]), DesignSchema, override_keys(over))
    )


def test_held_out_targets_are_drawn_apart_from_the_design_targets():
    w = study.make_world(_cfg(), 0)
    (a, b), (ha, hb) = w.targets[""], w.targets["_heldout"]
    assert len(a) + w.ties[""] == len(ha) + w.ties["_heldout"] == 32
    assert not (np.array_equal(a.data, ha.data[: len(a)]) and np.array_equal(b.data, hb.data[: len(b)]))


def test_gold_ties_are_left_out_of_the_targets_and_counted():
    cfg = _cfg(["space.L=1"])  # four responses per prompt: many pairs are the same response twice
    space = make_space(cfg.space, 0)
    a, b, ties = study.target_pairs(space, cfg, np.random.default_rng(0))
    assert ties > 0 and len(a) + ties == cfg.targets
    assert (space.gold_reward(a) != space.gold_reward(b)).all()


def test_disagreement_rounds_start_from_the_runs_seed():
    cfg = _cfg(["budgets=[8]", "batch=8"])  # one round: the random start alone
    w = study.make_world(cfg, 0)
    picks = [study._disagreement(w.space, w.pool, w.cand_Px2, None, cfg, None, None, seed) for seed in (0, 1)]
    assert len(picks[0]) == 8 and not np.array_equal(picks[0], picks[1])


def test_a_budget_above_the_candidate_pool_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"budgets = \[16, 200\]: the largest budget exceeds the candidate pool"):
        run_smoke("design", study.run, tmp_path, ["budgets=[16,200]"])
    assert not (tmp_path / "metrics.jsonl").exists()
    # chain and tree alone draw no pool: any budget is theirs
    study.check_budget(_cfg(["recipes=[chain,tree]"]), 0, np.zeros((3, 2)))


def test_a_resumed_run_skips_finished_units_and_appends_nothing(tmp_path, monkeypatch):
    first = run_smoke("design", study.run, tmp_path, ["recipes=[designed,chain,random]"])
    metrics = (tmp_path / "metrics.jsonl").read_text()
    results = (tmp_path / "results.csv").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished unit was recomputed")

    monkeypatch.setattr(study, "_recipe_data", refuse)
    again = run_smoke("design", study.run, tmp_path, ["recipes=[designed,chain,random]"])
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    assert (tmp_path / "results.csv").read_text() == results
    assert {k: v for k, v in again.items() if not k.endswith("_s")} == {
        k: v for k, v in first.items() if not k.endswith("_s")
    }
    # a run killed after its first rows: only the rest is computed, to the same table
    monkeypatch.undo()
    lines = metrics.splitlines(keepends=True)
    (tmp_path / "metrics.jsonl").write_text("".join(lines[:3]))
    run_smoke("design", study.run, tmp_path, ["recipes=[designed,chain,random]"])
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines) and len({(r["seed"], r["recipe"], r["budget"]) for r in rows}) == len(lines)
    assert (tmp_path / "results.csv").read_text() == results
