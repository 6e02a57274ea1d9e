"""The AI-label study end to end on its smoke config: outputs, summary keys, pairing, budgets, resume,
and config errors that name their key (`studies.ai_labels`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from rm_theory.common.validate import ConfigError
from rm_theory.policy.label_sources import HUMAN
from rm_theory.runs import apply_smoke, read_json
from rm_theory.runs.aggregate import table_kind
from rm_theory.studies import ai_labels
from tests.helpers import compose_config, run_smoke

PARTS = "parts=[world,theory,ablations,judges]"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ai_labels") / "run"
    summary = run_smoke("ai_labels", ai_labels.run, out, [PARTS])
    return out, summary


def test_the_smoke_run_writes_every_part_and_names_sources_and_harmlessness(smoke):
    out, summary = smoke
    assert summary["status"] == "ok"
    df = pd.read_csv(out / "results.csv")
    assert set(df["part"]) == {"world", "theory", "ablations", "judges"}
    assert table_kind(df.columns) == "ai_labels"
    for key in (
        "harmless_bon_human",
        "harmless_bon_ai",
        "harmless_safe_rlhf_safer_instruct",
        "harmless_bon_safer_instruct_minus_human",
        "gold_accuracy_reward_ai_minus_human",
        "judge_minus_human_agreement",
        "theory_gauss_mse_rel_error",
        "ablation_expert_harmless_safe_rlhf_minus_full",
    ):
        assert key in summary and np.isfinite(summary[key]), key
    for fig in ("accuracy_vs_budget", "harmlessness_vs_budget", "theory_predicted_vs_measured", "ablations"):
        assert (out / "figures" / f"{fig}.png").exists()


def test_sources_are_paired_and_budgets_buy_what_they_cost():
    cfg = compose_config("ai_labels", ["debug=smoke"])
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(apply_smoke(cfg, OmegaConf.get_type(cfg), []))
    w1, w2 = ai_labels.make_world(cfg, 0), ai_labels.make_world(cfg, 0)
    np.testing.assert_array_equal(w1.q_a, w2.q_a)  # a seed's query pairs are its own, every run
    assert not np.array_equal(ai_labels.make_world(cfg, 1).gold.r_XxY, w1.gold.r_XxY)  # each seed its own world
    pools = ai_labels.make_pools(cfg, w1)
    c_h, c_ai = cfg.label_cost.human, cfg.label_cost.ai
    small, big = sorted(cfg.budgets)
    for source in ("human", "ai", "mixed"):
        d_small = ai_labels.source_data(cfg, w1, pools, source, small)
        d_big = ai_labels.source_data(cfg, w1, pools, source, big)
        cost = lambda d: np.sum(np.where(d.kind == HUMAN, c_h, c_ai))
        assert cost(d_small) <= small + 1e-9 and cost(d_big) <= big + 1e-9, source
        if source != "mixed":  # a larger budget extends the smaller one's data
            np.testing.assert_array_equal(d_big.a[: len(d_small)], d_small.a)
    human, ai = (ai_labels.source_data(cfg, w1, pools, s, small) for s in ("human", "ai"))
    np.testing.assert_array_equal(human.a, ai.a[: len(human)])  # the same pairs, labelled by either


def test_a_rerun_resumes_its_finished_units(smoke, monkeypatch, tmp_path):
    out, summary = smoke
    import shutil

    again = tmp_path / "again"
    shutil.copytree(out, again)
    monkeypatch.setattr(ai_labels, "make_world", lambda *a: pytest.fail("a finished unit was recomputed"))
    second = run_smoke("ai_labels", ai_labels.run, again, [PARTS])
    same = lambda u, v: u == v or (isinstance(u, float) and isinstance(v, float) and np.isnan(u) and np.isnan(v))
    assert all(same(summary[k], second[k]) for k in summary if k != "wall_time_s")


@pytest.mark.parametrize(
    "override,key",
    [
        ("space.geometry=metric", "space.geometry"),
        ("real.heads=tuned", "real.heads"),
        ("judge.judge_agreement=1.2", "judge.judge_agreement"),
        ("sources=[martians]", "sources[0]"),
        ("pipeline.induction=psychic", "pipeline.induction"),
    ],
)
def test_config_errors_name_their_key_before_any_work(override, key, tmp_path):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        run_smoke("ai_labels", ai_labels.run, tmp_path / "bad", [PARTS, override])
    assert read_json(tmp_path / "bad" / "summary.json")["status"] == "failed"


def test_labels_carry_their_ibn_edge(smoke):
    """A judge's label enters the mixed IBN with the Fisher variance at its own probability and the bias
    its logit reads; a human's with no bias."""
    cfg = compose_config("ai_labels", ["debug=smoke"])
    from omegaconf import OmegaConf

    from rm_theory.ibn.mixed_labels import fisher_variance

    cfg = OmegaConf.to_object(apply_smoke(cfg, OmegaConf.get_type(cfg), []))
    w = ai_labels.make_world(cfg, 0)
    p, a, b = ai_labels.ref_pairs(w.gold, 50, np.random.default_rng(0))
    x, _, dg = w.gaps(p, a, b)
    ai, _, _ = ai_labels.label(w, p, a, b, "ai", np.random.default_rng(1))
    np.testing.assert_allclose(ai.var, fisher_variance(w.judge.beta, w.judge.beta * x + w.judge.bias * dg))
    np.testing.assert_allclose(ai.bias, w.judge.bias / w.judge.beta * dg)
    hu, _, _ = ai_labels.label(w, p, a, b, "human", np.random.default_rng(1))
    assert (hu.bias == 0).all() and (hu.beta == w.human_beta).all()
    assert dataclasses.is_dataclass(hu)


def test_the_real_part_with_fine_tuned_score_models(tmp_path):
    """heads=finetuned: reward and cost score models fine-tuned end to end on each set's text pairs (the
    fixture's tiny BERT), every scorer on every test split with intervals, as with frozen heads."""
    s = run_smoke("ai_labels", ai_labels.run, tmp_path / "ft", ["parts=[real]", "real.heads=finetuned"])
    assert s["status"] == "ok" and s["real_heads"] == "finetuned"
    for train in ("safer_instruct", "pku"):
        for test in ("safer_instruct", "pku"):
            v, lo, hi = (s[f"real_accuracy_{train}_on_{test}{x}"] for x in ("", "_lo", "_hi"))
            assert lo <= v <= hi and s[f"real_accuracy_{train}_on_{test}_n"] > 0
    assert "real_cost_safer_accuracy_pku_on_pku" in s  # PKU's pairs carry safer labels: a cost model too


def test_a_bad_score_model_folder_is_named_before_any_work(tmp_path):
    (tmp_path / "model").mkdir()
    over = ["parts=[real]", "real.heads=finetuned", f"real.lm.path={tmp_path / 'model'}"]
    with pytest.raises(ConfigError, match=r"real\.lm\.path = .*config.json"):
        run_smoke("ai_labels", ai_labels.run, tmp_path / "bad", over)
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == ["summary.json"]
