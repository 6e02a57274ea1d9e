"""`rm_theory.lm` against transformers on tiny random checkpoints of each family: the same scores (to
1e-4, float32) on a padded batch of texts of different lengths, and after `save_score_model` the same
scores from `AutoModelForSequenceClassification`, with and without LoRA."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from rm_theory.lm import add_lora, load_score_model, save_score_model
from rm_theory.lm.layers import Linear
from tests.lm_tiny import hf_logits, hf_model, texts, write_tiny

LINEAR_ROPE = {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,  # with head_dim 8: one frequency interpolated, two slowed
}
# name -> (family, write_tiny arguments)
CASES = {
    "bert": ("bert", {}),
    "roberta": ("roberta", {}),
    "llama_gqa_llama3rope": ("llama", dict(num_key_value_heads=2, rope_parameters=LLAMA3_ROPE)),
    "llama_biases_linearrope": (
        "llama",
        dict(attention_bias=True, mlp_bias=True, rope_parameters=LINEAR_ROPE),
    ),
    # sliding window of 4 (texts run to 14 tokens), head_dim 16 != hidden / heads, EOS appended by the
    # tokenizer and used as pad (transformers then scores the token before it)
    "mistral_window": ("mistral", dict(num_key_value_heads=2, head_dim=16, sliding_window=4, template="bos_eos")),
    # one key/value head; sliding window on layer 1 only; the tokenizer's own pad token
    "qwen2_window_mqa": (
        "qwen2",
        dict(
            num_key_value_heads=1,
            use_sliding_window=True,
            sliding_window=3,
            max_window_layers=1,
            tokenizer_config={"pad_token": "<unk>"},
        ),
    ),
}
DECODERS = {"llama", "mistral", "qwen2"}
B = 4  # rows per batch everywhere: the six texts make two batches, and each model compiles once


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    family, kw = CASES[request.param]
    folder = write_tiny(tmp_path_factory.mktemp(request.param), family, **kw)
    return request.param, family, folder


def test_scores_match_transformers(case):
    name, family, folder = case
    model = load_score_model(folder)
    ids, _ = model.encode(texts())
    assert len(set(map(len, ids))) > 3  # a padded batch of different lengths
    hf = hf_model(folder, pad_id=model.tokenizer.pad_id)
    want = hf_logits(hf, ids, model.tokenizer.pad_id)
    got = model.logits_ids(ids, batch_size=B)  # two batches, padded to 16 tokens, not to the longest
    assert got.shape == (6, 1) and np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.score(texts(), batch_size=B), want[:, 0], atol=1e-4, rtol=0)
    if family in DECODERS:  # left padding too (RoPE: only position differences matter)
        left = hf_logits(hf, ids, model.tokenizer.pad_id, side="left")
        np.testing.assert_allclose(model.logits_ids(ids, batch_size=B, padding_side="left"), left, atol=1e-4, rtol=0)
        np.testing.assert_allclose(left, want, atol=1e-4, rtol=0)


def _lora_everywhere(model, seed=1):
    """LoRA on every Linear of the backbone, with B drawn nonzero (a fresh B is 0: nothing to merge)."""
    targets = {
        "bert": ["query", "key", "value", "output.dense", "intermediate.dense"],
        "roberta": ["query", "key", "value", "output.dense", "intermediate.dense"],
    }.get(model.model_type, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    names = add_lora(model, rank=2, alpha=4.0, targets=targets, seed=seed)
    key = jax.random.key(seed)
    for m in model.net.backbone.hf_modules().values():
        if isinstance(m, Linear) and m.lora is not None:
            key, sub = jax.random.split(key)
            m.lora.lora_b.set_value(0.3 * jax.random.normal(sub, m.lora.lora_b.shape))
    return names


@pytest.mark.parametrize("lora", [False, True], ids=["plain", "lora"])
def test_save_then_transformers_gives_the_same_scores(case, lora, tmp_path):
    name, family, folder = case
    model = load_score_model(folder)
    ids, _ = model.encode(texts())
    before = model.logits_ids(ids, batch_size=B)
    if lora:
        n = len(_lora_everywhere(model))
        assert n == 2 * (4 + 2 + (family in DECODERS))  # every Linear of both layers
        assert np.abs(model.logits_ids(ids, batch_size=B) - before).max() > 1e-2  # the adapters change the scores
    ours = model.logits_ids(ids, batch_size=B)
    out = save_score_model(model, tmp_path / "saved")
    config = json.loads((out / "config.json").read_text())
    assert config["pad_token_id"] == model.tokenizer.pad_id and config["id2label"] == {"0": "reward"}
    assert config["architectures"][0].endswith("ForSequenceClassification")
    hf = hf_model(out)  # no pad id given: the saved config.json carries it
    np.testing.assert_allclose(hf_logits(hf, ids, model.tokenizer.pad_id), ours, atol=1e-4, rtol=0)
    again = load_score_model(out)
    assert all(m.lora is None for m in again.net.backbone.hf_modules().values() if isinstance(m, Linear))
    np.testing.assert_allclose(again.logits_ids(ids, batch_size=B), ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_causal_lm_folder_gets_a_fresh_head_that_survives_saving(tied, tmp_path):
    """A causal-LM checkpoint (tied embeddings: no lm_head tensor; untied: one, skipped) loads as a
    backbone equal to transformers' and a fresh head, and saves so that transformers scores it."""
    folder = write_tiny(tmp_path / "lm", "qwen2", head=False, num_key_value_heads=2, tie_word_embeddings=tied)
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        names = set(f.keys())
    assert ("lm_head.weight" in names) != tied
    model = load_score_model(folder, seed=3)
    ids, _ = model.encode(texts())
    base = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    T = max(map(len, ids))
    ids_NxT = np.array([x + [model.tokenizer.pad_id] * (T - len(x)) for x in ids])
    mask_NxT = np.array([[1] * len(x) + [0] * (T - len(x)) for x in ids])
    with torch.no_grad():
        want = base(input_ids=torch.from_numpy(ids_NxT), attention_mask=torch.from_numpy(mask_NxT)).last_hidden_state
    got = model.net.backbone(jnp.asarray(ids_NxT), jnp.asarray(mask_NxT))
    m = mask_NxT.astype(bool)
    np.testing.assert_allclose(np.asarray(got)[m], want.numpy()[m], atol=1e-4, rtol=0)
    ours = model.logits_ids(ids, batch_size=B)
    assert np.abs(ours).max() > 0  # N(0, initializer_range) weights, not zeros
    out = save_score_model(model, tmp_path / "rm")
    np.testing.assert_allclose(hf_logits(hf_model(out), ids, model.tokenizer.pad_id), ours, atol=1e-4, rtol=0)


