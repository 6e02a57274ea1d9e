"""Structural function: regime fits on exact curves, clustering estimates of F(M)."""

import numpy as np
import pytest

from rm_theory.ibn import Network
from rm_theory.ibn.structural import (
    REGIMES,
    fit_regime,
    kmeans_labels,
    power_distance,
    regime_curve,
    structural_function_by_clustering,
    within_cluster_pairs,
)

M_K = np.array([1, 2, 4, 8, 16, 64, 256, 1024, 4096, 2**16], dtype=float)


@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_fit_recovers_exact_regime(regime, alpha):
    fit = fit_regime(M_K, regime_curve(M_K, regime, 3.0, alpha))
    assert fit.best == regime
    p = fit.fits[regime]
    assert p.alpha == pytest.approx(alpha, abs=1e-6)
    assert p.I == pytest.approx(3.0, rel=1e-6)
    assert p.r2 == pytest.approx(1.0, abs=1e-12)
    others = [fit.fits[r].r2 for r in REGIMES if r != regime]
    assert max(others) < 1.0 - 1e-6
    np.testing.assert_allclose(fit.predict(M_K), regime_curve(M_K, regime, 3.0, alpha), rtol=1e-6)


def test_fit_rejects_bad_points():
    with pytest.raises(ValueError, match="point 1"):
        fit_regime([1, 4, 16], [1.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="two distinct"):
        fit_regime([4, 4], [1.0, 1.0])


def test_within_cluster_pairs_are_within_clusters():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 2, 2, 2, 3])
    pairs = within_cluster_pairs(labels, 500, rng)
    assert pairs.shape == (500, 2)
    assert np.all(labels[pairs[:, 0]] == labels[pairs[:, 1]])
    assert np.all(pairs[:, 0] != pairs[:, 1])
    assert not np.isin(pairs, [2, 6]).any()  # singletons cannot pair
    # a is uniform over the 5 pairable responses, so cluster 2 gets about 3/5 of the pairs.
    assert abs(np.mean(labels[pairs[:, 0]] == 2) - 0.6) < 0.08
    assert within_cluster_pairs(np.arange(4), 10, rng).shape == (0, 2)


def test_metric_geometry_gives_polynomial_exponent():
    # Uniform points in [0,1]^k with IB variance dist^gamma: F(M) ~ M^(-gamma/k) (THEORY.md §2).
    rng = np.random.default_rng(1)
    k, gamma = 2, 2.0
    X = rng.random((4000, k))
    Ms = [4, 16, 64, 256]
    curve = structural_function_by_clustering(
        Ms, rng, X_NxD=X, pair_distance=power_distance(1.0, gamma), num_pairs=2000
    )
    fit = fit_regime(curve.M_K, curve.F_K)
    assert fit.fits["polynomial"].alpha == pytest.approx(gamma / k, abs=0.15)
    assert np.all(np.diff(curve.F_K) < 0)


def _trie(V: int, L: int, s2_J: np.ndarray) -> tuple[Network, np.ndarray, np.ndarray]:
    """Complete V-ary trie with parent-child variance s2_J[j-1] at depth j; leaves in order."""
    u, v, var, first, nodes = [], [], [], [0], 1
    for j in range(1, L + 1):
        count = V**j
        child = np.arange(nodes, nodes + count)
        parent = first[-1] + np.arange(count) // V
        u.append(parent)
        v.append(child)
        var.append(np.full(count, s2_J[j - 1]))
        first.append(nodes)
        nodes += count
    leaf_N = np.arange(first[-1], nodes)
    # Leaves i and i' share a depth-k prefix iff i // V^(L-k) agree.
    return Network(nodes, np.concatenate(u), np.concatenate(v), np.concatenate(var)), leaf_N, np.arange(V**L)


def test_trie_ib_distance_by_prefix_clusters_is_delta():
    # On the IB trie alone, leaves with LCA at depth k are Δ(k) = 2 Σ_{j>k} s_j^2 apart.
    V, L = 3, 5
    s2_J = np.array([0.5, 0.3, 0.2, 0.1, 0.05])
    net, leaf_N, idx = _trie(V, L, s2_J)
    hp = Network(
        net.num_nodes,
        np.r_[net.u_E, leaf_N[0]],
        np.r_[net.v_E, leaf_N[-1]],
        np.r_[net.var_E, 0.01],
        np.r_[np.zeros(net.num_edges, np.int8), 1],
    )
    rng = np.random.default_rng(0)
    for method in ("path", "resistance"):
        ks = [1, 2, 3]
        curve = structural_function_by_clustering(
            [V**k for k in ks],
            rng,
            labels_fn=lambda M: idx // (V**L // M),
            net=hp,
            node_N=leaf_N,
            method=method,
            num_pairs=400,
        )
        # Within a depth-k cluster the LCA is at depth >= k: F lies in [Δ(L-1), Δ(k)].
        delta = lambda k: 2 * s2_J[k:].sum()
        for k, F in zip(ks, curve.F_K, strict=True):
            assert delta(L - 1) - 1e-12 <= F <= delta(k) + 1e-12
        assert np.all(np.diff(curve.F_K) < 0)


def test_kmeans_labels_seeded():
    X = np.random.default_rng(0).random((300, 3))
    a = kmeans_labels(X, 8, np.random.default_rng(5))
    b = kmeans_labels(X, 8, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (300,) and a.max() < 8


def test_structural_argument_checks():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="exactly one"):
        structural_function_by_clustering([2], rng, X_NxD=np.zeros((4, 2)))


def test_a_regime_within_noise_of_another_is_indeterminate():
    M_K = np.array([2.0, 4, 8, 16, 32, 64, 128])
    F_K = regime_curve(M_K, "polynomial", 2.0, 0.8)
    clear = fit_regime(M_K, F_K, sem_K=0.01 * F_K)
    assert clear.best == clear.leading == "polynomial" and clear.margin > 4
    rng = np.random.default_rng(0)
    flat = 0.1 * (1 + 0.05 * rng.normal(size=M_K.size))  # a flat F with 5% noise
    vague = fit_regime(M_K, flat, sem_K=0.05 * flat)
    assert vague.best == "indeterminate" and vague.leading in vague.fits
    assert np.isfinite(vague.predict(M_K)).all()  # the leading curve can still be drawn
