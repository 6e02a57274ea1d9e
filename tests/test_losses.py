"""Mathematical properties of the reward/cost losses (rm_theory/rm/losses.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rm_theory.rm import losses as L

# Jitted once per shape: eager JAX would compile every small op separately.
bt_loss = jax.jit(L.bt_loss)
score_l2 = jax.jit(L.score_l2)
centring = jax.jit(L.centring)
plackett_luce_loss = jax.jit(L.plackett_luce_loss)
cost_sign_loss = jax.jit(L.cost_sign_loss)
cost_rank_loss = jax.jit(L.cost_rank_loss)
safe_rlhf_cost_loss = jax.jit(L.safe_rlhf_cost_loss)
harm_bce = jax.jit(L.harm_bce)


def _rand(seed: int, *shape: int) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape)


def test_bt_matches_hand_formula_and_ties():
    r_a, r_b = jnp.array([1.0, -0.5, 2.0]), jnp.array([0.0, 0.5, 2.0])
    y = jnp.array([1.0, 0.0, 0.5])
    d = np.array([1.0, -1.0, 0.0])
    want = np.array(
        [np.log1p(np.exp(-d[0])), np.log1p(np.exp(d[1])), np.log(2.0)]
    )  # −log σ(d), −log σ(−d), tie at d = 0 is log 2 either way
    np.testing.assert_allclose(bt_loss(r_a, r_b, y), want, rtol=1e-6)


def test_bt_shift_invariance_and_antisymmetry():
    r_a, r_b, y = _rand(0, 64), _rand(1, 64), jax.random.uniform(jax.random.key(2), (64,))
    base = bt_loss(r_a, r_b, y, margin=0.3)
    np.testing.assert_allclose(bt_loss(r_a + 7.5, r_b + 7.5, y, 0.3), base, atol=1e-5)
    np.testing.assert_allclose(bt_loss(r_b, r_a, 1 - y, 0.3), base, atol=1e-6)


def test_bt_margin_demands_a_gap():
    r_a, r_b, y = jnp.array([1.0]), jnp.array([0.0]), jnp.array([1.0])
    assert bt_loss(r_a, r_b, y, margin=1.0)[0] == pytest.approx(np.log(2.0), rel=1e-6)
    assert bt_loss(r_a, r_b, y, margin=0.5) < bt_loss(r_a, r_b, y, margin=1.0)


def test_bt_gradient_is_sigma_minus_label():
    # d/dr_a of −[y log σ(d) + (1−y) log σ(−d)] = σ(d) − y.
    r_a, r_b, y = _rand(3, 16), _rand(4, 16), jax.random.uniform(jax.random.key(5), (16,))
    g = jax.jit(jax.grad(lambda ra: jnp.sum(L.bt_loss(ra, r_b, y))))(r_a)
    np.testing.assert_allclose(g, jax.nn.sigmoid(r_a - r_b) - y, atol=1e-6)


def test_regularisers():
    r = jnp.array([1.0, 3.0])
    assert float(score_l2(r)) == pytest.approx(5.0)
    assert float(centring(r)) == pytest.approx(4.0)


def test_plackett_luce_k2_is_bradley_terry():
    r = _rand(6, 10, 2)
    pl = plackett_luce_loss(r, jnp.ones((10, 2), bool))
    np.testing.assert_allclose(pl, bt_loss(r[:, 0], r[:, 1], jnp.ones(10)), atol=1e-5)


def test_plackett_luce_hand_formula_and_shift_invariance():
    r = jnp.array([[2.0, 1.0, 0.0]])
    e = np.exp([2.0, 1.0, 0.0])
    want = -(np.log(e[0] / e.sum()) + np.log(e[1] / e[1:].sum()))
    valid = jnp.ones((1, 3), bool)
    assert float(plackett_luce_loss(r, valid)[0]) == pytest.approx(want, rel=1e-6)
    r5 = _rand(7, 8, 5)
    v5 = jnp.ones((8, 5), bool)
    np.testing.assert_allclose(plackett_luce_loss(r5 - 3.0, v5), plackett_luce_loss(r5, v5), atol=1e-5)


def test_plackett_luce_masks_ragged_groups():
    r = _rand(8, 4, 5)
    valid = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    got = plackett_luce_loss(r, valid)
    for g, k in enumerate([3, 5, 2, 1]):
        alone = plackett_luce_loss(r[g : g + 1, :k], jnp.ones((1, k), bool))
        np.testing.assert_allclose(got[g], alone[0], atol=1e-5)
    assert float(got[3]) == pytest.approx(0.0, abs=1e-6)  # a single item carries no order
    # Padded scores do not matter, and their gradients are exactly zero.
    garbage = r.at[:, 3:].set(1e3)
    np.testing.assert_allclose(plackett_luce_loss(garbage, valid)[:1], got[:1], atol=1e-5)
    g = jax.jit(jax.grad(lambda x: jnp.sum(L.plackett_luce_loss(x, valid))))(r)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~np.asarray(valid)] == 0)


def test_plackett_luce_gradient_matches_finite_differences():
    r = _rand(9, 2, 4)
    valid = jnp.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
    f = jax.jit(lambda x: jnp.sum(L.plackett_luce_loss(x, valid)))
    g = np.asarray(jax.jit(jax.grad(f))(r))
    eps = 1e-2
    for idx in [(0, 0), (0, 3), (1, 1), (1, 2)]:
        e = np.zeros(r.shape, np.float32)
        e[idx] = eps
        fd = (f(r + e) - f(r - e)) / (2 * eps)
        assert g[idx] == pytest.approx(float(fd), abs=2e-3)


def test_cost_sign_convention():
    c = jnp.zeros(2)
    safe = jnp.array([1.0, 0.0])
    g = jax.jit(jax.grad(lambda c: jnp.sum(L.cost_sign_loss(c, safe))))(c)
    # Gradient descent moves c against the gradient: safe → negative, unsafe → positive.
    assert g[0] > 0 and g[1] < 0
    low = cost_sign_loss(jnp.array([-3.0, 3.0]), safe)
    high = cost_sign_loss(jnp.array([3.0, -3.0]), safe)
    assert np.all(low < 0.1) and np.all(high > 3.0)


def test_cost_rank_prefers_lower_cost_for_the_safer():
    # safer = 1: a is safer, so the loss is small when c_a < c_b.
    good = cost_rank_loss(jnp.array([-1.0]), jnp.array([1.0]), jnp.array([1.0]))
    bad = cost_rank_loss(jnp.array([1.0]), jnp.array([-1.0]), jnp.array([1.0]))
    assert good[0] < 0.2 < 2.0 < bad[0]


def test_safe_rlhf_cost_loss_is_the_sum_of_its_terms():
    c_a, c_b = _rand(10, 6), _rand(11, 6)
    safer = jnp.array([1.0, 0.0, 1.0, 0.0, 0.5, 1.0])
    s_a, s_b = jnp.array([1.0, 0, 1, 1, 0, 0]), jnp.array([0.0, 1, 0, 1, 0, 1])
    total = safe_rlhf_cost_loss(c_a, c_b, safer, s_a, s_b)
    # Hand formula of Dai et al. eq. 6: −log σ(c_u − c_s) − log σ(s_a c_a) − log σ(s_b c_b).
    sig = lambda z: 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    ca, cb, y = map(np.asarray, (c_a, c_b, safer))
    rank = -(y * np.log(sig(cb - ca)) + (1 - y) * np.log(sig(ca - cb)))
    sa, sb = 1 - 2 * np.asarray(s_a), 1 - 2 * np.asarray(s_b)
    want = rank - np.log(sig(sa * ca)) - np.log(sig(sb * cb))
    np.testing.assert_allclose(total, want, rtol=1e-5)


def test_harm_bce():
    logits = jnp.array([[0.0, 10.0], [-10.0, 0.0]])
    harm = jnp.array([[1, 1], [0, 1]], bool)
    np.testing.assert_allclose(
        harm_bce(logits, harm),
        [(np.log(2) + np.log1p(np.exp(-10))) / 2, (np.log1p(np.exp(-10)) + np.log(2)) / 2],
        rtol=1e-5,
    )
