"""The IBN of preference data labelled by several kinds of labeller (humans, AI judges): each comparison
edge has its own variance, and an AI edge a bias that no variance captures. The derivation, its
assumptions and its tests are in `docs/ai_labels_theory.md`; this module computes it.

The model (THEORY.md §2 made biased). The reward r is the Gaussian field of the IBN's prior (its IB
edges); comparison e between u_e and v_e reads d_e = r(u_e) − r(v_e) + b_e + ε_e, ε_e ~ N(0, ξ²_e),
and a learner that takes every d_e at face value (unbiased, variance ξ²_e) forms the posterior mean.
For a query pair Q = (a, b) its error is then Gaussian with

    mean  B_Q = m(a) − m(b),   m = L⁺ Aᵀ W b     (the bias field: the posterior mean of the data b alone),
    var   R_Q = the effective resistance of the IBN between a and b,

L the IBN's Laplacian (conductances 1/variance), A the comparisons' incidence, W = diag(1/ξ²_e):
the posterior mean is linear in the data, Σ_e f_e^Q d_e with f^Q the unit a→b electrical flow
(Thomson's principle), so the biases add up along the flow. The mean squared error of inference,
the mixed IBN's inference distance, is R_Q + B_Q²: the variance shrinks as data are added, B_Q does
not (for a bias b_e = κ(g(u_e) − g(v_e)) along a feature g and AI edges only, the flow telescopes
and B_Q → κ(g(a) − g(b))).

An AI label of a Bradley–Terry judge P_J = σ(β_J x + λΔg) (`world.judges`) enters as ξ²_e =
1/(β_J² p_J(1 − p_J)) (the inverse Fisher information of its label about x, at the judge's own
probability) and b_e = (λ/β_J)Δg_e (the gap its logit reads, over β_J); a human label as ξ²_e =
1/(β_H² p_H(1 − p_H)), b_e = 0 (`ibn.network`'s "fisher" model).

Gold accuracy predicted: with prior variance V_Q of the pair's difference, the posterior mean m_Q ~
N(0, V_Q − R_Q) and the truth m_Q + e, e ~ N(0, R_Q) independent of it, the estimate m_Q + B_Q has
the truth's sign with probability 1/2 + 2·T(|B_Q|/s, s/√R_Q), s = √(V_Q − R_Q), T Owen's T function
(1/2 + arctan(s/√R)/π when B = 0).

Legend: N nodes, E edges, P comparisons, Q query pairs, K runs (one per budget: the points of a curve).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
from scipy import optimize, special

from rm_theory.common.linalg import SPDFactor
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import Network, ib_subnetwork, validate_network
from rm_theory.ibn.network import HP, IBN, LabelVariance, ibn_network
from rm_theory.world.spaces import Responses, ResponseSpace
from rm_theory.world.topology import Comparisons

# ---------------------------------------------------------------------------- label information


def fisher_variance(beta: float | np.ndarray, logit_P: np.ndarray) -> np.ndarray:
    """ξ² = 1/(β² p(1 − p)) at p = σ(logit): the inverse Fisher information of one Bradley–Terry
    label of slope β about the gap it is read from (1/(p(1−p)) = 2 + 2cosh(logit), finite where p(1−p)
    would underflow)."""
    return (2.0 + 2.0 * np.cosh(np.clip(logit_P, -700.0, 700.0))) / np.asarray(beta, np.float64) ** 2


def label_worth(
    beta_ai: float, beta_h: float, x_P: np.ndarray, dg_P: np.ndarray | float = 0.0, bias: float = 0.0
) -> float:
    """w = E[I_AI] / E[I_H]: how many human labels one AI label's Fisher information is worth, on
    comparisons of gold gaps `x_P` (an AI label of slope β_AI and bias λ·Δg against a human's of slope
    β_H). Near ties it is (β_AI/β_H)²; a sharper label saturates sooner on large gaps."""
    info_ai = 1.0 / fisher_variance(beta_ai, beta_ai * np.asarray(x_P) + bias * np.asarray(dg_P))
    info_h = 1.0 / fisher_variance(beta_h, beta_h * np.asarray(x_P))
    return float(np.mean(info_ai) / np.mean(info_h))


# ---------------------------------------------------------------------------- the mixed network


@dataclasses.dataclass(frozen=True)
class MixedIBN:
    """An IBN whose comparison edges carry their own variance and bias (`bias_E`, 0 on IB edges)."""

    ibn: IBN
    bias_E: np.ndarray

    @property
    def network(self) -> Network:
        return self.ibn.network


def mixed_ibn(
    space: ResponseSpace,
    comps: Comparisons,
    var_P: np.ndarray,
    bias_P: np.ndarray,
    queries: Responses | None = None,
) -> MixedIBN:
    """The IBN of `comps` (plus query items), comparison p an edge of variance `var_P[p]` and bias
    `bias_P[p]` (the shift of the gap it reports, r(a) − r(b) + bias). The structure is
    `ibn.network.ibn_network`'s; a comparison of an item with itself carries nothing and is left out."""
    var_P, bias_P = np.asarray(var_P, np.float64), np.asarray(bias_P, np.float64)
    if var_P.shape != (len(comps),) or bias_P.shape != (len(comps),):
        raise ValueError(
            f"need one variance and one bias per comparison ({len(comps)}), got {var_P.shape}, {bias_P.shape}"
        )
    if not (np.isfinite(var_P).all() and (var_P > 0).all() and np.isfinite(bias_P).all()):
        raise ValueError("comparison variances must be finite and positive, biases finite")
    ibn = ibn_network(space, comps, queries, LabelVariance("constant", 1.0))
    distinct = ibn.node_a_P != ibn.node_b_P
    hp = ibn.network.kind_E == HP
    var_E = ibn.network.var_E.copy()
    var_E[hp] = var_P[distinct]  # ibn_network lays the comparison edges out in this order
    bias_E = np.zeros(ibn.network.num_edges)
    bias_E[hp] = bias_P[distinct]
    net = dataclasses.replace(ibn.network, var_E=var_E)
    return MixedIBN(dataclasses.replace(ibn, network=net), bias_E)


