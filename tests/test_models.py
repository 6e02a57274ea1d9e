"""Reward/cost model scorers: padding and batch-size invariance, heads, factory."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rm_theory.rm.models import (
    ModelConfig,
    init_model,
    last_real_index,
    make_model,
    real_positions,
)

V, MAX_LEN = 12, 16


@functools.cache
def _scorer(cfg: ModelConfig, seed: int = 0):
    """A jitted (scores, harm logits) function of a fixed model (cached: compiles are slow)."""
    graphdef, state = init_model(cfg, jax.random.key(seed))
    return jax.jit(lambda x: nnx.merge(graphdef, state).score_and_harm(x))


def _score(cfg: ModelConfig, tok: np.ndarray, seed: int = 0, rows: int = 24, T: int = 16):
    """Scores of `tok`, evaluated inside a zero-padded (rows, T) batch so that tests share one
    compiled shape; the padding itself is what the invariance test checks."""
    n = len(tok)
    full = np.zeros((rows, T), np.int32)
    full[:n, : tok.shape[1]] = tok
    s, h = _scorer(cfg, seed)(full)
    return np.asarray(s)[:n], None if h is None else np.asarray(h)[:n]


def _seqs(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return [rng.integers(1, V, size=rng.integers(2, 10)) for _ in range(n)]


def _pad(seqs: list[np.ndarray], T: int, side: str) -> np.ndarray:
    out = np.zeros((len(seqs), T), np.int32)
    for i, s in enumerate(seqs):
        if side == "right":
            out[i, : len(s)] = s
        else:
            out[i, T - len(s) :] = s
    return out


def test_positions_and_last_index():
    tok = np.array([[0, 0, 5, 6], [5, 6, 0, 0], [5, 0, 6, 0]])
    mask, pos = real_positions(tok)
    np.testing.assert_array_equal(np.asarray(pos)[np.asarray(mask)], [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(last_real_index(mask), [3, 1, 2])


@pytest.mark.parametrize("family", ["transformer", "mlp"])
def test_token_scores_ignore_padding_and_batch_size(family):
    cfg = ModelConfig(family=family, vocab=V, max_len=MAX_LEN, harm_head=True, n_harm=5)
    seqs = _seqs(np.random.default_rng(1), 8)
    # One batch holds three paddings of each sequence: right to 10, left to 12, left to 16.
    s_all, h_all = _score(
        cfg,
        np.concatenate(
            [
                np.pad(_pad(seqs, 10, "right"), ((0, 0), (0, 6))),
                np.pad(_pad(seqs, 12, "left"), ((0, 0), (0, 4))),
                _pad(seqs, 16, "left"),
            ]
        ),
    )
    s_right, s_left, s_long = s_all[:8], s_all[8:16], s_all[16:]
    np.testing.assert_allclose(s_left, s_right, atol=1e-5)
    np.testing.assert_allclose(s_long, s_right, atol=1e-5)
    np.testing.assert_allclose(h_all[8:16], h_all[:8], atol=1e-5)
    assert h_all.shape == (24, 5)
    # Another batch size (its own compiled program) gives the same scores.
    s_sub, _ = _scorer(cfg)(_pad(seqs[2:5], 10, "right"))
    np.testing.assert_allclose(s_sub, s_right[2:5], atol=1e-5)
    # Not a constant function: different sequences score differently.
    assert np.std(s_right) > 1e-4


def test_mlp_slots_equal_the_one_hot_placement_in_value_and_gradient():
    """The token MLP's input, slot k = embedding of the k-th real token, is built on integer tokens;
    its definition is the float contraction of one-hot placements with the embeddings. Both agree
    exactly, gradients included, with pads inside a row and rows longer than max_len."""
    cfg = ModelConfig(family="mlp", vocab=V, max_len=4, embed_dim=3, hidden=(5,))
    model = make_model(cfg, nnx.Rngs(0))
    tok = np.array([[0, 5, 0, 6, 7, 0], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9], [0, 0, 0, 0, 0, 0]], np.int32)

    def reference(emb_VxE):
        mask, pos = real_positions(tok)
        place_BxTxL = jax.nn.one_hot(pos, cfg.max_len) * mask[..., None]
        return jnp.einsum("btl,bte->ble", place_BxTxL, emb_VxE[tok]).reshape(len(tok), -1)

    emb = model.tok.embedding[...]
    slots = model._slots(jnp.asarray(tok))
    np.testing.assert_array_equal(slots, reference(emb))
    np.testing.assert_array_equal(slots[1], np.asarray(emb)[[1, 2, 3, 4]].ravel())  # 5th and 6th dropped
    w = jax.random.normal(jax.random.key(1), slots.shape)
    g_ref = jax.grad(lambda e: jnp.sum(w * reference(e)))(emb)
    g_new = nnx.grad(lambda m: jnp.sum(w * m._slots(jnp.asarray(tok))))(model)
    np.testing.assert_array_equal(g_new["tok"]["embedding"][...], g_ref)


@pytest.mark.parametrize("family", ["transformer", "mlp"])
def test_token_order_and_first_token_matter(family):
    cfg = ModelConfig(family=family, vocab=V, max_len=MAX_LEN, harm_head=True, n_harm=5)
    # The read-out at the last real token sees the whole sequence, in order.
    s, _ = _score(cfg, np.array([[3, 4, 5, 6], [6, 5, 4, 3], [7, 4, 5, 6]], np.int32))
    assert abs(s[0] - s[1]) > 1e-5 and abs(s[0] - s[2]) > 1e-5


def test_feature_mlp_and_factory():
    cfg = ModelConfig(family="mlp", input="features", feature_dim=7, hidden=(16,))
    f = _scorer(cfg)
    x = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    s, h = f(x)
    assert s.shape == (5,) and h is None
    s3, _ = f(x[:3])
    np.testing.assert_allclose(s3, s[:3], atol=1e-6)
    with pytest.raises(ValueError):
        make_model(ModelConfig(family="rnn"), nnx.Rngs(0))
    with pytest.raises(ValueError):
        make_model(ModelConfig(family="mlp", input="pixels"), nnx.Rngs(0))


def test_different_seeds_give_different_models():
    cfg = ModelConfig(family="transformer", vocab=V, max_len=MAX_LEN, harm_head=True, n_harm=5)
    tok = _pad(_seqs(np.random.default_rng(2), 4), 10, "right")
    s0, _ = _score(cfg, tok, seed=0)
    s1, _ = _score(cfg, tok, seed=1)
    assert not np.allclose(s0, s1)
