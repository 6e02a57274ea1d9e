"""The IBN of a trained model (`real.model_ibn`): head-gradient features against their closed forms,
squared-Euclidean IB edges against brute force and networkx, the IB scale fitted on training items
only, the Laplace variance against the Hessian of the regularised Bradley–Terry loss, and the scores
(AUROC, Spearman, quantile accuracy) against their definitions."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from rm_theory.ibn.real import IBNConfig, ib_edges, knn_edges, mst_edges
from rm_theory.lm import load_score_model
from rm_theory.real.fixtures import write_tiny_encoder
from rm_theory.real.model_ibn import (
    ModelIBNConfig,
    auroc,
    fit_ib_scale,
    head_gradients,
    laplace_variance,
    p_wrong,
    predictor_scores,
    predictors,
    quantile_accuracy,
    spearman,
    unit_rows,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_encoder(tmp_path_factory.mktemp("tiny"), seed=3)


def test_pooled_vectors_are_what_the_head_reads(tiny):
    model = load_score_model(tiny, pooling="mean", seed=1)
    ids, types = model.encode(["a short text", "another, somewhat longer text here", "x"])
    h_NxH = model.pooled_ids(ids, types, batch_size=2)
    assert h_NxH.shape == (3, model.net.cfg.hidden)
    np.testing.assert_allclose(np.asarray(model.net.head(h_NxH))[:, 0], model.logits_ids(ids, types)[:, 0], atol=1e-5)


def test_a_linear_heads_gradient_features_are_the_pooled_vector_and_one(tiny):
    model = load_score_model(tiny, pooling="mean", seed=1)
    h_NxH = np.random.default_rng(0).normal(size=(5, model.net.cfg.hidden)).astype(np.float32)
    g_NxD = head_gradients(model, h_NxH, dim=10_000)
    # the head's leaves in the state's order: the bias (∂r/∂b = 1), then the kernel (∂r/∂W[:, 0] = h)
    assert model.net.num_labels == 1
    np.testing.assert_allclose(g_NxD, np.concatenate([np.ones((5, 1)), h_NxH], 1), atol=1e-6)


def test_the_bert_pooler_heads_gradient_features_match_the_chain_rule(tiny):
    model = load_score_model(tiny, pooling="cls", seed=1)
    head = model.net.head
    H = model.net.cfg.hidden
    h = np.random.default_rng(1).normal(size=(4, H)).astype(np.float32)
    g = head_gradients(model, h, dim=100_000)
    W1, b1 = np.asarray(head.dense.kernel[...]), np.asarray(head.dense.bias[...])
    w2 = np.asarray(head.out.kernel[...])[:, 0]
    z = np.tanh(h @ W1 + b1)
    dz = (1 - z**2) * w2  # ∂r/∂(pre-activation)
    for n in range(4):
        expect = np.concatenate([dz[n], np.outer(h[n], dz[n]).ravel(), [1.0], z[n]])
        # the same multiset of partial derivatives (the flattening order is the state's)
        got = g[n]
        assert len(got) >= len(expect)
        np.testing.assert_allclose(
            np.sort(got[np.abs(got) > 0]), np.sort(expect[np.abs(expect) > 0]), rtol=1e-4, atol=1e-6
        )


def test_a_wide_head_is_projected_and_keeps_squared_distances_on_average(tiny):
    model = load_score_model(tiny, pooling="cls", seed=1)
    h = np.random.default_rng(2).normal(size=(40, model.net.cfg.hidden)).astype(np.float32)
    full, proj = head_gradients(model, h, dim=100_000), head_gradients(model, h, dim=256, seed=5)
    assert proj.shape[1] == 256 < full.shape[1]
    pairs = np.array(list(itertools.combinations(range(40), 2)))
    d_full = np.square(full[pairs[:, 0]] - full[pairs[:, 1]]).sum(1)
    d_proj = np.square(proj[pairs[:, 0]] - proj[pairs[:, 1]]).sum(1)
    assert np.mean(d_proj / d_full) == pytest.approx(1.0, abs=0.1)


def test_squared_euclidean_edges_against_brute_force_and_networkx():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(30, 5))
    u, v, d2 = knn_edges(e, 3, block=7, metric="sqeuclidean")
    D = np.square(e[:, None] - e[None]).sum(-1)
    np.fill_diagonal(D, np.inf)
    nn = np.argsort(D, axis=1)[:, :3]
    expect = {tuple(sorted((i, int(j)))) for i in range(30) for j in nn[i]}
    assert set(zip(u.tolist(), v.tolist(), strict=True)) == expect
    np.testing.assert_allclose(d2, D[u, v])
    mu, mv, md2 = mst_edges(e, metric="sqeuclidean")
    g = nx.Graph()
    g.add_weighted_edges_from((i, j, D[i, j]) for i in range(30) for j in range(i + 1, 30))
    assert md2.sum() == pytest.approx(nx.minimum_spanning_tree(g).size(weight="weight"))
    # ib_edges: each edge once, distances as stated
    uu, vv, delta = ib_edges(e, IBNConfig(k=3, metric="sqeuclidean"))
    assert len(set(zip(uu.tolist(), vv.tolist(), strict=True))) == len(uu)
    np.testing.assert_allclose(delta, D[uu, vv])
    with pytest.raises(ValueError, match="metric"):
        knn_edges(e, 3, metric="manhattan")


def test_the_ib_scale_is_the_median_over_training_edges_only():
    u = np.array([0, 1, 2, 3])
    v = np.array([1, 2, 3, 4])
    delta = np.array([1.0, 2.0, 0.5, 4.0])
    r = np.array([0.0, 1.0, 3.0, 3.0, 10.0])
    fit = np.array([True, True, True, False, False])
    c, used = fit_ib_scale(delta, u, v, r, fit, gamma=1.0)
    assert used == 2 and c == pytest.approx(np.median([1.0 / 1.0, 4.0 / 2.0]))
    r2 = r.copy()
    r2[3:] = [-50.0, 99.0]  # held-out items' rewards never enter the fit
    assert fit_ib_scale(delta, u, v, r2, fit, 1.0)[0] == c
    with pytest.raises(ValueError, match="training items"):
        fit_ib_scale(delta, u, v, r, np.zeros(5, bool), 1.0)


def test_laplace_variance_is_the_inverse_hessian_of_the_regularised_bradley_terry_loss():
    rng = np.random.default_rng(0)
    N, D, lam = 12, 4, 0.7
    g = rng.normal(size=(N, D))
    w = rng.normal(size=D)
    a_P, b_P = rng.integers(0, N, 20), rng.integers(0, N, 20)
    y = rng.integers(0, 2, 20).astype(float)
    a_Q, b_Q = np.array([0, 3, 5]), np.array([1, 4, 9])

    def loss(w_):
        d = (jnp.asarray(g[a_P]) - jnp.asarray(g[b_P])) @ w_
        return jnp.sum(jnp.logaddexp(0.0, -d) * y + jnp.logaddexp(0.0, d) * (1 - y)) + 0.5 * lam * w_ @ w_

    Hm = np.asarray(jax.hessian(loss)(jnp.asarray(w)))
    d = g[a_Q] - g[b_Q]
    expect = np.einsum("qd,dq->q", d, np.linalg.solve(Hm, d.T))
    np.testing.assert_allclose(laplace_variance(g, a_P, b_P, g @ w, a_Q, b_Q, lam), expect, rtol=1e-6)  # jax: float32


def test_scores_against_their_definitions():
    v = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    wrong = np.array([0, 1, 0, 1, 0, 0], float)
    # AUROC: P(v_wrong > v_right) over all (wrong, right) pairs
    pos, neg = v[wrong == 1], v[wrong == 0]
    assert auroc(v, wrong) == pytest.approx(np.mean([p > n for p in pos for n in neg]))
    assert np.isnan(auroc(v, np.zeros(6)))
    assert np.isnan(spearman(v, np.ones(6))) and spearman(v, 2 * v + 1) == pytest.approx(1.0)
    hit = 1 - wrong
    hit[2] = np.nan  # a labelled tie is left out
    acc = quantile_accuracy(v, hit, 5)
    # five bins of the five counted pairs, lowest v first: 0.1, 0.2, 0.4, 0.8, 0.9
    np.testing.assert_allclose(acc, [1, 1, 0, 0, 1])


def test_the_posterior_probability_of_a_wrong_sign_weighs_variance_against_margin():
    margin = np.array([0.0, 1.0, -1.0, 2.0])
    var = np.array([1.0, 1.0, 4.0, 0.25])
    # Φ(−|Δ|/√v): 1/2 at no margin, Φ(−1), Φ(−1/2), Φ(−4)
    np.testing.assert_allclose(p_wrong(margin, var), [0.5, 0.158655254, 0.308537539, 3.16712418e-05], rtol=1e-7)
    hit = np.array([0.0, 1.0, 0.0, 1.0])
    rows = predictor_scores({"ensemble": var, "ibn_x": var * 2}, hit, margin, q=2)
    by = {r["predictor"]: r for r in rows}
    assert set(by) == {"ensemble", "ibn_x", "margin"}
    assert by["ibn_x"]["spearman"] == pytest.approx(1.0) and np.isnan(by["ensemble"]["spearman"])
    assert by["ensemble"]["auroc_pwrong"] == pytest.approx(1.0)  # both wrong pairs are the most likely wrong
    # the confidence −|Δ| alone: wrong |Δ| 0 and 1 against right 1 and 2 (the tie counts half)
    assert by["margin"]["auroc"] == pytest.approx(0.875)


def test_predictors_fit_their_scales_on_training_items_alone():
    rng = np.random.default_rng(4)
    N = 40
    h = rng.normal(size=(N, 6))
    s = rng.normal(size=(3, N))
    a_P, b_P = np.arange(0, 20, 2), np.arange(1, 20, 2)
    a_Q, b_Q = np.arange(20, 40, 2), np.arange(21, 40, 2)
    reps = {"hidden": (unit_rows(h), "cosine"), "gradient": (h, "sqeuclidean")}
    cfg = ModelIBNConfig(k=4)
    pred, info = predictors(reps, h, s, a_P, b_P, a_Q, b_Q, cfg)
    assert set(pred) == {"ibn_hidden", "ibn_gradient", "fisher", "ensemble"}
    assert all(np.isfinite(x).all() and (x >= 0).all() and len(x) == 10 for x in pred.values())
    s2 = s.copy()
    s2[:, 20:] += rng.normal(size=(3, 20)) * 5  # change the held-out items' scores only
    pred2, info2 = predictors(reps, h, s2, a_P, b_P, a_Q, b_Q, cfg)
    assert info2["ib_scale_hidden"] == info["ib_scale_hidden"]
    np.testing.assert_allclose(pred2["ibn_gradient"], pred["ibn_gradient"])