def bias_field(net: Network, bias_E: np.ndarray) -> np.ndarray:
    """m_N = L⁺ Aᵀ W b: the posterior mean of the node values when every edge e reports only its bias
    b_e (THEORY: the error a learner's posterior mean inherits from biased labels). Each connected
    component is grounded at its first node; differences within a component do not depend on it."""
    validate_network(net)
    bias_E = np.asarray(bias_E, np.float64)
    if bias_E.shape != (net.num_edges,):
        raise ValueError(f"need one bias per edge ({net.num_edges}), got shape {bias_E.shape}")
    if (net.var_E == 0).any():
        raise ValueError("a zero-variance edge is a hard constraint; merge it (ibn.distance.merge_zero_edges) first")
    n = net.num_nodes
    g_E = 1.0 / net.var_E
    lap = sp.coo_matrix(
        (
            np.r_[g_E, g_E, -g_E, -g_E],
            (np.r_[net.u_E, net.v_E, net.u_E, net.v_E], np.r_[net.u_E, net.v_E, net.v_E, net.u_E]),
        ),
        shape=(n, n),
    ).tocsr()
    rhs_N = np.bincount(net.u_E, g_E * bias_E, n) - np.bincount(net.v_E, g_E * bias_E, n)
    _, comp_N = csg.connected_components(lap, directed=False)
    ground = np.zeros(n, bool)
    ground[np.unique(comp_N, return_index=True)[1]] = True
    free = np.flatnonzero(~ground)
    out = np.zeros(n)
    if len(free):
        out[free] = SPDFactor(lap[free][:, free]).solve(rhs_N[free])
    return out


@dataclasses.dataclass(frozen=True)
class PairError:
    """Per query pair: prior variance V, posterior variance R (resistance), bias B, and what they
    predict: the mean squared error R + B² and the gold accuracy."""

    prior_Q: np.ndarray
    resistance_Q: np.ndarray
    bias_Q: np.ndarray

    @property
    def mse_Q(self) -> np.ndarray:
        return self.resistance_Q + self.bias_Q**2

    @property
    def accuracy_Q(self) -> np.ndarray:
        return predicted_accuracy(self.prior_Q, self.resistance_Q, self.bias_Q)


def pair_error(mixed: MixedIBN, pairs_Qx2: np.ndarray) -> PairError:
    """V, R and B of node pairs of the mixed IBN (V from its IB edges alone)."""
    net = mixed.network
    pairs_Qx2 = np.asarray(pairs_Qx2, np.int64).reshape(-1, 2)
    R_Q = network_distance(net, pairs_Qx2, "resistance")
    V_Q = network_distance(ib_subnetwork(net), pairs_Qx2, "resistance")
    m_N = bias_field(net, mixed.bias_E)
    return PairError(V_Q, R_Q, m_N[pairs_Qx2[:, 0]] - m_N[pairs_Qx2[:, 1]])


