"""The vector reward model and the ArmoRM-style model (`rm.multidim`): the loss's parts against their
formulas, masked heads, heads that learn their own dimension, ridge regression, the frozen embedding's
kernel, and the gate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from rm_theory.rm import multidim as rmm
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.step import TrainConfig
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace

H, C = 3, 2


def _vc(feature_dim: int = 4, hidden=(16,)) -> rmm.VectorConfig:
    """H = 3 heads, the last the harmlessness head (the cost is its negation)."""
    return rmm.VectorConfig(
        ModelConfig(family="mlp", input="features", feature_dim=feature_dim, hidden=hidden), H, 2, C
    )


def _batch(rng, B=8, F=4):
    return {
        "xa": jnp.asarray(rng.normal(size=(B, F)), jnp.float32),
        "xb": jnp.asarray(rng.normal(size=(B, F)), jnp.float32),
        "y": jnp.asarray(rng.random((B, H)) < 0.5, jnp.float32),
        "m": jnp.asarray(rng.random((B, H)) < 0.6, jnp.float32),
        "xi": jnp.asarray(rng.normal(size=(2 * B, F)), jnp.float32),
        "safe": jnp.asarray(rng.random(2 * B) < 0.5, jnp.float32),
        "cat": jnp.asarray(rng.random((2 * B, C)) < 0.3, jnp.float32),
        "sev": jnp.asarray(rng.integers(0, 4, 2 * B), jnp.int32),
        "im": jnp.ones(2 * B, jnp.float32),
    }


def test_vector_loss_parts_match_their_formulas():
    vc = _vc()
    model = rmm.VectorScorer(vc, nnx.Rngs(0))
    batch = _batch(np.random.default_rng(0))
    total, aux = rmm.vector_loss(model, batch, jnp.ones(6), vc)
    out_a, out_b, out_i = (np.asarray(model(batch[k]), np.float64) for k in ("xa", "xb", "xi"))
    y, m = np.asarray(batch["y"]), np.asarray(batch["m"])
    d = out_a[:, :H] - out_b[:, :H]
    bt = -(y * np.log(1 / (1 + np.exp(-d))) + (1 - y) * np.log(1 / (1 + np.exp(d))))
    bt_expected = sum((bt[:, h] * m[:, h]).sum() / max(m[:, h].sum(), 1) for h in range(H))
    cost = -out_i[:, vc.harm_head]
    s = 1 - 2 * np.asarray(batch["safe"])
    sign_expected = np.mean(np.log1p(np.exp(-s * cost)))
    logits = out_i[:, H : H + C]
    cat_expected = np.mean(np.asarray(optax.sigmoid_binary_cross_entropy(logits, np.asarray(batch["cat"]))))
    sev_logits = out_i[:, H + C :]
    lse = np.log(np.exp(sev_logits).sum(1))
    sev_expected = np.mean(lse - sev_logits[np.arange(len(sev_logits)), np.asarray(batch["sev"])])
    for key, want in (
        ("bt", bt_expected),
        ("sign", sign_expected),
        ("category", cat_expected),
        ("severity", sev_expected),
    ):
        assert float(aux[key]) == pytest.approx(want, rel=1e-4), key
    assert float(total) == pytest.approx(sum(float(aux[k]) for k in rmm.LOSS_TERMS), rel=1e-5)


def test_masked_labels_do_not_enter_the_loss_and_weights_switch_terms_off():
    vc = _vc()
    model = rmm.VectorScorer(vc, nnx.Rngs(0))
    batch = _batch(np.random.default_rng(1))
    flipped = dict(batch, y=jnp.where(batch["m"] > 0, batch["y"], 1 - batch["y"]))
    coefs = jnp.ones(6)
    assert float(rmm.vector_loss(model, batch, coefs, vc)[0]) == pytest.approx(
        float(rmm.vector_loss(model, flipped, coefs, vc)[0])
    )
    only_bt = jnp.array([1.0, 0, 0, 0, 0, 0])
    changed = dict(batch, safe=1 - batch["safe"], cat=1 - batch["cat"])
    assert float(rmm.vector_loss(model, batch, only_bt, vc)[0]) == float(
        rmm.vector_loss(model, changed, only_bt, vc)[0]
    )


def _planted(n=512, F=4, seed=0):
    """Features whose coordinate h decides head h's labels; head 2 (harmlessness) has no preference
    label, only the items' safety labels, from coordinate 3."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2 * n, F)).astype(np.float32)
    a, b = np.arange(n), n + np.arange(n)
    y = np.stack([x[a, h] > x[b, h] for h in range(H)], 1)
    mask = np.ones((n, H), bool)
    mask[:, 2] = False
    safe = x[:, 3] < 0.5
    present = np.stack([(~safe) & (x[:, 0] > 0), (~safe) & (x[:, 0] <= 0)], 1)
    sev = np.where(safe, 0, 1 + (x[:, 3] > 1.0) + (x[:, 3] > 1.5))
    return rmm.VectorData(x, a, b, y, mask, safe, present, sev, np.ones(2 * n, bool)), x


