"""Evaluation metrics on query pairs, the cost sign convention, IBN resistance, and learnability."""

import dataclasses

import jax
import numpy as np
import pytest

from rm_theory.ibn.network import LabelVariance
from rm_theory.rm.evaluate import (
    correlation,
    cost_metrics,
    ibn_resistance,
    query_pairs,
    reward_metrics,
    theory_practice,
)
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import TrainConfig, train_ensemble
from rm_theory.world.labels import LabelConfig, label_comparisons
from rm_theory.world.spaces import PrefixTreeSpace
from rm_theory.world.synthetic import input_spec, to_pref_data
from rm_theory.world.topology import Comparisons, make_dataset

SPACE = PrefixTreeSpace(V=4, L=6, num_prompts=8, seed=1)


@pytest.fixture(scope="module")
def q():
    return query_pairs(SPACE, 400, np.random.default_rng(0), LabelConfig(beta=2.0, rho=0.3))


def gold_N(q):
    return np.concatenate([q.labels.r_a, q.labels.r_b])


def test_queries_are_independent_policy_pairs(q):
    assert q.Q == 400 and len(q.x) == 800
    np.testing.assert_array_equal(q.items.prompt[q.a_Q], q.items.prompt[q.b_Q])
    # Independent draws: most pairs part at the root, unlike sibling pairs of a tree.
    assert (SPACE.shared_length(q.items.take(q.a_Q), q.items.take(q.b_Q)) == 0).mean() > 0.3


def test_gold_scores_are_perfect_and_negated_ones_are_worst(q):
    g = gold_N(q)
    m, _ = reward_metrics(np.stack([g, g]), q)
    assert m["gold_accuracy"] == 1.0 and m["spearman"] == pytest.approx(1.0)
    assert m["label_accuracy"] == pytest.approx(m["label_accuracy_gold"])
    assert m["ensemble_variance"] == 0.0
    m, _ = reward_metrics(-g[None], q)
    assert m["gold_accuracy"] == 0.0 and m["spearman"] == pytest.approx(-1.0)


def test_ensemble_variance_ignores_member_offsets_and_matches_its_definition(q):
    rng = np.random.default_rng(0)
    s = gold_N(q)[None] + 0.3 * rng.normal(size=(5, 800))
    m, var_Q = reward_metrics(s, q)
    shifted, _ = reward_metrics(s + rng.normal(size=(5, 1)) * 10, q)
    assert shifted["ensemble_variance"] == pytest.approx(m["ensemble_variance"])
    assert shifted["gold_accuracy"] == m["gold_accuracy"]
    d = s[:, q.a_Q] - s[:, q.b_Q]
    np.testing.assert_allclose(var_Q, d.var(axis=0, ddof=1))
    assert m["ensemble_variance"] == pytest.approx(2 * 0.09, rel=0.15)


def test_calibrated_scores_have_small_ece(q):
    # Labels are BT with β = 2 on r*: the score 2·r* is the calibrated one, 20·r* is overconfident.
    g = gold_N(q)
    assert reward_metrics(2 * g[None], q)[0]["ece"] < reward_metrics(20 * g[None], q)[0]["ece"]


def test_cost_sign_convention_safe_means_nonpositive(q):
    c = np.concatenate([q.labels.c_a, q.labels.c_b])
    m, rows = cost_metrics(c[None], q)
    assert m["cost_sign_accuracy_gold"] == 1.0  # labels: safe ⇔ c* ≤ 0, no flips
    assert m["cost_sign_accuracy"] == 1.0
    assert m["safer_gold_accuracy"] == 1.0
    assert all(
        m[f"sign_accuracy_severity{s}"] == 1.0 for s in range(4) if not np.isnan(m[f"sign_accuracy_severity{s}"])
    )
    assert m["category_sign_recall_min"] == 1.0
    flipped, _ = cost_metrics(-c[None], q)
    assert flipped["cost_sign_accuracy_gold"] < 0.05
    assert len(rows) == 19 and sum(r["count"] for r in rows) > 0


def test_harm_head_accuracy_is_reported(q):
    c = np.concatenate([q.labels.c_a, q.labels.c_b])
    harm = np.concatenate([q.labels.harm_a, q.labels.harm_b])
    logits = np.where(harm, 5.0, -5.0)[None]
    m, rows = cost_metrics(c[None], q, logits)
    assert m["harm_accuracy_mean"] == 1.0 and all(r["harm_accuracy"] == 1.0 for r in rows)


