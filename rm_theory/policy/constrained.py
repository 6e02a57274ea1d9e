"""The KL-regularised policy under a cost constraint, exactly, by enumeration of the leaves: the optimum
Safe RLHF's Lagrangian seeks (Dai et al., arXiv 2310.12773, §3.3 eq. 10), without its PPO noise.

    maximise  E_π[r] − β·KL(π ‖ π_ref)   subject to   E_π[c] ≤ d,

E over the prompts (uniform) and π's responses. For a multiplier λ ≥ 0 the Lagrangian's maximiser is
π_λ ∝ π_ref·exp((r − λc)/β) (`policy.exact.optimal_logp` of the reward r − λc), and E_{π_λ}[c] falls
as λ grows (dE/dλ = −Var_{π_λ}(c)/β ≤ 0). So the optimum is π_0 when it meets the constraint, and
otherwise π_λ* with E_{π_λ*}[c] = d; λ* minimises the convex dual

    D(λ) = β·mean_p log Σ_y π_ref(y|p)·exp((r − λc)/β) + λ·d        (λ ≥ 0),

which the tests use as the reference. When even λ → ∞ leaves E[c] > d (every response of some prompt
too costly), the constraint cannot be met: the result says so (`feasible`), at the largest λ tried.

Legend: X prompts, Y responses (leaves of a prompt), N items (draws of `sample_leaves`: one leaf each).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special

from rm_theory.policy.exact import optimal_logp

# λ doubles from 1 up to this bound while looking for a multiplier that meets the constraint.
LAMBDA_MAX = 1e8


@dataclasses.dataclass(frozen=True)
class ConstrainedPolicy:
    """π_λ* (`logp_XxY`), its multiplier, and whether it meets E[c] ≤ d."""

    logp_XxY: np.ndarray
    lam: float
    cost: float
    feasible: bool


def expected(logp_XxY: np.ndarray, v_XxY: np.ndarray) -> float:
    """E_π[v] over prompts (uniform) and π's responses."""
    return float(np.mean(np.sum(np.exp(logp_XxY) * v_XxY, axis=1)))


def lagrangian_policy(
    ref_logp_XxY: np.ndarray, r_XxY: np.ndarray, c_XxY: np.ndarray, beta: float, threshold: float
) -> ConstrainedPolicy:
    """The exact optimum of the constrained problem (module docstring): λ* by Brent's method on
    E_{π_λ}[c] − d, bracketed by doubling."""
    if not beta > 0:
        raise ValueError(f"the KL coefficient beta must be positive, got {beta}")
    r_XxY, c_XxY = np.asarray(r_XxY, np.float64), np.asarray(c_XxY, np.float64)

    def policy(lam: float) -> np.ndarray:
        return optimal_logp(ref_logp_XxY, r_XxY - lam * c_XxY, beta)

    gap = lambda lam: expected(policy(lam), c_XxY) - threshold
    if gap(0.0) <= 0:
        logp = policy(0.0)
        return ConstrainedPolicy(logp, 0.0, expected(logp, c_XxY), True)
    hi = 1.0
    while gap(hi) > 0:
        if hi >= LAMBDA_MAX:
            logp = policy(hi)
            return ConstrainedPolicy(logp, hi, expected(logp, c_XxY), False)
        hi *= 2.0
    lam = float(optimize.brentq(gap, 0.0, hi, xtol=1e-12 * max(hi, 1.0), rtol=1e-12))
    logp = policy(lam)
    return ConstrainedPolicy(logp, lam, expected(logp, c_XxY), True)


def dual(ref_logp_XxY: np.ndarray, r_XxY: np.ndarray, c_XxY: np.ndarray, beta: float, threshold: float, lam: float):
    """D(λ) of the module docstring: its minimiser over λ ≥ 0 is the optimum's multiplier."""
    z_XxY = np.asarray(ref_logp_XxY, np.float64) + (np.asarray(r_XxY) - lam * np.asarray(c_XxY)) / beta
    return float(beta * np.mean(special.logsumexp(z_XxY, axis=1)) + lam * threshold)


def sample_leaves(logp_XxY: np.ndarray, prompt_N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One leaf index per entry of `prompt_N`, drawn from the tabulated policy's row of that prompt
    (inverse CDF of one uniform each)."""
    prompt_N = np.asarray(prompt_N, np.int64)
    u_N = rng.random(len(prompt_N))
    idx = np.empty(len(prompt_N), np.int64)
    for p in np.unique(prompt_N):
        cdf_Y = np.cumsum(np.exp(logp_XxY[p]))
        if not cdf_Y[-1] > 0:
            raise ValueError(f"prompt {p} has no response of positive probability to draw")
        m = prompt_N == p
        idx[m] = np.searchsorted(cdf_Y / cdf_Y[-1], u_N[m], side="right")
    return np.minimum(idx, logp_XxY.shape[1] - 1)
