"""Flax NNX reward and cost models: a small causal transformer, an MLP baseline, and a prefix-embedding
model whose reward is a sum of learned per-prefix values (the gold field's own form, THEORY.md §2).

Both read either padded token sequences (pad id 0, real ids >= 1, left or right padding) or
continuous features, and return one scalar score per item (a reward, or a cost for the Safe RLHF
cost model, Dai et al. 2023, arXiv 2310.12773 §3), plus optional harm-category logits (C = 19 in
PKU-SafeRLHF, arXiv 2406.15513).

Padding robustness: a token's position is its rank among the real tokens (cumsum of the mask), so
a score depends only on the real tokens in order, not on where or how much padding there is.

Legend: B batch, T tokens (padded length), L slots (max_len), V vocabulary, D model width (or feature
width), A attention heads, Da head width (D / A), Ds width of a slot's embedding, C harm categories.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    family: str = "transformer"  # "transformer" | "mlp"
    input: str = "tokens"  # "tokens" | "features"
    vocab: int = 32  # token ids 0..vocab-1, 0 is the pad
    max_len: int = 16  # positions beyond max_len-1 share the last position embedding / slot
    feature_dim: int = 384  # D of x_NxD when input == "features"
    d_model: int = 32
    heads: int = 2
    layers: int = 2
    mlp_dim: int = 64
    embed_dim: int = 8  # per-slot embedding width of the token MLP
    hidden: tuple[int, ...] = (64, 64)  # MLP hidden widths
    harm_head: bool = False
    n_harm: int = 19
    # prefix family: one table of `table_size` values per depth; a depth-j prefix is its slot exactly
    # while vocab^(j+1) <= table_size, else a hash of it (collisions then share a value).
    table_size: int = 4096
    prior_var: tuple[float, ...] = ()  # s_j² per depth j = 1..max_len−1 (empty: all 1)
    anchored: bool = False  # init at, and regularise towards, the member's own prior draw


def real_positions(tokens_BxT: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mask of real tokens and each token's rank among the real ones (0-based)."""
    mask_BxT = tokens_BxT > 0
    pos_BxT = jnp.cumsum(mask_BxT, axis=1) - 1
    return mask_BxT, jnp.maximum(pos_BxT, 0)


def last_real_index(mask_BxT: jax.Array) -> jax.Array:
    """Index of the last real token per row (0 for an all-pad row)."""
    T = mask_BxT.shape[1]
    idx_T = jnp.arange(T)
    return jnp.max(jnp.where(mask_BxT, idx_T, 0), axis=1)


