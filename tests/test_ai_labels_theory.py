"""The mixed-label IBN (`ibn.mixed_labels`, docs/ai_labels_theory.md) against reference solvers, the exact
learner and Monte Carlo; the worth of an AI label against simulated estimators; the exact learner with one
slope per comparison (`rm.bayes`)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special

from rm_theory.ibn import mixed_labels as ml
from rm_theory.ibn.graph import Network, to_networkx
from rm_theory.ibn.reference import reference_distance
from rm_theory.rm import bayes
from rm_theory.rm import mixed_labels as rml
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.topology import sample_chain


@pytest.fixture(scope="module")
def design():
    space = PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=0)
    rng = np.random.default_rng(0)
    comps, q = sample_chain(space, 40, rng), sample_chain(space, 30, rng)
    var, bias = rng.uniform(0.2, 2.0, 40), rng.normal(size=40) * 0.4
    mx = ml.mixed_ibn(space, comps, var, bias, Responses.concat([q.a, q.b]))
    pairs = np.stack([mx.ibn.node_q[:30], mx.ibn.node_q[30:]], axis=1)
    return space, comps, q, var, bias, mx, pairs


def test_resistance_matches_networkx_and_bias_matches_a_dense_pseudo_inverse(design):
    _, _, _, _, _, mx, pairs = design
    pe = ml.pair_error(mx, pairs)
    graph = to_networkx(mx.network)
    np.testing.assert_allclose(
        pe.resistance_Q, reference_distance(graph, [tuple(p) for p in pairs], "resistance"), atol=1e-10
    )
    net = mx.network
    n = net.num_nodes
    lap = np.zeros((n, n))
    g = 1.0 / net.var_E
    np.add.at(lap, (net.u_E, net.u_E), g)
    np.add.at(lap, (net.v_E, net.v_E), g)
    np.add.at(lap, (net.u_E, net.v_E), -g)
    np.add.at(lap, (net.v_E, net.u_E), -g)
    rhs = np.zeros(n)
    np.add.at(rhs, net.u_E, g * mx.bias_E)
    np.add.at(rhs, net.v_E, -g * mx.bias_E)
    m = np.linalg.pinv(lap) @ rhs
    np.testing.assert_allclose(pe.bias_Q, m[pairs[:, 0]] - m[pairs[:, 1]], atol=1e-10)


def test_bias_and_variance_are_the_exact_learners_posterior_on_biased_readings(design):
    """The bias field is the posterior mean of readings that hold the biases alone (r = 0, no noise), and
    the resistance its posterior variance: `rm.bayes` with Gaussian observations."""
    space, comps, q, var, bias, mx, pairs = design
    pe = ml.pair_error(mx, pairs)
    fit = bayes.fit(space, comps.a, comps.b, bias, queries=Responses.concat([q.a, q.b]), likelihood="gaussian", xi2=var)
    qi = np.stack([fit.query_index(np.arange(30)), fit.query_index(30 + np.arange(30))], axis=1)
    np.testing.assert_allclose(fit.posterior.pair_mean(qi), pe.bias_Q, atol=1e-10)
    np.testing.assert_allclose(fit.posterior.pair_variance(qi), pe.resistance_Q, atol=1e-10)


def test_error_is_resistance_plus_bias_squared_and_accuracy_follows_owens_t(design):
    """Monte Carlo over fields from the prior and noisy biased readings (`rm.mixed_labels`): the mean
    squared error of the exact posterior mean is R + B² and its sign accuracy 1/2 + 2T(|B|/s, s/√R)."""
    space, comps, q, var, bias, mx, pairs = design
    pe = ml.pair_error(mx, pairs)
    K = 20000
    mse, acc = rml.prior_readings_error(space, comps.a, comps.b, var, bias, q.a, q.b, K, np.random.default_rng(1))
    ok = pe.prior_Q > 0
    # the squared error of a Gaussian has s.d. √2·(R + B²)·(…) ≤ √3·mse per draw
    np.testing.assert_array_less(np.abs(mse - pe.mse_Q)[ok], 4 * np.sqrt(3.0) * pe.mse_Q[ok] / np.sqrt(K))
    np.testing.assert_array_less(np.abs(acc - pe.accuracy_Q)[ok], 4 * 0.5 / np.sqrt(K))


def test_predicted_accuracy_in_its_limits():
    V, R = np.array([1.0, 1.0, 1.0, 2.0]), np.array([0.3, 1.0, 0.0, 0.5])
    acc = ml.predicted_accuracy(V, R, np.zeros(4))
    np.testing.assert_allclose(acc[0], 0.5 + np.arcsin(np.sqrt(0.7)) / np.pi)  # the orthant probability
    assert acc[1] == 0.5 and acc[2] == 1.0  # no information; no noise
    # with no noise the estimate's sign is wrong only when the truth lies between −B and 0
    B, s = 0.4, np.sqrt(2.0)
    assert ml.predicted_accuracy(2.0, 0.0, B) == pytest.approx(1.5 - special.ndtr(B / s))
    # a bias costs accuracy, whatever its sign
    assert ml.predicted_accuracy(1.0, 0.3, 0.5) == pytest.approx(ml.predicted_accuracy(1.0, 0.3, -0.5))
    assert ml.predicted_accuracy(1.0, 0.3, 0.5) < acc[0]


def test_a_bias_along_a_feature_telescopes_through_comparisons_alone():
    """Comparison edges only (no prior): the bias of a pair is κ·(g(a) − g(b)) whatever the design,
    the flow's conservation at work; with prior edges it is less."""
    rng = np.random.default_rng(2)
    n, E = 12, 40
    u, v = rng.integers(0, n, E), rng.integers(0, n, E)
    u, v = u[u != v], v[u != v]
    u, v = np.r_[u, np.arange(n - 1)], np.r_[v, np.arange(1, n)]  # connected
    g = rng.normal(size=n)
    var = rng.uniform(0.5, 3, len(u))
    net = Network(n, u, v, var, np.ones(len(u), np.int8))
    m = ml.bias_field(net, 0.7 * (g[u] - g[v]))
    np.testing.assert_allclose(m - m[0], 0.7 * (g - g[0]), atol=1e-10)
    # prior edges (variance 1 between neighbours) pull the estimate towards no difference: |B| shrinks
    prior = Network(n, np.r_[u, np.arange(n - 1)], np.r_[v, np.arange(1, n)], np.r_[var, np.ones(n - 1)])
    m2 = ml.bias_field(prior, np.r_[0.7 * (g[u] - g[v]), np.zeros(n - 1)])
    assert np.abs(m2 - m2[0]).sum() < np.abs(m - m[0]).sum()


