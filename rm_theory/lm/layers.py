"""Building blocks shared by the backbones: a Linear layer with an optional LoRA adapter, RMSNorm,
rotary position embeddings and masked (grouped-query) attention.

- LoRA (Hu et al. 2021, arXiv 2106.09685, section 4.1): y = x W + b + (alpha / r) x A B, with A and B
  `nnx.LoRAParam`s (an `nnx.Param` subclass), so `wrt=nnx.LoRAParam` selects them alone; B starts at
  zero, so a fresh adapter leaves the model unchanged.
- RMSNorm (Zhang & Sennrich 2019, arXiv 1910.07467), computed in float32 as transformers' Llama does.
- RoPE (Su et al. 2021, RoFormer, arXiv 2104.09864) in transformers' "rotate_half" convention: the
  head's two halves (not interleaved pairs) form the rotated planes, with frequencies
  theta^(-2i/D) repeated over both halves; checkpoints in the Hugging Face layout have their q and k
  weights permuted for exactly this. Linear position interpolation (Chen et al. 2023, arXiv
  2306.15595) and Llama 3's frequency-dependent scaling (Dubey et al. 2024, arXiv 2407.21783) are the
  two `rope_scaling` types supported.
- Grouped-query attention (Ainslie et al. 2023, arXiv 2305.13245): query head n reads key/value head
  n // (N / K), as transformers' `repeat_kv` does.

Legend: B batch, T tokens, H hidden width, A attention heads, G key/value heads (each shared by A / G
query heads), D head width, I input features, O output features, Dr rank of a LoRA adapter.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rm_theory.lm.config import DecoderConfig


class Linear(nnx.Module):
    """x W + b with W stored [I, O] (torch stores [O, I]); `lora` is an `nnx.LoRA` once `add_lora` sets it."""

    def __init__(self, d_in: int, d_out: int, *, bias: bool, dtype, param_dtype, rngs: nnx.Rngs, std: float = 0.02):
        self.kernel = nnx.Param(jax.random.normal(rngs.params(), (d_in, d_out), param_dtype) * std)
        self.bias = nnx.Param(jnp.zeros((d_out,), param_dtype)) if bias else nnx.data(None)
        self.lora = nnx.data(None)
        self.lora_scale = 0.0  # alpha / rank (static)
        self.dtype = dtype

    def __call__(self, x_BxI: jax.Array) -> jax.Array:
        x_BxI = x_BxI.astype(self.dtype)
        y_BxO = x_BxI @ self.kernel[...].astype(self.dtype)
        if self.bias is not None:
            y_BxO = y_BxO + self.bias[...].astype(self.dtype)
        if self.lora is not None:
            y_BxO = y_BxO + (self.lora_scale * self.lora(x_BxI)).astype(self.dtype)
        return y_BxO

    def merged_kernel(self) -> jax.Array:
        """W + (alpha / r) A B: the kernel a plain Linear needs to compute what this one does."""
        w_IxO = self.kernel[...]
        if self.lora is None:
            return w_IxO
        a_IxDr, b_DrxO = self.lora.lora_a[...], self.lora.lora_b[...]
        return (w_IxO.astype(jnp.float32) + self.lora_scale * (a_IxDr @ b_DrxO)).astype(w_IxO.dtype)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float, *, dtype, param_dtype):
        self.weight = nnx.Param(jnp.ones((dim,), param_dtype))
        self.eps = eps
        self.dtype = dtype

    def __call__(self, x_BxTxH: jax.Array) -> jax.Array:
        x = x_BxTxH.astype(jnp.float32)
        x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
        return self.weight[...].astype(self.dtype) * x.astype(self.dtype)


def rope_frequencies(cfg: DecoderConfig) -> np.ndarray:
    """[D/2] inverse frequencies, after the config's `rope_scaling` (float32, as transformers)."""
    D = cfg.head_dim
    inv = (1.0 / cfg.rope_theta ** (np.arange(0, D, 2, dtype=np.float32) / D)).astype(np.float32)
    if cfg.rope_type == "linear":
        return (inv / cfg.rope_factor).astype(np.float32)
    if cfg.rope_type == "llama3":
        # Long wavelengths are slowed by `factor`, short ones kept, those between interpolated.
        old = cfg.rope_original_max_pos
        low_wl, high_wl = old / cfg.rope_low_freq_factor, old / cfg.rope_high_freq_factor
        wl = 2 * math.pi / inv
        scaled = np.where(wl > low_wl, inv / cfg.rope_factor, inv)
        smooth = (old / wl - cfg.rope_low_freq_factor) / (cfg.rope_high_freq_factor - cfg.rope_low_freq_factor)
        mid = (1 - smooth) * scaled / cfg.rope_factor + smooth * scaled
        return np.where((wl >= high_wl) & (wl <= low_wl), mid, scaled).astype(np.float32)
    return inv


