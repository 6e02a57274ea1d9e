"""Vector reward models on pretrained transformers (`lm.finetune(objective="vector")`, issue 26): the
loss against a hand computation, a one-head vector model trained as a reward model is one, two heads
learn two disagreeing dimensions from dual and from partial labels, the Hugging Face round trip
(transformers reads the same G + C + 4 logits), and the errors.

On the 2-layer random Llama of `tests/lm_tiny.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rm_theory.lm import FinetuneConfig, Pairs, finetune, load_score_model, pair_losses, save_score_model
from tests.lm_tiny import WORDS, hf_logits, hf_model, texts, write_tiny

CATS = ("violence", "privacy")
BASE = FinetuneConfig(
    objective="vector", batch_size=8, chunk_steps=4, buckets=1, lr=1e-2, warmup_frac=0.0, decay="constant", clip_norm=0
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("llama"), "llama", head=False, num_key_value_heads=2)


def vector_model(folder, heads=("helpful", "harmless"), cats=CATS, harm_head="harmless"):
    return load_score_model(folder, kind="vector", heads=heads, harm_categories=cats, harm_head=harm_head)


sig = lambda x: 1 / (1 + math.exp(-x))
bce = lambda z, t: -(t * math.log(sig(z)) + (1 - t) * math.log(sig(-z)))


def test_vector_loss_against_a_hand_computation():
    """G = 2 heads, C = 2 categories, 4 severities; pair 0 labelled on both heads with every side
    label, pair 1 on the second head only (a tie) with no side labels."""
    G, C = 2, 2
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1, 2, G + C + 4)), rng.normal(size=(1, 2, G + C + 4))
    batch = {
        "y": jnp.asarray([[1.0, 0.0], [np.nan, 0.5]]),
        "margin": jnp.asarray([0.2, 0.0]),
        "safe": jnp.asarray([[1.0, np.nan], [0.0, np.nan]]),
        "cat": jnp.asarray([[[0.0, 0.0], [np.nan, np.nan]], [[1.0, 0.0], [np.nan, 1.0]]]),
        "sev": jnp.asarray([[0, -1], [2, -1]]),
    }
    cfg = dataclasses.replace(BASE, margin=0.1, sign_coef=2.0, category_coef=0.5, severity_coef=3.0)
    loss, hit, counted = pair_losses(jnp.asarray(a), jnp.asarray(b), batch, cfg, harm_head=1)
    A, B = a[0], b[0]
    want0 = -math.log(sig(A[0, 0] - B[0, 0] - 0.3)) - math.log(sig(B[0, 1] - A[0, 1] - 0.3))
    want0 += 2.0 * (-math.log(sig(A[0, 1])) - math.log(sig(-B[0, 1])))  # a safe: c ≤ 0; b unsafe: c > 0
    want0 += 0.5 * (np.mean([bce(A[0, 2], 0), bce(A[0, 3], 0)]) + np.mean([bce(B[0, 2], 1), bce(B[0, 3], 0)]))
    logsm = lambda z: z - np.log(np.exp(z).sum())
    want0 += 3.0 * (-logsm(A[0, 4:])[0] - logsm(B[0, 4:])[2])
    d1 = A[1, 1] - B[1, 1]
    want1 = -0.5 * math.log(sig(d1 - 0.1)) - 0.5 * math.log(sig(-d1 - 0.1))  # a tie, the config's margin only
    np.testing.assert_allclose(loss[0], [want0, want1], rtol=1e-5)
    assert counted[0].tolist() == [2.0, 0.0]  # two labelled heads; a tie is not counted
    assert hit[0, 0] == float(A[0, 0] > B[0, 0]) + float(A[0, 1] < B[0, 1])


def test_a_one_head_vector_model_trains_exactly_as_a_reward_model(folder):
    """With no side labels the extra columns get no gradient: the preference column follows the
    reward objective's steps from the same start."""
    vec = vector_model(folder, heads=("helpful",), cats=(), harm_head=None)
    rew = load_score_model(folder)
    w = vec.net.head.score.kernel[...]
    rew.net.head.score.kernel.set_value(w[:, :1])
    rng = np.random.default_rng(1)
    ids = [vec.encode([" ".join(rng.choice(WORDS, int(rng.integers(1, 10))))])[0][0] for _ in range(32)]
    y = rng.integers(0, 2, 16).astype(np.float32)
    cfg = dataclasses.replace(BASE, mode="full", epochs=2, weight_decay=0.01)
    _, hist = finetune(vec, Pairs(ids[:16], ids[16:], y[:, None]), cfg, jax.random.key(2), progress=False)
    finetune(
        rew,
        Pairs(ids[:16], ids[16:], y),
        dataclasses.replace(cfg, objective="reward"),
        jax.random.key(2),
        progress=False,
    )
    np.testing.assert_allclose(vec.logits_ids(ids)[:, 0], rew.logits_ids(ids)[:, 0], rtol=1e-4, atol=1e-5)
    backbone = lambda m: dict(nnx.to_flat_state(nnx.state(m.net.backbone, nnx.Param)))
    for k, v in backbone(rew).items():
        np.testing.assert_allclose(np.asarray(backbone(vec)[k][...]), np.asarray(v[...]), rtol=1e-4, atol=1e-6)
    # the other columns only decay (decoupled weight decay, once a step): no loss term reached them
    assert hist[-1]["step"] == 4
    decayed = np.asarray(w)[:, 1:] * (1 - cfg.lr * cfg.weight_decay) ** 4
    np.testing.assert_allclose(np.asarray(vec.net.head.score.kernel[...])[:, 1:], decayed, rtol=1e-6)


