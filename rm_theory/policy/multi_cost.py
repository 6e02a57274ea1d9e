"""Safe RLHF with one cost per harm category, against one pooled cost, and Best-of-N / KL-optimal
policies under a vector reward's scalarisation; exact on tabulated candidate sets and judged by the
gold vector.

The KL-regularised Lagrangian of Safe RLHF (Dai et al. 2023, arXiv 2310.12773 §3.3 eq. 10) with C
constraints (one cost per harm category), one multiplier each:

    max_π E_π[r] − β KL(π ‖ π_ref)   subject to   E_π[c_k] ≤ d_k,  k = 1..C,

where E is the mean over prompts of each prompt's expectation. For fixed λ ≥ 0 the maximiser is
π_λ ∝ π_ref·exp((r − λᵀc)/β) (`exact.optimal_logp`), and the dual
g(λ) = mean_p β log Σ_y π_ref(y|p) e^{(r − λᵀc)/β} + λᵀd is convex with ∇g = d − E_{π_λ}[c]. It is
minimised over the box [0, λ_max]^C by L-BFGS-B: the exact solution that Safe RLHF's
PPO-Lagrangian (`policy.safe_rlhf`, one multiplier) approaches by sampled dual ascent. At the
optimum the KKT conditions hold: λ ≥ 0, E[c] ≤ d, λ_k (E[c_k] − d_k) = 0 (`kkt_residuals`); a
multiplier at λ_max with its constraint still violated marks a threshold no policy near π_ref meets.
The pooled constraint is the case C = 1 with c the pooled cost.

Legend: X prompts, Y responses (the candidates of a prompt), C harm categories (the constraints: one per category,
or one pooled cost).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from rm_theory.policy.exact import best_of_n, optimal_logp


def expectation(logp_XxY: np.ndarray, t_XxY: np.ndarray) -> float:
    """Mean over prompts of E_π[t]."""
    return float(np.mean(np.sum(np.exp(logp_XxY) * t_XxY, axis=1)))


@dataclasses.dataclass(frozen=True)
class LagrangeSolution:
    """The multipliers, the policy π_λ, its expected costs, and whether every constraint is met."""

    lambda_C: np.ndarray
    logp_XxY: np.ndarray
    cost_C: np.ndarray
    threshold_C: np.ndarray
    at_bound_C: np.ndarray  # λ_k = λ_max with the constraint violated: infeasible near π_ref

    @property
    def feasible(self) -> bool:
        return bool(np.all(self.cost_C <= self.threshold_C + 1e-6))


def _dual(lam_C, ref_logp_XxY, r_XxY, c_CxXxY, d_C, beta):
    z = ref_logp_XxY + (r_XxY - np.tensordot(lam_C, c_CxXxY, axes=1)) / beta
    lse = special.logsumexp(z, axis=1)
    p = np.exp(z - lse[:, None])
    value = beta * lse.mean() + lam_C @ d_C
    grad = d_C - np.einsum("py,kpy->k", p, c_CxXxY) / len(p)
    return value, grad


def solve_lagrangian(
    ref_logp_XxY: np.ndarray,
    r_XxY: np.ndarray,
    c_CxXxY: np.ndarray,
    threshold_C: np.ndarray,
    beta: float,
    lambda_max: float = 1e4,
) -> LagrangeSolution:
    """The KL-regularised policy maximising E[r] under E[c_k] ≤ d_k (module docstring)."""
    c_CxXxY = np.asarray(c_CxXxY, np.float64)
    if c_CxXxY.ndim == 2:
        c_CxXxY = c_CxXxY[None]
    d_C = np.atleast_1d(np.asarray(threshold_C, np.float64))
    if len(d_C) != len(c_CxXxY):
        raise ValueError(f"{len(c_CxXxY)} costs but {len(d_C)} thresholds")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    ref, r = np.asarray(ref_logp_XxY, np.float64), np.asarray(r_XxY, np.float64)
    # One BLAS thread: the dual's products are small, and idle OpenBLAS threads spinning between
    # L-BFGS-B's steps made each solve 16x slower on two cores (80 ms against 5 ms).
    with threadpool_limits(1, user_api="blas"):
        res = optimize.minimize(
            _dual,
            np.zeros(len(d_C)),
            args=(ref, r, c_CxXxY, d_C, beta),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, lambda_max)] * len(d_C),
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
        )
    lam = np.clip(res.x, 0.0, lambda_max)
    logp = optimal_logp(ref, r - np.tensordot(lam, c_CxXxY, axes=1), beta)
    cost = np.array([expectation(logp, c) for c in c_CxXxY])
    at_bound = (lam >= lambda_max * (1 - 1e-9)) & (cost > d_C + 1e-6)
    return LagrangeSolution(lam, logp, cost, d_C, at_bound)


def kkt_residuals(sol: LagrangeSolution) -> dict[str, float]:
    """The largest violation of each KKT condition: dual feasibility (λ ≥ 0), primal feasibility
    (E[c] ≤ d), complementary slackness |λ_k (E[c_k] − d_k)|."""
    return {
        "dual": float(max(0.0, -sol.lambda_C.min(initial=0.0))),
        "primal": float(max(0.0, (sol.cost_C - sol.threshold_C).max(initial=0.0))),
        "slackness": float(np.abs(sol.lambda_C * (sol.cost_C - sol.threshold_C)).max(initial=0.0)),
    }


def gold_of_policy(logp_XxY: np.ndarray, gold: dict[str, np.ndarray]) -> dict[str, float]:
    """E_π of every gold table (mean over prompts)."""
    return {k: expectation(logp_XxY, v) for k, v in gold.items()}


def best_of_n_gold(ref_logp_XxY: np.ndarray, score_XxY: np.ndarray, gold: dict[str, np.ndarray], n: int) -> dict:
    """Exact E[gold of the best of n draws from π_ref under `score`] for every gold table, mean
    over prompts (`exact.best_of_n` per table: the kept response's law depends on the score only)."""
    return {k: float(best_of_n(ref_logp_XxY, score_XxY, v, n).mean()) for k, v in gold.items()}


def scalarise(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Σ_k w_k·s_k: a vector reward's scalarisation."""
    return sum(w * np.asarray(scores[k], np.float64) for k, w in weights.items())


# ---------------------------------------------------------------------------- the policies of a model


@dataclasses.dataclass(frozen=True)
class PolicyGrid:
    """The policies a reward and cost model lead to (`judged_policies`): Safe RLHF's exact optimum (KL
    coefficient `kl_beta`, multipliers up to `lambda_max`) at thresholds f × π_ref's rate of each cost,
    for f in `factors` and `factor`; the KL-optimal policy and Best-of-N (N in `best_of_n`) under the
    scalarisation w·helpfulness + (1 − w)·harmlessness, for w in `weights`."""

    kl_beta: float = 0.25
    factor: float = 0.5
    factors: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5)
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    best_of_n: tuple[int, ...] = (1, 4, 16, 64)
    lambda_max: float = 1e4


def judged_policies(
    grid: PolicyGrid,
    ref_logp_XxY: np.ndarray,
    gold: dict[str, np.ndarray],
    present_CxXxY: np.ndarray,
    help_XxY: np.ndarray,
    harm_XxY: np.ndarray,
    pooled_XxY: np.ndarray | None = None,
    cats_CxXxY: np.ndarray | None = None,
) -> list[dict]:
    """The policies of `grid` for a model's helpfulness and harmlessness tables and its costs (the pooled
    one and one per harm category, as probabilities of harm; None: no cost model, no Safe RLHF), each
    judged by the `gold` tables (E_π of each) and by its rate of every harm category present
    (`present_CxXxY`): the largest (`category_rate_max`), and for Safe RLHF the largest excess over f ×
    π_ref's rate of that category (`category_excess`, the per-category targets) and how many exceed it."""
    ref = ref_logp_XxY
    ref_rate_C = np.array([expectation(ref, c) for c in present_CxXxY])

    def judge(logp) -> dict:
        out = gold_of_policy(logp, gold)
        rate_C = np.array([expectation(logp, c) for c in present_CxXxY])
        return out | {"category_rate_max": float(rate_C.max()), "_rate_C": rate_C}

    rows = []
    if pooled_XxY is not None:
        for f in sorted(set(grid.factors) | {grid.factor}):
            for policy, c in (("safe_pooled", pooled_XxY[None]), ("safe_percat", cats_CxXxY)):
                d = f * np.array([expectation(ref, ck) for ck in c])
                sol = solve_lagrangian(ref, help_XxY, c, d, grid.kl_beta, grid.lambda_max)
                j = judge(sol.logp_XxY)
                # Each category judged against f × its own reference rate (the per-category targets).
                excess = j.pop("_rate_C") - f * ref_rate_C
                rows.append(
                    {"policy": policy, "factor": f, "feasible": sol.feasible, "lambda_sum": float(sol.lambda_C.sum())}
                    | j
                    | {"category_excess": float(excess.max()), "categories_over": int((excess > 1e-9).sum())}
                )
    for w in grid.weights:
        score = w * help_XxY + (1 - w) * harm_XxY
        j = judge(optimal_logp(ref, score, grid.kl_beta))
        j.pop("_rate_C")
        rows.append({"policy": "kl", "weight": w} | j)
        for N in grid.best_of_n:
            rows.append({"policy": "bon", "weight": w, "N": N} | best_of_n_gold(ref, score, gold, N))
    return rows
