"""Evaluation metrics of reward/cost scores (numpy; scores come from `train.ensemble_scores`).

Legend: N items, P pairs, K ensemble members.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def pair_hits(d_P: np.ndarray, pref_P: np.ndarray) -> np.ndarray:
    """1 if the preferred side scores higher, 0 if lower, 1/2 on a score tie; NaN on a labelled tie
    (pref = 0.5), which no accuracy counts. d_P = score(a) − score(b); pref_P = 1 means a ≻ b."""
    d_P, pref_P = np.asarray(d_P, np.float64), np.asarray(pref_P, np.float64)
    hit_P = np.where(d_P == 0, 0.5, ((d_P > 0) == (pref_P > 0.5)).astype(float))
    return np.where(pref_P == 0.5, np.nan, hit_P)


def hit_rate(hit_P: np.ndarray) -> float:
    """Mean of the counted hits (NaN when no pair counts)."""
    hit_P = np.asarray(hit_P, np.float64)
    counted = ~np.isnan(hit_P)
    return float(hit_P[counted].mean()) if counted.any() else float("nan")


def pairwise_accuracy(r_N: np.ndarray, a_P: np.ndarray, b_P: np.ndarray, pref_P: np.ndarray) -> float:
    """Fraction of non-tied labelled pairs ordered as labelled (a score tie counts 1/2)."""
    r_N = np.asarray(r_N, np.float64)
    return hit_rate(pair_hits(r_N[a_P] - r_N[b_P], pref_P))


def spearman(r_N: np.ndarray, gold_N: np.ndarray) -> float:
    return float(spearmanr(r_N, gold_N).statistic)


def expected_calibration_error(p_P: np.ndarray, y_P: np.ndarray, n_bins: int = 10) -> float:
    """ECE of predicted P(a ≻ b) = σ(r_a − r_b) against binary labels, equal-width bins."""
    p_P, y_P = np.asarray(p_P, np.float64), np.asarray(y_P, np.float64)
    bin_P = np.minimum((p_P * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for k in range(n_bins):
        in_k = bin_P == k
        if in_k.any():
            ece += in_k.mean() * abs(p_P[in_k].mean() - y_P[in_k].mean())
    return float(ece)


def pair_probabilities(r_N: np.ndarray, a_P: np.ndarray, b_P: np.ndarray) -> np.ndarray:
    d_P = np.asarray(r_N, np.float64)[a_P] - np.asarray(r_N, np.float64)[b_P]
    return 1.0 / (1.0 + np.exp(-d_P))


def cost_sign_accuracy(c_N: np.ndarray, safe_N: np.ndarray) -> float:
    """Fraction of items whose cost sign matches the safety label (safe ⇔ c ≤ 0)."""
    return float(np.mean((np.asarray(c_N) <= 0) == (np.asarray(safe_N) > 0.5)))


def ensemble_diff_variance(s_KxN: np.ndarray, a_P: np.ndarray, b_P: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean over pairs, and per pair, of the across-member variance of s(a) − s(b)."""
    s_KxN = np.asarray(s_KxN, np.float64)
    var_P = np.var(s_KxN[:, a_P] - s_KxN[:, b_P], axis=0, ddof=1 if s_KxN.shape[0] > 1 else 0)
    return float(np.mean(var_P)), var_P
