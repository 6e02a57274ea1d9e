"""Exact quantities of tabulated policies, by enumeration of every leaf (paper §5: Best-of-N, win
rates, GSM-8K-style accuracy; THEORY.md §1 "Macro level").

The KL-regularised optimum π*(y) ∝ π_ref(y)·exp(r(y)/β) is computed by enumeration, and also as
per-node logits by the soft-value recursion Q(u, c) = logit_ref(u, c) + V(uc), V(leaf) = r/β.

Legend: X prompts, N nodes (internal, of each prompt's tree), V vocabulary (branching), L depth, Y
responses (leaves of a prompt), G groups (of tied scores), K tables.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from rm_theory.common.stats import round_significant
from rm_theory.policy.tables import TreeTables

# --------------------------------------------------------------------------------------------
# Exact quantities by enumeration
# --------------------------------------------------------------------------------------------


def optimal_logp(ref_logp_XxY: np.ndarray, r_XxY: np.ndarray, beta: float) -> np.ndarray:
    """log π*(y) for π* ∝ π_ref·exp(r/β): the maximiser of E_π[r] − β·KL(π‖π_ref)."""
    z = np.asarray(ref_logp_XxY, np.float64) + np.asarray(r_XxY, np.float64) / beta
    return z - special.logsumexp(z, axis=1, keepdims=True)


def optimal_logits(tt: TreeTables, r_XxY: np.ndarray, beta: float) -> np.ndarray:
    """Per-node logits of π* (soft-value recursion from the leaves up), `logits_XxNxV`."""
    V, L = tt.V, tt.L
    ref = special.log_softmax(np.asarray(tt.ref_logits_XxNxV, np.float64), axis=-1)
    out = np.empty_like(ref)
    value = np.asarray(r_XxY, np.float64) / beta  # soft values of the depth-(j+1) nodes
    for j in range(L - 1, -1, -1):
        lo, n = tt.offset_L[j], V**j
        q = ref[:, lo : lo + n] + value.reshape(tt.P, n, V)
        out[:, lo : lo + n] = q
        value = special.logsumexp(q, axis=-1)
    return out


def kl(logp_XxY: np.ndarray, logq_XxY: np.ndarray) -> np.ndarray:
    """KL(p‖q) per prompt."""
    return np.sum(np.exp(logp_XxY) * (logp_XxY - logq_XxY), axis=1)


def best_of_n(ref_logp_XxY: np.ndarray, score_XxY: np.ndarray, gold_XxY: np.ndarray, n: int) -> np.ndarray:
    """Exact E[r*(argmax of the score among n draws from π_ref)] per prompt.

    With leaves in ascending score order and F the CDF of π_ref, the kept leaf's score is that of
    group g (the leaves of one score) with probability F(g)^n − F(before g)^n, and ties among the
    draws break at random, so a group gives its π_ref-weighted mean gold reward. Scores equal up to
    a solver's rounding are one group (`round_significant`): the exact learner scores leaves its
    data cannot tell apart exactly alike, and the rounding must not pick among them.
    """
    score = round_significant(score_XxY)
    order = np.argsort(score, axis=1, kind="stable")
    s = np.take_along_axis(score, order, axis=1)
    p = np.take_along_axis(np.exp(ref_logp_XxY), order, axis=1)
    g = np.take_along_axis(np.asarray(gold_XxY, np.float64), order, axis=1)
    F = np.minimum(np.cumsum(p, axis=1), 1.0)
    first = np.ones(s.shape, bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    last = np.ones(s.shape, bool)
    last[:, :-1] = first[:, 1:]
    group = np.cumsum(first.ravel()) - 1  # groups numbered across rows, in row-major order
    F_before = np.concatenate([np.zeros((len(F), 1)), F[:, :-1]], axis=1)
    w_G = F[last] ** n - F_before[first] ** n
    p_G = np.bincount(group, p.ravel())
    mean_gold_G = np.bincount(group, (p * g).ravel()) / np.where(p_G > 0, p_G, 1.0)
    row_G = np.repeat(np.arange(len(s)), first.sum(axis=1))
    return np.bincount(row_G, w_G * mean_gold_G, len(s)) / np.bincount(row_G, w_G, len(s))


def best_of_n_sampled(
    rng: np.random.Generator,
    ref_logp_XxY: np.ndarray,
    score_XxY: np.ndarray,
    gold_XxY: np.ndarray,
    n: int,
    trials: int,
) -> np.ndarray:
    """Monte-Carlo Best-of-N (checks `best_of_n`): mean gold reward of the kept leaf per prompt."""
    out = np.empty(len(score_XxY))
    for p in range(len(score_XxY)):
        probs = np.exp(ref_logp_XxY[p] - special.logsumexp(ref_logp_XxY[p]))
        y = rng.choice(len(probs), size=(trials, n), p=probs)
        kept = np.take_along_axis(y, np.argmax(score_XxY[p][y], axis=1)[:, None], 1)[:, 0]
        out[p] = gold_XxY[p][kept].mean()
    return out


def win_rates(logp1_XxY: np.ndarray, logp2_XxY: np.ndarray, gold_XxY: np.ndarray) -> dict[str, np.ndarray]:
    """Exact per-prompt P(win), P(lose), P(tie) of Y1 ~ π1 against Y2 ~ π2 judged by r*.

    The limit of comparing infinitely many sample pairs per prompt; ties are equal gold rewards
    (the same leaf, in practice).
    """
    out = {"win": [], "lose": [], "tie": []}
    for p in range(len(gold_XxY)):
        g = gold_XxY[p]
        order = np.argsort(g, kind="stable")
        gs, p1, p2 = g[order], np.exp(logp1_XxY[p][order]), np.exp(logp2_XxY[p][order])
        lo = np.searchsorted(gs, gs, side="left")
        hi = np.searchsorted(gs, gs, side="right")
        C2 = np.concatenate([[0.0], np.cumsum(p2)])
        below, equal = C2[lo], C2[hi] - C2[lo]
        out["win"].append(np.sum(p1 * below))
        out["tie"].append(np.sum(p1 * equal))
        out["lose"].append(max(0.0, 1.0 - out["win"][-1] - out["tie"][-1]))
    return {k: np.asarray(v) for k, v in out.items()}


def win_rates_sampled(
    rng: np.random.Generator,
    logp1_XxY: np.ndarray,
    logp2_XxY: np.ndarray,
    gold_XxY: np.ndarray,
    samples: int,
) -> dict[str, np.ndarray]:
    """Win/lose/tie frequencies of `samples` sample pairs per prompt (a judge that sees samples)."""
    out = {"win": [], "lose": [], "tie": []}
    for p in range(len(gold_XxY)):
        draw = lambda lp: rng.choice(len(lp), size=samples, p=np.exp(lp - special.logsumexp(lp)))
        g1, g2 = gold_XxY[p][draw(logp1_XxY[p])], gold_XxY[p][draw(logp2_XxY[p])]
        out["win"].append(np.mean(g1 > g2))
        out["lose"].append(np.mean(g1 < g2))
        out["tie"].append(np.mean(g1 == g2))
    return {k: np.asarray(v) for k, v in out.items()}


def accuracy(logp_XxY: np.ndarray, ref_logp_XxY: np.ndarray, gold_XxY: np.ndarray, ref_acc: float = 0.36) -> np.ndarray:
    """P_π(r* above the per-prompt threshold that π_ref passes with probability `ref_acc`).

    A stand-in for GSM-8K accuracy: "correct" is a gold reward in π_ref's top `ref_acc` mass.
    """
    out = np.empty(len(gold_XxY))
    for p in range(len(gold_XxY)):
        order = np.argsort(gold_XxY[p])[::-1]
        mass = np.cumsum(np.exp(ref_logp_XxY[p][order]))
        correct = order[: int(np.searchsorted(mass, ref_acc)) + 1]
        out[p] = np.exp(logp_XxY[p][correct]).sum()
    return out