def test_bias_does_not_shrink_with_data_while_variance_does():
    space = PrefixTreeSpace(V=4, L=5, num_prompts=4, seed=1)
    rng = np.random.default_rng(3)
    q = sample_chain(space, 200, rng)
    g = lambda r: np.asarray(space.gold_reward(r) * 0 + np.array([hash(tuple(t)) % 7 for t in r.data]), float)
    out = []
    for n in (200, 800, 3200):
        c = sample_chain(space, n, rng)
        dg = g(c.a) - g(c.b)
        mx = ml.mixed_ibn(space, c, np.full(n, 0.5), 0.1 * dg, Responses.concat([q.a, q.b]))
        pe = ml.pair_error(mx, np.stack([mx.ibn.node_q[:200], mx.ibn.node_q[200:]], axis=1))
        out.append((pe.resistance_Q.mean(), np.mean(pe.bias_Q**2)))
    assert out[2][0] < out[0][0] / 2  # the variance falls with the data
    assert out[2][1] > 0.5 * out[0][1]  # the bias does not: it grows towards κ²·E[(g(a) − g(b))²]


def test_the_worth_of_an_ai_label_is_the_ratio_of_estimator_variances():
    """At one gap x, the maximum-likelihood x̂ from n labels has variance 1/(n·I): n AI labels are worth
    w·n human ones, w = I_AI/I_H (Monte Carlo over 4,000 data sets of 2,000 labels each)."""
    x, dg, beta_h, beta_j, lam = 0.15, 0.3, 4.0, 7.0, 0.5
    rng = np.random.default_rng(4)
    n, R = 2000, 4000

    def mle_var(beta, offset):
        p = special.expit(beta * x + offset)
        k = rng.binomial(n, p, size=R) / n
        k = np.clip(k, 1 / n, 1 - 1 / n)
        return np.var((special.logit(k) - offset) / beta)

    ratio = mle_var(beta_h, 0.0) / mle_var(beta_j, lam * dg)
    w = ml.label_worth(beta_j, beta_h, np.array([x]), np.array([dg]), lam)
    assert ratio == pytest.approx(w, rel=0.1)
    # near ties the worth is (β_J/β_H)²; a sharper label is worth less on large gaps
    assert ml.label_worth(beta_j, beta_h, np.array([0.0])) == pytest.approx((beta_j / beta_h) ** 2)
    assert ml.label_worth(beta_j, beta_h, np.array([2.0])) < 1.0


