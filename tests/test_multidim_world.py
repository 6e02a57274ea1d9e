"""The multi-dimensional gold world (`world.multidim`): the gold vector's correlation against its
stated R, annotator label probabilities against their closed forms, and each protocol's cost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import special

from rm_theory.world import multidim as md
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses


def _binomial_ok(freq, p, n, z=4.5):
    """|freq − p| within z binomial standard errors (and a floor for p near 0 or 1)."""
    return np.all(np.abs(freq - p) <= z * np.sqrt(p * (1 - p) / n) + 1e-3)


@pytest.mark.parametrize("geometry", ["tree", "metric"])
def test_gold_vector_correlation_matches_the_stated_R(geometry):
    cfg = md.MultiDimConfig(num_help=3, num_categories=4, rho_help=0.5, rho_harm=0.3, rho_cross=-0.2)
    P = 300
    space = (
        PrefixTreeSpace(V=4, L=6, num_prompts=P, seed=3) if geometry == "tree" else MetricSpace(num_prompts=P, seed=3)
    )
    world = md.MultiDimWorld(space, cfg)
    # One response per prompt: prompts' fields are independent, so the responses are independent draws.
    resp = space.sample(np.random.default_rng(0), np.arange(P).repeat(1))
    resp = Responses.concat([resp] + [space.sample(np.random.default_rng(k), np.arange(P)) for k in range(1, 8)])
    g = world.vector(resp)
    emp = np.corrcoef(g.v_NxF.T)
    # 8 responses per prompt share its field (correlated draws): about 300 independent units per entry.
    assert np.max(np.abs(emp - world.R)) < 0.2
    # Off-diagonal blocks keep their sign and order: within-help > within-harm > 0 > cross.
    D = cfg.num_help
    help_block, harm_block, cross = emp[:D, :D][np.triu_indices(D, 1)], emp[D:, D:][np.triu_indices(4, 1)], emp[:D, D:]
    assert help_block.mean() > harm_block.mean() > 0 > cross.mean()
    assert abs(help_block.mean() - 0.5) < 0.1 and abs(cross.mean() + 0.2) < 0.1
    for name, a in world.directions().items():
        if name != "utility":
            assert abs(a @ world.R @ a - 1) < 1e-12, name  # unit prior variance
            assert abs(g.dims[name].std() - 1) < 0.15, name


def test_correlations_that_are_no_correlation_matrix_are_refused():
    with pytest.raises(ValueError, match="rho_cross = 0.9.*not a correlation matrix"):
        md.correlation_matrix(md.MultiDimConfig(num_help=4, num_categories=19, rho_cross=0.9))


def test_harm_severity_and_safety_follow_the_thresholds():
    cfg = md.MultiDimConfig(num_help=2, num_categories=3, rho_help=0, rho_harm=0, rho_cross=0, severity_cuts=(2.4, 2.8))
    world = md.MultiDimWorld(PrefixTreeSpace(V=4, L=6, num_prompts=50, seed=1), cfg)
    g = world.vector(world.space.sample(np.random.default_rng(0), np.arange(50).repeat(40)))
    harm = g.v_NxF[:, 2:]
    np.testing.assert_array_equal(g.present_NxC, harm > 2.0)
    np.testing.assert_array_equal(g.severity_NxC, np.where(harm > 2.0, 1 + (harm > 2.4) + (harm > 2.8), 0))
    np.testing.assert_array_equal(g.safe_N, ~(harm > 2.0).any(1))
    assert 0 < (~g.safe_N).mean() < 0.3


@pytest.fixture(scope="module")
def repeated_pairs():
    """A few pairs, each repeated many times, with their gold vectors."""
    cfg = md.MultiDimConfig(num_help=4, num_categories=5)
    world = md.MultiDimWorld(PrefixTreeSpace(V=4, L=5, num_prompts=4, seed=2), cfg, utility_weight=0.5)
    rng = np.random.default_rng(0)
    a, b = world.space.sample(rng, np.arange(4).repeat(2)), world.space.sample(rng, np.arange(4).repeat(2))
    reps = 6000
    idx = np.tile(np.arange(8), reps)
    return world, world.vector(a).take(idx), world.vector(b).take(idx), reps


def test_dual_and_sub_labels_are_bradley_terry_per_dimension(repeated_pairs):
    world, ga, gb, reps = repeated_pairs
    acfg = md.AnnotatorConfig()
    for protocol in ("dual", "sub"):
        lab = md.label_pairs(
            world,
            ga,
            gb,
            protocol,
            acfg,
            md.annotator_weights(acfg, np.random.default_rng(1)),
            np.random.default_rng(2),
        )
        for dim, beta in md.label_betas(protocol, world.cfg, acfg).items():
            h = lab.heads.index(dim)
            assert lab.mask_PxG[:, h].all()
            freq = lab.y_PxG[:, h].reshape(reps, 8).mean(0)
            p = special.expit(beta * (ga.dims[dim][:8] - gb.dims[dim][:8]))
            assert _binomial_ok(freq, p, reps), (protocol, dim, freq, p)
        unlabelled = [h for h, name in enumerate(lab.heads) if name not in md.labelled_dims(protocol, world.cfg)]
        assert not lab.mask_PxG[:, unlabelled].any()


def test_single_labels_follow_each_annotators_trade_off_and_the_population_mixture(repeated_pairs):
    world, ga, gb, reps = repeated_pairs
    acfg = md.AnnotatorConfig(weight_a=2.0, weight_b=3.0, annotators=4000)
    weights = md.annotator_weights(acfg, np.random.default_rng(3))
    lab = md.label_pairs(world, ga, gb, "single", acfg, weights, np.random.default_rng(4))
    u = lab.heads.index("utility")
    dh = ga.dims["helpfulness"] - gb.dims["helpfulness"]
    ds = ga.dims["harmlessness"] - gb.dims["harmlessness"]
    lam = weights[lab.annotator_P]
    np.testing.assert_array_equal(lab.weight_P, lam)
    # Given the annotator: σ(β(λ Δhelp + (1 − λ) Δharmless)); the mean of those over the labels.
    p_each = special.expit(acfg.beta_single * (lam * dh + (1 - lam) * ds))
    freq = lab.y_PxG[:, u].reshape(reps, 8).mean(0)
    assert _binomial_ok(freq, p_each.reshape(reps, 8).mean(0), reps)
    # With many annotators: the quadrature of the Beta mixture (the population's law).
    p_pop = md.single_probability(acfg.beta_single, dh[:8], ds[:8], acfg.weight_a, acfg.weight_b)
    assert _binomial_ok(freq, p_pop, reps, z=5.0)


def test_single_probability_quadrature_against_monte_carlo():
    rng = np.random.default_rng(0)
    lam = rng.beta(2.0, 5.0, size=400_000)
    for h, s in ((0.8, -1.2), (2.0, 0.3), (0.0, 0.0)):
        mc = special.expit(1.7 * (lam * h + (1 - lam) * s)).mean()
        assert abs(md.single_probability(1.7, h, s, 2.0, 5.0) - mc) < 2e-3


def test_ratings_follow_the_clipped_rounded_gaussian_law():
    cfg = md.MultiDimConfig(num_help=2, num_categories=2)
    acfg = md.AnnotatorConfig(beta_sub=(1.0, 1.0), rating_scale=0.8, rating_noise=0.7)
    g = md.GoldVector(
        np.zeros((1, 4)),
        {"help_0": np.array([0.3]), "help_1": np.array([-2.5]), "harmlessness": np.array([1.9])},
        np.zeros((1, 2), bool),
        np.zeros((1, 2), int),
    )
    reps = 20_000
    gr = md.GoldVector(
        np.zeros((reps, 4)),
        {k: np.repeat(v, reps) for k, v in g.dims.items()},
        np.zeros((reps, 2), bool),
        np.zeros((reps, 2), int),
    )
    r = md.ratings(gr, cfg, acfg, np.random.default_rng(0))
    for i, attr in enumerate(md.rating_attributes(cfg)):
        p = md.rating_probabilities(g.dims[attr], acfg.rating_scale, acfg.rating_noise)[0]
        freq = np.bincount(r[:, i], minlength=5) / reps
        assert abs(p.sum() - 1) < 1e-12
        assert _binomial_ok(freq, p, reps), (attr, freq, p)


def test_item_labels_flip_safety_and_flag_categories_only_on_unsafe_labels():
    cfg = md.MultiDimConfig(num_help=1, num_categories=3)
    world = md.MultiDimWorld(PrefixTreeSpace(V=4, L=6, num_prompts=100, seed=5), cfg)
    g = world.vector(world.space.sample(np.random.default_rng(0), np.arange(100).repeat(50)))
    acfg = md.AnnotatorConfig(beta_sub=(1.0,), safe_flip=0.1)
    il = md.item_labels(g, acfg, np.random.default_rng(1))
    flip = il.safe_N != g.safe_N
    assert _binomial_ok(np.array([flip.mean()]), np.array([0.1]), len(flip))
    assert not il.present_NxC[il.safe_N].any() and il.present_NxC[~il.safe_N].any(1).all()
    assert (il.severity_N[il.safe_N] == 0).all() and (il.severity_N[~il.safe_N] >= 1).all()
    agree = ~il.safe_N & ~g.safe_N
    np.testing.assert_array_equal(il.severity_N[agree], g.severity_N[agree])


def test_each_protocol_pays_for_its_labels_one_by_one():
    cfg = md.MultiDimConfig(num_help=4, num_categories=19)
    costs = md.ProtocolCosts(
        read_pair=0.5, help_label=1.0, harm_label=2.0, single_label=1.5, sub_label=0.75, item_label=0.25, rating=0.1
    )
    assert md.cost_per_pair("dual", cfg, costs) == 0.5 + 1.0 + 2.0 + 2 * 0.25
    assert md.cost_per_pair("single", cfg, costs) == 0.5 + 1.5 + 0.5
    assert md.cost_per_pair("sub", cfg, costs) == 0.5 + 4 * 0.75 + 2.0 + 0.5
    assert md.cost_per_pair("ratings", cfg, costs) == pytest.approx(0.5 + 1.5 + 2 * 5 * 0.1 + 0.5)
    assert md.cost_per_pair("dual", cfg, costs, with_items=False) == 3.5
    for protocol in md.PROTOCOLS:
        n = md.pairs_for_budget(100.0, protocol, cfg, costs)
        per = md.cost_per_pair(protocol, cfg, costs)
        assert n * per <= 100.0 < (n + 1) * per
    with pytest.raises(ValueError, match="positive cost"):
        md.pairs_for_budget(10.0, "single", cfg, dataclasses.replace(costs, read_pair=0, single_label=0, item_label=0))


def test_protocols_share_the_label_noise_of_the_heads_they_share(repeated_pairs):
    """Paired comparisons: dual and sub label harmlessness on the same pairs identically."""
    world, ga, gb, _ = repeated_pairs
    acfg = md.AnnotatorConfig()
    w = md.annotator_weights(acfg, np.random.default_rng(0))
    dual = md.label_pairs(world, ga, gb, "dual", acfg, w, np.random.default_rng(7))
    sub = md.label_pairs(world, ga, gb, "sub", acfg, w, np.random.default_rng(7))
    h = dual.heads.index("harmlessness")
    np.testing.assert_array_equal(dual.y_PxG[:, h], sub.y_PxG[:, h])
