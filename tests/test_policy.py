"""Policies on tabulated spaces: tabulation, the exact optimum, Best-of-N, win rates, PPO, DPO."""

import jax
import numpy as np
import pytest

from rm_theory.policy import dpo, exact, ppo, tables
from rm_theory.world.labels import LabelConfig, label_comparisons
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.topology import make_dataset


@pytest.fixture(scope="module")
def tt():
    return tables.tabulate(PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=5, temperature=0.8))


def test_tabulated_reference_matches_the_space(tt):
    space = PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=5, temperature=0.8)
    for p in range(3):
        leaves = space.enumerate(p)
        np.testing.assert_allclose(tt.ref_logp()[p], space.log_prob(leaves), atol=1e-5)
        np.testing.assert_allclose(tt.gold_XxY[p], space.gold_reward(leaves))
    np.testing.assert_allclose(np.exp(tt.ref_logp()).sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(tables.leaf_index(space.enumerate(0).data, 3), np.arange(81))


def test_soft_value_logits_give_the_enumerated_optimum(tt):
    for beta in (0.05, 1.0):
        lo = exact.optimal_logp(tt.ref_logp(), tt.gold_XxY, beta)
        np.testing.assert_allclose(tables.leaf_logp_np(exact.optimal_logits(tt, tt.gold_XxY, beta), tt), lo, atol=1e-5)
    # π* maximises E[r] − β KL: any other policy (here π_ref and a tilted one) scores lower.
    beta, ref = 0.3, tt.ref_logp()
    obj = lambda lp: (np.exp(lp) * tt.gold_XxY).sum(1) - beta * exact.kl(lp, ref)
    best = obj(exact.optimal_logp(ref, tt.gold_XxY, beta))
    assert np.all(best >= obj(ref) - 1e-9)
    assert np.all(best >= obj(exact.optimal_logp(ref, tt.gold_XxY, 2 * beta)) - 1e-9)


def test_best_of_n_with_gold_never_loses_to_one_sample(tt):
    ref = tt.ref_logp()
    g = [exact.best_of_n(ref, tt.gold_XxY, tt.gold_XxY, n).mean() for n in (1, 2, 4, 16, 64)]
    np.testing.assert_allclose(g[0], (np.exp(ref) * tt.gold_XxY).sum(1).mean(), atol=1e-6)
    assert np.all(np.diff(g) > 0)
    # With the gold reward as selector, N → ∞ tends to the best leaf.
    assert exact.best_of_n(ref, tt.gold_XxY, tt.gold_XxY, 10**6).mean() == pytest.approx(tt.gold_XxY.max(1).mean())


def test_best_of_n_exact_agrees_with_sampling(tt):
    ref, rng = tt.ref_logp(), np.random.default_rng(0)
    score = tt.gold_XxY + rng.normal(size=tt.gold_XxY.shape)  # a noisy reward model
    want = exact.best_of_n(ref, score, tt.gold_XxY, 8)
    mc = exact.best_of_n_sampled(rng, ref, score, tt.gold_XxY, 8, trials=20000)
    np.testing.assert_allclose(want, mc, atol=0.03)


def test_best_of_n_with_tied_scores_agrees_with_sampling_and_ignores_rounding(tt):
    """Leaves the selector cannot tell apart (the exact learner's equal posterior means) tie: the kept
    one is a random draw among them, as in sampling, and rounding-level noise must not choose."""
    ref, rng = tt.ref_logp(), np.random.default_rng(2)
    coarse = np.round(tt.gold_XxY + rng.normal(size=tt.gold_XxY.shape), 0)  # few distinct values per prompt
    assert any(len(np.unique(row)) < len(row) / 2 for row in coarse)
    want = exact.best_of_n(ref, coarse, tt.gold_XxY, 8)
    mc = exact.best_of_n_sampled(rng, ref, coarse, tt.gold_XxY, 8, trials=20000)
    np.testing.assert_allclose(want, mc, atol=0.03)
    jitter = coarse * (1 + 1e-13 * rng.normal(size=coarse.shape))
    np.testing.assert_allclose(exact.best_of_n(ref, jitter, tt.gold_XxY, 8), want, rtol=1e-12)
    # Without ties the groups are single leaves: the plain order-statistic formula.
    score = tt.gold_XxY + rng.normal(size=tt.gold_XxY.shape)
    order = np.argsort(score, axis=1)
    F = np.cumsum(np.take_along_axis(np.exp(ref), order, axis=1), axis=1)
    w = F**8 - np.concatenate([np.zeros((len(F), 1)), F[:, :-1]], axis=1) ** 8
    plain = np.sum(w * np.take_along_axis(tt.gold_XxY, order, axis=1), axis=1) / w.sum(1)
    np.testing.assert_allclose(exact.best_of_n(ref, score, tt.gold_XxY, 8), plain, rtol=1e-12)


def test_win_rates_exact_agree_with_sampling_and_are_antisymmetric(tt):
    ref = tt.ref_logp()
    opt = exact.optimal_logp(ref, tt.gold_XxY, 0.5)
    w = exact.win_rates(opt, ref, tt.gold_XxY)
    back = exact.win_rates(ref, opt, tt.gold_XxY)
    np.testing.assert_allclose(w["win"], back["lose"], atol=1e-9)
    np.testing.assert_allclose(w["win"] + w["lose"] + w["tie"], 1.0, atol=1e-9)
    assert np.all(w["win"] > w["lose"])
    s = exact.win_rates_sampled(np.random.default_rng(1), opt, ref, tt.gold_XxY, 20000)
    for k in ("win", "lose", "tie"):
        np.testing.assert_allclose(s[k], w[k], atol=0.02)
    self_play = exact.win_rates(ref, ref, tt.gold_XxY)
    np.testing.assert_allclose(self_play["win"], self_play["lose"], atol=1e-9)


def test_ppo_approaches_the_enumerated_optimum(tt):
    beta = 0.3
    ref = tt.ref_logp()
    opt = exact.optimal_logp(ref, tt.gold_XxY, beta)
    cfg = ppo.PPOConfig(beta=beta, steps=120, batch=64, lr=0.1, baseline="exact", log_every=40)
    with jax.threefry_partitionable(False):
        logp, trace = ppo.optimise(tt, tt.gold_XxY[None], cfg, jax.random.key(0))
    kl_ref0 = exact.kl(ref, opt).mean()
    assert exact.kl(logp[0], opt).mean() < 0.05 * kl_ref0
    gold_opt = (np.exp(opt) * tt.gold_XxY).sum(1).mean()
    assert (np.exp(logp[0]) * tt.gold_XxY).sum(1).mean() == pytest.approx(gold_opt, abs=0.05)
    # The logged exact metrics start at π_ref and match the returned policy at the end.
    assert trace["kl"][0, 0] == pytest.approx(0.0, abs=1e-5)
    assert trace["kl"][0, -1] == pytest.approx(exact.kl(logp[0], ref).mean(), abs=1e-3)


def test_ppo_same_seed_same_numbers(tt):
    cfg = ppo.PPOConfig(beta=0.3, steps=20, batch=16, lr=0.1, baseline="loo", log_every=10)
    with jax.threefry_partitionable(False):
        a = ppo.optimise(tt, tt.gold_XxY[None], cfg, jax.random.key(3))
        b = ppo.optimise(tt, tt.gold_XxY[None], cfg, jax.random.key(3))
        c = ppo.optimise(tt, tt.gold_XxY[None], cfg, jax.random.key(4))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_dpo_on_many_comparisons_improves_gold_reward(tt):
    space = PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=5, temperature=0.8)
    rng = np.random.default_rng(0)
    comps = make_dataset(space, "chain", 3000, rng)
    labels = label_comparisons(space, comps, LabelConfig(beta=4.0), rng)
    data = dpo.item_arrays(tt, comps, labels.better_P)
    # The item arrays reproduce π_ref's log-probabilities of the compared responses.
    np.testing.assert_allclose(data["ref_a"], space.log_prob(comps.a), atol=1e-4)
    with jax.threefry_partitionable(False):
        logp, loss = dpo.train_dpo(tt, [data], dpo.DPOConfig(beta=0.3, steps=150, lr=0.05))
    assert loss[0, -1] < loss[0, 0]
    ref = tt.ref_logp()
    assert (np.exp(logp[0]) * tt.gold_XxY).sum(1).mean() > (np.exp(ref) * tt.gold_XxY).sum(1).mean() + 0.1


