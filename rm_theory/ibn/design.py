"""Which comparisons to collect: A-optimal design of preference data on the IBN (THEORY.md §2,
"Inference distance" and "Generalisation measure").

Given a network (a pool of candidate responses with their inductive-bias edges, plus any
comparisons already collected), target query pairs T (the pairs a policy will have to rank) and
candidate comparisons C, choose comparisons one at a time to minimise the mean effective resistance
of the targets, R̄ = (1/|T|)·Σ_t b_tᵀ L⁺ b_t: the mean posterior variance of the targets' reward
differences in the Gaussian model (an A-optimal design on the Laplacian).

Adding comparison e = (u, v) with conductance w = 1/ξ²_e changes L⁺ by Sherman–Morrison,
L⁺ ← L⁺ − a·(L⁺b_e)(L⁺b_e)ᵀ with a = w / (1 + w·R_e), so its exact gain is

    ΔR̄(e) = a · Σ_t (b_tᵀ L⁺ b_e)² / |T|.

Greedy keeps, for every candidate c, S_c = Σ_t (b_tᵀ L⁺ b_c)² and R_c = b_cᵀ L⁺ b_c, and after
each choice updates both by the rank-one formula (one linear solve per chosen comparison against
the round's factorisation, with the earlier choices of the round applied by Sherman–Morrison).
Choices come in rounds of `batch` (what an annotation team is handed); the network is refactorised
between rounds.

Large pools: `targets_dim = k` replaces the |T| target directions by k Gaussian projections
(Johnson–Lindenstrauss: S_c is estimated without bias, relative error ≈ √(2/k)), and `candidates`
subsamples C per round. Both are options, stated in the result, never silent.

Legend: N nodes, T targets, C candidates, K target directions (|T| or the projection's k).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
import scipy.sparse.linalg as spla

from rm_theory.ibn.distance import Network, network_distance


@dataclasses.dataclass(frozen=True)
class DesignConfig:
    budget: int = 100  # comparisons to choose
    batch: int = 10  # comparisons per round (the network is refactorised between rounds)
    xi2: float = 4.0  # variance of a new comparison edge (constant label-variance model)
    targets_dim: int = 0  # 0: exact target sums; k > 0: a k-dimensional Gaussian projection of them
    candidates: int = 0  # 0: every candidate each round; m > 0: m sampled per round
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Design:
    chosen_B: np.ndarray  # indices into the candidate list, in the order chosen
    round_B: np.ndarray  # the round of each choice
    gain_B: np.ndarray  # predicted decrease of the mean target resistance at each choice
    mean_resistance_R: np.ndarray  # exact mean target resistance after each round (index 0: before)
    seconds: float
    approximate: bool  # True when targets were projected or candidates subsampled


class _Grounded:
    """L⁺-products on a network: one node per connected component is grounded (potential 0), so
    the grounded Laplacian is nonsingular; for b = e_u − e_v within a component, b_tᵀ L⁺ b_s is
    the same for any choice of grounds."""

    def __init__(self, net: Network):
        n = net.num_nodes
        g_E = 1.0 / net.var_E
        adj = sp.coo_matrix((np.r_[g_E, g_E], (np.r_[net.u_E, net.v_E], np.r_[net.v_E, net.u_E])), shape=(n, n))
        adj = adj.tocsr()
        num, self.comp_N = csg.connected_components(adj, directed=False)
        ground = np.full(num, n)
        np.minimum.at(ground, self.comp_N, np.arange(n))
        keep = np.ones(n, bool)
        keep[ground] = False
        self.node_M = np.flatnonzero(keep)
        self.n = n
        lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()[self.node_M][:, self.node_M]
        self.lu = spla.splu(lap.tocsc(), permc_spec="MMD_AT_PLUS_A") if len(self.node_M) else None

    def solve(self, rhs_NxK: np.ndarray) -> np.ndarray:
        """x = L⁺ rhs on the full node set (grounded nodes at 0)."""
        out = np.zeros_like(rhs_NxK, dtype=np.float64)
        if self.lu is not None:
            out[self.node_M] = self.lu.solve(np.ascontiguousarray(rhs_NxK[self.node_M], dtype=np.float64))
        return out


def _incidence(n: int, a_P: np.ndarray, b_P: np.ndarray) -> sp.csc_matrix:
    """B_NxP with column p = e_a − e_b."""
    P = len(a_P)
    return sp.csc_matrix(
        (np.r_[np.ones(P), -np.ones(P)], (np.r_[a_P, b_P], np.r_[np.arange(P), np.arange(P)])), shape=(n, P)
    )


def _with_edges(net: Network, a_B: np.ndarray, b_B: np.ndarray, xi2: float) -> Network:
    kind = None if net.kind_E is None else np.r_[net.kind_E, np.ones(len(a_B), np.int8)]
    return Network(
        net.num_nodes, np.r_[net.u_E, a_B], np.r_[net.v_E, b_B], np.r_[net.var_E, np.full(len(a_B), xi2)], kind
    )


def mean_resistance(net: Network, targets_Tx2: np.ndarray) -> float:
    """Mean effective resistance of the target pairs (the design's objective)."""
    return float(np.mean(network_distance(net, targets_Tx2, "resistance")))


def design_comparisons(net: Network, targets_Tx2: np.ndarray, candidates_Cx2: np.ndarray, cfg: DesignConfig) -> Design:
    """Greedy A-optimal choice of `cfg.budget` comparisons among `candidates_Cx2` (module docstring).

    Targets and candidates are node-index pairs of `net`; targets should be connected in `net`
    (a disconnected target has infinite resistance until some comparison joins its components).
    """
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    targets_Tx2 = np.asarray(targets_Tx2, np.int64)
    cand_Cx2 = np.asarray(candidates_Cx2, np.int64)
    n, T, C = net.num_nodes, len(targets_Tx2), len(cand_Cx2)
    if C == 0 or cfg.budget <= 0:
        raise ValueError("need candidates and a positive budget")
    w = 1.0 / cfg.xi2
    approximate = cfg.targets_dim > 0 or 0 < cfg.candidates < C
    B_T = _incidence(n, targets_Tx2[:, 0], targets_Tx2[:, 1])
    # Target directions: the targets themselves, or k Gaussian mixtures of them (E[QᵀQ] = I).
    if cfg.targets_dim > 0:
        Q_KxT = rng.normal(size=(cfg.targets_dim, T)) / np.sqrt(cfg.targets_dim)
        dirs_NxK = np.asarray(B_T @ Q_KxT.T)
    else:
        dirs_NxK = B_T.toarray()
    taken = np.zeros(C, bool)
    chosen, rounds, gains = [], [], []
    current = net
    history = [mean_resistance(net, targets_Tx2)]
    r = 0
    while len(chosen) < min(cfg.budget, C):
        solver = _Grounded(current)
        Z_NxK = solver.solve(dirs_NxK)  # L⁺ times every target direction
        pool = np.flatnonzero(~taken)
        if 0 < cfg.candidates < len(pool):
            pool = np.sort(rng.choice(pool, cfg.candidates, replace=False))
        u, v = cand_Cx2[pool, 0], cand_Cx2[pool, 1]
        X_PxK = Z_NxK[u] - Z_NxK[v]  # b_cᵀ L⁺ dir_k
        S_P = np.einsum("pk,pk->p", X_PxK, X_PxK)
        Y_NxP = solver.solve(_incidence(n, u, v).toarray()) if len(pool) <= 4096 else None
        R_P = (Y_NxP[u, np.arange(len(pool))] - Y_NxP[v, np.arange(len(pool))]) if Y_NxP is not None else None
        if R_P is None:  # large pools: R_c by a Gaussian sketch of L^{+/2} (Spielman–Srivastava)
            k = 64
            Bw = _incidence(n, current.u_E, current.v_E) @ sp.diags(1.0 / np.sqrt(current.var_E))
            sk_NxK = solver.solve(np.asarray(Bw @ rng.normal(size=(current.num_edges, k))) / np.sqrt(k))
            R_P = np.einsum("pk,pk->p", sk_NxK[u] - sk_NxK[v], sk_NxK[u] - sk_NxK[v])
            approximate = True
        same = solver.comp_N[u] == solver.comp_N[v]
        prev_y, prev_a = [], []  # this round's choices: L⁺ b_e (after the earlier ones) and a_e
        for _ in range(min(cfg.batch, cfg.budget - len(chosen), len(pool))):
            a_P = w / (1.0 + w * np.maximum(R_P, 0.0))
            gain_P = np.where(same, a_P * S_P, -np.inf) / T
            gain_P[taken[pool]] = -np.inf
            j = int(np.argmax(gain_P))
            if not np.isfinite(gain_P[j]):
                break
            c = pool[j]
            b = np.zeros(n)
            b[cand_Cx2[c, 0]] += 1.0
            b[cand_Cx2[c, 1]] -= 1.0
            y = solver.solve(b[:, None])[:, 0]
            for y_i, a_i in zip(prev_y, prev_a, strict=True):  # Sherman–Morrison, earlier choices
                y -= a_i * y_i * (y_i @ b)
            h_P = y[u] - y[v]  # b_cᵀ L⁺ b_e for every candidate c
            g_K = X_PxK[j].copy()  # b_eᵀ L⁺ dir_k
            a = a_P[j]
            # rank-one updates of X (so S) and R for every candidate
            X_PxK -= a * np.outer(h_P, g_K)
            S_P = np.einsum("pk,pk->p", X_PxK, X_PxK)
            R_P = R_P - a * h_P**2
            prev_y.append(y)
            prev_a.append(a)
            taken[c] = True
            chosen.append(c)
            rounds.append(r)
            gains.append(float(gain_P[j]))
        new = np.array(chosen[len(chosen) - len(prev_y) :], np.int64)
        current = _with_edges(current, cand_Cx2[new, 0], cand_Cx2[new, 1], cfg.xi2)
        history.append(mean_resistance(current, targets_Tx2))
        r += 1
        if not prev_y:
            break
    return Design(
        np.array(chosen, np.int64),
        np.array(rounds, np.int64),
        np.array(gains),
        np.array(history),
        time.perf_counter() - start,
        approximate,
    )
