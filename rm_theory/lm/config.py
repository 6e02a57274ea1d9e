"""The architectures this wing runs, read from a Hugging Face `config.json`.

Two families, each one frozen (hashable) dataclass, so a model's structure is static under `jax.jit`:

- `EncoderConfig`: BERT (Devlin et al. 2019, arXiv 1810.04805) and RoBERTa (Liu et al. 2019,
  arXiv 1907.11692), `model_type` "bert" / "roberta";
- `DecoderConfig`: Llama (Touvron et al. 2023, arXiv 2302.13971), Mistral (Jiang et al. 2023,
  arXiv 2310.06825) and Qwen2 (Yang et al. 2024, arXiv 2407.10671), `model_type` "llama" / "mistral" /
  "qwen2".

Both the layout transformers 5 writes (`rope_parameters`) and the older one (`rope_theta`,
`rope_scaling`) are read. Anything the forward pass would compute differently from transformers is
refused with the file and the key, never ignored: another `hidden_act`, relative position embeddings,
a RoPE scaling other than linear and llama3 (dynamic, yarn and longrope depend on the sequence length
or rescale the logits), partial rotary embeddings.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

ENCODERS = ("bert", "roberta")
DECODERS = ("llama", "mistral", "qwen2")
_MISSING = object()


class CheckpointError(ValueError):
    """A model folder that cannot be read as asked; the message names the file and the key or tensor."""


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """BERT / RoBERTa: post-LayerNorm blocks, GELU (erf) feed-forward, absolute position embeddings."""

    model_type: str
    vocab_size: int
    hidden: int
    n_layers: int
    n_heads: int
    ffn: int
    max_pos: int
    type_vocab: int
    eps: float
    pad_id: int | None
    init_std: float = 0.02

    @property
    def position_offset(self) -> int:
        """RoBERTa numbers positions from padding_idx + 1 (fairseq's convention); BERT from 0."""
        return self.pad_id + 1 if self.model_type == "roberta" else 0

    @property
    def max_len(self) -> int:
        """Longest input the position table covers."""
        return self.max_pos - self.position_offset


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Llama / Mistral / Qwen2: pre-RMSNorm blocks, rotary embeddings, SwiGLU, grouped-query attention."""

    model_type: str
    vocab_size: int
    hidden: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn: int
    max_pos: int
    eps: float
    rope_theta: float
    rope_type: str = "default"  # "default", "linear" or "llama3"
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_pos: int = 0
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    windows: tuple[int | None, ...] = ()  # per layer: sliding-window length, or None for full causal
    tie_embeddings: bool = False
    init_std: float = 0.02

    @property
    def max_len(self) -> int:
        return self.max_pos


def read_config(folder: str | Path) -> dict[str, Any]:
    """The raw `config.json` of a model folder; errors name the folder or the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such model folder")
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: not found (a Hugging Face model folder holds config.json, model.safetensors and tokenizer.json)"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return raw


def parse_config(raw: dict[str, Any], path: str | Path) -> EncoderConfig | DecoderConfig:
    """The family config of a raw `config.json` (read from `path`, named in errors)."""
    model_type = raw.get("model_type")
    if model_type in ENCODERS:
        return _encoder(raw, path)
    if model_type in DECODERS:
        return _decoder(raw, path)
    raise CheckpointError(
        f"{path}: model_type {model_type!r} is not supported (supported: {', '.join(ENCODERS + DECODERS)}); "
        f"architectures = {raw.get('architectures')}"
    )


def _get(raw: dict, key: str, path, typ: type = int, default: Any = _MISSING) -> Any:
    value = raw.get(key, default)
    if value is _MISSING:
        raise CheckpointError(f"{path}: key {key!r} missing")
    if value is None and default is None:
        return None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise CheckpointError(f"{path}: key {key!r} = {value!r}, expected {typ.__name__}")
    return value


def _encoder(raw: dict, path) -> EncoderConfig:
    if (act := raw.get("hidden_act", "gelu")) != "gelu":
        raise CheckpointError(f"{path}: key 'hidden_act' = {act!r}, only 'gelu' (erf) is supported")
    if (pos := raw.get("position_embedding_type", "absolute")) != "absolute":
        raise CheckpointError(f"{path}: key 'position_embedding_type' = {pos!r}, only 'absolute' is supported")
    cfg = EncoderConfig(
        model_type=raw["model_type"],
        vocab_size=_get(raw, "vocab_size", path),
        hidden=_get(raw, "hidden_size", path),
        n_layers=_get(raw, "num_hidden_layers", path),
        n_heads=_get(raw, "num_attention_heads", path),
        ffn=_get(raw, "intermediate_size", path),
        max_pos=_get(raw, "max_position_embeddings", path),
        type_vocab=_get(raw, "type_vocab_size", path, default=2),
        eps=_get(raw, "layer_norm_eps", path, float, default=1e-12),
        pad_id=_get(raw, "pad_token_id", path, default=None),
        init_std=_get(raw, "initializer_range", path, float, default=0.02),
    )
    if cfg.hidden % cfg.n_heads:
        raise CheckpointError(f"{path}: hidden_size {cfg.hidden} is not a multiple of num_attention_heads")
    if cfg.model_type == "roberta" and cfg.pad_id is None:
        raise CheckpointError(f"{path}: key 'pad_token_id' missing (RoBERTa numbers positions after it)")
    return cfg


def _rope(raw: dict, path) -> dict[str, Any]:
    # transformers: `rope_scaling` (older files) wins over `rope_parameters`; theta may sit at the top level.
    key = "rope_scaling" if raw.get("rope_scaling") else "rope_parameters"
    rp = raw.get(key) or {}
    if not isinstance(rp, dict):
        raise CheckpointError(f"{path}: key {key!r} = {rp!r}, expected an object")
    theta = rp.get("rope_theta", raw.get("rope_theta", 10000.0))
    rope_type = rp.get("rope_type", rp.get("type", "default"))
    if rp.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0)) != 1.0:
        raise CheckpointError(f"{path}: key 'partial_rotary_factor' must be 1 (partial rotary embeddings)")
    out = dict(rope_theta=float(theta), rope_type=rope_type)
    if rope_type == "default":
        return out
    if rope_type not in ("linear", "llama3"):
        raise CheckpointError(
            f"{path}: key '{key}.rope_type' = {rope_type!r} is not supported (supported: default, linear, llama3)"
        )
    out["rope_factor"] = _get(rp, "factor", f"{path} ({key})", float)
    if rope_type == "llama3":
        out["rope_low_freq_factor"] = _get(rp, "low_freq_factor", f"{path} ({key})", float)
        out["rope_high_freq_factor"] = _get(rp, "high_freq_factor", f"{path} ({key})", float)
        out["rope_original_max_pos"] = _get(
            rp, "original_max_position_embeddings", f"{path} ({key})", default=raw.get("max_position_embeddings")
        )
    return out


