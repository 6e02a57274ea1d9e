"""Held-out accuracy of reward and cost heads on real data, with percentile bootstrap intervals over
prompts (pairs of one prompt are not independent, so resampling whole prompts keeps the interval
honest).

Legend: N items, P pairs, K ensemble members, R bootstrap resamples, G clusters (prompts, resampled
whole), C harm categories.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rm_theory.real.features import Items
from rm_theory.rm import metrics


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with a percentile bootstrap interval (resampling whole groups)."""

    value: float
    lo: float
    hi: float
    n: int

    def row(self, prefix: str) -> dict[str, float]:
        return {prefix: self.value, f"{prefix}_lo": self.lo, f"{prefix}_hi": self.hi, f"{prefix}_n": self.n}


def bootstrap_mean(
    v_P: np.ndarray, group_P: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> Estimate:
    """Mean of the finite entries of v_P with a cluster-bootstrap interval: resample the G
    groups with replacement, the statistic being Σ(sums of drawn groups) / Σ(their sizes)."""
    v_P = np.asarray(v_P, np.float64)
    ok_P = np.isfinite(v_P)
    if not ok_P.any():
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    _, g_P = np.unique(np.asarray(group_P)[ok_P], return_inverse=True)
    G = int(g_P.max()) + 1
    sum_G = np.bincount(g_P, weights=v_P[ok_P], minlength=G)
    cnt_G = np.bincount(g_P, minlength=G).astype(float)
    w_RxG = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot).astype(float)
    m_R = (w_RxG @ sum_G) / np.maximum(w_RxG @ cnt_G, 1.0)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(m_R, [q, 1.0 - q])
    return Estimate(float(sum_G.sum() / cnt_G.sum()), float(lo), float(hi), int(ok_P.sum()))


def reward_eval(
    s_KxN: np.ndarray, it: Items, test_P: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> dict[str, float]:
    """Accuracy of the ensemble mean (with interval), mean member accuracy, and the mean
    across-member variance of r(a) − r(b) on the pairs `test_P`."""
    m_P = np.asarray(test_P, bool)
    a_P, b_P, pref_P = it.a_P[m_P], it.b_P[m_P], it.pref_P[m_P]
    r_N = s_KxN.mean(axis=0)
    acc = bootstrap_mean(metrics.pair_hits(r_N[a_P] - r_N[b_P], pref_P), it.group_P[m_P], rng, n_boot, level)
    member = [metrics.pairwise_accuracy(s_N, a_P, b_P, pref_P) for s_N in s_KxN]
    var, _ = metrics.ensemble_diff_variance(s_KxN, a_P, b_P) if len(a_P) else (np.nan, None)
    return {**acc.row("accuracy"), "member_accuracy": float(np.mean(member)), "ensemble_variance": var}


def item_groups(it: Items) -> np.ndarray:
    """[N] each item's prompt cluster (the bootstrap's unit for per-response metrics)."""
    g_N = np.zeros(it.n, np.int64)
    g_N[it.a_P], g_N[it.b_P] = it.group_P, it.group_P
    return g_N


def cost_eval(
    c_KxN: np.ndarray, it: Items, test_P: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> dict[str, float]:
    """Sign accuracy (safe ⇔ c ≤ 0) on the items of the test pairs with a safe label, and
    the accuracy of ranking the safer response as less costly."""
    m_P = np.asarray(test_P, bool)
    c_N = c_KxN.mean(axis=0)
    items = np.unique(np.r_[it.a_P[m_P], it.b_P[m_P]])
    items = items[np.isfinite(it.safe_N[items])]
    g_N = item_groups(it)
    hit = ((c_N[items] <= 0) == (it.safe_N[items] > 0.5)).astype(float)
    sign = bootstrap_mean(hit, g_N[items], rng, n_boot, level)
    safer_P = it.safer_P[m_P]
    a_P, b_P = it.a_P[m_P], it.b_P[m_P]
    # The safer side should have the lower cost: a "preference" for −c.
    rank = bootstrap_mean(
        metrics.pair_hits(c_N[b_P] - c_N[a_P], np.nan_to_num(safer_P, nan=0.5)), it.group_P[m_P], rng, n_boot, level
    )
    return {**sign.row("cost_sign_accuracy"), **rank.row("cost_safer_accuracy")}


def category_eval(
    cat_NxC: np.ndarray,
    sev_Nx4: np.ndarray,
    it: Items,
    item_N: np.ndarray,
    rng,
    n_boot: int = 1000,
    level: float = 0.95,
) -> dict[str, float]:
    """A cost model's harm-category logits and severity logits on the items `item_N` that carry
    those labels (`it.severity_N` ≥ 0): the mean per-category accuracy of the multi-label logits
    (logit > 0 ⇔ in the category) and the severity's accuracy (argmax), each with its interval
    (bootstrap over prompts)."""
    g_N = item_groups(it)
    hits = {
        "category": ((cat_NxC > 0) == (it.harm_NxC[item_N] > 0.5)).mean(1),
        "severity": (sev_Nx4.argmax(1) == it.severity_N[item_N]).astype(float),
    }
    out = {}
    for k, h in hits.items():
        out |= bootstrap_mean(h, g_N[item_N], rng, n_boot, level).row(f"{k}_accuracy")
    return out
