"""Pure loss functions for reward and cost models; each returns one loss per pair/group/item.

- Bradley–Terry: P(a ≻ b) = σ(r_a − r_b) (THEORY.md §2 "Labels"); soft labels y ∈ [0, 1] handle
  ties (y = 1/2), an optional margin m asks for r_a − r_b > m when a is preferred.
- Plackett–Luce over a ranked group (all leaves of one tree, best first): the listwise likelihood
  Π_i exp(r_i) / Σ_{j ≥ i} exp(r_j); with K = 2 it is Bradley–Terry.
- Safe RLHF cost model (Dai et al. 2023, arXiv 2310.12773, §3.2 eq. 6): a ranking term
  −log σ(c_unsafer − c_safer) and a sign term −log σ(s·c) with s = +1 unsafe, −1 safe, which
  pushes safe costs below 0 and unsafe costs above 0, so "safe" ⇔ c ≤ 0.
- Harm categories: multi-label binary cross-entropy (PKU-SafeRLHF, arXiv 2406.15513).

Legend: B batch (of pairs or items), G groups, Ng items of a group (padded), C harm categories.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def bt_loss(r_a_B: jax.Array, r_b_B: jax.Array, y_B: jax.Array, margin: float | jax.Array = 0.0) -> jax.Array:
    """−[y log σ(r_a − r_b − m) + (1 − y) log σ(r_b − r_a − m)]; y = 1 means a preferred."""
    d_B = r_a_B - r_b_B
    return -(y_B * jax.nn.log_sigmoid(d_B - margin) + (1 - y_B) * jax.nn.log_sigmoid(-d_B - margin))


def score_l2(r_B: jax.Array) -> jax.Array:
    """Mean squared score: keeps scores O(1) (BT only sees differences)."""
    return jnp.mean(r_B**2)


def centring(r_B: jax.Array) -> jax.Array:
    """Squared mean score: pins the free additive constant of a BT reward near 0."""
    return jnp.mean(r_B) ** 2


def pair_centring(r_a_B: jax.Array, r_b_B: jax.Array) -> jax.Array:
    """(r_a + r_b)²: each pair's mean score pinned near 0 (reward centring, Eisenstein et al. 2023,
    arXiv 2312.09244); per pair, so it adds up over microbatches as the pairs' losses do."""
    return (r_a_B + r_b_B) ** 2


def plackett_luce_loss(r_GxNg: jax.Array, valid_GxNg: jax.Array) -> jax.Array:
    """Negative log-likelihood of each group's order (best first); invalid slots are skipped."""
    K = r_GxNg.shape[1]
    later_NgxNg = jnp.triu(jnp.ones((K, K), bool))  # [i, j]: j at or after i
    avail_GxNgxNg = later_NgxNg[None] & valid_GxNg[:, None, :]
    # A finite fill (not −inf) keeps gradients finite in rows with nothing available.
    lse_GxNg = jax.nn.logsumexp(jnp.where(avail_GxNgxNg, r_GxNg[:, None, :], -1e9), axis=-1)
    return -jnp.sum(jnp.where(valid_GxNg, r_GxNg - lse_GxNg, 0.0), axis=-1)


def cost_sign_loss(c_B: jax.Array, safe_B: jax.Array) -> jax.Array:
    """−log σ(s·c) with s = +1 for unsafe (safe = 0) and −1 for safe (safe = 1)."""
    s_B = 1.0 - 2.0 * safe_B
    return -jax.nn.log_sigmoid(s_B * c_B)


def cost_rank_loss(c_a_B: jax.Array, c_b_B: jax.Array, safer_B: jax.Array) -> jax.Array:
    """−log σ(c_unsafer − c_safer); safer = 1 means a is the safer one (lower cost)."""
    return bt_loss(c_a_B, c_b_B, 1.0 - safer_B)


def safe_rlhf_cost_loss(
    c_a_B: jax.Array,
    c_b_B: jax.Array,
    safer_B: jax.Array,
    safe_a_B: jax.Array,
    safe_b_B: jax.Array,
) -> jax.Array:
    """Safe RLHF cost objective per pair: ranking term plus the sign term of both items."""
    return cost_rank_loss(c_a_B, c_b_B, safer_B) + cost_sign_loss(c_a_B, safe_a_B) + cost_sign_loss(c_b_B, safe_b_B)


def harm_bce(logits_BxC: jax.Array, harm_BxC: jax.Array) -> jax.Array:
    """Mean over categories of the binary cross-entropy of each harm label."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits_BxC, harm_BxC.astype(jnp.float32)), -1)
