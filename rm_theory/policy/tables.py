"""Tabulated policies on small prefix-tree spaces (THEORY.md §2 "Reference policy"; paper §5).

A small `PrefixTreeSpace` (V^L leaves per prompt up to ~1e5) is tabulated once in numpy: the
reference policy's child logits at every internal node and the gold reward of every leaf. JAX then
works on arrays only, so the jitted optimisation never returns to the host.

`TabularPolicy` holds one logit vector per internal node, initialised at π_ref (the "SFT" model);
it samples autoregressively (`jax.random.categorical` per depth inside `lax.scan`).

Legend: X prompts, V vocabulary (branching), L depth, N nodes (internal, of each prompt's tree: (V^L −
1)/(V − 1); or the items compared), Y responses (leaves of a prompt: V^L), B samples drawn per prompt.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy import special

from rm_theory.world.spaces import STREAM_POLICY, PrefixTreeSpace, Responses

Arrays = dict[str, jax.Array]


# --------------------------------------------------------------------------------------------
# Tabulation (numpy, once)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TreeTables:
    """A tabulated prefix-tree space: node indexing, reference logits, gold reward of every leaf.

    Node of depth j with prefix value v (the first j tokens read as a base-V number) has index
    offset_j + v, offset_j = (V^j − 1)/(V − 1); leaves are in `PrefixTreeSpace.enumerate` order.
    """

    V: int
    L: int
    P: int
    offset_L: np.ndarray  # offset of each depth 0..L−1
    ref_logits_XxNxV: np.ndarray  # reference child logits divided by the temperature
    leaf_tokens_YxL: np.ndarray
    leaf_nodes_YxL: np.ndarray  # internal node visited at each depth on the way to each leaf
    gold_XxY: np.ndarray

    @property
    def Y(self) -> int:
        return self.V**self.L

    @property
    def N(self) -> int:
        return (self.V**self.L - 1) // (self.V - 1)

    def ref_logp(self) -> np.ndarray:
        """log π_ref of every leaf, `logp_XxY` (float64)."""
        return leaf_logp_np(self.ref_logits_XxNxV, self)


def tabulate(space: PrefixTreeSpace, prompts: np.ndarray | None = None) -> TreeTables:
    """Tables of `prompts` (default: all) of a small prefix-tree space."""
    V, L = space.V, space.L
    if V**L > 200_000:
        raise ValueError(f"V^L = {V**L} leaves per prompt is too many to tabulate")
    prompts = np.arange(space.num_prompts) if prompts is None else np.asarray(prompts)
    P, Y = len(prompts), V**L
    offset_L = np.array([(V**j - 1) // (V - 1) for j in range(L)], dtype=np.int64)
    logits = []
    for j in range(L):  # every depth-j node of every prompt, as a prefix padded with −1
        idx = np.arange(V**j)
        pre = np.stack([(idx // V ** (j - 1 - i)) % V for i in range(j)], axis=1) if j else np.zeros((1, 0), int)
        data = np.full((P * V**j, L), -1, dtype=np.int64)
        data[:, :j] = np.tile(pre, (P, 1))
        h = space.path_hashes(Responses(np.repeat(prompts, V**j), data), STREAM_POLICY)[:, j]
        logits.append((space._logits(h) / space.temperature).reshape(P, V**j, V))
    leaves = space.enumerate(0).data
    value_YxL = np.zeros((Y, L), dtype=np.int64)
    for j in range(1, L):
        value_YxL[:, j] = value_YxL[:, j - 1] * V + leaves[:, j - 1]
    gold = np.stack([space.gold_reward(Responses(np.full(Y, p), leaves)) for p in prompts])
    return TreeTables(
        V,
        L,
        P,
        offset_L,
        np.concatenate(logits, axis=1).astype(np.float32),
        leaves.astype(np.int32),
        (offset_L[None, :] + value_YxL).astype(np.int32),
        gold,
    )


def leaf_logp_np(logits_XxNxV: np.ndarray, tt: TreeTables) -> np.ndarray:
    lsm = special.log_softmax(np.asarray(logits_XxNxV, np.float64), axis=-1)
    return lsm[:, tt.leaf_nodes_YxL, tt.leaf_tokens_YxL].sum(-1)


def item_nodes(tokens_NxL: np.ndarray, tt: TreeTables) -> tuple[np.ndarray, np.ndarray]:
    """Internal node of each present token of complete or incomplete responses, and the mask."""
    mask = tokens_NxL >= 0
    t = np.maximum(tokens_NxL, 0)
    value = np.zeros(len(t), dtype=np.int64)
    nodes = np.zeros(t.shape, dtype=np.int64)
    for j in range(tt.L):
        nodes[:, j] = tt.offset_L[j] + value
        value = value * tt.V + t[:, j]
    return nodes.astype(np.int32), mask


def leaf_index(tokens_NxL: np.ndarray, V: int) -> np.ndarray:
    """Position of complete responses in `enumerate` order."""
    L = tokens_NxL.shape[1]
    return (tokens_NxL * V ** np.arange(L - 1, -1, -1)).sum(1)


# --------------------------------------------------------------------------------------------
# The tabular policy (Flax NNX)
# --------------------------------------------------------------------------------------------


class TabularPolicy(nnx.Module):
    """Autoregressive policy with one logit vector per internal node of every prompt."""

    def __init__(self, init_logits_XxNxV: jax.Array):
        self.logits = nnx.Param(jnp.asarray(init_logits_XxNxV, jnp.float32))


@dataclasses.dataclass(frozen=True)
class JaxTables:
    """The device arrays a jitted policy program needs (a pytree; V and L are static)."""

    offset_L: jax.Array
    ref_lsm_XxNxV: jax.Array
    gold_XxY: jax.Array
    ref_logp_XxY: jax.Array
    V: int = dataclasses.field(metadata={"static": True}, default=2)
    L: int = dataclasses.field(metadata={"static": True}, default=1)


jax.tree_util.register_dataclass(
    JaxTables,
    data_fields=["offset_L", "ref_lsm_XxNxV", "gold_XxY", "ref_logp_XxY"],
    meta_fields=["V", "L"],
)


def to_jax(tt: TreeTables) -> JaxTables:
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    lsm = special.log_softmax(tt.ref_logits_XxNxV.astype(np.float64), axis=-1)
    return JaxTables(
        jnp.asarray(tt.offset_L, jnp.int32),
        f32(lsm),
        f32(tt.gold_XxY),
        f32(tt.ref_logp()),
        tt.V,
        tt.L,
    )


def leaf_logp(logits_XxNxV: jax.Array, jt: JaxTables) -> jax.Array:
    """log π of every leaf, `logp_XxY`, depth by depth (static slices, no gathers)."""
    lsm = jax.nn.log_softmax(logits_XxNxV, axis=-1)
    P, V = lsm.shape[0], jt.V
    lp = jnp.zeros((P, 1))
    for j in range(jt.L):
        lo = (V**j - 1) // (V - 1)
        lp = (lp[:, :, None] + lsm[:, lo : lo + V**j]).reshape(P, -1)
    return lp


def sample(logits_XxNxV: jax.Array, jt: JaxTables, key: jax.Array, B: int) -> tuple[jax.Array, jax.Array]:
    """B responses per prompt, token by token: `nodes_XxBxL` (visited nodes) and `tokens_XxBxL`."""
    P, V, L = logits_XxNxV.shape[0], jt.V, jt.L

    def depth(value_XxB, xs):
        j, k = xs
        node_XxB = jt.offset_L[j] + value_XxB
        logit_XxBxV = jnp.take_along_axis(logits_XxNxV, node_XxB[..., None], axis=1)
        t_XxB = jax.random.categorical(k, logit_XxBxV, axis=-1)
        return value_XxB * V + t_XxB, (node_XxB, t_XxB)

    keys = jax.random.split(key, L)
    _, (nodes, tokens) = jax.lax.scan(depth, jnp.zeros((P, B), jnp.int32), (jnp.arange(L), keys), unroll=True)
    return jnp.moveaxis(nodes, 0, -1), jnp.moveaxis(tokens, 0, -1)


def token_logp(logits_XxNxV: jax.Array, nodes_XxBxL: jax.Array, tokens_XxBxL: jax.Array) -> jax.Array:
    """log π(t_j | node_j) of every sampled token (normalised only at the visited nodes)."""
    P = logits_XxNxV.shape[0]
    rows_XxBxLxV = logits_XxNxV[jnp.arange(P)[:, None, None], nodes_XxBxL]
    lsm = jax.nn.log_softmax(rows_XxBxLxV, axis=-1)
    return jnp.take_along_axis(lsm, tokens_XxBxL[..., None], axis=-1)[..., 0]


def leaf_of(tokens_XxBxL: jax.Array, V: int) -> jax.Array:
    L = tokens_XxBxL.shape[-1]
    return jnp.sum(tokens_XxBxL * (V ** jnp.arange(L - 1, -1, -1)), axis=-1)


# --------------------------------------------------------------------------------------------
# PPO-style KL-regularised policy optimisation
# --------------------------------------------------------------------------------------------
