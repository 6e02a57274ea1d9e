"""The metric geometry's exact learner (rm.gp): the field's covariance, and the Cholesky posterior against
a dense weight-space computation; the IBN's k-NN prior beside it (THEORY.md §2 "A second geometry")."""

from __future__ import annotations

import numpy as np

from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.rm import gp
from rm_theory.world.spaces import MetricSpace, Responses
from rm_theory.world.topology import make_dataset

SPACE = MetricSpace(K=2, num_prompts=2, gamma=1.0, c=1.0, num_features=64, seed=3)


def test_kernel_variogram_is_the_fields_normalisation():
    """E Var(r(x) − r(x + h)) at |h| = 0.1 is c·0.1^γ by construction of the field's scale (±sampling)."""
    rng = np.random.default_rng(0)
    x = rng.random((400, 2))
    h = rng.normal(size=(400, 2))
    h = 0.1 * h / np.linalg.norm(h, axis=1, keepdims=True)
    items = Responses(np.zeros(800, np.int64), np.concatenate([x, x + h]))
    k = gp.kernel(SPACE, items)
    i = np.arange(400)
    vario = np.mean(k[i, i] + k[i + 400, i + 400] - 2 * k[i, i + 400])
    assert 0.5 < vario / (SPACE.c * 0.1**SPACE.gamma) < 2.0
    assert np.allclose(k, k.T) and np.all(np.linalg.eigvalsh(k) > -1e-8)


def test_cholesky_posterior_matches_weight_space_posterior():
    rng = np.random.default_rng(1)
    comps = make_dataset(SPACE, "chain", 40, rng)
    qa = SPACE.sample(rng, rng.integers(0, 2, 20))
    qb = SPACE.sample(rng, qa.prompt)
    items = Responses.concat([comps.a, comps.b, qa, qb])
    P, xi2 = len(comps), 0.5
    a_P, b_P = np.arange(P), P + np.arange(P)
    d_P = rng.normal(size=P)
    post = gp.gp_posterior(SPACE, items, a_P, b_P, d_P, xi2)
    pairs = 2 * P + np.stack([np.arange(20), 20 + np.arange(20)], axis=1)
    # Weight space: r = φ w, w ~ N(0, I): Σ_w = (I + Φdᵀ Φd / ξ²)⁻¹.
    phi = gp.field_features(SPACE, items)
    phid = phi[a_P] - phi[b_P]
    cov = np.linalg.inv(np.eye(phi.shape[1]) + phid.T @ phid / xi2)
    mean = cov @ phid.T @ d_P / xi2
    u = phi[pairs[:, 0]] - phi[pairs[:, 1]]
    np.testing.assert_allclose(post.pair_variance(pairs), np.einsum("qg,gh,qh->q", u, cov, u), rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(post.pair_mean(pairs), u @ mean, rtol=1e-6, atol=1e-10)
    # The IBN (k-NN prior) gives a variance of the same pairs; both shrink below the prior.
    ibn = ibn_network(SPACE, comps, Responses.concat([qa, qb]), LabelVariance("constant", xi2))
    d_Q = ibn.distance(ibn.node_q[np.stack([np.arange(20), 20 + np.arange(20)], axis=1)], "resistance")
    assert np.all(np.isfinite(d_Q[np.isfinite(d_Q)]))
    prior = (
        post.k_NxN[pairs[:, 0], pairs[:, 0]]
        + post.k_NxN[pairs[:, 1], pairs[:, 1]]
        - 2 * post.k_NxN[pairs[:, 0], pairs[:, 1]]
    )
    assert np.all(post.pair_variance(pairs) <= prior + 1e-12)


def test_the_ibn_knn_prior_is_calibrated_to_the_exact_gp_posterior():
    """The IBN's k-NN prior (edges c·d^γ scaled per prompt to the field's variogram) gives the exact GP
    posterior variance of held-out pairs within 2× on average and ranks them as the GP does. Before
    the calibration, parallel paths of the k-NN graph made it 17× too small (mean ratio 0.06)."""
    from scipy import stats

    space = MetricSpace(K=2, num_prompts=2, gamma=1.0, c=1.0, seed=5)
    rng = np.random.default_rng(7)
    comps = make_dataset(space, "chain", 160, rng)
    Q, P, xi2 = 200, len(comps), 4.0
    qa = space.sample(rng, rng.integers(0, 2, Q))
    qb = space.sample(rng, qa.prompt)
    items = Responses.concat([comps.a, comps.b, qa, qb])
    d_P = space.gold_reward(comps.a) - space.gold_reward(comps.b) + np.sqrt(xi2) * rng.normal(size=P)
    post = gp.gp_posterior(space, items, np.arange(P), P + np.arange(P), d_P, xi2)
    pairs = np.stack([np.arange(Q), Q + np.arange(Q)], axis=1)
    exact = post.pair_variance(2 * P + pairs)
    ibn = ibn_network(space, comps, Responses.concat([qa, qb]), LabelVariance("constant", xi2))
    d_Q = ibn.distance(ibn.node_q[pairs], "resistance")
    ok = np.isfinite(d_Q) & (exact > 0)
    assert ok.mean() > 0.95
    assert 0.5 < d_Q[ok].mean() / exact[ok].mean() < 2.0
    assert stats.spearmanr(d_Q[ok], exact[ok]).statistic > 0.8


def test_the_variogram_calibration_scales_each_prompt_by_one_factor():
    """Every IB edge of a prompt carries κ_p·c·d^γ, κ_p > 1 (parallel paths lower the resistance) and
    the same for every edge of the prompt; the network is a function of its items."""
    from rm_theory.ibn import IB

    rng = np.random.default_rng(2)
    comps = make_dataset(SPACE, "chain", 300, rng)
    net = ibn_network(SPACE, comps).network
    again = ibn_network(SPACE, comps).network
    np.testing.assert_array_equal(net.var_E, again.var_E)
    ib = net.kind_E == IB
    nodes = np.array(ibn_network(SPACE, comps).labels)
    d = np.linalg.norm(nodes[net.u_E[ib], 1:] - nodes[net.v_E[ib], 1:], axis=1)
    kappa = net.var_E[ib] / (SPACE.c * d**SPACE.gamma)
    prompt = nodes[net.u_E[ib], 0]
    for p in np.unique(prompt):
        k = kappa[prompt == p]
        np.testing.assert_allclose(k, k[0], rtol=1e-12)
        assert 2.0 < k[0] < 50.0
