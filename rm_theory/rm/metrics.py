"""Evaluation metrics of reward/cost scores (numpy; scores come from `train.ensemble_scores`).

Legend: N items, P pairs, K ensemble members.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def pairwise_accuracy(r_N: np.ndarray, a_P: np.ndarray, b_P: np.ndarray, pref_P: np.ndarray) -> float:
    """Fraction of non-tied labelled pairs ordered as labelled (a score tie counts 1/2)."""
    r_N, pref_P = np.asarray(r_N, np.float64), np.asarray(pref_P, np.float64)
    keep_P = pref_P != 0.5
    d_P = r_N[a_P] - r_N[b_P]
    hit_P = np.where(d_P == 0, 0.5, (d_P > 0) == (pref_P > 0.5))
    return float(np.mean(hit_P[keep_P])) if keep_P.any() else float("nan")


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