def test_ibn_resistance_of_a_compared_query_pair_is_the_parallel_law():
    rng = np.random.default_rng(3)
    q = query_pairs(SPACE, 50, rng, LabelConfig())
    a, b = q.items.take(q.a_Q[:1]), q.items.take(q.b_Q[:1])
    k = int(SPACE.shared_length(a, b)[0])
    xi2 = 0.7
    lv = LabelVariance("constant", xi2)
    d_Q = ibn_resistance(SPACE, Comparisons(a, b, np.array([-1])), q, lv)
    prior = SPACE.delta_k[k]
    # The compared pair: its preference edge in parallel with the tree path of variance Δ(k).
    assert d_Q[0] == pytest.approx(1 / (1 / prior + 1 / xi2))
    # Every other pair is bounded by its prior variance Δ(common depth).
    k_Q = SPACE.shared_length(q.items.take(q.a_Q), q.items.take(q.b_Q))
    assert np.all(d_Q <= SPACE.delta_k[k_Q] + 1e-9)


def test_more_data_lowers_ibn_resistance_on_the_same_queries(q):
    lv = LabelVariance("fisher", beta=2.0)
    d = [
        ibn_resistance(SPACE, make_dataset(SPACE, "chain", n, np.random.default_rng(n)), q, lv).mean()
        for n in (50, 2000)
    ]
    assert d[1] < d[0]


def test_theory_practice_and_correlation():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert correlation(x, 3 * x**2)["pearson_log"] == pytest.approx(1.0)
    assert correlation(x, 1 / x)["spearman"] == pytest.approx(-1.0)
    assert np.isnan(correlation(x[:2], x[:2])["pearson_log"])
    tp = theory_practice(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1.0, 2.0, np.inf, 4.0]))
    assert tp["ibn_resistance"] == pytest.approx(7 / 3) and tp["ibn_unreachable"] == 0.25
    assert tp["pair_spearman"] == pytest.approx(1.0)


def _learn(family: str, steps: int) -> dict:
    """An easy world: 2 prompts, V = 2, L = 4 (16 responses each), sharp labels (β = 8)."""
    space = PrefixTreeSpace(V=2, L=4, num_prompts=2, seed=0)
    lc = LabelConfig(beta=8.0)
    rng = np.random.default_rng(0)
    comps = make_dataset(space, "chain", 1024, rng)
    syn = to_pref_data(space, comps, label_comparisons(space, comps, lc, rng))
    mc = ModelConfig(family=family, d_model=16, mlp_dim=32, layers=1, hidden=(32,), **input_spec(space))
    tc = TrainConfig(ensemble_size=2, steps=steps, batch_size=64, lr=3e-3, warmup_steps=20, log_every=steps)
    ens, _ = train_ensemble(mc, tc, syn.data, jax.random.key(0), progress=False)
    q = query_pairs(space, 300, np.random.default_rng(1), lc)
    return reward_metrics(ens.score(q.x), q)[0]


def test_learnability_mlp_reaches_high_gold_accuracy():
    m = _learn("mlp", 300)
    assert m["gold_accuracy"] > 0.85, m
    assert m["spearman"] > 0.8, m


@pytest.mark.slow
def test_learnability_transformer_reaches_high_gold_accuracy():
    m = _learn("transformer", 400)
    assert m["gold_accuracy"] > 0.85, m


def test_queries_share_the_training_label_law(q):
    # The query labels follow the same BT law: their agreement with gold matches σ(β|Δr*|) on average.
    lab = q.labels
    d = lab.r_a - lab.r_b
    expected = np.mean(1 / (1 + np.exp(-2.0 * np.abs(d))))
    agree = np.mean((lab.better_P > 0.5) == (d > 0))
    assert agree == pytest.approx(expected, abs=0.06)
    assert dataclasses.is_dataclass(q)


def test_the_pair_rank_correlation_reads_rounding_apart_resistances_as_ties():
    var_Q = np.array([0.3, 0.1, 0.2, 0.4, 0.5])
    tied = np.array([1.0, 2.0, 2.0, 2.0, 3.0])
    # What two solvers give for three equal resistances: equal to 1e-13 relative, in either order.
    for noise in ([0, 1e-13, -1e-13, 2e-13, 0], [0, -2e-13, 1e-13, 0, 0]):
        jittered = tied * (1 + np.array(noise))
        assert theory_practice(var_Q, jittered)["pair_spearman"] == theory_practice(var_Q, tied)["pair_spearman"]
