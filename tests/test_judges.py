"""AI judges (`world.judges`): their agreement rates and bias gaps against closed forms and Monte Carlo,
their calibration to MT-Bench's figures, the verbosity feature; learned judges (`rm.judges`)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from scipy import special

from rm_theory.world import judges
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses


@pytest.fixture(scope="module")
def gaps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000) * 0.8
    dg = rng.normal(size=3000)
    return x, dg


def test_the_judge_states_its_law_and_a_learner_reads_its_bias_in_reward_units():
    j = judges.Judge(beta=3.0, bias=0.6)
    x, dg = np.array([0.2, -0.5]), np.array([1.0, -2.0])
    np.testing.assert_allclose(j.prob(x, dg), special.expit(3.0 * x + 0.6 * dg))
    np.testing.assert_allclose(j.reading(x, dg), special.logit(j.prob(x, dg)) / 3.0)
    v = j.judge(x, dg, np.random.default_rng(0))
    np.testing.assert_allclose(v.confidence_P, np.maximum(v.prob_P, 1 - v.prob_P))
    with pytest.raises(ValueError, match="slope"):
        judges.Judge(beta=0.0)


def test_agreement_rates_are_the_expectation_of_drawn_labels(gaps):
    """A_JH and A_HH in closed form against the agreement of labels drawn many times on fixed pairs."""
    x, dg = gaps
    beta_h, judge = 4.0, judges.Judge(9.0, 1.5)
    rng = np.random.default_rng(1)
    R = 200
    hits_hh, hits_jh = 0.0, 0.0
    for _ in range(R):
        h1 = judges.human(beta_h).judge(x, 0.0, rng).label_P
        h2 = judges.human(beta_h).judge(x, 0.0, rng).label_P
        jl = judge.judge(x, dg, rng).label_P
        hits_hh += np.mean(h1 == h2) / R
        hits_jh += np.mean(jl == h1) / R
    se = 0.5 / np.sqrt(R * len(x))
    assert abs(hits_hh - judges.human_agreement(beta_h, x)) < 4 * se
    assert abs(hits_jh - judges.judge_agreement(judge, beta_h, x, dg)) < 4 * se


def test_closed_forms_in_their_limits(gaps):
    x, _ = gaps
    # a greedy unbiased judge agrees with an annotator E[σ(β_H|x|)]; an oracle annotator pair agrees always
    greedy = judges.Judge(5.0, 0.0, sample=False)
    assert judges.judge_agreement(greedy, 4.0, x) == pytest.approx(np.mean(special.expit(4.0 * np.abs(x))), abs=1e-12)
    assert judges.human_agreement(1e6, x) == pytest.approx(1.0, abs=1e-9)
    assert judges.human_agreement(1e-9, x) == pytest.approx(0.5, abs=1e-9)
    # on ties the bias is all there is: δ_λ = E[σ(λ·Δg)] − 1/2
    dg = np.abs(np.random.default_rng(2).normal(size=500))
    j = judges.Judge(7.0, 0.8)
    assert judges.bias_gap(j, np.zeros(500), dg) == pytest.approx(np.mean(special.expit(0.8 * dg)) - 0.5, abs=1e-12)


def test_the_bias_gap_is_the_expectation_of_drawn_labels():
    rng = np.random.default_rng(3)
    x, dg = rng.normal(size=2000), np.abs(rng.normal(size=2000))
    j = judges.Judge(6.0, 1.2)
    R = 200
    drawn = np.mean(
        [
            j.judge(x, dg, rng).label_P.mean() - dataclasses.replace(j, bias=0.0).judge(x, 0.0, rng).label_P.mean()
            for _ in range(R)
        ]
    )
    assert abs(drawn - judges.bias_gap(j, x, dg)) < 4 * np.sqrt(2 * 0.25 / (R * len(x)))


def test_calibration_reaches_its_targets_and_holds_on_fresh_pairs():
    rng = np.random.default_rng(4)
    draw = lambda n: (rng.normal(size=n) * 0.9, rng.normal(size=n))
    x, dg = draw(4000)
    flip = dg < 0
    cal = judges.calibrate_judge(x, dg, np.where(flip, -x, x), np.abs(dg))
    assert cal.human_agreement == pytest.approx(0.81, abs=1e-9)
    assert cal.judge_agreement_unbiased == pytest.approx(0.85, abs=1e-9)
    assert cal.bias_gap == pytest.approx(0.10, abs=1e-9)
    assert cal.judge.beta > cal.beta_h  # 85% > 81%: the judge is the sharper labeller
    assert cal.judge_agreement < 0.85  # its bias costs agreement; reported, not forced
    x2, dg2 = draw(20000)
    assert judges.human_agreement(cal.beta_h, x2) == pytest.approx(0.81, abs=0.01)
    assert judges.judge_agreement(dataclasses.replace(cal.judge, bias=0.0), cal.beta_h, x2) == pytest.approx(
        0.85, abs=0.01
    )


def test_an_unreachable_target_is_named():
    x = np.random.default_rng(5).normal(size=500)
    # an oracle judge agrees with an 81%-annotator about 86.5% of the time on Gaussian gaps: 95% is out of reach
    with pytest.raises(ValueError, match="judge agreement 0.95"):
        judges.calibrate_judge(x, np.zeros(500), x, np.ones(500), judge_target=0.95)


def test_the_verbosity_field_is_standardised_and_correlated_as_asked():
    space = PrefixTreeSpace(V=4, L=5, num_prompts=8, seed=3)
    leaves = space.enumerate(0).data
    items = Responses(np.repeat(np.arange(8), len(leaves)), np.tile(leaves, (8, 1)))
    g0 = judges.length_feature(space, items, 0.0)
    g6 = judges.length_feature(space, items, 0.6)
    r = space.gold_reward(items)
    # over all leaves of 8 prompts (a sample of the field's prior): unit variance, the asked correlation
    assert np.var(g0) == pytest.approx(1.0, abs=0.25)
    assert abs(np.corrcoef(g0, r)[0, 1]) < 0.25
    assert np.corrcoef(g6, r)[0, 1] > 0.4
    # a field: the same response gets the same value in any batch
    np.testing.assert_array_equal(judges.length_feature(space, items.take(np.arange(5)), 0.0), g0[:5])
    with pytest.raises(TypeError, match="prefix-tree"):
        judges.length_feature(MetricSpace(), items, 0.0)


def test_a_learned_judges_verdicts_follow_its_members_and_its_filter():
    """The learned judge's p̄ is the mean of its members' σ(score gaps); kept = unanimous and confident."""
    from rm_theory.config.common import ModelSchema, TrainSchema, make_model, make_train
    from rm_theory.rm import judges as learned
    from rm_theory.world.synthetic import input_spec, item_inputs
    from rm_theory.world.topology import sample_chain

    space = PrefixTreeSpace(V=3, L=3, num_prompts=2, seed=0)
    rng = np.random.default_rng(0)
    c = sample_chain(space, 40, rng)
    better = (space.gold_reward(c.a) > space.gold_reward(c.b)).astype(np.float32)
    data = learned.seed_data(space, c.a, c.b, better, better, np.ones(40, bool), np.zeros(40, bool))
    mc = make_model(ModelSchema(family="mlp", hidden=[8]), family="mlp", **input_spec(space))
    tc = make_train(TrainSchema(ensemble_size=3, steps=20, batch_size=8, log_every=20, warmup_steps=2))
    judge = learned.learn_judge(space, data, mc, tc, jax.random.key(0))
    q = sample_chain(space, 30, rng)
    v = judge.judge(q.a, q.b, "better")
    s_KxN = judge.reward.score(item_inputs(space, Responses.concat([q.a, q.b])))
    p_KxP = special.expit(s_KxN[:, :30] - s_KxN[:, 30:])
    np.testing.assert_allclose(v.prob_P, p_KxP.mean(0), rtol=1e-6)
    np.testing.assert_allclose(v.prob_KxP, p_KxP, rtol=1e-6)
    np.testing.assert_array_equal(v.label_P, (p_KxP.mean(0) > 0.5).astype(np.float32))
    unanimous = (p_KxP > 0.5).all(0) | (p_KxP <= 0.5).all(0)
    np.testing.assert_array_equal(v.kept(0.05), unanimous & (np.maximum(v.prob_P, 1 - v.prob_P) >= 0.55))
    vc = judge.judge(q.a, q.b, "safer")
    c_KxN = judge.cost.score(item_inputs(space, Responses.concat([q.a, q.b])))
    np.testing.assert_allclose(vc.prob_P, special.expit(c_KxN[:, 30:] - c_KxN[:, :30]).mean(0), rtol=1e-6)
    with pytest.raises(ValueError, match="question"):
        judge.judge(q.a, q.b, "kinder")
