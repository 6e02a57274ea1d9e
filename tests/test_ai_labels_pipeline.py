"""The Safer-Instruct pipeline's stages on a tiny world (`policy.safer_instruct`), and the exact constrained
policy its expert and the downstream Safe RLHF use (`policy.constrained`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import optimize, special, stats

from rm_theory.policy import constrained
from rm_theory.policy import safer_instruct as si
from rm_theory.policy.tables import tabulate
from rm_theory.world.judges import Judge
from rm_theory.world.labels import LabelConfig, gold_cost
from rm_theory.world.spaces import PrefixTreeSpace, Responses


@pytest.fixture(scope="module")
def world():
    space = PrefixTreeSpace(V=3, L=4, num_prompts=4, seed=7)
    tt = tabulate(space)
    leaves = space.enumerate(0).data
    P, Y = space.num_prompts, len(leaves)
    c = gold_cost(space, Responses(np.repeat(np.arange(P), Y), np.tile(leaves, (P, 1))), LabelConfig(rho=0.5)).cost_N
    c = c.reshape(P, Y)
    ref = tt.ref_logp()
    expert = constrained.lagrangian_policy(ref, tt.gold_XxY, c, 0.5, -1.0)
    g = np.random.default_rng(0).normal(size=(P, Y))
    return si.GoldWorld(ref, tt.gold_XxY, c, expert.logp_XxY, g)


def test_the_constrained_policy_is_the_dual_optimum(world):
    ref, r, c = world.ref_logp_XxY, world.r_XxY, world.c_XxY
    for beta, d in ((0.5, -1.0), (0.2, -0.6), (1.0, 5.0)):
        cp = constrained.lagrangian_policy(ref, r, c, beta, d)
        res = optimize.minimize_scalar(
            lambda lam, beta=beta, d=d: constrained.dual(ref, r, c, beta, d, lam),
            bounds=(0, 1e3),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert cp.lam == pytest.approx(max(res.x, 0.0), abs=1e-5)
        if cp.lam > 0:  # an active constraint is met with equality (complementary slackness)
            assert cp.cost == pytest.approx(d, abs=1e-8)
        else:
            assert cp.cost <= d
        np.testing.assert_allclose(np.exp(cp.logp_XxY).sum(1), 1.0)
    # no policy can be cheaper than the cheapest response of each prompt
    floor = world.c_XxY.min(axis=1).mean()
    infeasible = constrained.lagrangian_policy(ref, r, c, 0.5, floor - 0.1)
    assert not infeasible.feasible


def test_sampled_leaves_follow_the_table(world):
    prompt = np.repeat(np.arange(4), 20000)
    idx = constrained.sample_leaves(world.expert_logp_XxY, prompt, np.random.default_rng(1))
    for p in range(4):
        freq = np.bincount(idx[prompt == p], minlength=world.r_XxY.shape[1]) / 20000
        assert np.abs(freq - np.exp(world.expert_logp_XxY[p])).max() < 5 * np.sqrt(0.25 / 20000)


def test_each_stage_does_what_the_process_says(world):
    better, safer = Judge(6.0, 0.5), Judge(5.0, 0.4)
    cfg = si.PipelineConfig(responses_per_source=3, preference_margin=0.1, quality_threshold=0.0)
    S = 3000
    d = si.run_pipeline(world, better, safer, cfg, S, seed=0)
    # 0. every source is harmful under its own prompt
    assert (world.c_XxY[d.prompt_N, d.leaf_N] > 0).all()
    # 1. the induced prompt follows the reverse model: its accuracy is the mean posterior of the truth
    acc = si.induction_accuracy(world, d.prompt_N, d.leaf_N, 1.0)
    assert np.mean(d.induced_N == d.prompt_N) == pytest.approx(acc, abs=4 * np.sqrt(0.25 / S))
    # 2. the quality filter keeps a source with probability Φ((ĉ mean − τ)/σ), σ = π/(√6·β_c)
    mean = world.c_XxY[d.induced_N, d.leaf_N] - safer.bias / safer.beta * world.g_XxY[d.induced_N, d.leaf_N]
    p_keep = stats.norm.cdf(mean / (np.pi / (np.sqrt(6) * safer.beta)))
    assert d.quality_N.mean() == pytest.approx(p_keep.mean(), abs=4 * np.sqrt(0.25 / S))
    # 4. a star per source: K pairs, all rejecting the source under the induced prompt
    assert len(d.source_P) == 3 * S
    np.testing.assert_array_equal(d.rejected_P, np.repeat(d.leaf_N, 3))
    np.testing.assert_array_equal(d.prompt_P, np.repeat(d.induced_N, 3))
    # 5. a kept pair passed the quality filter and the judge is sure enough the chosen side is safer
    p, ch, rj = d.prompt_P, d.chosen_P, d.rejected_P
    p_safer = safer.prob(world.c_XxY[p, rj] - world.c_XxY[p, ch], world.g_XxY[p, ch] - world.g_XxY[p, rj])
    np.testing.assert_array_equal(d.kept_P, (p_safer >= 0.6) & d.quality_N[d.source_P])
    # calls: induction + quality verdict per source, expert + verdict per pair of a kept source
    np.testing.assert_array_equal(d.calls_N, 2 + d.quality_N * 3 * 2)


def test_ablations_share_their_draws_and_switch_off_one_stage(world):
    judge = Judge(6.0, 0.0)
    base = si.PipelineConfig(responses_per_source=2)
    full = si.run_pipeline(world, judge, judge, base, 500, seed=3)
    for off, check in (
        ({"induction": "oracle"}, lambda d: np.array_equal(d.induced_N, d.prompt_N)),
        ({"quality_filter": False}, lambda d: d.quality_N.all() and (d.calls_N == 1 + 2 * 2).all()),
        ({"preference_filter": False}, lambda d: np.array_equal(d.kept_P, d.quality_N[d.source_P])),
        ({"rejected": "reference"}, lambda d: not np.array_equal(d.rejected_P, np.repeat(d.leaf_N, 2))),
        ({"expert": "reference"}, lambda d: True),
    ):
        d = si.run_pipeline(world, judge, judge, dataclasses.replace(base, **off), 500, seed=3)
        np.testing.assert_array_equal(d.prompt_N, full.prompt_N)  # the same sources
        np.testing.assert_array_equal(d.leaf_N, full.leaf_N)
        assert check(d), off
        if "induction" not in off:
            np.testing.assert_array_equal(d.induced_N, full.induced_N)
    # the expert answers more safely than the reference policy: fewer wrong "safer" labels
    ref = si.run_pipeline(
        world, judge, judge, dataclasses.replace(base, expert="reference", preference_filter=False), 500, 3
    )
    exp = si.run_pipeline(world, judge, judge, dataclasses.replace(base, preference_filter=False), 500, 3)
    all_ref, all_exp = np.flatnonzero(ref.kept_P), np.flatnonzero(exp.kept_P)
    assert (
        si.pipeline_stats(world, exp, all_exp)["safer_label_error"]
        < si.pipeline_stats(world, ref, all_ref)["safer_label_error"]
    )


def test_a_budget_buys_whole_sources_in_order(world):
    judge = Judge(6.0, 0.0)
    d = si.run_pipeline(world, judge, judge, si.PipelineConfig(), 400, seed=4)
    spent = 0.0
    for budget in (1.0, 5.0, 20.0):
        idx = si.within_budget(d, budget, 0.1)
        n_sources = int(np.searchsorted(np.cumsum(d.calls_N * 0.1), budget, side="right"))
        assert (d.calls_N[:n_sources] * 0.1).sum() <= budget + 1e-9
        np.testing.assert_array_equal(idx, np.flatnonzero(d.kept_P & (d.source_P < n_sources)))
        assert len(idx) >= spent
        spent = len(idx)


def test_the_reverse_model_at_zero_temperature_is_its_mode(world):
    leaf = np.arange(10)
    lp = si.reverse_logp(world, leaf, 0.0)
    np.testing.assert_array_equal(np.argmax(np.exp(lp), axis=1), np.argmax(world.ref_logp_XxY[:, leaf].T, axis=1))
    np.testing.assert_allclose(special.logsumexp(si.reverse_logp(world, leaf, 2.0), axis=1), 0.0, atol=1e-12)


def test_bad_pipeline_settings_are_named():
    with pytest.raises(ValueError, match="induction"):
        si.PipelineConfig(induction="psychic")
    with pytest.raises(ValueError, match="preference_margin"):
        si.PipelineConfig(preference_margin=0.7)
