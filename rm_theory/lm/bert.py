"""The BERT family in Flax NNX: BERT (Devlin et al. 2019, arXiv 1810.04805, section 3) and RoBERTa
(Liu et al. 2019, arXiv 1907.11692), from their Hugging Face weights.

Word + absolute position + token-type embeddings and a LayerNorm; per layer, post-LayerNorm
self-attention over the non-pad tokens and a GELU (erf) feed-forward block. RoBERTa differs only in
its position ids: fairseq's `make_positions`, the running count of non-pad tokens offset by
padding_idx (pads keep padding_idx), so a left-padded text gets the positions of a right-padded one.
The same module is the project's sentence encoder all-MiniLM-L6-v2 (a 6-layer BERT) with mean
pooling and L2 normalisation (Reimers & Gurevych 2019, arXiv 1908.10084).

Legend: B batch, T tokens, H hidden width, A attention heads, D head width (H / A), F feed-forward
units.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from rm_theory.lm.config import EncoderConfig
from rm_theory.lm.layers import Linear, attention, call_layer, key_mask


class BertLayer(nnx.Module):
    def __init__(self, cfg: EncoderConfig, *, dtype, param_dtype, rngs: nnx.Rngs):
        H, F = cfg.hidden, cfg.ffn
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs, std=cfg.init_std)
        self.n_heads = cfg.n_heads
        self.query, self.key, self.value = (Linear(H, H, bias=True, **kw) for _ in range(3))
        self.attn_out = Linear(H, H, bias=True, **kw)
        self.attn_norm = nnx.LayerNorm(H, epsilon=cfg.eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.ffn_in = Linear(H, F, bias=True, **kw)
        self.ffn_out = Linear(F, H, bias=True, **kw)
        self.ffn_norm = nnx.LayerNorm(H, epsilon=cfg.eps, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x_BxTxH: jax.Array, allow_Bx1x1xT: jax.Array) -> jax.Array:
        B, T, H = x_BxTxH.shape
        N = self.n_heads
        q, k, v = (f(x_BxTxH).reshape(B, T, N, H // N) for f in (self.query, self.key, self.value))
        a_BxTxH = attention(q, k, v, allow_Bx1x1xT).reshape(B, T, H)
        x_BxTxH = self.attn_norm(x_BxTxH + self.attn_out(a_BxTxH))
        h_BxTxF = jax.nn.gelu(self.ffn_in(x_BxTxH), approximate=False)
        return self.ffn_norm(x_BxTxH + self.ffn_out(h_BxTxF))


class BertBackbone(nnx.Module):
    """Token ids -> last hidden states [B, T, H] (BertModel's `last_hidden_state`, no pooler)."""

    def __init__(
        self, cfg: EncoderConfig, *, dtype=jnp.float32, param_dtype=jnp.float32, remat: bool = False, rngs: nnx.Rngs
    ):
        self.cfg = cfg
        self.dtype = dtype
        self.remat = remat  # recompute each layer's activations in the backward pass (memory for time)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.word = nnx.Embed(cfg.vocab_size, cfg.hidden, **kw)
        self.pos = nnx.Embed(cfg.max_pos, cfg.hidden, **kw)
        self.type = nnx.Embed(cfg.type_vocab, cfg.hidden, **kw)
        self.emb_norm = nnx.LayerNorm(cfg.hidden, epsilon=cfg.eps, **kw)
        self.layers = nnx.List([BertLayer(cfg, **kw) for _ in range(cfg.n_layers)])

    def positions(self, ids_BxT: jax.Array) -> jax.Array:
        T = ids_BxT.shape[1]
        if self.cfg.model_type != "roberta":
            return jnp.broadcast_to(jnp.arange(T), ids_BxT.shape)
        real_BxT = (ids_BxT != self.cfg.pad_id).astype(jnp.int32)
        return jnp.cumsum(real_BxT, axis=1) * real_BxT + self.cfg.pad_id

    def __call__(self, ids_BxT: jax.Array, mask_BxT: jax.Array, types_BxT: jax.Array | None = None) -> jax.Array:
        types_BxT = jnp.zeros_like(ids_BxT) if types_BxT is None else types_BxT
        x_BxTxH = self.word(ids_BxT) + self.type(types_BxT) + self.pos(self.positions(ids_BxT))
        x_BxTxH = self.emb_norm(x_BxTxH)
        allow_Bx1x1xT = key_mask(mask_BxT)
        for layer in self.layers:
            x_BxTxH = call_layer(layer, self.remat, x_BxTxH, allow_Bx1x1xT)
        return x_BxTxH

    def hf_modules(self) -> dict[str, nnx.Module]:
        """Hugging Face module path (without the base-model prefix) -> our module."""
        out = {
            "embeddings.word_embeddings": self.word,
            "embeddings.position_embeddings": self.pos,
            "embeddings.token_type_embeddings": self.type,
            "embeddings.LayerNorm": self.emb_norm,
        }
        for i, layer in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            out |= {
                p + "attention.self.query": layer.query,
                p + "attention.self.key": layer.key,
                p + "attention.self.value": layer.value,
                p + "attention.output.dense": layer.attn_out,
                p + "attention.output.LayerNorm": layer.attn_norm,
                p + "intermediate.dense": layer.ffn_in,
                p + "output.dense": layer.ffn_out,
                p + "output.LayerNorm": layer.ffn_norm,
            }
        return out
