"""Intervals shared by every study and figure: one definition of "mean ± 95% half-width", of a unit
(one independent replicate: a seed, which draws its own world), and of a family of claims tested
together (Holm).

An interval is only as good as its units: they must be independent replicates. Pairs, prompts, data
sets or cells of one seed share that seed's world (gold field, reference policy, query pairs), so
they are averaged within the seed first (`seed_means`) and the interval is over seeds.

With fewer than two units there is no interval: the half-width is NaN (never 0, which would read
as certainty). A NaN unit makes the mean and the interval NaN: a caller that may have NaN units
drops them first and reports how many it dropped (`seed_means` counts them).

"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.95  # every interval the project prints


def t_half_width(v, level: float = LEVEL) -> float:
    """Half-width t((1 + level)/2, n − 1)·s/√n of the Student t interval of the mean of `v`; NaN for
    n < 2 (and when `v` holds a NaN)."""
    v = _units(v)
    if len(v) < 2:
        return float("nan")
    return float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def mean_ci(v) -> tuple[float, float]:
    """Mean and the half-width of the Student t 95% interval over units (seeds, worlds):
    t(0.975, n − 1)·s/√n (4.30·s/√3 with 3 units, 12.7·s/√2 with 2); NaN half-width for n < 2."""
    v = _units(v)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), t_half_width(v)


def ci_half_width(v) -> float:
    """The half-width of `mean_ci` alone (for error bars)."""
    return mean_ci(v)[1]


def _units(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    if v.ndim != 1:
        raise ValueError(f"an interval is over a 1-D array of units (one value per seed), got shape {v.shape}")
    return v


def seed_means(df: pd.DataFrame, value: str, seed: str = "seed") -> tuple[np.ndarray, int]:
    """One unit per seed: the mean of `value` over the seed's rows (its pairs, data sets, cells), NaN
    rows left out; returns the per-seed means (seeds in order) and how many NaN rows were left out.

    A seed with no finite row gives no unit (it is counted in the NaN rows), so the interval over the
    result is over the seeds that measured something."""
    finite = df[value].notna()
    means = df[finite].groupby(seed, sort=True)[value].mean()
    return means.to_numpy(np.float64), int((~finite).sum())


def verdict(lo: float, hi: float, null: float, direction: str) -> str:
    """A claim that a quantity is above (`direction="greater"`) or below ("less") `null`, judged by
    its 95% interval [lo, hi]: agrees, contradicts, or inconclusive at 95% (NaN: no interval)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    above, below = lo > null, hi < null
    if direction == "less":
        above, below = below, above
    return "agrees" if above else "contradicts" if below else "inconclusive"


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values of a family of M hypotheses (Holm 1979): with the p-values
    sorted p_(1) ≤ … ≤ p_(M), p̃_(i) = max_{j ≤ i} min(1, (M − j + 1)·p_(j)). Rejecting where p̃ ≤ α
    keeps the family-wise error rate at α. A NaN p-value (no test) counts in M and is never rejected."""
    p = np.asarray(p_values, np.float64)
    if p.ndim != 1:
        raise ValueError(f"p-values must be a 1-D array, got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[(p < 0) | (p > 1)].tolist()}")
    p = np.where(np.isnan(p), 1.0, p)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return out


@dataclasses.dataclass(frozen=True)
class HolmClaim:
    """One claim of a family, judged with Holm's correction.

    `lo`/`hi` is the t interval at the level of the step of Holm's procedure that decided the claim,
    1 − α/(M − i + 1) for the i-th smallest p-value (the steps after the first claim not rejected use
    that step's level): it excludes `null` exactly when `verdict` is agrees or contradicts.
    """

    mean: float
    lo: float
    hi: float
    level: float
    p: float  # two-sided one-sample t test of mean = null, uncorrected
    p_holm: float
    verdict: str
    units: int


def holm_claims(
    units: Mapping[str, Sequence[float]], null: float = 0.0, direction: str = "greater", alpha: float = 1 - LEVEL
) -> dict[str, HolmClaim]:
    """A family of claims "the mean of each array of units is above (below) `null`", judged together.

    `units[name]` holds one value per independent replicate (a seed's paired difference, say designed
    − chain): each gets a two-sided one-sample t test, the family Holm's correction, and the verdict
    of `verdict` at the corrected level. With one claim this is `mean_ci` and `verdict` at 95%. A claim
    with fewer than two units (or a NaN unit) has no test: verdict "no interval", and it still counts
    in the family's size.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    names = list(units)
    arrays = [_units(units[k]) for k in names]
    p = np.array([_t_test(v, null) for v in arrays])
    p_holm = holm(p)
    m = len(names)
    # The level of each claim's step: sorted by p, step i tests at α/(m − i); after the first step that
    # fails, the procedure stops and every later claim keeps that step's level.
    order = np.argsort(np.where(np.isnan(p), 1.0, p), kind="stable")
    level = np.empty(m)
    stopped = None
    for i, k in enumerate(order):
        step_alpha = alpha / (m - i) if stopped is None else stopped
        if stopped is None and not p_holm[k] <= alpha:
            stopped = step_alpha
        level[k] = 1 - step_alpha
    out = {}
    for k, (name, v) in enumerate(zip(names, arrays, strict=True)):
        mean = float(v.mean()) if len(v) else float("nan")
        half = t_half_width(v, level[k])
        lo, hi = mean - half, mean + half
        out[name] = HolmClaim(mean, lo, hi, float(level[k]), float(p[k]), float(p_holm[k]), "", len(v))
        out[name] = dataclasses.replace(out[name], verdict=verdict(lo, hi, null, direction))
    return out


def p_from_interval(mean: float, half: float, units: int, null: float) -> float:
    """Two-sided p-value of mean = `null` recovered from a `mean_ci` result over `units` units (the
    t statistic is (mean − null)·t(0.975, units − 1)/half); NaN where there is no interval."""
    if not (units >= 2 and np.isfinite(mean) and np.isfinite(half) and half >= 0):
        return float("nan")
    if half == 0:
        return 1.0 if mean == null else 0.0
    t_stat = (mean - null) * stats.t.ppf(0.5 + LEVEL / 2, units - 1) / half
    return float(2 * stats.t.sf(abs(t_stat), units - 1))


def _t_test(v: np.ndarray, null: float) -> float:
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return float("nan")
    if np.all(v == v[0]):  # no spread: the t statistic is 0/0 (equal to null) or infinite
        return 1.0 if v[0] == null else 0.0
    return float(stats.ttest_1samp(v, null).pvalue)


def round_significant(x: np.ndarray, digits: int = 9) -> np.ndarray:
    """x rounded to `digits` significant digits: values a solver gives equal only to rounding become
    equal, so ranks and argmaxes over them do not depend on which solver computed them."""
    x = np.asarray(x, dtype=np.float64)
    exponent = np.floor(np.log10(np.abs(np.where((x == 0) | ~np.isfinite(x), 1.0, x))))
    scale = 10.0 ** (digits - 1 - exponent)
    return np.where(np.isfinite(x), np.round(x * scale) / scale, x)