def rope_tables(inv_freq: np.ndarray, T: int) -> tuple[jax.Array, jax.Array]:
    """cos and sin, [T, D], for positions 0..T-1 (transformers' default position ids)."""
    f_TxD2 = jnp.arange(T, dtype=jnp.float32)[:, None] * jnp.asarray(inv_freq)[None, :]
    f_TxD = jnp.concatenate([f_TxD2, f_TxD2], axis=-1)
    return jnp.cos(f_TxD), jnp.sin(f_TxD)


def apply_rope(x_BxTxAxD: jax.Array, cos_TxD: jax.Array, sin_TxD: jax.Array) -> jax.Array:
    half = x_BxTxAxD.shape[-1] // 2
    x1, x2 = x_BxTxAxD[..., :half], x_BxTxAxD[..., half:]
    rot = jnp.concatenate([-x2, x1], axis=-1)
    cos, sin = cos_TxD[None, :, None, :], sin_TxD[None, :, None, :]
    return (x_BxTxAxD.astype(jnp.float32) * cos + rot.astype(jnp.float32) * sin).astype(x_BxTxAxD.dtype)


def attention(q_BxTxAxD: jax.Array, k_BxTxGxD: jax.Array, v_BxTxGxD: jax.Array, allow_Bx1xTxT: jax.Array) -> jax.Array:
    """Softmax attention (logits and softmax in float32) over the keys `allow` marks.

    A query that may attend to no key (a pad row of a left-padded batch) gets a uniform average,
    finite and unused, never NaN.
    """
    return jax.nn.dot_product_attention(q_BxTxAxD, k_BxTxGxD, v_BxTxGxD, mask=allow_Bx1xTxT)


def key_mask(mask_BxT: jax.Array) -> jax.Array:
    """[B, 1, 1, T]: each query may attend to every non-pad key (encoders)."""
    return (mask_BxT > 0)[:, None, None, :]


def causal_mask(mask_BxT: jax.Array, window: int | None) -> jax.Array:
    """[B, 1, T, T]: key j <= query i, not a pad, and, with a sliding window W, i - j < W
    (transformers' `sliding_window_overlay`; Mistral's sliding-window attention)."""
    T = mask_BxT.shape[1]
    i, j = jnp.arange(T)[:, None], jnp.arange(T)[None, :]
    ok_TxT = j <= i
    if window is not None:
        ok_TxT &= i - j < window
    return ok_TxT[None, None] & (mask_BxT > 0)[:, None, None, :]


def call_layer(layer: nnx.Module, remat: bool, *args) -> jax.Array:
    """`layer(*args)`, with `remat` under `jax.checkpoint`: its activations are recomputed in the
    backward pass instead of stored. The layer is split into a pure function of its state (layers
    never mutate it), so this works inside `nnx.jit` and inside plain `jax.grad` / `jax.lax.scan`
    over `nnx.merge`d state alike (`nnx.remat` writes state back and fails in the latter)."""
    if not remat:
        return layer(*args)
    graphdef, state = nnx.split(layer)
    return jax.checkpoint(lambda s, *a: nnx.merge(graphdef, s)(*a))(state, *args)