def _windows(raw: dict, path, n_layers: int) -> tuple[int | None, ...]:
    """Per-layer sliding windows, as transformers' Mistral and Qwen2 decide them."""
    mt = raw["model_type"]
    window = raw.get("sliding_window")
    if mt == "llama" or window is None:
        return (None,) * n_layers
    if not isinstance(window, int) or window < 1:
        raise CheckpointError(f"{path}: key 'sliding_window' = {window!r}, expected a positive int or null")
    if mt == "mistral":
        return (window,) * n_layers
    # qwen2: off unless use_sliding_window; then layer_types, or the layers from max_window_layers on
    if not raw.get("use_sliding_window", False):
        return (None,) * n_layers
    types = raw.get("layer_types")
    if types is None:
        start = _get(raw, "max_window_layers", path, default=28)
        types = ["sliding_attention" if i >= start else "full_attention" for i in range(n_layers)]
    if len(types) != n_layers or set(types) - {"sliding_attention", "full_attention"}:
        raise CheckpointError(f"{path}: key 'layer_types' = {types!r} does not fit {n_layers} layers")
    return tuple(window if t == "sliding_attention" else None for t in types)


def _decoder(raw: dict, path) -> DecoderConfig:
    mt = raw["model_type"]
    if (act := raw.get("hidden_act", "silu")) not in ("silu", "swish"):
        raise CheckpointError(f"{path}: key 'hidden_act' = {act!r}, only 'silu' (SwiGLU) is supported")
    hidden = _get(raw, "hidden_size", path)
    n_heads = _get(raw, "num_attention_heads", path)
    n_layers = _get(raw, "num_hidden_layers", path)
    n_kv = _get(raw, "num_key_value_heads", path, default=None) or n_heads
    head_dim = _get(raw, "head_dim", path, default=None) or hidden // n_heads
    if n_heads % n_kv:
        raise CheckpointError(f"{path}: num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}")
    attn_bias = mt == "llama" and _get(raw, "attention_bias", path, bool, default=False)
    return DecoderConfig(
        model_type=mt,
        vocab_size=_get(raw, "vocab_size", path),
        hidden=hidden,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        ffn=_get(raw, "intermediate_size", path),
        max_pos=_get(raw, "max_position_embeddings", path),
        eps=_get(raw, "rms_norm_eps", path, float, default=1e-6),
        qkv_bias=mt == "qwen2" or attn_bias,  # Qwen2 always biases q, k, v (not o)
        o_bias=attn_bias,
        mlp_bias=mt == "llama" and _get(raw, "mlp_bias", path, bool, default=False),
        windows=_windows(raw, path, n_layers),
        tie_embeddings=_get(raw, "tie_word_embeddings", path, bool, default=False),
        init_std=_get(raw, "initializer_range", path, float, default=0.02),
        **_rope(raw, path),
    )