def two_dimensions(model, n: int, seed: int):
    """Texts from the tiny vocabulary; dimension 0 prefers the one with more 'help', dimension 1 the
    one with fewer 'safe' (the dimensions disagree on about half the pairs); the responses' safety:
    no 'safe' word."""
    rng = np.random.default_rng(seed)
    words = [w for w in WORDS if w not in ("help", "safe")]

    def text():
        k = int(rng.integers(3, 10))
        t = list(rng.choice(words, k))
        for w in ("help", "safe"):
            t[: int(rng.integers(0, 3))] = [w] * min(int(rng.integers(0, 3)), k)
        rng.shuffle(t)
        return " ".join(t)

    ta, tb = [text() for _ in range(n)], [text() for _ in range(n)]
    help_ = lambda t: t.split().count("help")
    safe = lambda t: t.split().count("safe")
    keep = [i for i in range(n) if help_(ta[i]) != help_(tb[i]) and safe(ta[i]) != safe(tb[i])]
    ta, tb = [ta[i] for i in keep], [tb[i] for i in keep]
    y = np.array([[help_(a) > help_(b), safe(a) < safe(b)] for a, b in zip(ta, tb, strict=True)], np.float32)
    ids_a, ids_b = model.encode(ta)[0], model.encode(tb)[0]
    s_a = np.array([safe(t) == 0 for t in ta], np.float32)
    s_b = np.array([safe(t) == 0 for t in tb], np.float32)
    return ids_a, ids_b, y, s_a, s_b


@pytest.mark.parametrize("partial", [False, True])
def test_two_heads_learn_two_disagreeing_dimensions(folder, partial):
    """Dual labels (each pair on both heads) or partial ones (each pair on one head, as a mixture of
    data sets): each head ranks its own dimension's held-out pairs, and not the other's."""
    model = vector_model(folder, cats=())
    ids_a, ids_b, y, s_a, s_b = two_dimensions(model, 600, seed=0)
    n = len(y) * 3 // 4
    y_train = y[:n].copy()
    if partial:
        y_train[np.arange(n) % 2 == 0, 0] = np.nan
        y_train[np.arange(n) % 2 == 1, 1] = np.nan
    assert (y[:, 0] != y[:, 1]).mean() > 0.3
    pairs = Pairs(ids_a[:n], ids_b[:n], y_train, safe_a_P=s_a[:n], safe_b_P=s_b[:n])
    cfg = dataclasses.replace(BASE, mode="full", epochs=6, lr=3e-3)
    res, hist = finetune(model, pairs, cfg, jax.random.key(0), progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    out_a, out_b = res.logits_ids(ids_a[n:])[0], res.logits_ids(ids_b[n:])[0]
    right = (out_a[:, :2] > out_b[:, :2]) == (y[n:] > 0.5)
    acc = right.mean(0)
    assert acc.min() > 0.8, acc
    cross = ((out_a[:, 0] > out_b[:, 0]) == (y[n:, 1] > 0.5)).mean()
    assert cross < acc[0] - 0.2  # head 0 is not the other dimension's ranking
    assert out_a.shape[1] == 2 + 0 + 4


def test_vector_model_round_trip_and_transformers_reads_its_logits(folder, tmp_path):
    model = vector_model(folder)
    assert model.labels == [
        "pref:helpful",
        "pref:harmless",
        "harm:violence",
        "harm:privacy",
        *(f"severity:{i}" for i in range(4)),
    ]
    assert model.harm_head_index == 1
    ids, _ = model.encode(texts())
    ours = model.logits_ids(ids)
    assert ours.shape == (6, 8)
    out = save_score_model(model, tmp_path / "vec")
    config = json.loads((out / "config.json").read_text())
    assert config["rm_theory"]["heads"] == ["helpful", "harmless"] and config["rm_theory"]["harm_head"] == "harmless"
    assert config["id2label"]["1"] == "pref:harmless"
    np.testing.assert_allclose(hf_logits(hf_model(out), ids, model.tokenizer.pad_id), ours, atol=1e-4, rtol=0)
    again = load_score_model(out)
    assert (again.kind, again.heads, again.harm_head, again.harm_categories) == (
        "vector",
        model.heads,
        "harmless",
        CATS,
    )
    np.testing.assert_allclose(again.logits_ids(ids), ours, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="heads = \\['a'\\], but"):
        load_score_model(out, heads=["a"])
    with pytest.raises(ValueError, match="kind = 'reward', but"):
        load_score_model(out, kind="reward")


def test_errors_name_what_is_wrong(folder):
    with pytest.raises(ValueError, match="harm_head = 'x': not one of the heads"):
        vector_model(folder, harm_head="x")
    with pytest.raises(ValueError, match="at least one head"):
        load_score_model(folder, kind="vector")
    with pytest.raises(ValueError, match="only a kind='vector' model has named heads"):
        load_score_model(folder, heads=["a"])
    model = vector_model(folder)
    ids = model.encode(["the cat", "a dog"])[0]
    with pytest.raises(ValueError, match=r"y_P has shape \(1,\): the vector model needs \[pairs, heads\] = \[1, 2\]"):
        finetune(model, Pairs(ids[:1], ids[1:], np.ones(1, np.float32)), BASE, jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="objective = 'reward' trains a score model; this one is a 'vector' model"):
        cfg = dataclasses.replace(BASE, objective="reward")
        finetune(model, Pairs(ids[:1], ids[1:], np.ones(1, np.float32)), cfg, jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="severity_\\*_P: levels are 0 to 3"):
        pairs = Pairs(ids[:1], ids[1:], np.ones((1, 2), np.float32), severity_a_P=np.array([5]))
        finetune(model, pairs, BASE, jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="objective = 'vector' trains a vector model; this one is a 'reward' model"):
        finetune(load_score_model(folder), Pairs(ids[:1], ids[1:], np.ones((1, 1))), BASE, jax.random.key(0))