class _Heads(nnx.Module):
    """Scalar score head and optional harm-category head over a backbone's features."""

    def _init_heads(self, d: int, cfg: ModelConfig, rngs: nnx.Rngs) -> None:
        self.head = nnx.Linear(d, 1, rngs=rngs)
        self.harm = nnx.Linear(d, cfg.n_harm, rngs=rngs) if cfg.harm_head else None

    def features(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self.features(x))[:, 0]

    def score_and_harm(self, x: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        h_BxD = self.features(x)
        logits_BxC = self.harm(h_BxD) if self.harm is not None else None
        return self.head(h_BxD)[:, 0], logits_BxC


class _Block(nnx.Module):
    """Pre-LayerNorm causal self-attention + MLP block."""

    def __init__(self, d: int, heads: int, mlp: int, rngs: nnx.Rngs):
        assert d % heads == 0, (d, heads)
        self.heads = heads
        self.ln1 = nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.out = nnx.Linear(d, d, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d, rngs=rngs)
        self.fc1 = nnx.Linear(d, mlp, rngs=rngs)
        self.fc2 = nnx.Linear(mlp, d, rngs=rngs)

    def __call__(self, h_BxTxD: jax.Array, allow_BxTxT: jax.Array) -> jax.Array:
        B, T, D = h_BxTxD.shape
        H = self.heads
        qkv = self.qkv(self.ln1(h_BxTxD)).reshape(B, T, 3, H, D // H)
        q_BxTxAxDa, k_BxTxAxDa, v_BxTxAxDa = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        logits_BxAxTxT = jnp.einsum("bqhd,bkhd->bhqk", q_BxTxAxDa, k_BxTxAxDa) / jnp.sqrt(D // H)
        # A finite fill keeps all-pad query rows NaN-free; masked keys then get weight exactly 0.
        logits_BxAxTxT = jnp.where(allow_BxTxT[:, None], logits_BxAxTxT, -1e30)
        w_BxAxTxT = jax.nn.softmax(logits_BxAxTxT, axis=-1)
        att_BxTxHxd = jnp.einsum("bhqk,bkhd->bqhd", w_BxAxTxT, v_BxTxAxDa)
        h_BxTxD = h_BxTxD + self.out(att_BxTxHxd.reshape(B, T, D))
        return h_BxTxD + self.fc2(jax.nn.gelu(self.fc1(self.ln2(h_BxTxD))))


class TransformerScorer(_Heads):
    """Causal transformer; the score is read at the last real token."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        assert cfg.input == "tokens", "the transformer reads tokens"
        self.max_len = cfg.max_len
        self.tok = nnx.Embed(cfg.vocab, cfg.d_model, rngs=rngs)
        self.pos = nnx.Embed(cfg.max_len, cfg.d_model, rngs=rngs)
        self.blocks = nnx.List([_Block(cfg.d_model, cfg.heads, cfg.mlp_dim, rngs) for _ in range(cfg.layers)])
        self.ln_f = nnx.LayerNorm(cfg.d_model, rngs=rngs)
        self._init_heads(cfg.d_model, cfg, rngs)

    def features(self, tokens_BxT: jax.Array) -> jax.Array:
        mask_BxT, pos_BxT = real_positions(tokens_BxT)
        pos_BxT = jnp.minimum(pos_BxT, self.max_len - 1)
        h_BxTxD = self.tok(tokens_BxT) + self.pos(pos_BxT)
        T = tokens_BxT.shape[1]
        # Causal by sequence index: padding never reorders real tokens, so each real query
        # sees exactly the same real keys whatever the padding.
        causal_TxT = jnp.tril(jnp.ones((T, T), bool))
        allow_BxTxT = causal_TxT[None] & mask_BxT[:, None, :]
        for blk in self.blocks:
            h_BxTxD = blk(h_BxTxD, allow_BxTxT)
        h_BxTxD = self.ln_f(h_BxTxD)
        last_B = last_real_index(mask_BxT)
        return jnp.take_along_axis(h_BxTxD, last_B[:, None, None], axis=1)[:, 0]


class MLPScorer(_Heads):
    """MLP over features, or over per-slot token embeddings (slot = rank among real tokens)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.input = cfg.input
        self.max_len = cfg.max_len
        if cfg.input == "tokens":
            self.tok = nnx.Embed(cfg.vocab, cfg.embed_dim, rngs=rngs)
            d_in = cfg.max_len * cfg.embed_dim
        elif cfg.input == "features":
            self.tok = None
            d_in = cfg.feature_dim
        else:
            raise ValueError(f"unknown input kind {cfg.input!r}")
        widths = (d_in, *cfg.hidden)
        self.layers = nnx.List([nnx.Linear(i, o, rngs=rngs) for i, o in zip(widths[:-1], widths[1:], strict=True)])
        self._init_heads(widths[-1], cfg, rngs)

    def _slots(self, tokens_BxT: jax.Array) -> jax.Array:
        mask_BxT, pos_BxT = real_positions(tokens_BxT)
        # The k-th real token goes to slot k (empty slots stay 0): the input is the same for any
        # padding; tokens beyond max_len are dropped. The slots are chosen on the integer tokens
        # before the embedding: as a float einsum over one-hot placements, XLA:CPU ran B tiny
        # matmuls and their transposes, 47% of a training step (profile of the K = 8 MLP).
        place_BxTxL = (pos_BxT[..., None] == jnp.arange(self.max_len)) & mask_BxT[..., None]
        tok_BxL = jnp.sum(jnp.where(place_BxTxL, tokens_BxT[..., None], 0), axis=1)
        e_BxLxDs = jnp.where(tok_BxL[..., None] > 0, self.tok(tok_BxL), 0.0)  # real tokens are > 0
        return e_BxLxDs.reshape(tokens_BxT.shape[0], -1)

    def features(self, x: jax.Array) -> jax.Array:
        h_BxD = self._slots(x) if self.input == "tokens" else x.astype(jnp.float32)
        for lin in self.layers:
            h_BxD = jax.nn.gelu(lin(h_BxD))
        return h_BxD


class Anchor(nnx.Variable):
    """A constant of a model (not a Param: the optimizer leaves it), e.g. a randomised-prior draw."""


def _mix32(h: jax.Array) -> jax.Array:
    """A 32-bit avalanche hash (lowbias32) on uint32 arrays."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


class PrefixScorer(nnx.Module):
    """r(y) = Σ_j table_j[slot of the depth-j prefix of y]: a learned value per prefix node.

    With `prior_var` = s_j² and `prior_penalty` weighted 1/P beside the mean BT loss, the training
    objective is the exact learner's negative log posterior (rm.bayes) divided by P, so full-batch
    training converges to its MAP; with `anchored` each member starts at and is pulled towards its own
    prior draw (a randomised-prior ensemble member, Osband et al. 2018). The prompt token has depth 0
    and no value; a token's depth is its rank among the real tokens, so padding does not matter.
    """

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        assert cfg.input == "tokens", "the prefix model reads tokens"
        D = cfg.max_len - 1
        s2 = tuple(float(v) for v in cfg.prior_var) if cfg.prior_var else (1.0,) * D
        if len(s2) != D:
            raise ValueError(f"prior_var needs {D} depths, got {len(s2)}")
        self.vocab, self.table_size, self.prior_var = cfg.vocab, cfg.table_size, s2
        sd_D = jnp.sqrt(jnp.asarray(s2, jnp.float32))
        if cfg.anchored:
            init_DxT = jax.random.normal(rngs.params(), (D, cfg.table_size)) * sd_D[:, None]
        else:
            init_DxT = jnp.zeros((D, cfg.table_size))
        self.table = nnx.Param(init_DxT)
        self.anchor = Anchor(init_DxT)

    def slots(self, tokens_BxT: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Depth − 1, table slot and validity of every token's prefix: `depth_BxT`, `slot_BxT`, `ok_BxT`."""
        mask_BxT, rank_BxT = real_positions(tokens_BxT)
        tok_BxT = tokens_BxT.astype(jnp.uint32)

        # c_t = c_{t−1}·vocab + token_t (mod 2^32): pads before the first real token leave it 0.
        def step(c_B, t_B):
            c_B = c_B * jnp.uint32(self.vocab) + t_B
            return c_B, c_B

        _, code_TxB = jax.lax.scan(step, jnp.zeros(tokens_BxT.shape[0], jnp.uint32), tok_BxT.T)
        code_BxT = code_TxB.T
        T = tokens_BxT.shape[1]
        exact_T = jnp.asarray([self.vocab ** (r + 1) <= self.table_size for r in range(T)])
        slot_BxT = jnp.where(exact_T[rank_BxT], code_BxT, _mix32(code_BxT)) % jnp.uint32(self.table_size)
        D = len(self.prior_var)
        ok_BxT = mask_BxT & (rank_BxT >= 1) & (rank_BxT <= D)
        depth_BxT = jnp.clip(rank_BxT - 1, 0, D - 1)
        return depth_BxT, slot_BxT.astype(jnp.int32), ok_BxT

    def __call__(self, tokens_BxT: jax.Array) -> jax.Array:
        depth_BxT, slot_BxT, ok_BxT = self.slots(tokens_BxT)
        return jnp.sum(jnp.where(ok_BxT, self.table[depth_BxT, slot_BxT], 0.0), axis=1)

    def score_and_harm(self, x: jax.Array) -> tuple[jax.Array, None]:
        return self(x), None

    def prior_penalty(self) -> jax.Array:
        """Σ_j Σ_u (table − anchor)² / (2 s_j²): the negative log prior of the values."""
        s2_D = jnp.asarray(self.prior_var, jnp.float32)
        return 0.5 * jnp.sum((self.table[...] - self.anchor[...]) ** 2 / s2_D[:, None])


def make_model(cfg: ModelConfig, rngs: nnx.Rngs) -> TransformerScorer | MLPScorer | PrefixScorer:
    if cfg.family == "transformer":
        return TransformerScorer(cfg, rngs)
    if cfg.family == "mlp":
        return MLPScorer(cfg, rngs)
    if cfg.family == "prefix":
        return PrefixScorer(cfg, rngs)
    raise ValueError(f"unknown model family {cfg.family!r}")


@functools.partial(jax.jit, static_argnums=0)
def _init_state(cfg: ModelConfig, key: jax.Array) -> nnx.State:
    return nnx.state(make_model(cfg, nnx.Rngs(key)))


def init_model(cfg: ModelConfig, key: jax.Array) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, state) of a fresh model; initialised in one compiled program (eager init
    compiles every random op on its own, which costs seconds on CPU)."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(cfg, nnx.Rngs(0))))
    return graphdef, _init_state(cfg, key)
