"""Structural function F(M) and its regime (THEORY.md §2, "Semantic response space").

F(M) is the typical inference distance between two responses of the same cluster when the
response space is split into M clusters. Three regimes (THEORY.md §2, paper §4):

* polynomial:        F = I · M^-α
* logarithmic:       F = I · (1 + ln M)^-α
* sub-logarithmic:   F = I · (1 + ln(1 + ln M))^-α

Each is linear in log-log form, log F = log I - α · log h(M), so ``fit_regime`` is three least
squares fits, ranked by R² in log space (weighted by the points' standard errors when given). When
the leading fit is not better than the runner-up beyond the noise of F, the regime is
"indeterminate": over the few decades of M a data set allows, the three curves can be
indistinguishable.

Legend: N responses, D embedding dimensions, K runs (one per value of M), P pairs.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.cluster.vq as vq

from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import Method, Network, ib_subnetwork

REGIMES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "polynomial": lambda m: m,
    "logarithmic": lambda m: 1.0 + np.log(m),
    "sublogarithmic": lambda m: 1.0 + np.log1p(np.log(m)),
}


@dataclasses.dataclass(frozen=True)
class RegimeParams:
    I: float
    alpha: float
    r2: float


INDETERMINATE = "indeterminate"


@dataclasses.dataclass(frozen=True)
class RegimeFit:
    best: str  # a regime, or "indeterminate" when the leading fit is within noise of the next
    fits: dict[str, RegimeParams]
    leading: str = ""  # the highest-R² regime, whether or not it is distinguishable
    margin: float = float("nan")  # Δχ² (with standard errors) or ΔR² of the leading fit over the next

    def predict(self, M_K: np.ndarray, regime: str | None = None) -> np.ndarray:
        name = regime or self.leading or self.best
        p = self.fits[name]
        return p.I * REGIMES[name](np.asarray(M_K, dtype=float)) ** -p.alpha


def regime_curve(M_K: np.ndarray, regime: str, I: float, alpha: float) -> np.ndarray:
    """F(M) of a regime with scale I and exponent alpha."""
    return I * REGIMES[regime](np.asarray(M_K, dtype=float)) ** -alpha


def fit_regime(
    M_K: Sequence[float] | np.ndarray,
    F_K: Sequence[float] | np.ndarray,
    sem_K: Sequence[float] | np.ndarray | None = None,
    chi2_margin: float = 4.0,
    r2_margin: float = 0.01,
) -> RegimeFit:
    """Fit F(M) to each regime by least squares of log F on log h(M); best = highest R².

    With standard errors `sem_K` of F the fits are weighted by 1/var(log F) = (F/sem)², and the best
    is "indeterminate" unless its χ² is below the runner-up's by `chi2_margin` (4: a likelihood ratio
    of e² ≈ 7); without them, unless its R² exceeds the runner-up's by `r2_margin`.
    Needs at least two distinct M >= 1 and F > 0 (drop F = 0 points, e.g. M = V^L, first).
    """
    M_K = np.asarray(M_K, dtype=float).reshape(-1)
    F_K = np.asarray(F_K, dtype=float).reshape(-1)
    if M_K.shape != F_K.shape:
        raise ValueError("M_K and F_K must have the same length")
    bad = ~np.isfinite(M_K) | (M_K < 1) | ~np.isfinite(F_K) | (F_K <= 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"point {k} (M={M_K[k]}, F={F_K[k]}) needs M >= 1 and finite F > 0")
    if np.unique(M_K).size < 2:
        raise ValueError("need at least two distinct values of M")
    y_K = np.log(F_K)
    w_K = np.ones_like(y_K)
    weighted = sem_K is not None and np.all(np.isfinite(sem_K)) and np.all(np.asarray(sem_K) > 0)
    if weighted:
        w_K = (F_K / np.asarray(sem_K, dtype=float).reshape(-1)) ** 2  # 1 / Var(log F), delta method
    fits, chi2 = {}, {}
    for name, h in REGIMES.items():
        x_K = np.log(h(M_K))
        A_Kx2 = np.stack([np.ones_like(x_K), -x_K], axis=1)
        sw = np.sqrt(w_K)
        (log_i, alpha), *_ = np.linalg.lstsq(A_Kx2 * sw[:, None], y_K * sw, rcond=None)
        resid = y_K - A_Kx2 @ np.array([log_i, alpha])
        y_bar = np.sum(w_K * y_K) / np.sum(w_K)
        ss_tot = np.sum(w_K * (y_K - y_bar) ** 2)
        chi2[name] = float(np.sum(w_K * resid**2))
        r2 = 1.0 - chi2[name] / ss_tot if ss_tot > 0 else 1.0
        fits[name] = RegimeParams(float(np.exp(log_i)), float(alpha), float(r2))
    order = sorted(fits, key=lambda k: fits[k].r2, reverse=True)
    lead, second = order[0], order[1]
    margin = chi2[second] - chi2[lead] if weighted else fits[lead].r2 - fits[second].r2
    clear = margin >= (chi2_margin if weighted else r2_margin)
    return RegimeFit(lead if clear else INDETERMINATE, fits, lead, float(margin))


@dataclasses.dataclass(frozen=True)
class StructuralCurve:
    M_K: np.ndarray
    F_K: np.ndarray  # mean within-cluster distance (nan if no cluster has two members)
    sem_K: np.ndarray  # standard error of that mean
    pairs_K: np.ndarray  # pairs averaged


def kmeans_labels(X_NxD: np.ndarray, M: int, rng: np.random.Generator) -> np.ndarray:
    """k-means (k-means++ start, seeded) into M clusters; returns a label per row."""
    with warnings.catch_warnings():
        # Empty clusters are fine here: F only averages over clusters with >= 2 members.
        warnings.simplefilter("ignore", UserWarning)
        _, labels_N = vq.kmeans2(np.asarray(X_NxD, dtype=float), M, minit="++", seed=rng)
    return labels_N


def within_cluster_pairs(labels_N: np.ndarray, num_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Pairs (a, b), a != b, same label: a uniform among responses in clusters of size >= 2,
    b uniform among the rest of a's cluster (so clusters weigh by their size)."""
    labels_N = np.asarray(labels_N).reshape(-1)
    order = np.argsort(labels_N, kind="stable")
    sorted_lab = labels_N[order]
    start = np.searchsorted(sorted_lab, sorted_lab, side="left")
    size = np.searchsorted(sorted_lab, sorted_lab, side="right") - start
    ok = np.flatnonzero(size >= 2)
    if ok.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    i_P = ok[rng.integers(0, ok.size, num_pairs)]
    off_P = rng.integers(0, size[i_P] - 1)
    j_P = start[i_P] + off_P
    j_P = j_P + (j_P >= i_P)  # skip a itself
    return np.stack([order[i_P], order[j_P]], axis=1).astype(np.int64)


