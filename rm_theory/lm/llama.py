"""The Llama family in Flax NNX: Llama (Touvron et al. 2023, arXiv 2302.13971, section 2.2), Mistral
(Jiang et al. 2023, arXiv 2310.06825) and Qwen2 (Yang et al. 2024, arXiv 2407.10671), from their
Hugging Face weights.

Per layer: RMSNorm, causal self-attention with rotary embeddings and grouped-query attention (fewer
key/value heads than query heads), a residual; RMSNorm, a SwiGLU feed-forward block (Shazeer 2020,
arXiv 2002.05202: down(silu(gate x) * up x)), a residual; a final RMSNorm. The variants differ by
config only: Qwen2 biases q, k and v; Llama may bias all four projections (`attention_bias`) and the
feed-forward (`mlp_bias`); Mistral (and Qwen2 with `use_sliding_window`) limits attention to a sliding
window of the last W tokens. Position ids are 0..T-1 whatever the padding, as transformers' default;
since RoPE depends on position differences only, a left-padded text scores as a right-padded one (to
rounding). The input embeddings may be tied to the language-model head; a score model has no such
head, so tying changes nothing here.

Legend: B batch, T tokens, H hidden width, A attention heads, G key/value heads (each shared by A / G
query heads), D head width, F feed-forward units, V vocabulary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rm_theory.lm.config import DecoderConfig
from rm_theory.lm.layers import (
    Linear,
    RMSNorm,
    apply_rope,
    attention,
    call_layer,
    causal_mask,
    rope_frequencies,
    rope_tables,
)


class LlamaLayer(nnx.Module):
    def __init__(self, cfg: DecoderConfig, window: int | None, *, dtype, param_dtype, rngs: nnx.Rngs):
        H, N, K, D, F = cfg.hidden, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs, std=cfg.init_std)
        self.n_heads, self.n_kv_heads, self.head_dim, self.window = N, K, D, window
        self.input_layernorm = RMSNorm(H, cfg.eps, dtype=dtype, param_dtype=param_dtype)
        self.q_proj = Linear(H, N * D, bias=cfg.qkv_bias, **kw)
        self.k_proj = Linear(H, K * D, bias=cfg.qkv_bias, **kw)
        self.v_proj = Linear(H, K * D, bias=cfg.qkv_bias, **kw)
        self.o_proj = Linear(N * D, H, bias=cfg.o_bias, **kw)
        self.post_attention_layernorm = RMSNorm(H, cfg.eps, dtype=dtype, param_dtype=param_dtype)
        self.gate_proj = Linear(H, F, bias=cfg.mlp_bias, **kw)
        self.up_proj = Linear(H, F, bias=cfg.mlp_bias, **kw)
        self.down_proj = Linear(F, H, bias=cfg.mlp_bias, **kw)

    def __call__(self, x_BxTxH: jax.Array, rope: tuple[jax.Array, jax.Array], allow_Bx1xTxT: jax.Array) -> jax.Array:
        B, T, _ = x_BxTxH.shape
        N, K, D = self.n_heads, self.n_kv_heads, self.head_dim
        h_BxTxH = self.input_layernorm(x_BxTxH)
        q_BxTxAxD = apply_rope(self.q_proj(h_BxTxH).reshape(B, T, N, D), *rope)
        k_BxTxGxD = apply_rope(self.k_proj(h_BxTxH).reshape(B, T, K, D), *rope)
        v_BxTxGxD = self.v_proj(h_BxTxH).reshape(B, T, K, D)
        a_BxTxND = attention(q_BxTxAxD, k_BxTxGxD, v_BxTxGxD, allow_Bx1xTxT).reshape(B, T, N * D)
        x_BxTxH = x_BxTxH + self.o_proj(a_BxTxND)
        h_BxTxH = self.post_attention_layernorm(x_BxTxH)
        g_BxTxF = jax.nn.silu(self.gate_proj(h_BxTxH)) * self.up_proj(h_BxTxH)
        return x_BxTxH + self.down_proj(g_BxTxF)


class LlamaBackbone(nnx.Module):
    """Token ids -> last hidden states [B, T, H] after the final norm (LlamaModel's `last_hidden_state`)."""

    def __init__(
        self, cfg: DecoderConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, remat: bool = False, rngs: nnx.Rngs
    ):
        self.cfg = cfg
        self.dtype = dtype
        self.remat = remat  # recompute each layer's activations in the backward pass (memory for time)
        kw = dict(dtype=dtype, param_dtype=param_dtype)
        self.embed_tokens = nnx.Embed(cfg.vocab_size, cfg.hidden, rngs=rngs, **kw)
        self.layers = nnx.List([LlamaLayer(cfg, w, rngs=rngs, **kw) for w in cfg.windows])
        self.norm = RMSNorm(cfg.hidden, cfg.eps, **kw)

    def __call__(self, ids_BxT: jax.Array, mask_BxT: jax.Array, types_BxT: jax.Array | None = None) -> jax.Array:
        del types_BxT  # decoders have no token types; the argument keeps one signature for both families
        T = ids_BxT.shape[1]
        rope = rope_tables(rope_frequencies(self.cfg), T)
        masks = {w: causal_mask(mask_BxT, w) for w in set(self.cfg.windows)}
        x_BxTxH = self.embed_tokens(ids_BxT).astype(self.dtype)
        for layer in self.layers:
            x_BxTxH = call_layer(layer, self.remat, x_BxTxH, rope, masks[layer.window])
        return self.norm(x_BxTxH)

    def hf_modules(self) -> dict[str, nnx.Module]:
        """Hugging Face module path (without the base-model prefix) -> our module."""
        out: dict[str, nnx.Module] = {"embed_tokens": self.embed_tokens, "norm": self.norm}
        for i, layer in enumerate(self.layers):
            p = f"layers.{i}."
            out |= {p + n: getattr(layer, n) for n in ("input_layernorm", "post_attention_layernorm")}
            out |= {p + "self_attn." + n: getattr(layer, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")}
            out |= {p + "mlp." + n: getattr(layer, n) for n in ("gate_proj", "up_proj", "down_proj")}
        return out
