"""From the trainer's input arrays to device arrays and minibatches.

Member k's bootstrap resample is drawn once; minibatch t of member k is drawn with
`fold_in(key_k, t)`, so a run is a pure function of (configs, data, key).

Every list (items, pairs, groups) is padded to `bucket(length)` rows and its true length rides
along as a number, so data sets of other sizes run the same compiled training chunk (each compile
costs seconds on CPU). Draws stop at the true length, so padding is never read and the numbers are
those of the unpadded arrays.

Legend: N items, Np a list of items padded to its bucket, P pairs, G groups, K ensemble members, B
minibatch (pairs), Bg groups of a minibatch, Ng items of a group, C harm categories.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rm_theory.rm.step import Arrays, TrainConfig
from rm_theory.world.inputs import PrefData

MIN_BUCKET = 4096  # one program for every list up to this long (the quick reproduction's sizes)


def bucket(n: int) -> int:
    """Padded length of a list of n: the next power of two, at least MIN_BUCKET."""
    return max(MIN_BUCKET, 1 << max(n - 1, 0).bit_length())


def _padded(v, dtype, fill: float = 0) -> jax.Array:
    v = np.asarray(v, dtype)
    out = np.full((bucket(len(v)), *v.shape[1:]), fill, dtype)
    out[: len(v)] = v
    return jnp.asarray(out)


def to_device(data: PrefData, objective: str) -> Arrays:
    """The arrays an objective uses, as padded JAX arrays (absent labels are absent keys), with
    their true lengths n_item, n_pair, n_group."""
    x = np.asarray(data.x)
    d: Arrays = {"x": _padded(x, np.int32 if np.issubdtype(x.dtype, np.integer) else np.float32)}
    d["n_item"] = jnp.int32(data.n_items)
    pairs = {"reward": data.pref_P, "cost": data.safer_P}.get(objective)
    if data.n_pairs and pairs is not None:
        d["a"] = _padded(data.a_P, np.int32)
        d["b"] = _padded(data.b_P, np.int32)
        d["pair_y"] = _padded(pairs, np.float32)  # pref (reward) or safer (cost)
        d["n_pair"] = jnp.int32(data.n_pairs)
    if objective == "reward":
        if data.n_groups:
            d["group"] = _padded(data.group_GxNg, np.int32, fill=-1)
            d["n_group"] = jnp.int32(data.n_groups)
        if not (data.n_pairs or data.n_groups):
            raise ValueError("no comparisons to train on")
        if data.n_pairs and data.pref_P is None:
            raise ValueError("reward pairs need pref_P")
    elif objective == "cost":
        if not data.has_safety:
            raise ValueError("the cost objective needs safe_N and/or pairs with safer_P")
        # Item-level labels train on items drawn from all N (tree items included).
        if data.safe_N is not None:
            d["safe"] = _padded(data.safe_N, np.float32)
            if data.harm_NxC is not None:
                d["harm"] = _padded(data.harm_NxC, np.float32)
    else:
        raise ValueError(f"unknown objective {objective!r}")
    return d


def bootstrap_indices(tc: TrainConfig, n: int, m: int, key: jax.Array) -> jax.Array:
    """idx_KxM: member k trains on items idx[k, :n] of a list of n (a resample, or all of them),
    padded to m. Drawn at length n: with `threefry_partitionable(False)` (the downstream studies)
    a draw of m would not begin with the draw of n."""
    if not tc.bootstrap:
        return jnp.tile(jnp.arange(m, dtype=jnp.int32), (tc.ensemble_size, 1))
    keys = jax.random.split(key, tc.ensemble_size)
    idx_KxN = jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n, dtype=jnp.int32))(keys)
    return jnp.pad(idx_KxN, ((0, 0), (0, m - n)))


# Configs are frozen (hashable) dataclasses, so jit's own cache reuses the compiled programs


def _draw(key: jax.Array, boot_Np: jax.Array, m: jax.Array, n: int) -> jax.Array:
    """n indices drawn uniformly from the first m entries of a member's (resampled) list."""
    return boot_Np[jax.random.randint(key, (n,), 0, m)]


def sample_batch(d: Arrays, boot: Arrays, key: jax.Array, tc: TrainConfig) -> Arrays:
    k_pair, k_group, k_item = jax.random.split(key, 3)
    x = d["x"]
    batch: Arrays = {}
    if "a" in d:
        i_B = _draw(k_pair, boot["pair"], d["n_pair"], tc.batch_size)
        batch["xa"], batch["xb"] = x[d["a"][i_B]], x[d["b"][i_B]]
        batch["pair_y"] = d["pair_y"][i_B]
    if "safe" in d:
        n_2B = _draw(k_item, boot["item"], d["n_item"], 2 * tc.batch_size)
        batch["xs"], batch["safe"] = x[n_2B], d["safe"][n_2B]
        if "harm" in d:
            batch["harm"] = d["harm"][n_2B]
    if "group" in d:
        g_Bg = _draw(k_group, boot["group"], d["n_group"], tc.group_batch_size)
        grp_BgxNg = d["group"][g_Bg]
        batch["valid"] = grp_BgxNg >= 0
        batch["xg"] = x[jnp.maximum(grp_BgxNg, 0)]
    return batch