def test_closed_form_crossover_and_the_count_beyond_which_ai_labels_hurt():
    a, gamma, bias2, c_h, c_ai, w = 0.8, 0.4, 0.05, 1.0, 0.1, 2.0
    b = ml.power_law_crossover(a, gamma, bias2, c_h, c_ai, w)
    mse_h = lambda B: a * (B / c_h) ** -gamma
    mse_ai = lambda B: a * (B * w / c_ai) ** -gamma + bias2
    assert mse_h(b) == pytest.approx(mse_ai(b), rel=1e-10)
    assert mse_ai(b / 2) < mse_h(b / 2) and mse_ai(2 * b) > mse_h(2 * b)
    assert np.isnan(ml.power_law_crossover(a, gamma, bias2, c_h, c_ai=5.0, worth=w))  # no cheaper information
    n_h, bias2 = 200.0, 0.2  # a bias above the error of the human labels alone: an interior optimum
    mse = lambda n_ai: a * (n_h + w * n_ai) ** -gamma + bias2 * (w * n_ai / (n_h + w * n_ai)) ** 2
    best = ml.best_ai_count(a, gamma, bias2, n_h, w)
    ref = optimize.minimize_scalar(lambda t: mse(np.exp(t)), bounds=(0, 12), method="bounded")
    assert best == pytest.approx(np.exp(ref.x), rel=1e-3)
    assert mse(best) < bias2  # better than any number of AI labels far beyond it
    assert mse(best) < mse(best / 2) and mse(best) < mse(best * 2)
    assert ml.best_ai_count(a, gamma, 0.0, n_h, w) == np.inf
    assert ml.crossover(
        np.array([1, 2, 4, 8]), np.array([4, 3, 2, 1.0]), np.array([3, 2.5, 2.5, 2.4])
    ) == pytest.approx(2 * 2**0.5)
    assert np.isnan(ml.crossover(np.array([1, 2]), np.array([1.0, 1.0]), np.array([0.5, 0.5])))


def test_the_exact_learner_reads_each_comparison_with_its_own_slope():
    space = PrefixTreeSpace(V=3, L=3, num_prompts=2, seed=1)
    rng = np.random.default_rng(5)
    c = sample_chain(space, 60, rng)
    y = (rng.random(60) < 0.6).astype(float)
    one = bayes.fit(space, c.a, c.b, y, beta=2.0).posterior
    same = bayes.fit(space, c.a, c.b, y, beta=np.full(60, 2.0)).posterior
    np.testing.assert_allclose(same.mean_F, one.mean_F, atol=1e-12)
    beta_P = np.where(np.arange(60) % 2, 0.5, 4.0)
    post = bayes.fit(space, c.a, c.b, y, beta=beta_P).posterior
    nodes = post.nodes
    prior, B = bayes.prior_precision(nodes), bayes.difference_matrix(nodes, np.arange(60), 60 + np.arange(60))
    f = lambda v: bayes.bt_objective(v, prior, B, y, beta_P)
    ref = optimize.minimize(f, np.zeros(nodes.F), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(post.mean_F, ref.x, atol=1e-5)
    assert f(post.mean_F) <= ref.fun + 1e-12
    with pytest.raises(ValueError, match="beta per comparison"):
        bayes.fit(space, c.a, c.b, y, beta=np.full(59, 2.0))


def test_the_exact_model_is_defined_everywhere_and_agrees_with_querying_each_leaf():
    """`rm.mixed_labels.ExactModel.mean`: the deepest prefix in the data's trie gives every leaf's
    posterior mean; the reference adds every leaf to the system (`policy.rewards.exact_reward_table`)."""
    from rm_theory.policy.rewards import exact_reward_table
    from rm_theory.world.labels import LabelConfig, label_comparisons

    space = PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=0)
    rng = np.random.default_rng(0)
    c = sample_chain(space, 60, rng)
    lab = label_comparisons(space, c, LabelConfig(beta=2.0), rng)
    model = rml.fit_reward(space, c.a, c.b, lab.better_P, 2.0)
    np.testing.assert_allclose(model.table(space.enumerate(0).data), exact_reward_table(space, c, lab, 2.0), atol=1e-10)


def test_the_cost_model_learns_the_cost_field_at_its_own_scale():
    """Many safer labels: within a prompt the cost model's differences approach the gold cost's (slope 1);
    comparisons say nothing of a prompt's overall level, which stays the prior's, −offset."""
    from rm_theory.world.labels import LabelConfig, gold_cost

    space = PrefixTreeSpace(V=3, L=3, num_prompts=2, seed=2)
    lc = LabelConfig(rho=0.3, cost_offset=0.5)
    rng = np.random.default_rng(6)
    c = sample_chain(space, 3000, rng)
    ca, cb = gold_cost(space, c.a, lc).cost_N, gold_cost(space, c.b, lc).cost_N
    safer = (rng.random(3000) < special.expit(3.0 * (cb - ca))).astype(float)
    model = rml.fit_cost(space, c.a, c.b, safer, 3.0, lc.cost_offset)
    leaves = space.enumerate(0).data
    for p in (0, 1):
        items = Responses(np.full(len(leaves), p), leaves)
        truth, est = gold_cost(space, items, lc).cost_N, model.mean(items)
        slope = np.polyfit(truth - truth.mean(), est - est.mean(), 1)[0]
        assert np.corrcoef(truth, est)[0, 1] > 0.9 and slope == pytest.approx(1.0, abs=0.25)
    # no data: the prior's mean cost
    empty = rml.fit_cost(space, c.a.take([0]), c.a.take([0]), np.ones(1), 3.0, lc.cost_offset)
    np.testing.assert_allclose(empty.mean(Responses(np.zeros(len(leaves), np.int64), leaves)), -lc.cost_offset)
