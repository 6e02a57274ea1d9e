"""Reward and cost heads on frozen features: the trainer's `PrefData` over a record list's items, and
ensembles trained by the same fused loop and losses as the synthetic world (THEORY.md §2, "Theory
against practice"), only the input is a frozen sentence embedding instead of tokens.

Legend: N items, Nu items the selected pairs use, P pairs, D feature width, G groups of labels (a vector
model's heads).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from rm_theory.real.features import Items
from rm_theory.rm import multidim
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import Ensemble, PrefData, TrainConfig, train_ensemble


def pref_data(
    x_NxD: np.ndarray, it: Items, mask_P: np.ndarray | None = None, with_safety: bool = True
) -> tuple[PrefData, np.ndarray]:
    """The trainer's `PrefData` for the pairs selected by `mask_P`, and the item index of each
    of its rows.

    Safety, when every selected pair has a safer label: the pairs train the cost's ranking
    term, and the items' safe labels (when all known) its sign term (Safe RLHF, §3.2). The
    trainer samples sign-term items from all its rows, so with safe labels the rows are
    reindexed to the selected pairs' items (held-out items never leak); without them all N
    rows are kept, so that data sets of equal size share one compiled training program."""
    m_P = np.ones(len(it.a_P), bool) if mask_P is None else np.asarray(mask_P, bool)
    a_P, b_P, P = it.a_P[m_P], it.b_P[m_P], int(m_P.sum())
    safer_P = it.safer_P[m_P]
    safety = with_safety and P > 0 and bool(np.isfinite(safer_P).all())
    x_NxD = np.asarray(x_NxD, np.float32)
    used_Nu, inv = np.unique(np.r_[a_P, b_P], return_inverse=True)
    if safety and np.isfinite(it.safe_N[used_Nu]).all():
        data = PrefData(
            x=x_NxD[used_Nu],
            a_P=inv[:P],
            b_P=inv[P:],
            pref_P=it.pref_P[m_P],
            safer_P=safer_P,
            safe_N=it.safe_N[used_Nu],
        )
        return data, used_Nu
    data = PrefData(x=x_NxD, a_P=a_P, b_P=b_P, pref_P=it.pref_P[m_P], safer_P=safer_P if safety else None)
    return data, np.arange(len(x_NxD))


def feature_model(hidden: Sequence[int], feature_dim: int) -> ModelConfig:
    """The MLP head on frozen features (the synthetic world's `MLPScorer`)."""
    return ModelConfig(family="mlp", input="features", feature_dim=feature_dim, hidden=tuple(hidden))


def train_heads(
    x_NxD: np.ndarray,
    it: Items,
    train_P: np.ndarray,
    mc: ModelConfig,
    tc: TrainConfig,
    key: jax.Array,
    cost: bool = True,
    progress: bool = False,
) -> dict[str, Ensemble]:
    """A reward ensemble on the pairs `train_P` (and a cost ensemble when `cost` and every
    training pair has a safer label). Scores are of items: `ens.score(x_NxD)`."""
    data, _ = pref_data(x_NxD, it, train_P, with_safety=cost)
    out = {
        "reward": train_ensemble(
            mc, dataclasses.replace(tc, objective="reward"), data, jax.random.fold_in(key, 0), progress=progress
        )[0]
    }
    if cost and data.has_safety:
        out["cost"] = train_ensemble(
            mc, dataclasses.replace(tc, objective="cost"), data, jax.random.fold_in(key, 1), progress=progress
        )[0]
    return out


def train_vector_heads(
    xs: Sequence[np.ndarray],
    its: Sequence[Items],
    train_masks: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    mc: ModelConfig,
    tc: TrainConfig,
    key: jax.Array,
) -> list[np.ndarray]:
    """`rm.multidim`'s vector model (`mc`'s trunk, G preference heads) on the frozen features of
    several sets' items (`xs[i]` the features of `its[i]`), trained on each set's pairs `train_masks[i]`
    with labels y_PxG (NaN: the pair is not labelled on that head); each set's ensemble-mean
    preference scores s_NxG of its items."""
    off = np.cumsum([0] + [len(x) for x in xs])
    a = [it.a_P[m] + o for it, m, o in zip(its, train_masks, off, strict=False)]
    b = [it.b_P[m] + o for it, m, o in zip(its, train_masks, off, strict=False)]
    y_PxG = np.concatenate([y[m] for y, m in zip(labels, train_masks, strict=True)])
    x, N, G = np.concatenate(xs), int(off[-1]), y_PxG.shape[1]
    data = multidim.VectorData(
        x,
        np.concatenate(a),
        np.concatenate(b),
        np.nan_to_num(y_PxG, nan=0.5),
        np.isfinite(y_PxG).astype(np.float32),
        np.zeros(N),
        np.zeros((N, 0)),
        np.zeros(N, np.int32),
        np.zeros(N),  # no item labels: the sign, category and severity terms are off
    )
    vtc = multidim.VectorTrainConfig(tc, sign=0, category=0, severity=0)
    ens = multidim.train_vector_ensemble(multidim.VectorConfig(mc, G, 0, 0), vtc, data, key)
    s_NxG = ens.split(ens.outputs(x))["pref"].mean(0)
    return [s_NxG[lo:hi] for lo, hi in zip(off[:-1], off[1:], strict=True)]