def test_sharded_checkpoints_both_ways(tmp_path):
    folder = write_tiny(tmp_path / "sharded", "llama", num_key_value_heads=2, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file() and not (folder / "model.safetensors").exists()
    model = load_score_model(folder)
    ids, _ = model.encode(texts())
    want = hf_logits(hf_model(folder, pad_id=model.tokenizer.pad_id), ids, model.tokenizer.pad_id)
    np.testing.assert_allclose(model.logits_ids(ids, batch_size=B), want, atol=1e-4, rtol=0)
    out = save_score_model(model, tmp_path / "out", shard_bytes=20_000)
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    assert len(shards) > 2 and (out / "model.safetensors.index.json").is_file()
    np.testing.assert_allclose(hf_logits(hf_model(out), ids, model.tokenizer.pad_id), want, atol=1e-4, rtol=0)


def test_harm_head_and_cost_kind_round_trip(tmp_path):
    folder = write_tiny(tmp_path / "base", "llama", head=False, num_key_value_heads=2)
    cats = ("violence", "privacy")
    model = load_score_model(folder, kind="cost", harm_categories=cats)
    assert model.labels == ["cost", "harm:violence", "harm:privacy"]
    ids, _ = model.encode(texts())
    ours = model.logits_ids(ids, batch_size=B)
    assert ours.shape == (6, 3)
    out = save_score_model(model, tmp_path / "cost")
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "cost", "1": "harm:violence", "2": "harm:privacy"}
    assert config["rm_theory"]["kind"] == "cost" and config["rm_theory"]["harm_categories"] == list(cats)
    np.testing.assert_allclose(hf_logits(hf_model(out), ids, model.tokenizer.pad_id), ours, atol=1e-4, rtol=0)
    again = load_score_model(out)
    assert again.kind == "cost" and again.harm_categories == cats
    np.testing.assert_allclose(again.score(texts(), batch_size=B), ours[:, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "first"])
