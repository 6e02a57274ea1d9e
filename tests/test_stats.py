"""The project's one interval (Student t over independent units), units as seeds, and Holm's
correction for a family of claims, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rm_theory.common.stats import holm, holm_claims, mean_ci, seed_means, verdict


def test_mean_ci_is_the_student_t_interval():
    # t(0.975, 2) = 4.302653, t(0.975, 1) = 12.706205 (tables); s of [1, 2, 3] is 1.
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0
    assert h == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    m, h = mean_ci([0.0, 1.0])
    assert h == pytest.approx(12.706205 * np.std([0.0, 1.0], ddof=1) / np.sqrt(2), rel=1e-6)
    # Many units: close to the normal quantile, never below it.
    v = np.random.default_rng(0).normal(size=1000)
    assert 1.96 * v.std(ddof=1) / np.sqrt(1000) < mean_ci(v)[1] < 1.963 * v.std(ddof=1) / np.sqrt(1000)


def test_the_issue_examples_are_no_longer_significant_with_three_units():
    # Three seeds whose normal interval excluded 0 (mean 0.067, s chosen so that 1.96 s/√3 = 0.066):
    s = 0.066 * np.sqrt(3) / 1.96
    v = 0.067 + s * np.array([-1.0, 0.0, 1.0])
    lo, hi = v.mean() - mean_ci(v)[1], v.mean() + mean_ci(v)[1]
    assert verdict(lo, hi, 0.0, "greater") == "inconclusive"
    assert lo == pytest.approx(-0.078, abs=2e-3) and hi == pytest.approx(0.212, abs=2e-3)


def test_mean_ci_edge_cases():
    assert all(np.isnan(mean_ci([])))
    m, h = mean_ci([0.3])
    assert m == 0.3 and np.isnan(h)
    assert np.isnan(mean_ci([1.0, float("nan"), 2.0])[0])  # a NaN unit is never dropped silently
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 0.0)
    with pytest.raises(ValueError, match="1-D"):
        mean_ci(np.ones((3, 2)))


def test_seed_means_average_within_a_seed_first_and_count_nan_rows():
    df = pd.DataFrame(
        {"seed": [0, 0, 0, 1, 1, 2, 2], "v": [1.0, 2.0, 3.0, 10.0, np.nan, np.nan, np.nan], "n": range(7)}
    )
    means, dropped = seed_means(df, "v")
    np.testing.assert_allclose(means, [2.0, 10.0])  # seed 2 measured nothing: no unit
    assert dropped == 3


def test_holm_adjusts_against_a_hand_computed_family():
    # Sorted: 0.005 ·4 = 0.02, 0.01 ·3 = 0.03, 0.03 ·2 = 0.06, 0.04 ·1 = 0.04 → running max 0.06.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.2]), [0.2])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(holm([np.nan, 0.01]), [1.0, 0.02])  # no test: counts, never rejected
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005, np.nan]), [0.04, 0.09, 0.09, 0.025, 1.0])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # never below a smaller p's
    assert holm([]).shape == (0,)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def test_holm_claims_of_one_claim_are_the_plain_interval():
    v = [0.1, 0.3, 0.2, 0.25]
    c = holm_claims({"x": v})["x"]
    m, h = mean_ci(v)
    assert c.mean == pytest.approx(m) and c.lo == pytest.approx(m - h) and c.hi == pytest.approx(m + h)
    assert c.level == pytest.approx(0.95) and c.p == c.p_holm
    assert c.verdict == verdict(m - h, m + h, 0.0, "greater") == "agrees"


def test_holm_claims_widen_the_intervals_and_decide_by_the_adjusted_p():
    family = {
        "strong": np.array([0.9, 1.0, 1.1, 1.0, 0.95]),
        "weak": np.array([0.0, 0.1, 0.2, 0.3, 0.35]),  # p = 0.041: significant alone, not in a family of 3
        "null": np.array([-0.1, 0.0, 0.05, 0.2, 0.3]),  # p = 0.28
    }
    out = holm_claims(family)
    assert out["weak"].p == pytest.approx(0.041254, rel=1e-4)
    assert out["null"].p == pytest.approx(0.276087, rel=1e-4)
    # Sorted: strong (·3, rejected), weak (·2 = 0.083 > 0.05, stop), null (·1, max with 0.083 → 0.28).
    assert out["weak"].p_holm == pytest.approx(2 * 0.041254, rel=1e-4)
    assert out["null"].p_holm == pytest.approx(0.276087, rel=1e-4)
    assert out["strong"].level == pytest.approx(1 - 0.05 / 3)
    assert out["weak"].level == out["null"].level == pytest.approx(1 - 0.05 / 2)
    assert out["strong"].verdict == "agrees"
    assert out["weak"].verdict == "inconclusive"
    for c in out.values():  # the interval excludes the null exactly when Holm rejects
        assert (c.lo > 0 or c.hi < 0) == (c.p_holm <= 0.05)
    # a claim below the line is "contradicts"
    assert holm_claims({"neg": -family["strong"]})["neg"].verdict == "contradicts"


def test_holm_claims_with_too_few_units_have_no_interval_but_count():
    out = holm_claims({"one": [0.5], "nan": [0.1, np.nan, 0.2], "ok": [0.9, 1.0, 1.1]})
    assert out["one"].verdict == out["nan"].verdict == "no interval"
    assert out["ok"].p_holm == pytest.approx(3 * out["ok"].p)  # the family is still three claims
    with pytest.raises(ValueError, match="direction"):
        holm_claims({"x": [1, 2]}, direction="above")


def test_p_from_interval_recovers_the_t_test():
    from scipy import stats

    from rm_theory.common.stats import p_from_interval

    v = np.array([0.0, 0.1, 0.2, 0.3, 0.35])
    m, h = mean_ci(v)
    assert p_from_interval(m, h, 5, 0.0) == pytest.approx(stats.ttest_1samp(v, 0.0).pvalue)
    assert p_from_interval(m, h, 5, m - h) == pytest.approx(0.05)  # the interval's end is p = 0.05
    assert np.isnan(p_from_interval(m, float("nan"), 1, 0.0))
    assert p_from_interval(1.0, 0.0, 3, 0.0) == 0.0
