"""Reference baselines for pairwise preference accuracy on real data.

- prefer-longer: predict the longer response (characters for text, tokens for token lists);
- bag-of-words Bradley–Terry: r(y) = w · φ(y) with φ a signed hashing vectoriser of word uni-
  and bigrams, fitted by L2-regularised logistic regression on φ(a) − φ(b). No intercept, so
  the model is antisymmetric: swapping a and b flips the predicted preference exactly. Ties are
  fitted with target 1/2 (the Bradley–Terry likelihood of a tie read as a half-win each way).

Accuracy (`record_accuracy`) is over non-tied records; an equal score counts as half right.

Legend: N records, P comparisons (test records), D feature width (hashed).
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from rm_theory.real.evaluation import bootstrap_mean
from rm_theory.rm.metrics import hit_rate, pair_hits
from rm_theory.world.records import PreferenceRecord, Response

_WORD = re.compile(r"\w+|[^\w\s]")


def record_accuracy(score_a_N: np.ndarray, score_b_N: np.ndarray, records: Sequence[PreferenceRecord]) -> float:
    """Pairwise accuracy of per-record scores of both sides (`rm.metrics.pair_hits`: ties count 1/2)."""
    pref_N = np.array([0.5 if r.better is None else float(r.better == 0) for r in records])
    return hit_rate(pair_hits(np.asarray(score_a_N, float) - np.asarray(score_b_N, float), pref_N))


def response_length(y: Response) -> int:
    return len(y)


def prefer_longer_accuracy(records: Sequence[PreferenceRecord]) -> float:
    """Accuracy of always choosing the longer response."""
    la = np.array([response_length(r.response_a) for r in records])
    lb = np.array([response_length(r.response_b) for r in records])
    return record_accuracy(la, lb, records)


# ---------------------------------------------------------------------------- bag of words


def _tokens(y: Response) -> list[str]:
    if isinstance(y, str):
        return _WORD.findall(y.lower())
    return [f"t{t}" for t in y]


def hash_features(responses: Sequence[Response], dim: int = 2**18, ngrams: int = 2) -> sp.csr_matrix:
    """[N, V] signed hashed counts of 1..ngrams-grams, sublinear (1 + log tf), rows L2-normed.

    crc32 rather than `hash()`: Python's string hash is salted per process.
    """
    if not 0 < dim <= 2**31:
        raise ValueError(f"dim must be in (0, 2^31], got {dim}")
    rows, cols, vals = [], [], []
    for i, y in enumerate(responses):
        toks = _tokens(y)
        grams = [" ".join(toks[j : j + n]) for n in range(1, ngrams + 1) for j in range(len(toks) - n + 1)]
        feats: dict[int, float] = {}
        for g in grams:
            h = zlib.crc32(g.encode("utf-8"))
            # The top bit gives the sign so that collisions cancel in expectation.
            feats[h % dim] = feats.get(h % dim, 0.0) + (1.0 if h >> 31 else -1.0)
        for c, v in feats.items():
            if v != 0.0:
                rows.append(i)
                cols.append(c)
                vals.append(np.sign(v) * (1.0 + np.log(abs(v))))
    X = sp.csr_matrix((vals, (rows, cols)), shape=(len(responses), dim), dtype=np.float64)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(1)).ravel())
    return sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X


@dataclasses.dataclass(frozen=True)
class BowModel:
    w_D: np.ndarray
    ngrams: int

    def score(self, responses: Sequence[Response]) -> np.ndarray:
        """[N] rewards r(y) = w · φ(y)."""
        return hash_features(responses, len(self.w_D), self.ngrams) @ self.w_D


def _targets(records: Sequence[PreferenceRecord]) -> np.ndarray:
    """P(a preferred): 1, 0, or 1/2 for a tie."""
    return np.array([0.5 if r.better is None else 1.0 - r.better for r in records])


def fit_bow_logistic(
    records: Sequence[PreferenceRecord], dim: int = 2**18, l2: float = 1e-3, ngrams: int = 2, max_iter: int = 500
) -> BowModel:
    """Minimise mean_N[ y softplus(−z) + (1−y) softplus(z) ] + l2/2 |w|², z = w·(φ(a) − φ(b)):
    scikit-learn's L2 logistic regression without intercept on rows that carry this loss, with
    C = 1/(N·l2) (its objective is this one times N·l2). A record is four rows of half its weight:
    φ(a) − φ(b) labelled 1 and φ(b) − φ(a) labelled 0 (weight y), and the reverse (weight 1 − y), so
    both classes are always present and the fitted model stays antisymmetric."""
    from sklearn.linear_model import LogisticRegression

    X_NxV = (
        hash_features([r.response_a for r in records], dim, ngrams)
        - hash_features([r.response_b for r in records], dim, ngrams)
    ).tocsr()
    y_N = _targets(records)
    if len(records) == 0:
        return BowModel(np.zeros(dim), ngrams)
    X = sp.vstack([X_NxV, -X_NxV, X_NxV, -X_NxV]).tocsr()
    labels = np.r_[np.ones_like(y_N), np.zeros_like(y_N), np.zeros_like(y_N), np.ones_like(y_N)]
    weights = 0.5 * np.r_[y_N, y_N, 1.0 - y_N, 1.0 - y_N]
    keep = weights > 0
    fit = LogisticRegression(C=1.0 / (len(records) * l2), fit_intercept=False, max_iter=max_iter, tol=1e-8)
    fit.fit(X[keep], labels[keep], sample_weight=weights[keep])
    return BowModel(fit.coef_[0].astype(np.float64), ngrams)


def bow_accuracy(model: BowModel, records: Sequence[PreferenceRecord]) -> float:
    """Pairwise accuracy of a fitted bag-of-words model on `records`."""
    sa = model.score([r.response_a for r in records])
    sb = model.score([r.response_b for r in records])
    return record_accuracy(sa, sb, records)


def baseline_eval(
    train: Sequence[PreferenceRecord],
    test: Sequence[PreferenceRecord],
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
    bow_dim: int = 2**16,
    bow_l2: float = 1e-3,
) -> dict[str, float]:
    """Prefer-longer and bag-of-words logistic (fitted on `train`) accuracy on `test`, with cluster
    bootstrap intervals over prompts (`real.evaluation.bootstrap_mean`)."""
    pref_P = np.array([0.5 if r.better is None else 1.0 - r.better for r in test])
    group_P = np.array([r.prompt_id for r in test], dtype=object)
    la = np.array([response_length(r.response_a) for r in test], float)
    lb = np.array([response_length(r.response_b) for r in test], float)
    out = bootstrap_mean(pair_hits(la - lb, pref_P), group_P, rng, n_boot, level).row("longer_accuracy")
    if train:
        bow = fit_bow_logistic(train, dim=bow_dim, l2=bow_l2)
        d_P = bow.score([r.response_a for r in test]) - bow.score([r.response_b for r in test])
        out |= bootstrap_mean(pair_hits(d_P, pref_P), group_P, rng, n_boot, level).row("bow_accuracy")
    return out
