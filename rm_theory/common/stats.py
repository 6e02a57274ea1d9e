"""Intervals shared by every study and figure: one definition of "mean ± 95% half-width".

With fewer than two units there is no interval: the half-width is NaN (never 0, which would read
as certainty).
"""

from __future__ import annotations

import numpy as np

Z95 = 1.96  # two-sided 95% normal quantile, to the two decimals every earlier number used


def mean_ci(v) -> tuple[float, float]:
    """Mean and the half-width of a normal 95% interval over units (seeds, worlds); NaN for n < 2."""
    v = np.asarray(v, np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    half = Z95 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(half)


def ci_half_width(v) -> float:
    """The half-width of `mean_ci` alone (for error bars)."""
    return mean_ci(v)[1]


def verdict(lo: float, hi: float, null: float, direction: str) -> str:
    """A claim that a quantity is above (`direction="greater"`) or below ("less") `null`, judged by
    its 95% interval [lo, hi]: agrees, contradicts, or inconclusive at 95% (NaN: no interval)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    above, below = lo > null, hi < null
    if direction == "less":
        above, below = below, above
    return "agrees" if above else "contradicts" if below else "inconclusive"


def round_significant(x: np.ndarray, digits: int = 9) -> np.ndarray:
    """x rounded to `digits` significant digits: values a solver gives equal only to rounding become
    equal, so ranks and argmaxes over them do not depend on which solver computed them."""
    x = np.asarray(x, dtype=np.float64)
    exponent = np.floor(np.log10(np.abs(np.where((x == 0) | ~np.isfinite(x), 1.0, x))))
    scale = 10.0 ** (digits - 1 - exponent)
    return np.where(np.isfinite(x), np.round(x * scale) / scale, x)
