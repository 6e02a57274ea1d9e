"""Pool-based active labelling (`real.active`): the heads against a direct minimiser of the regularised
Bradley–Terry loss, the greedy D-optimal design against recomputed determinants, each recipe's rounds
(nested, inside the pool, never a held-out pair), and the labels a recipe needs to reach a target."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from rm_theory.real import active
from rm_theory.real.active import (
    RECIPES,
    ActiveConfig,
    fisher_d_optimal,
    fit_heads,
    labels_to_reach,
    run_recipe,
)
from rm_theory.real.features import Items
from rm_theory.real.model_ibn import unit_rows


def world(G: int = 60, per: int = 4, D: int = 6, seed: int = 0, tie_every: int = 0):
    """G prompts with `per` responses each, every pair of a prompt compared, labels drawn from a
    linear Bradley–Terry reward."""
    rng = np.random.default_rng(seed)
    N = G * per
    h = rng.normal(size=(N, D))
    r = h @ rng.normal(size=D)
    a, b, g = [], [], []
    for x in range(G):
        for i in range(per):
            for j in range(i + 1, per):
                a.append(x * per + i)
                b.append(x * per + j)
                g.append(x)
    a, b, g = np.array(a), np.array(b), np.array(g)
    pref = (rng.random(len(a)) < 1 / (1 + np.exp(-(r[a] - r[b])))).astype(np.float32)
    if tie_every:
        pref[::tie_every] = 0.5
    nan_P, nan_N = np.full(len(a), np.nan, np.float32), np.full(N, np.nan, np.float32)
    pid = np.array([f"x{i // per}" for i in range(N)], dtype=object)
    it = Items(pid, [""] * N, [f"y{i}" for i in range(N)], a, b, pref, nan_P, nan_N, g)
    return it, h


def test_member_zero_minimises_the_regularised_bradley_terry_loss_ties_half():
    it, h = world(G=20, tie_every=5)
    lab = np.arange(0, len(it.a_P), 2)
    C = 0.5
    w = fit_heads(h, it, lab, members=3, C=C, rng=np.random.default_rng(0))
    d, y = h[it.a_P[lab]] - h[it.b_P[lab]], it.pref_P[lab].astype(float)

    def loss(w_):
        z = d @ w_
        return C * np.sum(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)) + 0.5 * w_ @ w_

    ref = optimize.minimize(loss, np.zeros(h.shape[1]), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(w[0], ref, atol=1e-4)
    assert w.shape == (3, h.shape[1]) and not np.allclose(w[1], w[0])  # bootstrap members differ


def test_greedy_d_optimal_choices_match_recomputed_determinants():
    it, h = world(G=15, D=4, seed=1)
    lab, cand = np.arange(6), np.arange(6, 40)
    w, C = np.array([0.3, -0.2, 0.5, 0.1]), 2.0
    got = fisher_d_optimal(h, it, lab, cand, w, C, m=5)

    def weight(p):
        s = 1 / (1 + np.exp(-((h[it.a_P[p]] - h[it.b_P[p]]) @ w)))
        return s * (1 - s)

    chosen = list(lab)
    expect = []
    for _ in range(5):
        best, best_v = None, -np.inf
        for c in cand:
            if c in expect:
                continue
            ps = chosen + [c]
            d = h[it.a_P[ps]] - h[it.b_P[ps]]
            F = np.eye(4) / C + (d * np.array([weight(p) for p in ps])[:, None]).T @ d
            v = np.linalg.slogdet(F)[1]
            if v > best_v:
                best, best_v = c, v
        expect.append(best)
        chosen.append(best)
    assert got.tolist() == expect


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_labels_pool_pairs_only_in_nested_rounds(recipe, monkeypatch):
    it, h = world(G=50)
    test_Q = np.flatnonzero(it.group_P >= 40)
    pool_P = np.flatnonzero(it.group_P < 40)
    seed_P = np.sort(np.random.default_rng(3).choice(pool_P, 12, replace=False))
    cfg = ActiveConfig(init_pairs=12, batch=12, budget=48, members=3, targets_dim=8)
    labelled = []

    def spy(h_, it_, lab_P, *a, **k):  # every labelled set the heads are fitted on
        labelled.append(np.array(lab_P))
        return fit_heads(h_, it_, lab_P, *a, **k)

    monkeypatch.setattr(active, "fit_heads", spy)
    rows = run_recipe(recipe, h, (unit_rows(h), "cosine"), it, pool_P, test_Q, seed_P, cfg, seed=0)
    assert [r["labelled"] for r in rows] == [12, 24, 36, 48]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    final = labelled[-1]
    assert len(np.unique(final)) == 48 and np.isin(final, pool_P).all() and not np.isin(final, test_Q).any()
    assert np.isin(seed_P, final).all()
    sets = [set(x.tolist()) for x in labelled]
    assert all(a <= b for a, b in zip(sets, sets[1:], strict=False))  # rounds only add
    # the same seed gives the same choices
    again = run_recipe(recipe, h, (unit_rows(h), "cosine"), it, pool_P, test_Q, seed_P, cfg, seed=0)
    assert again == rows


def test_same_prompt_uses_few_prompts_and_one_per_prompt_many():
    it, h = world(G=50)
    pool_P, test_Q = np.flatnonzero(it.group_P < 40), np.flatnonzero(it.group_P >= 40)
    seed_P = pool_P[:6]  # the first prompt's pairs
    cfg = ActiveConfig(init_pairs=6, batch=30, budget=36, members=2)
    tree = run_recipe("same_prompt", h, (h, "cosine"), it, pool_P, test_Q, seed_P, cfg, 0)[-1]
    chain = run_recipe("one_per_prompt", h, (h, "cosine"), it, pool_P, test_Q, seed_P, cfg, 0)[-1]
    assert tree["prompts_used"] == 1 + 5  # whole prompts of 6 pairs
    assert chain["prompts_used"] == 1 + 30  # one new pair per prompt (two per prompt would share no response)


def test_labels_to_reach():
    n = np.array([10, 20, 30])
    assert labels_to_reach(n, np.array([0.6, 0.7, 0.8]), 0.75) == pytest.approx(25.0)
    assert labels_to_reach(n, np.array([0.8, 0.7, 0.9]), 0.75) == 10.0
    assert np.isnan(labels_to_reach(n, np.array([0.6, 0.7, 0.7]), 0.75))
