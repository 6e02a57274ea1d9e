"""The exact Bayesian learner (rm.bayes): its posterior is the IBN's resistance (THEORY.md §2), checked
against the IBN solver, a dense feature-space posterior and a generic optimiser."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special

from rm_theory.ibn import HP, LabelVariance, Network, has_cholmod, ibn_network, network_distance
from rm_theory.rm import bayes
from rm_theory.world.labels import LabelConfig, label_comparisons
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.topology import TreeSampling, make_dataset

SPACE = PrefixTreeSpace(V=3, L=4, num_prompts=2, seed=1)


def world(topology: str, n: int = 48, q: int = 32, seed: int = 0, incomplete: float = 0.0):
    rng = np.random.default_rng(seed)
    comps = make_dataset(SPACE, topology, n, rng, tree=TreeSampling(incomplete_frac=incomplete))
    qa = SPACE.sample(rng, rng.integers(0, SPACE.num_prompts, q))
    qb = SPACE.sample(rng, qa.prompt)
    pairs_Qx2 = np.stack([np.arange(q), q + np.arange(q)], axis=1)
    return comps, Responses.concat([qa, qb]), pairs_Qx2, rng


def rel_err(x, y):
    ok = y > 0
    assert np.all(x[~ok] == 0) and np.all(y[~ok] == 0)
    return float(np.max(np.abs(x[ok] - y[ok]) / y[ok]))


@pytest.mark.parametrize("topology", ["chain", "tree"])
@pytest.mark.parametrize("compress", [True, False])
def test_gaussian_posterior_variance_is_ibn_resistance(topology, compress):
    comps, queries, pairs, rng = world(topology, incomplete=0.3 if topology == "tree" else 0.0)
    lv = LabelVariance("constant", 2.5)
    fit = bayes.fit(
        SPACE, comps.a, comps.b, rng.normal(size=len(comps)), queries=queries, likelihood="gaussian", xi2=2.5,
        compress=compress,
    )  # fmt: skip
    var_Q = fit.posterior.pair_variance(fit.query_index(pairs))
    ibn = ibn_network(SPACE, comps, queries, lv)
    assert rel_err(var_Q, ibn.distance(ibn.node_q[pairs], "resistance")) < 1e-8
    # Comparison pairs too (they are items of the same system).
    P = len(comps)
    var_P = fit.posterior.pair_variance(np.stack([np.arange(P), P + np.arange(P)], axis=1))
    assert rel_err(var_P, ibn.distance(np.stack([ibn.node_a_P, ibn.node_b_P], axis=1), "resistance")) < 1e-8


def test_gaussian_posterior_matches_dense_feature_space_posterior():
    """Brute force on one-hot prefix features θ ~ N(0, diag s²): Σ = (D⁻¹ + Xᵀ X / ξ²)⁻¹, μ = Σ Xᵀ d / ξ²."""
    comps, queries, pairs, rng = world("chain", n=30)
    xi2 = 1.7
    d_P = rng.normal(size=len(comps))
    fit = bayes.fit(SPACE, comps.a, comps.b, d_P, queries=queries, likelihood="gaussian", xi2=xi2, compress=False)
    post = fit.posterior
    items = Responses.concat([comps.a, comps.b, queries])
    X = bayes.feature_matrix(SPACE, items, post.nodes).toarray()
    P = len(comps)
    Xd = X[:P] - X[P : 2 * P]
    cov = np.linalg.inv(np.diag(1 / bayes.prior_variance(post.nodes)) + Xd.T @ Xd / xi2)
    theta = cov @ Xd.T @ d_P / xi2
    np.testing.assert_allclose(post.theta(), theta, rtol=1e-9, atol=1e-12)
    qa, qb = fit.query_index(pairs[:, 0]), fit.query_index(pairs[:, 1])
    xq = X[qa] - X[qb]
    np.testing.assert_allclose(
        post.pair_variance(fit.query_index(pairs)), np.einsum("qf,fg,qg->q", xq, cov, xq), rtol=1e-9
    )
    np.testing.assert_allclose(post.pair_mean(fit.query_index(pairs)), xq @ theta, rtol=1e-9, atol=1e-12)
    # Single items: the prior variance Σ_j s_j² shrinks, and the dense diagonal agrees.
    var_N = post.item_variance(qa)
    np.testing.assert_allclose(var_N, np.einsum("qf,fg,qg->q", X[qa], cov, X[qa]), rtol=1e-9)
    assert np.all(var_N <= SPACE.cum_s2[-1] + 1e-12)


def test_prior_only_variance_is_delta_of_common_depth():
    """No data: Var[r(a) − r(b)] = Δ(k), k the common-prefix depth (THEORY.md §2)."""
    rng = np.random.default_rng(3)
    a = SPACE.sample(rng, np.zeros(20, np.int64))
    b = SPACE.sample(rng, np.zeros(20, np.int64))
    items = Responses.concat([a, b])
    nodes = bayes.prefix_nodes(SPACE, items)
    post = bayes.gaussian_posterior(nodes, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 1.0)
    var = post.pair_variance(np.stack([np.arange(20), 20 + np.arange(20)], axis=1))
    np.testing.assert_allclose(var, SPACE.delta_k[SPACE.shared_length(a, b)], rtol=1e-12, atol=1e-15)


def bt_world(topology="chain", n=60, beta=1.5, seed=0):
    comps, queries, pairs, rng = world(topology, n=n, seed=seed)
    labels = label_comparisons(SPACE, comps, LabelConfig(beta=beta), rng)
    return comps, queries, pairs, labels.better_P.astype(np.float64)


@pytest.mark.parametrize("topology", ["chain", "tree"])
def test_laplace_variance_is_resistance_of_fisher_ibn_at_the_map(topology):
    beta = 1.5
    comps, queries, pairs, y_P = bt_world(topology, beta=beta)
    fit = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta)
    post = fit.posterior
    P = len(comps)
    mu_P = post.pair_mean(np.stack([np.arange(P), P + np.arange(P)], axis=1))
    p_hat = special.expit(beta * mu_P)
    np.testing.assert_allclose(post.w_P, beta**2 * p_hat * (1 - p_hat), rtol=1e-12)
    # The IBN of the same data, its preference edges given variance 1/(β² p̂(1 − p̂)) by hand.
    ibn = ibn_network(SPACE, comps, queries, LabelVariance("constant", 1.0))
    distinct = ibn.node_a_P != ibn.node_b_P
    var_E = ibn.network.var_E.copy()
    var_E[ibn.network.kind_E == HP] = 1.0 / post.w_P[distinct]
    net = Network(ibn.network.num_nodes, ibn.network.u_E, ibn.network.v_E, var_E, ibn.network.kind_E)
    d_Q = network_distance(net, ibn.node_q[pairs], "resistance")
    assert rel_err(post.pair_variance(fit.query_index(pairs)), d_Q) < 1e-8


def test_laplace_map_matches_generic_optimiser_and_dense_hessian():
    beta = 1.2
    comps, queries, pairs, y_P = bt_world("tree", n=30, beta=beta, seed=4)
    fit = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta, compress=False)
    post = fit.posterior
    items = Responses.concat([comps.a, comps.b, queries])
    X = bayes.feature_matrix(SPACE, items, post.nodes).toarray()
    P = len(comps)
    Xd = X[:P] - X[P : 2 * P]
    s2 = bayes.prior_variance(post.nodes)

    def f(theta):
        z = beta * Xd @ theta
        return 0.5 * np.sum(theta**2 / s2) - np.sum(y_P * special.log_expit(z) + (1 - y_P) * special.log_expit(-z))

    def g(theta):
        return theta / s2 - beta * Xd.T @ (y_P - special.expit(beta * Xd @ theta))

    res = optimize.minimize(
        f, np.zeros(X.shape[1]), jac=g, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000}
    )
    np.testing.assert_allclose(post.theta(), res.x, atol=1e-6)
    assert f(post.theta()) <= res.fun + 1e-12
    assert np.max(np.abs(g(post.theta()))) < 1e-9  # Newton lands on the stationary point
    # Laplace covariance in feature space: (D⁻¹ + β² Xᵀ diag(p̂(1 − p̂)) X)⁻¹.
    p = special.expit(beta * Xd @ post.theta())
    cov = np.linalg.inv(np.diag(1 / s2) + beta**2 * Xd.T @ np.diag(p * (1 - p)) @ Xd)
    xq = X[fit.query_index(pairs[:, 0])] - X[fit.query_index(pairs[:, 1])]
    np.testing.assert_allclose(
        post.pair_variance(fit.query_index(pairs)), np.einsum("qf,fg,qg->q", xq, cov, xq), rtol=1e-9
    )


def test_cg_solver_agrees_with_direct():
    beta = 1.0
    comps, queries, pairs, y_P = bt_world("chain", n=200, beta=beta, seed=5)
    direct = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta, solver="direct").posterior
    cg = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta, solver="cg").posterior
    np.testing.assert_allclose(cg.mean_F, direct.mean_F, rtol=1e-7, atol=1e-9)
    q = 2 * len(comps) + pairs
    np.testing.assert_allclose(cg.pair_variance(q), direct.pair_variance(q), rtol=1e-7)


def test_newton_steps_land_on_the_same_map_through_either_direct_factorisation(monkeypatch):
    """Newton's steps factorise with QDLDL (reusing its analysis across steps) up to
    CHOLESPY_MAX_UNKNOWNS and with SuperLU above; the MAP and its posterior do not depend on which."""
    beta = 1.0
    comps, queries, pairs, y_P = bt_world("tree", n=200, beta=beta, seed=6)
    ldl = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta, solver="direct").posterior
    assert ldl.newton_steps > 1  # the analysis was reused at least once
    monkeypatch.setattr(bayes, "CHOLESPY_MAX_UNKNOWNS", 10)
    lu = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta, solver="direct").posterior
    np.testing.assert_allclose(lu.mean_F, ldl.mean_F, rtol=1e-9, atol=1e-11)
    q = 2 * len(comps) + pairs
    np.testing.assert_allclose(lu.pair_variance(q), ldl.pair_variance(q), rtol=1e-9)


def test_soft_tie_labels_and_self_comparisons_carry_no_gap():
    """y = 1/2 everywhere pulls every gap to 0; a response compared with itself is a zero row."""
    comps, queries, pairs, _ = bt_world("chain", n=20)
    a = Responses.concat([comps.a, comps.a.take([0])])
    b = Responses.concat([comps.b, comps.a.take([0])])
    fit = bayes.fit(SPACE, a, b, np.full(len(a), 0.5), queries=queries)
    np.testing.assert_allclose(fit.posterior.mean_F, 0.0, atol=1e-12)


def test_accuracy_helpers():
    mu = np.array([1.0, -1.0, 0.5, 2.0, 0.0])
    gold = np.array([2.0, 1.0, 0.0, 3.0, 1.0])
    assert bayes.gold_accuracy(mu, gold) == pytest.approx(2.5 / 4)  # gold tie left out, μ = 0 counts 1/2
    assert bayes.expected_accuracy(np.zeros(3), np.ones(3)) == pytest.approx(0.5)
    assert bayes.expected_accuracy(np.array([10.0]), np.array([1e-4])) == pytest.approx(1.0)


def test_prior_draws_have_the_field_covariance():
    rng = np.random.default_rng(0)
    a = SPACE.sample(rng, np.zeros(6, np.int64))
    b = SPACE.sample(rng, np.zeros(6, np.int64))
    nodes = bayes.prefix_nodes(SPACE, Responses.concat([a, b]))
    v_KxF = bayes.prior_draws(nodes, 40_000, rng)
    var = bayes.ensemble_pair_variance(v_KxF, nodes, np.stack([np.arange(6), 6 + np.arange(6)], axis=1))
    np.testing.assert_allclose(var, SPACE.delta_k[SPACE.shared_length(a, b)], rtol=0.05, atol=1e-12)


def test_anchored_gaussian_ensemble_converges_to_the_posterior_variance():
    """Randomised-prior members are exact posterior samples here: relative error ~ √(2/(K − 1))."""
    comps, queries, pairs, rng = world("chain", n=60)
    d_P = rng.normal(size=len(comps))
    fit = bayes.fit(SPACE, comps.a, comps.b, d_P, queries=queries, likelihood="gaussian", xi2=1.0)
    P, q = len(comps), fit.query_index(pairs)
    exact = fit.posterior.pair_variance(q)
    errs = []
    for K in (16, 4096):
        v_KxF = bayes.anchored_gaussian_ensemble(fit.posterior, np.arange(P), P + np.arange(P), d_P, K, rng)
        ok = exact > 0
        errs.append(np.median(np.abs(bayes.ensemble_pair_variance(v_KxF, fit.posterior.nodes, q)[ok] / exact[ok] - 1)))
        # The members' mean is the posterior mean.
        if K == 4096:
            np.testing.assert_allclose(v_KxF.mean(0), fit.posterior.mean_F, atol=0.05)
    assert errs[1] < 0.05 and errs[1] < errs[0]


def test_anchored_bt_members_are_distinct_posterior_like_draws():
    comps, queries, pairs, y_P = bt_world("tree", n=40)
    fit = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=1.5)
    P = len(comps)
    v = bayes.anchored_bt_ensemble(
        fit.posterior.nodes, np.arange(P), P + np.arange(P), y_P, 1.5, 3, np.random.default_rng(0)
    )
    assert v.shape == (3, fit.posterior.nodes.F)
    assert np.all(bayes.ensemble_pair_variance(v, fit.posterior.nodes, fit.query_index(pairs)) >= 0)


@pytest.mark.parametrize("topology", ["chain", "tree"])
def test_the_grounded_network_reproduces_the_posterior_precision(topology):
    comps, queries, _, y_P = bt_world(topology)
    fit = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=1.5)
    net = bayes.grounded_network(fit.posterior.prec)
    F = fit.posterior.nodes.F
    lap = np.zeros((F + 1, F + 1))
    np.add.at(lap, (net.u_E, net.v_E), -1.0 / net.var_E)
    np.add.at(lap, (net.v_E, net.u_E), -1.0 / net.var_E)
    lap[np.arange(F + 1), np.arange(F + 1)] = -lap.sum(axis=1)
    np.testing.assert_allclose(lap[:F, :F], fit.posterior.prec.toarray(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("topology", ["chain", "tree"])
def test_pair_variance_through_the_ibn_solver_equals_the_direct_solve(topology, monkeypatch):
    """Large systems take their pair variances from `network_distance` (CHOLMOD) on the network whose
    grounded Laplacian the posterior precision is; forced here on a small one, both ways must agree."""
    if not has_cholmod():
        pytest.skip("the cholmod extra (scikit-sparse) is not installed")
    beta = 1.5
    comps, queries, pairs, y_P = bt_world(topology, beta=beta)
    fit = bayes.fit(SPACE, comps.a, comps.b, y_P, queries=queries, beta=beta)
    q = fit.query_index(np.r_[pairs, pairs[:1, ::-1], [[0, 0]]])  # a reversed pair and an item with itself
    direct = fit.posterior.pair_variance(q)
    monkeypatch.setattr(bayes, "NETWORK_MIN_UNKNOWNS", 0)
    through_ibn = fit.posterior.pair_variance(q)
    assert direct[-1] == through_ibn[-1] == 0.0
    assert rel_err(through_ibn[:-1], direct[:-1]) < 1e-9
