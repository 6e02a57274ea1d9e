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
each choice updates both by the rank-one formula: one sparse solve per chosen comparison against the
round's factorisation, with the round's earlier choices applied by Sherman–Morrison
(L⁺ = L_r⁺ − Σ_i a_i y_i y_iᵀ, so only the y_i at candidate endpoints are ever kept). Choices come
in rounds of `batch` (what an annotation team is handed); the network is refactorised between
rounds, and S_c is recomputed there from |T| (or k) solves. Exact R_c is computed once, before the
first round, and stays exact afterwards through the same rank-one updates.

Large pools: `targets_dim = k` replaces the |T| target directions by k Gaussian projections
(Johnson–Lindenstrauss: S_c is estimated without bias, relative error ≈ √(2/k)), `candidates`
subsamples C per round, and `resistance_dim = k` estimates R_c of each round's pool from a
k-dimensional Gaussian sketch of L^{+/2} (Spielman–Srivastava) instead of one solve per candidate
(then updated within the round as above). Each is an option, stated in the result, never silent.

Legend: N nodes, Nm merged nodes (zero-variance edges contracted), Ne endpoints of the candidates
tracked, E edges, Q targets, P candidates, Pt candidates tracked, B round of comparisons (those chosen),
R rounds, M unknowns, K columns (target directions: one per target, or the projection's k).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg

from rm_theory.common.linalg import SPDFactor
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import Network, add_hp_edges, validate_network, validate_pairs
from rm_theory.ibn.reduction import merge_zero_edges


@dataclasses.dataclass(frozen=True)
class DesignConfig:
    budget: int = 100  # comparisons to choose
    batch: int = 10  # comparisons per round (the network is refactorised between rounds)
    xi2: float = 4.0  # variance of a new comparison edge (constant label-variance model)
    targets_dim: int = 0  # 0: exact target sums; k > 0: a k-dimensional Gaussian projection of them
    candidates: int = 0  # 0: every candidate each round; m > 0: m sampled per round
    resistance_dim: int = 0  # 0: exact R_c (a solve per candidate, once); k > 0: a k-dim sketch per round
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Design:
    chosen_B: np.ndarray  # indices into the candidate list, in the order chosen
    round_B: np.ndarray  # the round of each choice
    gain_B: np.ndarray  # predicted decrease of the mean target resistance at each choice
    mean_resistance_R: np.ndarray  # exact mean target resistance after each round (index 0: before)
    seconds: float
    approximate: bool  # True when targets were projected, candidates subsampled or R_c sketched


def _groups(key_N: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """Items grouped by key: those with key g are order[start[g] : start[g + 1]]."""
    order = np.argsort(key_N, kind="stable")
    return order, np.searchsorted(key_N[order], np.arange(num + 1))


class _Grounded:
    """L⁺-products on a network, one sparse factorisation per connected component.

    Zero-variance edges are perfect information: their endpoints are merged first, as everywhere
    in the solver (`ibn.reduction.merge_zero_edges`), and every method takes and returns the
    original nodes (merged nodes share their potential). One node per component (its smallest) is
    grounded (potential 0), so each component's grounded Laplacian is nonsingular; for
    b = e_u − e_v within a component, b_tᵀ L⁺ b_s is the same for any choice of grounds. L⁺ b_e for
    one comparison lives in its own component, so a per-component factorisation makes the
    per-choice solve cost that component's size, not the network's (a pool of many prompts has a
    component per prompt). Grounds do not move while comparisons are added inside components, so
    every round grounds the same nodes.
    """

    def __init__(self, net: Network):
        self.merged, self.map_N = merge_zero_edges(net)
        m = self.merged.num_nodes
        g_E = 1.0 / self.merged.var_E
        u_E, v_E = self.merged.u_E, self.merged.v_E
        adj = sp.coo_matrix((np.r_[g_E, g_E], (np.r_[u_E, v_E], np.r_[v_E, u_E])), shape=(m, m)).tocsr()
        self.num, comp_Nm = csg.connected_components(adj, directed=False)
        self.perm_Nm, self.start = _groups(comp_Nm, self.num)  # each component's merged nodes, ascending
        loc_Nm = np.empty(m, np.int64)  # a node's row in its component's grounded system (-1: ground)
        loc_Nm[self.perm_Nm] = np.arange(m) - np.repeat(self.start[:-1], np.diff(self.start)) - 1
        self.comp_N, self.loc_N = comp_Nm[self.map_N], loc_Nm[self.map_N]
        # A self-loop (an edge inside a merged node) adds 2g to the diagonal and 2g off it: no effect.
        lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()[self.perm_Nm][:, self.perm_Nm]
        self.factor = []
        for c in range(self.num):
            lo, hi = self.start[c] + 1, self.start[c + 1]  # the component's block, less its ground
            self.factor.append(SPDFactor(lap[lo:hi, lo:hi]) if hi > lo else None)

    def nodes(self, c: int) -> np.ndarray:
        """Component c's non-ground merged nodes, in the order of its grounded system."""
        return self.perm_Nm[self.start[c] + 1 : self.start[c + 1]]

    def solve(self, rhs_NxK: np.ndarray) -> np.ndarray:
        """x = L⁺ rhs on the full node set (grounded nodes at 0, merged nodes equal)."""
        n, m = len(self.map_N), self.merged.num_nodes
        if m == n:  # no zero-variance edge: the map is the identity
            return self.solve_merged(rhs_NxK)
        # the injections at merged nodes add up
        rhs_NmxK = sp.csr_matrix((np.ones(n), (self.map_N, np.arange(n))), shape=(m, n)) @ rhs_NxK
        return self.solve_merged(np.asarray(rhs_NmxK))[self.map_N]

    def solve_merged(self, rhs_NmxK: np.ndarray) -> np.ndarray:
        """x = L⁺ rhs on the merged nodes."""
        out_NmxK = np.zeros(np.shape(rhs_NmxK), dtype=np.float64)
        for c, factor_c in enumerate(self.factor):
            if factor_c is not None:
                idx = self.nodes(c)
                block = rhs_NmxK[idx]
                if np.any(block):
                    out_NmxK[idx] = factor_c.solve(block)
        return out_NmxK

    def solve_pair(self, a: int, b: int, at_Ne: np.ndarray) -> np.ndarray:
        """(L⁺ (e_a − e_b)) at the nodes `at_Ne`, all in the component of a and b."""
        factor_c = self.factor[self.comp_N[a]]
        if factor_c is None:
            return np.zeros(len(at_Ne))
        rhs = np.zeros(factor_c.n)
        if self.loc_N[a] >= 0:
            rhs[self.loc_N[a]] += 1.0
        if self.loc_N[b] >= 0:
            rhs[self.loc_N[b]] -= 1.0
        x = factor_c.solve(rhs)
        p_Ne = self.loc_N[at_Ne]
        return np.where(p_Ne >= 0, x[np.maximum(p_Ne, 0)], 0.0)

    def resistance(self, pairs_Px2: np.ndarray) -> np.ndarray:
        """b_pᵀ L⁺ b_p for node pairs (inf across components): each component is solved for its own
        pairs only, so the cost is Σ_c pairs_c · size_c rather than pairs · N."""
        a_P, b_P = pairs_Px2[:, 0], pairs_Px2[:, 1]
        out_P = np.full(len(a_P), np.inf)
        idx = np.flatnonzero(self.comp_N[a_P] == self.comp_N[b_P])
        order, st = _groups(self.comp_N[a_P[idx]], self.num)
        for c in np.flatnonzero(np.diff(st)):
            q = idx[order[st[c] : st[c + 1]]]
            factor_c = self.factor[c]
            if factor_c is None:
                out_P[q] = 0.0
                continue
            la, lb = self.loc_N[a_P[q]], self.loc_N[b_P[q]]
            chunk = max(1, (1 << 23) // factor_c.n)  # right-hand sides of at most ~64 MB
            for lo in range(0, len(q), chunk):
                s = slice(lo, lo + chunk)
                cols = np.arange(len(q[s]))
                ha, hb = la[s] >= 0, lb[s] >= 0  # a grounded endpoint has potential 0
                rhs = np.zeros((factor_c.n, len(cols)))
                rhs[la[s][ha], cols[ha]] += 1.0
                rhs[lb[s][hb], cols[hb]] -= 1.0
                x = factor_c.solve(rhs)
                xa = np.where(ha, x[np.maximum(la[s], 0), cols], 0.0)
                xb = np.where(hb, x[np.maximum(lb[s], 0), cols], 0.0)
                out_P[q[s]] = xa - xb
        return out_P


def _incidence(n: int, a_P: np.ndarray, b_P: np.ndarray) -> sp.csc_matrix:
    """B_NxP with column p = e_a − e_b."""
    P = len(a_P)
    return sp.csc_matrix(
        (np.r_[np.ones(P), -np.ones(P)], (np.r_[a_P, b_P], np.r_[np.arange(P), np.arange(P)])), shape=(n, P)
    )


def _checked(
    net: Network, targets_Qx2: np.ndarray, candidates_Px2: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Targets and candidates as int64 pairs, after the checks `network_distance` makes (edge
    endpoints and variances, pairs inside the network); no targets is an error (a mean over none)."""
    validate_network(net)
    targets_Qx2 = validate_pairs(net, targets_Qx2, "target pair")
    if not len(targets_Qx2):
        raise ValueError("no target pairs to average over")
    cand = np.zeros((0, 2), np.int64) if candidates_Px2 is None else candidates_Px2
    return targets_Qx2, validate_pairs(net, cand, "candidate pair")


def mean_resistance(net: Network, targets_Qx2: np.ndarray) -> float:
    """Mean effective resistance of the target pairs (the design's objective)."""
    targets_Qx2, _ = _checked(net, targets_Qx2)
    return float(np.mean(network_distance(net, targets_Qx2, "resistance")))


def _target_directions(n: int, targets_Qx2: np.ndarray, targets_dim: int, rng: np.random.Generator) -> np.ndarray:
    """The target incidence columns b_t, or k Gaussian mixtures of them (E[QᵀQ] = I, so Σ_k of the
    squared projections estimates Σ_t without bias)."""
    B_T = _incidence(n, targets_Qx2[:, 0], targets_Qx2[:, 1])
    if targets_dim > 0:
        Q_KxT = rng.normal(size=(targets_dim, len(targets_Qx2))) / np.sqrt(targets_dim)
        return np.asarray(B_T @ Q_KxT.T)
    return B_T.toarray()


def target_sums(
    net: Network, targets_Qx2: np.ndarray, candidates_Px2: np.ndarray, targets_dim: int = 0, seed: int = 0
) -> np.ndarray:
    """S_c = Σ_t (b_tᵀ L⁺ b_c)², exactly (targets_dim = 0) or from a k-dimensional projection of the
    targets: what greedy ranks candidates by before the first choice (module docstring)."""
    targets_Qx2, cand_Px2 = _checked(net, targets_Qx2, candidates_Px2)
    dirs_NxK = _target_directions(net.num_nodes, targets_Qx2, targets_dim, np.random.default_rng(seed))
    Z_NxK = _Grounded(net).solve(dirs_NxK)
    X_CxK = Z_NxK[cand_Px2[:, 0]] - Z_NxK[cand_Px2[:, 1]]
    return np.einsum("ck,ck->c", X_CxK, X_CxK)


def _resistances(solver: _Grounded, pairs_Px2: np.ndarray, dim: int, rng: np.random.Generator):
    """R = bᵀ L⁺ b for node pairs inside one component: exact (one solve per pair) or, for dim > 0,
    from a Gaussian sketch of the edge space, ‖W^{1/2} B L⁺ b‖² = R (Spielman–Srivastava)."""
    if dim > 0:
        # on the merged network: a zero-variance edge carries no current of its own
        m, u_E, v_E = solver.merged.num_nodes, solver.merged.u_E, solver.merged.v_E
        Bw = _incidence(m, u_E, v_E) @ sp.diags(1.0 / np.sqrt(solver.merged.var_E))
        sk_NmxK = solver.solve_merged(np.asarray(Bw @ rng.normal(size=(len(u_E), dim))) / np.sqrt(dim))
        d_PxK = sk_NmxK[solver.map_N[pairs_Px2[:, 0]]] - sk_NmxK[solver.map_N[pairs_Px2[:, 1]]]
        return np.einsum("pk,pk->p", d_PxK, d_PxK)
    return solver.resistance(pairs_Px2)


def design_comparisons(net: Network, targets_Qx2: np.ndarray, candidates_Px2: np.ndarray, cfg: DesignConfig) -> Design:
    """Greedy A-optimal choice of `cfg.budget` comparisons among `candidates_Px2` (module docstring).

    Targets and candidates are node-index pairs of `net`; targets should be connected in `net`
    (a disconnected target has infinite resistance until some comparison joins its components).
    Candidates across components are never chosen: their gain on connected targets is zero.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    targets_Qx2, cand_Px2 = _checked(net, targets_Qx2, candidates_Px2)
    n, T, C = net.num_nodes, len(targets_Qx2), len(cand_Px2)
    if C == 0 or cfg.budget <= 0:
        raise ValueError("need candidates and a positive budget")
    if not (np.isfinite(cfg.xi2) and cfg.xi2 > 0):
        raise ValueError(f"xi2 = {cfg.xi2!r}: a new comparison's variance must be finite and > 0")
    w = 1.0 / cfg.xi2
    sketch = cfg.resistance_dim > 0
    approximate = cfg.targets_dim > 0 or 0 < cfg.candidates < C or sketch
    dirs_NxK = _target_directions(n, targets_Qx2, cfg.targets_dim, rng)
    solver = _Grounded(net)
    same_P = solver.comp_N[cand_Px2[:, 0]] == solver.comp_N[cand_Px2[:, 1]]
    # Exact R_c: computed once, then kept exact for every candidate by the rank-one updates.
    # Sketched R_c: re-sketched each round for that round's pool only, so the per-choice updates
    # touch the pool's endpoints and not the whole candidate set.
    R_C = np.zeros(C)
    if not sketch:
        R_C[same_P] = _resistances(solver, cand_Px2[same_P], 0, rng)
    taken = np.zeros(C, bool)
    chosen, rounds, gains = [], [], []
    current = net
    # The objective after each round, from the factorisation the next round needs anyway.
    history = [float(np.mean(solver.resistance(targets_Qx2)))]
    r = 0
    while len(chosen) < min(cfg.budget, C):
        pool = np.flatnonzero(~taken & same_P)
        if 0 < cfg.candidates < len(pool):
            pool = np.sort(rng.choice(pool, cfg.candidates, replace=False))
        if not len(pool):
            break
        if sketch:
            R_C[pool] = _resistances(solver, cand_Px2[pool], cfg.resistance_dim, rng)
        track = pool if sketch else np.flatnonzero(same_P)  # the candidates whose R_c is updated
        # y = L⁺ b_e lives in e's component and is only ever read at tracked endpoints: keep it there,
        # per component, with every tracked candidate and pool row located in its component's list.
        ends_Ne = np.unique(cand_Px2[track])
        ord_Ne, st_Ne = _groups(solver.comp_N[ends_Ne], solver.num)
        pos_Ne = np.empty(len(ends_Ne), np.int64)
        pos_Ne[ord_Ne] = np.arange(len(ends_Ne)) - np.repeat(st_Ne[:-1], np.diff(st_Ne))
        wu_Pt, wv_Pt = (pos_Ne[np.searchsorted(ends_Ne, cand_Px2[track, i])] for i in (0, 1))
        wu_P, wv_P = (pos_Ne[np.searchsorted(ends_Ne, cand_Px2[pool, i])] for i in (0, 1))
        comp_P = solver.comp_N[cand_Px2[pool, 0]]
        ord_Pt, st_Pt = _groups(solver.comp_N[cand_Px2[track, 0]], solver.num)
        ord_P, st_P = _groups(comp_P, solver.num)
        Z_NxK = solver.solve(dirs_NxK)  # L⁺ times every target direction
        X_PxK = Z_NxK[cand_Px2[pool, 0]] - Z_NxK[cand_Px2[pool, 1]]  # b_cᵀ L⁺ dir_k
        S_P = np.einsum("pk,pk->p", X_PxK, X_PxK)
        R_P = R_C[pool]
        live_P = np.ones(len(pool), bool)
        m_max = min(cfg.batch, cfg.budget - len(chosen), len(pool))
        earlier: dict[int, tuple[list, list]] = {}  # component -> this round's L⁺ b_e (after the earlier ones), a_e
        m = 0
        while m < m_max:
            a_P = w / (1.0 + w * np.maximum(R_P, 0.0))
            gain_P = np.where(live_P, a_P * S_P, -np.inf) / T
            j = int(np.argmax(gain_P))
            if not np.isfinite(gain_P[j]):
                break
            c, k = pool[j], comp_P[j]
            y_Ne = solver.solve_pair(cand_Px2[c, 0], cand_Px2[c, 1], ends_Ne[ord_Ne[st_Ne[k] : st_Ne[k + 1]]])
            ys, as_ = earlier.setdefault(k, ([], []))
            if ys:  # Sherman–Morrison for the round's earlier choices, as one matrix-vector product
                Y = np.stack(ys)
                y_Ne -= (np.array(as_) * (Y[:, wu_P[j]] - Y[:, wv_P[j]])) @ Y
            rows_P = ord_P[st_P[k] : st_P[k + 1]]  # only candidates in e's component change
            h_P = y_Ne[wu_P[rows_P]] - y_Ne[wv_P[rows_P]]  # b_cᵀ L⁺ b_e
            g_K = X_PxK[j].copy()  # b_eᵀ L⁺ dir_k
            a = a_P[j]
            X_PxK[rows_P] -= (a * h_P)[:, None] * g_K[None, :]
            S_P[rows_P] = np.einsum("pk,pk->p", X_PxK[rows_P], X_PxK[rows_P])
            R_P[rows_P] -= a * h_P**2
            if not sketch:
                rows_Pt = ord_Pt[st_Pt[k] : st_Pt[k + 1]]
                R_C[track[rows_Pt]] -= a * (y_Ne[wu_Pt[rows_Pt]] - y_Ne[wv_Pt[rows_Pt]]) ** 2
            ys.append(y_Ne)
            as_.append(a)
            m += 1
            live_P[j] = False
            taken[c] = True
            chosen.append(c)
            rounds.append(r)
            gains.append(float(gain_P[j]))
        if not m:
            break
        new = np.array(chosen[len(chosen) - m :], np.int64)
        current = add_hp_edges(current, cand_Px2[new, 0], cand_Px2[new, 1], cfg.xi2)
        solver = _Grounded(current)
        history.append(float(np.mean(solver.resistance(targets_Qx2))))
        r += 1
    return Design(
        np.array(chosen, np.int64),
        np.array(rounds, np.int64),
        np.array(gains),
        np.array(history),
        time.perf_counter() - start,
        approximate,
    )