def power_distance(c: float, gamma: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """IB variance c·||x - y||^γ of the metric geometry (THEORY.md §2, "A second geometry")."""
    return lambda x_PxD, y_PxD: c * np.linalg.norm(x_PxD - y_PxD, axis=1) ** gamma


def structural_function_by_clustering(
    M_values: Sequence[int],
    rng: np.random.Generator,
    *,
    X_NxD: np.ndarray | None = None,
    labels_fn: Callable[[int], np.ndarray] | None = None,
    pair_distance: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    net: Network | None = None,
    node_N: np.ndarray | None = None,
    method: Method = "resistance",
    num_pairs: int = 256,
) -> StructuralCurve:
    """Measure F(M) = mean distance between random same-cluster pairs, for each M.

    Clusters: ``labels_fn(M)`` if given (e.g. depth-k prefixes of a trie, M = V^k), else k-means
    of ``X_NxD``. Distance, one of:
      * ``pair_distance(X[a], X[b])`` on embedding rows (e.g. ``power_distance(c, γ)``);
      * the inference distance on ``net`` restricted to its IB edges, response i being node
        ``node_N[i]`` (identity if None), by ``method``.
    """
    if (pair_distance is None) == (net is None):
        raise ValueError("give exactly one of pair_distance and net")
    if labels_fn is None and X_NxD is None:
        raise ValueError("give X_NxD (k-means) or labels_fn")
    if pair_distance is not None and X_NxD is None:
        raise ValueError("pair_distance needs X_NxD")
    ib = ib_subnetwork(net) if net is not None else None
    M_K = np.asarray(M_values, dtype=np.int64)
    F_K, sem_K, n_K = np.full(M_K.size, np.nan), np.full(M_K.size, np.nan), np.zeros(M_K.size)
    for k, M in enumerate(M_K):
        labels_N = labels_fn(int(M)) if labels_fn is not None else kmeans_labels(X_NxD, int(M), rng)
        pairs_Px2 = within_cluster_pairs(labels_N, num_pairs, rng)
        if pairs_Px2.shape[0] == 0:
            continue
        if pair_distance is not None:
            X = np.asarray(X_NxD, dtype=float)
            d_P = pair_distance(X[pairs_Px2[:, 0]], X[pairs_Px2[:, 1]])
        else:
            nodes = pairs_Px2 if node_N is None else np.asarray(node_N)[pairs_Px2]
            d_P = network_distance(ib, nodes, method)
        F_K[k] = d_P.mean()
        sem_K[k] = d_P.std(ddof=1) / np.sqrt(d_P.size) if d_P.size > 1 else np.nan
        n_K[k] = d_P.size
    return StructuralCurve(M_K, F_K, sem_K, n_K)
