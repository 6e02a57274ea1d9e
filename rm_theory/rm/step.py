"""One training step's mathematics: the trainer's hyperparameters, the learning-rate schedule and
optimizer, and the loss of a minibatch.

Objectives: "reward" = Bradley–Terry on pairs + Plackett–Luce on ranked groups (+ score L2 and
centring); "cost" = Safe RLHF cost loss (arXiv 2310.12773 §3.2) + harm-category BCE.

Legend: B minibatch (pairs), Bg groups of a minibatch, Ng items of a group, Nb items of one forward
pass, C harm categories.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from rm_theory.rm import losses

Arrays = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    objective: str = "reward"  # "reward" | "cost"
    ensemble_size: int = 4
    steps: int = 1000
    batch_size: int = 64  # pairs per member per step
    group_batch_size: int = 16  # tree groups per member per step
    lr: float = 1e-3
    warmup_steps: int = 50
    end_lr_frac: float = 0.1
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    bootstrap: bool = True  # each member trains on its own resample (with replacement)
    margin: float = 0.0
    pair_coef: float = 1.0
    group_coef: float = 1.0
    l2_coef: float = 0.0
    centre_coef: float = 1e-3
    rank_coef: float = 1.0
    sign_coef: float = 1.0
    harm_coef: float = 1.0
    # Weight of the model's own `prior_penalty()` (negative log prior, e.g. per-depth L2 towards an
    # anchor); 1/P beside the mean BT loss makes the objective the negative log posterior / P.
    prior_coef: float = 0.0
    log_every: int = 100  # steps per compiled chunk; one log row per chunk
    checkpoint_every: int = 0  # multiple of log_every; 0 = only at the end (with a directory)


def make_schedule(tc: TrainConfig) -> optax.Schedule:
    """Linear warm-up from 0 to lr, then cosine decay to lr·end_lr_frac at the last step."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=tc.lr,
        warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.steps, tc.warmup_steps + 1),
        end_value=tc.lr * tc.end_lr_frac,
    )


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(tc.clip_norm),
        optax.adamw(make_schedule(tc), weight_decay=tc.weight_decay),
    )


def _wmean(v: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(v * w) / jnp.maximum(jnp.sum(w), 1.0)


def loss_and_metrics(model: nnx.Module, batch: Arrays, tc: TrainConfig) -> tuple[jax.Array, Arrays]:
    """Total loss and named parts of one minibatch (pieces present in the batch only)."""
    names = [k for k in ("xa", "xb", "xs") if k in batch]
    parts = [batch[k] for k in names]
    w_parts = [jnp.ones(batch[k].shape[0]) for k in names]
    if "xg" in batch:
        Bg, Ng = batch["valid"].shape
        parts.append(batch["xg"].reshape(Bg * Ng, *batch["xg"].shape[2:]))
        w_parts.append(batch["valid"].reshape(-1).astype(jnp.float32))
    # One forward pass over every item of the batch, then split back by name.
    r_Nb, harm_NbxC = model.score_and_harm(jnp.concatenate(parts))
    w_Nb = jnp.concatenate(w_parts)
    lo, r, harm = 0, {}, {}
    for k in names:
        n = batch[k].shape[0]
        r[k] = r_Nb[lo : lo + n]
        harm[k] = None if harm_NbxC is None else harm_NbxC[lo : lo + n]
        lo += n
    aux: Arrays = {}
    total = tc.l2_coef * _wmean(r_Nb**2, w_Nb) + tc.centre_coef * _wmean(r_Nb, w_Nb) ** 2
    if tc.objective == "reward":
        if "xa" in batch:
            y_B = batch["pair_y"]
            aux["bt"] = jnp.mean(losses.bt_loss(r["xa"], r["xb"], y_B, tc.margin))
            hit_B = ((r["xa"] > r["xb"]) == (y_B > 0.5)).astype(jnp.float32)
            aux["acc"] = _wmean(hit_B, (y_B != 0.5).astype(jnp.float32))
            total += tc.pair_coef * aux["bt"]
        if "xg" in batch:
            r_BgxNg = r_Nb[lo:].reshape(batch["valid"].shape)
            aux["pl"] = jnp.mean(losses.plackett_luce_loss(r_BgxNg, batch["valid"]))
            total += tc.group_coef * aux["pl"]
    else:
        if "xa" in batch:
            aux["rank"] = jnp.mean(losses.cost_rank_loss(r["xa"], r["xb"], batch["pair_y"]))
            total += tc.rank_coef * aux["rank"]
        if "xs" in batch:
            c_2B, safe_2B = r["xs"], batch["safe"]
            aux["sign"] = jnp.mean(losses.cost_sign_loss(c_2B, safe_2B))
            aux["sign_acc"] = jnp.mean(((c_2B <= 0) == (safe_2B > 0.5)).astype(jnp.float32))
            total += tc.sign_coef * aux["sign"]
            if "harm" in batch and harm["xs"] is not None:
                aux["harm"] = jnp.mean(losses.harm_bce(harm["xs"], batch["harm"]))
                total += tc.harm_coef * aux["harm"]
    if tc.prior_coef:  # off by default: the traced program is then unchanged
        aux["prior"] = model.prior_penalty()
        total = total + tc.prior_coef * aux["prior"]
    aux["loss"] = total
    return total, aux
