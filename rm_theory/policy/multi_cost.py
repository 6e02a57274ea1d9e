"""Safe RLHF with one cost per harm category, against one pooled cost, and Best-of-N / KL-optimal
policies under a vector reward's scalarisation; exact on tabulated candidate sets and judged by the
gold vector.

The KL-regularised Lagrangian of Safe RLHF (Dai et al. 2023, arXiv 2310.12773 §3.3 eq. 10) with K
constraints, one multiplier each:

    max_π E_π[r] − β KL(π ‖ π_ref)   subject to   E_π[c_k] ≤ d_k,  k = 1..K,

where E is the mean over prompts of each prompt's expectation. For fixed λ ≥ 0 the maximiser is
π_λ ∝ π_ref·exp((r − λᵀc)/β) (`exact.optimal_logp`), and the dual
g(λ) = mean_p β log Σ_y π_ref(y|p) e^{(r − λᵀc)/β} + λᵀd is convex with ∇g = d − E_{π_λ}[c]. It is
minimised over the box [0, λ_max]^K by L-BFGS-B: the exact solution that Safe RLHF's
PPO-Lagrangian (`policy.safe_rlhf`, one multiplier) approaches by sampled dual ascent. At the
optimum the KKT conditions hold: λ ≥ 0, E[c] ≤ d, λ_k (E[c_k] − d_k) = 0 (`kkt_residuals`); a
multiplier at λ_max with its constraint still violated marks a threshold no policy near π_ref meets.
The pooled constraint is the case K = 1 with c the pooled cost.

Legend: P prompts, Y candidates per prompt, K constraints.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special
from threadpoolctl import threadpool_limits

from rm_theory.policy.exact import best_of_n, optimal_logp


def expectation(logp_PxY: np.ndarray, t_PxY: np.ndarray) -> float:
    """Mean over prompts of E_π[t]."""
    return float(np.mean(np.sum(np.exp(logp_PxY) * t_PxY, axis=1)))


@dataclasses.dataclass(frozen=True)
class LagrangeSolution:
    """The multipliers, the policy π_λ, its expected costs, and whether every constraint is met."""

    lambda_K: np.ndarray
    logp_PxY: np.ndarray
    cost_K: np.ndarray
    threshold_K: np.ndarray
    at_bound_K: np.ndarray  # λ_k = λ_max with the constraint violated: infeasible near π_ref

    @property
    def feasible(self) -> bool:
        return bool(np.all(self.cost_K <= self.threshold_K + 1e-6))


def _dual(lam_K, ref_logp_PxY, r_PxY, c_KxPxY, d_K, beta):
    z = ref_logp_PxY + (r_PxY - np.tensordot(lam_K, c_KxPxY, axes=1)) / beta
    lse = special.logsumexp(z, axis=1)
    p = np.exp(z - lse[:, None])
    value = beta * lse.mean() + lam_K @ d_K
    grad = d_K - np.einsum("py,kpy->k", p, c_KxPxY) / len(p)
    return value, grad


def solve_lagrangian(
    ref_logp_PxY: np.ndarray,
    r_PxY: np.ndarray,
    c_KxPxY: np.ndarray,
    threshold_K: np.ndarray,
    beta: float,
    lambda_max: float = 1e4,
) -> LagrangeSolution:
    """The KL-regularised policy maximising E[r] under E[c_k] ≤ d_k (module docstring)."""
    c_KxPxY = np.asarray(c_KxPxY, np.float64)
    if c_KxPxY.ndim == 2:
        c_KxPxY = c_KxPxY[None]
    d_K = np.atleast_1d(np.asarray(threshold_K, np.float64))
    if len(d_K) != len(c_KxPxY):
        raise ValueError(f"{len(c_KxPxY)} costs but {len(d_K)} thresholds")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    ref, r = np.asarray(ref_logp_PxY, np.float64), np.asarray(r_PxY, np.float64)
    # One BLAS thread: the dual's products are small, and idle OpenBLAS threads spinning between
    # L-BFGS-B's steps made each solve 16x slower on two cores (80 ms against 5 ms).
    with threadpool_limits(1, user_api="blas"):
        res = optimize.minimize(
            _dual,
            np.zeros(len(d_K)),
            args=(ref, r, c_KxPxY, d_K, beta),
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, lambda_max)] * len(d_K),
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
        )
    lam = np.clip(res.x, 0.0, lambda_max)
    logp = optimal_logp(ref, r - np.tensordot(lam, c_KxPxY, axes=1), beta)
    cost = np.array([expectation(logp, c) for c in c_KxPxY])
    at_bound = (lam >= lambda_max * (1 - 1e-9)) & (cost > d_K + 1e-6)
    return LagrangeSolution(lam, logp, cost, d_K, at_bound)


def kkt_residuals(sol: LagrangeSolution) -> dict[str, float]:
    """The largest violation of each KKT condition: dual feasibility (λ ≥ 0), primal feasibility
    (E[c] ≤ d), complementary slackness |λ_k (E[c_k] − d_k)|."""
    return {
        "dual": float(max(0.0, -sol.lambda_K.min(initial=0.0))),
        "primal": float(max(0.0, (sol.cost_K - sol.threshold_K).max(initial=0.0))),
        "slackness": float(np.abs(sol.lambda_K * (sol.cost_K - sol.threshold_K)).max(initial=0.0)),
    }


def gold_of_policy(logp_PxY: np.ndarray, gold: dict[str, np.ndarray]) -> dict[str, float]:
    """E_π of every gold table (mean over prompts)."""
    return {k: expectation(logp_PxY, v) for k, v in gold.items()}


def best_of_n_gold(ref_logp_PxY: np.ndarray, score_PxY: np.ndarray, gold: dict[str, np.ndarray], n: int) -> dict:
    """Exact E[gold of the best of n draws from π_ref under `score`] for every gold table, mean
    over prompts (`exact.best_of_n` per table: the kept response's law depends on the score only)."""
    return {k: float(best_of_n(ref_logp_PxY, score_PxY, v, n).mean()) for k, v in gold.items()}


def scalarise(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Σ_k w_k·s_k: a vector reward's scalarisation."""
    return sum(w * np.asarray(scores[k], np.float64) for k, w in weights.items())