def test_encoder_poolings_without_a_transformers_class_keep_their_head(pooling, tmp_path):
    folder = write_tiny(tmp_path / "base", "bert", head=False)
    model = load_score_model(folder, pooling=pooling)
    ids, types = model.encode(texts())
    ours = model.logits_ids(ids, types, batch_size=B)
    out = save_score_model(model, tmp_path / "rm")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["rm_theory"]["pooling"] == pooling
    again = load_score_model(out)
    assert again.pooling == pooling
    np.testing.assert_allclose(again.logits_ids(ids, types, batch_size=B), ours, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="holds a 'mean' head|holds a 'first' head"):
        load_score_model(out, pooling="cls")


def test_bf16_checkpoint_loads_into_float32_and_computes_in_bf16(tmp_path):
    folder = write_tiny(tmp_path / "bf16", "llama", num_key_value_heads=2, dtype=torch.bfloat16)
    model = load_score_model(folder)
    assert model.net.backbone.embed_tokens.embedding[...].dtype == jnp.float32
    ids, _ = model.encode(texts())
    hf = hf_model(folder, pad_id=model.tokenizer.pad_id).float()  # the same bf16 values, in float32
    want = hf_logits(hf, ids, model.tokenizer.pad_id)
    np.testing.assert_allclose(model.logits_ids(ids, batch_size=B), want, atol=1e-4, rtol=0)
    low = load_score_model(folder, dtype=jnp.bfloat16).logits_ids(ids, batch_size=B)
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, want, atol=0.05, rtol=0)  # bfloat16's 8 bits of mantissa; seen: 0.014


def test_pad_token_by_the_eos_rule_is_recorded_for_transformers(tmp_path):
    folder = write_tiny(tmp_path / "nopad", "llama", num_key_value_heads=2)
    assert json.loads((folder / "config.json").read_text()).get("pad_token_id") is None
    model = load_score_model(folder)
    assert (model.tokenizer.pad_id, model.tokenizer.pad_rule, model.tokenizer.pad_token) == (2, "eos", "</s>")
    out = save_score_model(model, tmp_path / "out")
    assert json.loads((out / "config.json").read_text())["pad_token_id"] == 2
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert tok.pad_token_id == 2
    batch = tok(texts(), padding=True)
    ids, _ = model.encode(texts())
    assert [x[: len(y)] for x, y in zip(batch["input_ids"], ids, strict=True)] == ids


def test_tied_embeddings_stored_under_the_output_head_only(tmp_path):
    """Some tied checkpoints keep the shared matrix as lm_head.weight alone; it is the embedding."""
    folder = write_tiny(tmp_path / "lm", "llama", head=False, num_key_value_heads=2, tie_word_embeddings=True)
    want = load_score_model(folder).score(texts(), batch_size=B)
    t = load_file(str(folder / "model.safetensors"))
    t["lm_head.weight"] = t.pop("model.embed_tokens.weight")
    save_file(t, str(folder / "model.safetensors"), metadata={"format": "pt"})
    np.testing.assert_array_equal(load_score_model(folder).score(texts(), batch_size=B), want)
