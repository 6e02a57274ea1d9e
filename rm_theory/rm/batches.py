"""From the trainer's input arrays to device arrays and minibatches.

Member k's bootstrap resample is drawn once; minibatch t of member k is drawn with
`fold_in(key_k, t)`, so a run is a pure function of (configs, data, key).

Legend: N items, P pairs, G groups, K ensemble members, M resampled list length, B pairs per
minibatch, Bg groups per minibatch, Kg group size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rm_theory.rm.step import Arrays, TrainConfig
from rm_theory.world.inputs import PrefData


def to_device(data: PrefData, objective: str) -> Arrays:
    """The arrays an objective uses, as JAX arrays (absent labels are absent keys)."""
    x = np.asarray(data.x)
    d: Arrays = {"x": jnp.asarray(x, jnp.int32 if np.issubdtype(x.dtype, np.integer) else jnp.float32)}
    pairs = {"reward": data.pref_P, "cost": data.safer_P}.get(objective)
    if data.n_pairs and pairs is not None:
        d["a"] = jnp.asarray(data.a_P, jnp.int32)
        d["b"] = jnp.asarray(data.b_P, jnp.int32)
        d["pair_y"] = jnp.asarray(pairs, jnp.float32)  # pref (reward) or safer (cost)
    if objective == "reward":
        if data.n_groups:
            d["group"] = jnp.asarray(data.group_GxK, jnp.int32)
        if not (data.n_pairs or data.n_groups):
            raise ValueError("no comparisons to train on")
        if data.n_pairs and data.pref_P is None:
            raise ValueError("reward pairs need pref_P")
    elif objective == "cost":
        if not data.has_safety:
            raise ValueError("the cost objective needs safe_N and/or pairs with safer_P")
        # Item-level labels train on items drawn from all N (tree items included).
        if data.safe_N is not None:
            d["safe"] = jnp.asarray(data.safe_N, jnp.float32)
            if data.harm_NxC is not None:
                d["harm"] = jnp.asarray(data.harm_NxC, jnp.float32)
    else:
        raise ValueError(f"unknown objective {objective!r}")
    return d


def bootstrap_indices(tc: TrainConfig, n: int, key: jax.Array) -> jax.Array:
    """idx_KxN: member k trains on items idx[k] of a list of n (a resample, or all of them)."""
    if not tc.bootstrap or n == 0:
        return jnp.tile(jnp.arange(n, dtype=jnp.int32), (tc.ensemble_size, 1))
    keys = jax.random.split(key, tc.ensemble_size)
    return jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n, dtype=jnp.int32))(keys)


# Configs are frozen (hashable) dataclasses, so jit's own cache reuses the compiled programs


def _draw(key: jax.Array, boot_M: jax.Array, n: int) -> jax.Array:
    """n indices drawn uniformly from a member's (resampled) list."""
    return boot_M[jax.random.randint(key, (n,), 0, boot_M.shape[0])]


def sample_batch(d: Arrays, boot: Arrays, key: jax.Array, tc: TrainConfig) -> Arrays:
    k_pair, k_group, k_item = jax.random.split(key, 3)
    x = d["x"]
    batch: Arrays = {}
    if "a" in d:
        i_B = _draw(k_pair, boot["pair"], tc.batch_size)
        batch["xa"], batch["xb"] = x[d["a"][i_B]], x[d["b"][i_B]]
        batch["pair_y"] = d["pair_y"][i_B]
    if "safe" in d:
        n_2B = _draw(k_item, boot["item"], 2 * tc.batch_size)
        batch["xs"], batch["safe"] = x[n_2B], d["safe"][n_2B]
        if "harm" in d:
            batch["harm"] = d["harm"][n_2B]
    if "group" in d:
        g_Bg = boot["group"][jax.random.randint(k_group, (tc.group_batch_size,), 0, boot["group"].shape[0])]
        grp_BgxKg = d["group"][g_Bg]
        batch["valid"] = grp_BgxKg >= 0
        batch["xg"] = x[jnp.maximum(grp_BgxKg, 0)]
    return batch
