"""The IBN of multi-dimensional data (`ibn.multidim`, docs/multi_dim_theory.md): the single label's
information against Monte Carlo, the per-dimension networks and the joint posterior against `ibn`'s
reference solvers and an independent dense solve, the single-data closed form, floor and ceiling."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from scipy import special, stats

from rm_theory.ibn import multidim as im
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import Network, to_networkx
from rm_theory.ibn.reference import reference_distance
from rm_theory.world import multidim as md
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses
from rm_theory.world.topology import sample_chain

# ------------------------------------------------------------------------------ one label (§2–3)


def test_single_label_information_at_a_tie_is_a_label_on_the_mean_trade_off():
    beta, a, b = 1.3, 2.0, 6.0
    info = im.single_label_information(beta, 0.0, 0.0, a, b)
    lam = a / (a + b)
    w = np.array([lam, 1 - lam])
    assert info["p"] == pytest.approx(0.5)
    np.testing.assert_allclose(info["info"], beta**2 / 4 * np.outer(w, w), rtol=1e-9)


@pytest.mark.parametrize("gap", [(0.0, 0.0), (1.0, -0.5), (-0.4, 1.5)])
def test_single_label_fisher_information_against_monte_carlo(gap):
    """The variance of the maximum-likelihood gap from n labels (fresh unknown λ each, the other
    dimension known) times n approaches 1/I_hh (Cramér–Rao, efficient MLE)."""
    beta, a, b = 1.5, 3.0, 3.0
    h0, s0 = gap
    info = im.single_label_information(beta, h0, s0, a, b)
    grid = h0 + np.linspace(-1.5, 1.5, 301)
    p_grid = np.array([md.single_probability(beta, h, s0, a, b) for h in grid])
    assert np.all(np.diff(p_grid) > 0)  # the label law is monotone in Δhelp: the MLE inverts it
    rng = np.random.default_rng(0)
    n, reps = 400, 4000
    lam = rng.beta(a, b, size=(reps, n))
    y = rng.random((reps, n)) < special.expit(beta * (lam * h0 + (1 - lam) * s0))
    mle = np.interp(y.mean(1), p_grid, grid)
    measured = n * mle.var()
    predicted = 1.0 / info["info"][0, 0]
    assert measured == pytest.approx(predicted, rel=0.1)
    # The closed form of the label probability, against the labels' frequency.
    assert abs(y.mean() - info["p"]) < 4 * math.sqrt(info["p"] * (1 - info["p"]) / y.size) + 1e-4


def test_weight_spread_probit_beta_against_quadrature():
    beta, a, b = 1.5, 2.0, 2.0
    var = stats.beta(a, b).var()
    lam_bar = a / (a + b)
    for h, s in ((1.0, -1.0), (2.0, -1.5), (0.3, 0.2)):
        exact = md.single_probability(beta, h, s, a, b)
        b_eff = im.weight_spread_beta(beta, var, h - s)
        assert special.expit(b_eff * (lam_bar * h + (1 - lam_bar) * s)) == pytest.approx(exact, abs=4e-3)
    assert im.weight_spread_beta(beta, var, 0.0) == beta
    assert im.single_edge_variance(beta, 0.0, 1.0) == im.bt_edge_variance(beta) == pytest.approx(4 / beta**2)


def test_bt_edge_variance_is_the_inverse_fisher_information():
    beta, gap = 1.7, np.array([-2.0, 0.0, 0.7])
    p = special.expit(beta * gap)
    np.testing.assert_allclose(im.bt_edge_variance(beta, gap), 1 / (beta**2 * p * (1 - p)), rtol=1e-12)


def test_predicted_accuracy_is_the_bivariate_normal_orthant_probability():
    rng = np.random.default_rng(0)
    r0, v = 2.0, 0.7
    delta = rng.normal(0, math.sqrt(r0), 400_000)
    # The posterior mean μ with Var(μ) = Cov(μ, Δ) = R0 − V: Δ = μ + noise of variance V.
    mu = delta * (r0 - v) / r0 + rng.normal(0, math.sqrt((r0 - v) * v / r0), delta.size)
    assert np.mean(np.sign(mu) == np.sign(delta)) == pytest.approx(float(im.predicted_accuracy(v, r0)), abs=3e-3)
    assert im.accuracy_ceiling(0.35) == pytest.approx(float(im.predicted_accuracy(0.65 * r0, r0)))
    assert np.isnan(im.predicted_accuracy(0.0, 0.0))


# ------------------------------------------------------------------------------ networks (§4)


def _data(geometry: str, n: int = 120, q: int = 40, seed: int = 1, fields: tuple[int, int] = (3, 4), **world):
    space = (
        PrefixTreeSpace(V=3, L=5, num_prompts=3, seed=seed)
        if geometry == "tree"
        else MetricSpace(num_prompts=3, seed=seed)
    )
    cfg = md.MultiDimConfig(num_help=fields[0], num_categories=fields[1], **world)
    w = md.MultiDimWorld(space, cfg)
    rng = np.random.default_rng(seed)
    comps = sample_chain(space, n, rng)
    qa = space.sample(rng, rng.integers(0, 3, q))
    qb = space.sample(rng, qa.prompt)
    vibn = im.vector_ibn(space, comps, Responses.concat([qa, qb]))
    pairs = np.stack([vibn.node_q[:q], vibn.node_q[q:]], axis=1)
    t = {g: im.whitened(a, w.L) for g, a in w.directions().items()}
    return w, vibn, pairs, t


def _dense_joint_variance(vibn, labels, pairs, e):
    """An independent solve: the dense precision of all F whitened fields (no basis reduction),
    built edge by edge, and the variance of each query gap by its pseudo-inverse."""
    N, F = vibn.ib.num_nodes, len(e)
    Q = np.zeros((F * N, F * N))
    for u, v, var in zip(vibn.ib.u_E, vibn.ib.v_E, vibn.ib.var_E, strict=True):
        for f in range(F):
            i, j = f * N + u, f * N + v
            Q[i, i] += 1 / var
            Q[j, j] += 1 / var
            Q[i, j] -= 1 / var
            Q[j, i] -= 1 / var
    for labelled, t, var in labels:
        for p in np.flatnonzero(labelled):
            a, b = vibn.node_a_P[p], vibn.node_b_P[p]
            x = np.zeros(F * N)
            x[np.arange(F) * N + a] += t
            x[np.arange(F) * N + b] -= t
            Q += np.outer(x, x) / np.broadcast_to(var, labelled.shape)[p]
    cov = np.linalg.pinv(Q, hermitian=True, rcond=1e-12)
    out = []
    for a, b in pairs:
        x = np.zeros(F * N)
        x[np.arange(F) * N + a] += e
        x[np.arange(F) * N + b] -= e
        out.append(x @ cov @ x)
    return np.array(out)


@pytest.mark.parametrize("geometry", ["tree", "metric"])
def test_a_dimensions_own_network_against_the_networkx_reference(geometry):
    w, vibn, pairs, t = _data(geometry)
    labelled = np.arange(len(vibn.node_a_P)) % 3 != 0
    var = im.bt_edge_variance(1.5, np.linspace(-1, 1, len(labelled)))
    net = im.dimension_network(vibn, labelled, var)
    fast = network_distance(net, pairs, "resistance")
    ref = reference_distance(to_networkx(net), [tuple(p) for p in pairs.tolist()], "resistance")
    np.testing.assert_allclose(fast, ref, rtol=1e-8)
    assert net.num_edges == vibn.ib.num_edges + int((labelled & (vibn.node_a_P != vibn.node_b_P)).sum())


@pytest.mark.parametrize("geometry", ["tree", "metric"])
def test_single_data_closed_form_equals_the_joint_posterior_and_the_dense_solve(geometry):
    w, vibn, pairs, t = _data(geometry, rho_help=0.4, rho_harm=0.2, rho_cross=0.15)
    n = len(vibn.node_a_P)
    tu = t["utility"]
    var = np.full(n, im.bt_edge_variance(1.5))
    every = np.ones(n, bool)
    joint = im.JointPosterior(vibn, [(every, tu, var)])
    assert joint.m == 1
    prior = vibn.prior_distance(pairs)
    r_proj = network_distance(im.dimension_network(vibn, every, var / (tu @ tu)), pairs, "resistance")
    for g in ("helpfulness", "harmlessness", "utility", "help_0"):
        e = t[g] / np.linalg.norm(t[g])
        got = joint.variance(pairs, e, prior)
        closed = im.projection_distance(im.kappa(tu, e), r_proj, prior)
        np.testing.assert_allclose(got, closed, rtol=1e-9, atol=1e-12)
        # The floor: single labels never bring a dimension below (1 − κ)·R_IB.
        assert np.all(got >= (1 - im.kappa(tu, e)) * prior - 1e-12)
    if geometry == "tree":  # the dense solve has F·N unknowns: a smaller data set
        w, vibn, pairs, t = _data("tree", n=30, q=8, fields=(2, 2), rho_cross=0.2)
        every, var, tu = np.ones(30, bool), np.full(30, 1.7), t["utility"]
        e = t["helpfulness"] / np.linalg.norm(t["helpfulness"])
        dense = _dense_joint_variance(vibn, [(every, tu, var)], pairs, e)
        np.testing.assert_allclose(im.JointPosterior(vibn, [(every, tu, var)]).variance(pairs, e), dense, rtol=1e-7)


def test_dual_data_joint_is_the_per_dimension_networks_when_uncorrelated_and_below_them_otherwise():
    for world, exact in (({"rho_help": 0.3, "rho_harm": 0.2, "rho_cross": 0.0}, True), ({"rho_cross": 0.2}, False)):
        w, vibn, pairs, t = _data("tree", n=40, q=12, fields=(2, 2), **world)
        n = len(vibn.node_a_P)
        half = np.arange(n) % 2 == 0  # helpfulness on even pairs, harmlessness on odd ones
        var_h, var_s = np.full(n, 4 / 1.5**2), np.full(n, 4 / 0.8**2)
        labels = [(half, t["helpfulness"], var_h), (~half, t["harmlessness"], var_s)]
        joint = im.JointPosterior(vibn, labels)
        assert joint.m == 2
        prior = vibn.prior_distance(pairs)
        for dim, mask, var in (("helpfulness", half, var_h), ("harmlessness", ~half, var_s)):
            own = network_distance(im.dimension_network(vibn, mask, var), pairs, "resistance")
            got = joint.variance(pairs, t[dim], prior)
            if exact:
                np.testing.assert_allclose(got, own, rtol=1e-9)
            else:
                assert np.all(got <= own + 1e-12) and np.any(got < own - 1e-6)
        e = t["helpfulness"] / np.linalg.norm(t["helpfulness"])
        dense = _dense_joint_variance(vibn, labels, pairs, e)
        np.testing.assert_allclose(joint.variance(pairs, e), dense, rtol=1e-7)


def test_joint_posterior_of_one_direction_is_the_ibn_resistance_on_a_hand_built_graph():
    """A path 0-1-2 with a chord 0-2: resistance by the series and parallel laws."""

    ib = Network(3, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 2.0]), np.zeros(2, np.int8))
    vibn = im.VectorIBN(ib, np.array([0]), np.array([2]), np.array([0, 2]))
    t = np.array([0.6, 0.8])  # a unit direction over F = 2 fields
    joint = im.JointPosterior(vibn, [(np.array([True]), t, np.array([6.0]))])
    # along t: (1 + 2) in parallel with 6 = 2; across t: the prior, 3.
    assert joint.variance(np.array([[0, 2]]), t)[0] == pytest.approx(2.0)
    assert joint.variance(np.array([[0, 2]]), np.array([0.8, -0.6]))[0] == pytest.approx(3.0)
    graph = nx.Graph()
    graph.add_edge(0, 1, variance=1.0)
    graph.add_edge(1, 2, variance=2.0)
    graph.add_edge(0, 2, variance=6.0)
    assert reference_distance(graph, [(0, 2)], "resistance")[0] == pytest.approx(2.0)


def test_pairs_in_different_prompts_have_no_common_prior_and_cross_prompt_labels_are_counted():

    ib = Network(4, np.array([0, 2]), np.array([1, 3]), np.ones(2), np.zeros(2, np.int8))
    vibn = im.VectorIBN(ib, np.array([0, 1]), np.array([1, 2]), np.array([0, 3]))
    joint = im.JointPosterior(vibn, [(np.array([True, True]), np.array([1.0]), np.ones(2))])
    assert joint.dropped_labels == 1
    assert joint.variance(np.array([[0, 3]]), np.array([1.0]), np.array([np.inf]))[0] == np.inf
    assert joint.variance(np.array([[0, 1]]), np.array([1.0]))[0] == pytest.approx(0.5)