def predicted_accuracy(prior_Q: np.ndarray, resistance_Q: np.ndarray, bias_Q: np.ndarray) -> np.ndarray:
    """P(sign(estimate) = sign(truth)) = 1/2 + 2·T(|B|/s, s/√R), s = √(V − R) (module docstring);
    1/2 where the data say nothing (R = V) and 1 where R = 0 without bias."""
    V, R, B = (np.asarray(v, np.float64) for v in (prior_Q, resistance_Q, bias_Q))
    s = np.sqrt(np.maximum(V - R, 0.0))
    safe_s, safe_r = np.where(s > 0, s, 1.0), np.where(R > 0, R, 1.0)
    h = np.abs(B) / safe_s
    acc = 0.5 + 2.0 * special.owens_t(h, safe_s / np.sqrt(safe_r))
    # R = 0 (no noise): T(h, ∞) = Φ(−h)/2, so the accuracy is 1/2 + Φ(−|B|/s)
    acc = np.where(R > 0, acc, 0.5 + special.ndtr(-h))
    return np.where(s > 0, acc, 0.5)  # the data say nothing about the pair


# ---------------------------------------------------------------------------- budgets


def crossover(budget_K: np.ndarray, first_K: np.ndarray, second_K: np.ndarray) -> float:
    """The budget where curve `second` stops being below `first` (or starts: the first sign change
    of first − second), by linear interpolation in log budget; NaN if they do not cross."""
    b, d = np.log(np.asarray(budget_K, np.float64)), np.asarray(first_K, np.float64) - np.asarray(second_K)
    ok = np.isfinite(d)
    b, d = b[ok], d[ok]
    flips = np.flatnonzero(np.sign(d[:-1]) * np.sign(d[1:]) < 0)
    if not len(flips):
        return float("nan")
    i = flips[0]
    return float(np.exp(b[i] + (b[i + 1] - b[i]) * d[i] / (d[i] - d[i + 1])))


def power_law_crossover(a: float, gamma: float, bias2: float, c_h: float, c_ai: float, worth: float) -> float:
    """B* of the closed form (docs/ai_labels_theory.md §3): with the variance term a·n^(−γ) of n
    human-equivalent labels and an AI bias² that does not shrink, AI-only data (B·w/c_AI human
    equivalents) beats human-only data (B/c_H) below B* and loses above it:

        a(B*/c_H)^(−γ) − a(B*·w/c_AI)^(−γ) = bias²,   B* = c_H·[a(1 − (c_H·w/c_AI)^(−γ))/bias²]^(1/γ).

    NaN where AI labels buy no more information per unit cost (c_H·w ≤ c_AI): AI data never wins."""
    gain = c_h * worth / c_ai
    if not (gain > 1 and bias2 > 0 and a > 0 and gamma > 0):
        return float("nan") if gain <= 1 or a <= 0 or gamma <= 0 else float("inf")
    return float(c_h * (a * (1.0 - gain**-gamma) / bias2) ** (1.0 / gamma))


def best_ai_count(a: float, gamma: float, bias2: float, n_h: float, worth: float) -> float:
    """n_AI that minimises a(n_H + w·n_AI)^(−γ) + bias²·π², π = w·n_AI/(n_H + w·n_AI) the AI share of
    the information (docs §3): beyond it more AI labels make the model worse. ∞ without bias, or when
    the error only falls (it then tends to bias² from above); 0 when the first AI label already hurts.

    The error can fall, rise past bias² and fall back towards it from above (the variance term decays
    as n^(−γ), the bias term's approach as 1/n), so the minimum is searched on a log grid of counts
    from 10⁻³·n_H to 10⁹·n_H, refined by a bounded scalar search, and compared with the limit bias²."""
    if bias2 <= 0:
        return float("inf")

    def mse(n_ai: np.ndarray) -> np.ndarray:
        tot = n_h + worth * n_ai
        return a * tot ** (-gamma) + bias2 * (worth * n_ai / tot) ** 2

    grid = np.r_[0.0, n_h * np.logspace(-3, 9, 481)]
    i = int(np.argmin(mse(grid)))
    if min(mse(grid[i]), mse(0.0)) >= bias2:
        return float("inf")
    if i == 0:
        return 0.0
    lo, hi = np.log(max(grid[i - 1], n_h * 1e-4)), np.log(grid[min(i + 1, len(grid) - 1)])
    res = optimize.minimize_scalar(
        lambda t: float(mse(np.exp(t))), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
    )
    return float(np.exp(res.x))