def test_each_head_learns_its_own_dimension_and_the_cost_heads_their_labels():
    data, x = _planted()
    vc = _vc(hidden=(32,))
    vtc = rmm.VectorTrainConfig(TrainConfig(ensemble_size=2, steps=400, batch_size=64, lr=1e-2, warmup_steps=20))
    ens = rmm.train_vector_ensemble(vc, vtc, data, jax.random.key(0))
    assert ens.loss_KxS.shape == (2, 400) and ens.loss_KxS[:, -50:].mean() < ens.loss_KxS[:, :20].mean()
    rng = np.random.default_rng(9)
    xt = rng.normal(size=(400, 4)).astype(np.float32)
    parts = ens.split(ens.outputs(xt))
    pref = parts["pref"].mean(0)
    for h in range(2):  # labelled heads rank by their own coordinate, not the other's
        own = np.corrcoef(pref[:, h], xt[:, h])[0, 1]
        other = np.corrcoef(pref[:, h], xt[:, 1 - h])[0, 1]
        assert own > 0.9 and abs(other) < 0.3, (h, own, other)
    # The cost is minus the harmlessness head, trained by the sign term alone here: it ranks by x3.
    np.testing.assert_allclose(parts["cost"], -parts["pref"][..., 2])
    assert np.corrcoef(parts["cost"].mean(0), xt[:, 3])[0, 1] > 0.8
    assert parts["category"].shape == (2, 400, C) and parts["severity"].shape == (2, 400, 4)


def test_same_key_same_ensemble_and_data_sizes_share_one_program():
    data, _ = _planted(n=200)
    vc, vtc = _vc(), rmm.VectorTrainConfig(TrainConfig(ensemble_size=2, steps=20, batch_size=16, warmup_steps=2))
    a = rmm.train_vector_ensemble(vc, vtc, data, jax.random.key(3))
    b = rmm.train_vector_ensemble(vc, vtc, data, jax.random.key(3))
    np.testing.assert_array_equal(a.loss_KxS, b.loss_KxS)
    smaller, _ = _planted(n=150)
    before = rmm._train._cache_size()
    rmm.train_vector_ensemble(vc, vtc, smaller, jax.random.key(3))
    assert rmm._train._cache_size() == before  # padded to the same bucket: no new compile


def test_mismatched_heads_are_refused():
    data, _ = _planted()
    with pytest.raises(ValueError, match="3 heads and 2 categories, the model 4 and 2"):
        rmm.train_vector_ensemble(
            rmm.VectorConfig(_vc().trunk, 4, 1, 2), rmm.VectorTrainConfig(), data, jax.random.key(0)
        )


def test_ridge_solves_the_penalised_normal_equations():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(50, 6)), rng.normal(size=(50, 2))
    W, b = rmm.ridge(X, Y, alpha=3.0)
    # Augmented least squares on centred data: [Xc; √α I] W = [Yc; 0].
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    W_ref = np.linalg.lstsq(np.vstack([Xc, np.sqrt(3.0) * np.eye(6)]), np.vstack([Yc, np.zeros((6, 2))]), rcond=None)[0]
    np.testing.assert_allclose(W, W_ref, atol=1e-10)
    np.testing.assert_allclose(b, Y.mean(0) - X.mean(0) @ W, atol=1e-12)


def test_frozen_embedding_carries_the_prefix_trees_prior_covariance():
    space = PrefixTreeSpace(V=4, L=6, num_prompts=2, seed=0)
    rng = np.random.default_rng(0)
    a, b = space.sample_with_common_depth(rng, np.zeros(300, np.int64), 3)
    phi_a, phi_b = rmm.frozen_embedding(space, a, 4096), rmm.frozen_embedding(space, b, 4096)
    # Σ_{j ≤ 3} s_j² / Σ_j s_j²: the shared prefix's share of a unit field's variance.
    want = space.s2_L[:3].sum() / space.s2_L.sum()
    norm2 = (phi_a * phi_a).sum(1)
    assert np.mean(np.abs(norm2 - 1) < 1e-9) > 0.95  # off 1 only where two prefixes share a slot
    assert np.mean((phi_a * phi_b).sum(1)) == pytest.approx(want, abs=0.02)


def test_frozen_embedding_of_the_metric_space_is_a_unit_kernel_decreasing_with_distance():
    space = MetricSpace(num_prompts=2, seed=0)
    rng = np.random.default_rng(0)
    x = space.sample(rng, np.zeros(400, np.int64))
    phi = rmm.frozen_embedding(space, x, 1024)
    assert np.mean((phi**2).sum(1)) == pytest.approx(1.0, abs=0.15)
    k = phi @ phi.T
    d = np.linalg.norm(x.data[:, None] - x.data[None], axis=-1)
    assert k[d < 0.05].mean() > k[(d > 0.3) & (d < 0.5)].mean()
    other = rmm.frozen_embedding(space, space.sample(rng, np.ones(5, np.int64)), 1024)
    assert np.all((phi[:5] * other).sum(1) == 0)  # prompts' fields are independent: disjoint blocks


def test_the_gate_learns_which_attribute_each_prompt_is_judged_by():
    """Prompt 0's preferences follow attribute 0, prompt 1's attribute 1: the gate puts its weight there."""
    rng = np.random.default_rng(0)
    n, P = 600, 2
    phi = rng.normal(size=(2 * n, 8))
    ratings = phi[:, :2] * 1.0 + 2.0
    prompt = np.repeat(rng.integers(0, P, n), 2).reshape(n, 2).T.ravel()
    a, b = np.arange(n), n + np.arange(n)
    attr = prompt[a]
    y = ratings[a, attr] > ratings[b, attr]
    model = rmm.fit_armorm(
        phi, ratings, prompt, P, a, b, y, rmm.ArmoConfig(ridge_alpha=1e-3, steps=300), jax.random.key(0)
    )
    w = model.weights(np.arange(P))
    assert w[0, 0] > 0.8 and w[1, 1] > 0.8, w
    np.testing.assert_allclose(model.attributes(phi), ratings, atol=1e-2)
    assert model.loss_S[-1] < model.loss_S[0]
