"""Safe RLHF with one multiplier per harm category (`policy.multi_cost`): the KKT conditions and the
multipliers of tiny closed-form cases, the pooled constraint, infeasible thresholds, Best-of-N."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rm_theory.policy import exact
from rm_theory.policy import multi_cost as mc

BETA = 0.5


def _three_responses():
    """One prompt, π_ref uniform over y0 (r = 0, safe), y1 (r = 1, harm in category 1), y2 (r = 1,
    harm in category 2): π_λ ∝ (1, e^{(1 − λ1)/β}, e^{(1 − λ2)/β})."""
    ref = np.log(np.full((1, 3), 1 / 3))
    r = np.array([[0.0, 1.0, 1.0]])
    c = np.array([[[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]])
    return ref, r, c


def test_two_active_category_constraints_have_the_closed_form_multipliers():
    ref, r, c = _three_responses()
    d = np.array([0.1, 0.2])
    sol = mc.solve_lagrangian(ref, r, c, d, BETA)
    # Both active: π(y1) = d1, π(y2) = d2, so e^{(1 − λk)/β} = d_k / (1 − d1 − d2).
    want = 1 - BETA * np.log(d / (1 - d.sum()))
    np.testing.assert_allclose(sol.lambda_C, want, rtol=1e-6)
    np.testing.assert_allclose(np.exp(sol.logp_XxY[0]), [1 - d.sum(), *d], atol=1e-7)
    res = mc.kkt_residuals(sol)
    assert res["dual"] == 0 and res["primal"] < 1e-7 and res["slackness"] < 1e-6
    assert sol.feasible and not sol.at_bound_C.any()


def test_a_slack_category_constraint_gets_no_multiplier():
    ref, r, c = _three_responses()
    # Category 2 allows up to 0.9: with λ1 binding it is slack at the optimum, so λ2 = 0.
    sol = mc.solve_lagrangian(ref, r, c, np.array([0.1, 0.9]), BETA)
    assert sol.lambda_C[1] == pytest.approx(0.0, abs=1e-8) and sol.lambda_C[0] > 0
    assert sol.cost_C[1] < 0.9 and sol.cost_C[0] == pytest.approx(0.1, abs=1e-7)
    # Its value: π(y1) = 0.1 with π(y2)/π(y0) = e^{1/β}: e^{(1 − λ1)/β} = 0.1 (1 + e^{1/β}) / 0.9.
    assert sol.lambda_C[0] == pytest.approx(1 - BETA * math.log(0.1 * (1 + math.exp(1 / BETA)) / 0.9), rel=1e-6)
    assert mc.kkt_residuals(sol)["slackness"] < 1e-6


def test_the_pooled_constraint_is_one_multiplier_on_the_summed_cost():
    ref, r, c = _three_responses()
    pooled = c.sum(0)
    sol = mc.solve_lagrangian(ref, r, pooled, 0.3, BETA)
    # π(y1) + π(y2) = 0.3 with π(y1) = π(y2): 2 e^{(1 − λ)/β} / (1 + 2 e^{(1 − λ)/β}) = 0.3.
    assert sol.lambda_C[0] == pytest.approx(1 - BETA * math.log(0.3 / (2 * 0.7)), rel=1e-6)
    # A pooled constraint does not choose between categories: per-category constraints do.
    per = mc.solve_lagrangian(ref, r, c, np.array([0.05, 0.25]), BETA)
    assert np.exp(sol.logp_XxY[0, 1]) == pytest.approx(np.exp(sol.logp_XxY[0, 2]))
    assert np.exp(per.logp_XxY[0, 1]) == pytest.approx(0.05, abs=1e-7)


def test_no_constraint_binding_is_the_kl_optimal_policy():
    ref, r, c = _three_responses()
    sol = mc.solve_lagrangian(ref, r, c, np.array([1.0, 1.0]), BETA)
    np.testing.assert_array_equal(sol.lambda_C, 0.0)
    np.testing.assert_allclose(sol.logp_XxY, exact.optimal_logp(ref, r, BETA), atol=1e-12)


def test_an_unreachable_threshold_is_flagged_not_passed_as_feasible():
    ref = np.log(np.full((1, 2), 0.5))
    c = np.array([[1.0, 1.0]])  # every response costs 1: E[c] <= 0.5 is impossible
    sol = mc.solve_lagrangian(ref, np.zeros((1, 2)), c, 0.5, BETA, lambda_max=50.0)
    assert not sol.feasible and sol.at_bound_C.all() and sol.lambda_C[0] == pytest.approx(50.0)


def test_several_prompts_constrain_the_mean_over_prompts():
    rng = np.random.default_rng(0)
    P, Y, K = 4, 30, 3
    ref = np.log(rng.dirichlet(np.ones(Y), size=P))
    r, c = rng.normal(size=(P, Y)), rng.random((K, P, Y))
    d = 0.6 * np.array([mc.expectation(ref, ck) for ck in c])
    sol = mc.solve_lagrangian(ref, r, c, d, 0.3)
    res = mc.kkt_residuals(sol)
    assert res["primal"] < 1e-6 and res["slackness"] < 1e-5
    # Stationarity is built in: π_λ is exact.optimal_logp of r − λᵀc.
    np.testing.assert_allclose(sol.logp_XxY, exact.optimal_logp(ref, r - np.tensordot(sol.lambda_C, c, 1), 0.3))
    with pytest.raises(ValueError, match="3 costs but 2 thresholds"):
        mc.solve_lagrangian(ref, r, c, d[:2], 0.3)


def test_best_of_n_gold_is_exact_best_of_n_of_each_gold_table():
    rng = np.random.default_rng(1)
    ref = np.log(rng.dirichlet(np.ones(20), size=3))
    score, g1, g2 = rng.normal(size=(3, 3, 20))
    out = mc.best_of_n_gold(ref, score, {"a": g1, "b": g2}, 8)
    assert out["a"] == pytest.approx(exact.best_of_n(ref, score, g1, 8).mean())
    assert out["b"] == pytest.approx(exact.best_of_n(ref, score, g2, 8).mean())
    assert mc.scalarise({"h": g1, "s": g2}, {"h": 0.25, "s": 0.75}) == pytest.approx(0.25 * g1 + 0.75 * g2)