def test_dpo_log_probs_of_incomplete_items_are_prefix_marginals(tt):
    space = PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=5, temperature=0.8)
    full = space.enumerate(1).take(np.arange(0, 81, 7))
    part = Responses(full.prompt, np.where(np.arange(4)[None] < 2, full.data, -1))
    from rm_theory.world.topology import Comparisons

    d = dpo.item_arrays(tt, Comparisons(full, part, np.zeros(len(full), int)), np.ones(len(full)))
    np.testing.assert_allclose(d["ref_b"], space.log_prob(part), atol=1e-4)


def test_the_exact_reward_table_learns_the_gold_reward_and_its_optimum_nears_the_gold_one():
    from rm_theory.policy.rewards import exact_reward_table

    space = PrefixTreeSpace(V=3, L=3, num_prompts=2, seed=2)
    tt_ = tables.tabulate(space)
    rng = np.random.default_rng(0)
    ref = tt_.ref_logp()
    opt_gold = exact.optimal_logp(ref, tt_.gold_XxY, 0.1)
    gold_of = lambda lp: float((np.exp(lp) * tt_.gold_XxY).sum(1).mean())
    gaps = []
    for n in (16, 4096):
        comps = make_dataset(space, "chain", n, rng)
        labels = label_comparisons(space, comps, LabelConfig(beta=4.0), rng)
        mu = exact_reward_table(space, comps, labels, beta=4.0)
        assert mu.shape == tt_.gold_XxY.shape
        gaps.append(gold_of(opt_gold) - gold_of(exact.optimal_logp(ref, mu, 0.1)))
    # with plenty of labels the posterior mean ranks the leaves as the gold reward does
    rho = [np.corrcoef(mu[p], tt_.gold_XxY[p])[0, 1] for p in range(2)]
    assert min(rho) > 0.9, rho
    # and the policy optimised against it loses less gold reward than with 16 labels
    assert 0 <= gaps[1] < gaps[0]


def test_one_compiled_ppo_program_serves_every_world_of_one_shape():
    # The tables are arguments of the program, not constants: a new world must not compile again.
    cfg = ppo.PPOConfig(beta=0.3, steps=10, batch=8, lr=0.1, baseline="loo", log_every=5)
    worlds = [tables.tabulate(PrefixTreeSpace(V=3, L=3, num_prompts=2, seed=s)) for s in (11, 12)]
    with jax.threefry_partitionable(False):
        out = [ppo.optimise(tt, tt.gold_XxY[None], cfg, jax.random.key(0)) for tt in worlds]
    assert ppo._program(cfg, worlds[0].ref_logits_XxNxV.shape)._cache_size() == 1
    assert not np.array_equal(out[0][0], out[1][0])
