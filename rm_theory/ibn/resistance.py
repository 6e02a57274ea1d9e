"""Effective resistance on a kernel (THEORY.md §2, "Inference distance"): each edge a resistor equal to
its variance, parallel edges' conductances added. This is the exact Gaussian posterior variance of
r(a) - r(b).

Resistance between query nodes only needs the Schur complement of the Laplacian onto those nodes
(Kron reduction: resistances among the kept nodes are unchanged). The solvers exploit that: with
CHOLMOD (scikit-sparse, the ``cholmod`` extra) the queried nodes are ordered last, so one sparse
Cholesky factorisation leaves their Schur complement's factor in its trailing block and no solve
touches the rest of the factor; without it, low-degree nodes are eliminated in vectorised rounds
(star-mesh transform) and what remains is factored densely, component by component, small factors
on one BLAS thread; the others are a sparse Cholesky factor with a solve per pair ("direct") and
forest-preconditioned block CG (`ibn.cg`).

Legend: N nodes, E edges, U edges (one per pair of nodes), P pairs (asked), Pc pairs within one
component, G components, Nt terminals (queried nodes), Ne inner (non-queried) nodes, or the nodes
eliminated, Nr nodes left after elimination, M unknowns, K columns.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
from threadpoolctl import ThreadpoolController

from rm_theory.common.linalg import BLOCK_BYTES, MAX_COLUMNS, SOLVE_COLUMNS, SPDFactor
from rm_theory.ibn.cg import CG_RTOL, ForestSolver, block_pcg
from rm_theory.ibn.graph import Network
from rm_theory.ibn.reduction import collapse_parallel, symmetric

# Without CHOLMOD, a grounded kernel is solved by a sparse Cholesky factor and one solve per pair when
# unknowns x pairs is at most _DIRECT_MAX_WORK (and it has at most _DIRECT_MAX_NODES unknowns); else
# by star-mesh elimination and dense factors, then the sparse factor, then tree-preconditioned CG
# (IBNs are a shallow trie plus random HP edges, i.e. expander-like: fill explodes). Measured on 54
# kernels of the scaling study (n = 256 ... 16,384, 144-2,026 pairs, 2026-12-07, idle): the sparse
# factor wins below ~3e6 (8,685 unknowns x 176 pairs: 0.045 s against 0.31 s), the dense route above
# it (5,611 x 2,013: 0.06 s against 0.13 s; 26,978 x 2,026: 0.35 s against 3.6 s); this threshold
# takes 6.31 s over the 54 kernels; the faster of the two on each, 6.29 s; always dense 8.1 s; always
# the sparse factor (in blocks of `SOLVE_COLUMNS` pairs) 18.8 s.
_DIRECT_MAX_WORK = 3_000_000


_DIRECT_MAX_NODES = 20_000


# Terminals-last CHOLMOD pays one dense triangle of the queried nodes (~130 MB at 4096) and |T|^2
# per pair; with more terminals than this, or more than a 1/_SCHUR_MIN_RATIO share of the unknowns
# (small graphs, where the queried nodes are most of the kernel: n = 1e3 chain, 0.21 s against
# 0.30-0.54 s), a plain fill-reducing factorisation and forward solves per pair.
_SCHUR_MAX_TERMINALS = 4096


_SCHUR_MIN_RATIO = 4


# CHOLMOD ordering of the non-queried nodes: on IBN kernels METIS factors faster than AMD despite
# ~10% more fill (n = 1e5 chain: 5.2 s vs 6.3 s).
_CHOLMOD_ORDERING = "metis"


# Star-mesh elimination stops once the least degree left exceeds this (fill beyond it grows faster
# than the dense phase shrinks); then each component is factored densely if it has at most
# _DENSE_MAX_NODES nodes (1.2 GB at 12,000), else the kernel goes to the sparse factor or block CG.
_KRON_MAX_DEGREE = 32


_DENSE_MAX_NODES = 12_000


# Dense factors smaller than this run on one BLAS thread (see `_blas_threads`).
_BLAS_MIN_NODES = 1_000


def _cholmod():
    """scikit-sparse's CHOLMOD module, or None where the optional ``cholmod`` extra is absent."""
    try:
        from sksparse import cholmod
    except ImportError:
        return None
    return cholmod


def has_cholmod() -> bool:
    """Whether the optional ``cholmod`` extra is installed (the fastest resistance path)."""
    return _cholmod() is not None


def sparse_solver(unknowns: int) -> str:
    """The grounded solve of a system of `unknowns` where no dense route is taken: CHOLMOD where
    installed, else a sparse Cholesky factor up to `_DIRECT_MAX_NODES`, else block CG."""
    return "cholmod" if has_cholmod() else ("direct" if unknowns <= _DIRECT_MAX_NODES else "cg")


def _pair_rhs(row_N: np.ndarray, a_Pc: np.ndarray, b_Pc: np.ndarray, size: int) -> np.ndarray:
    """Columns e_a - e_b over ``size`` unknowns; a node with row -1 is grounded (potential 0)."""
    rhs_MxK = np.zeros((size, a_Pc.size))
    ra, rb, q = row_N[a_Pc], row_N[b_Pc], np.arange(a_Pc.size)
    rhs_MxK[ra[ra >= 0], q[ra >= 0]] += 1.0
    rhs_MxK[rb[rb >= 0], q[rb >= 0]] -= 1.0
    return rhs_MxK


def _forward_norms(lower_NtxNt: np.ndarray, row_N: np.ndarray, a_Pc: np.ndarray, b_Pc: np.ndarray) -> np.ndarray:
    """||C^-1 (e_a - e_b)||^2 per pair for a dense lower-triangular C (C C^T = grounded Laplacian).

    Only the forward half of a solve: x^T (C C^T)^-1 x = ||C^-1 x||^2.
    """
    t = lower_NtxNt.shape[0]
    out_Pc = np.empty(a_Pc.size)
    chunk = max(1, BLOCK_BYTES // (8 * max(t, 1)))
    for lo in range(0, a_Pc.size, chunk):
        y_NtxK = sla.solve_triangular(
            lower_NtxNt,
            _pair_rhs(row_N, a_Pc[lo : lo + chunk], b_Pc[lo : lo + chunk], t),
            lower=True,
            check_finite=False,
        )
        out_Pc[lo : lo + chunk] = np.einsum("tk,tk->k", y_NtxK, y_NtxK)
    return out_Pc


def _live_nodes(comp_N: np.ndarray, a_Pc: np.ndarray, b_Pc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of components holding a pair (the rest is never factored) and the terminal mask."""
    live_G = np.zeros(comp_N.max() + 1, dtype=bool)
    live_G[comp_N[a_Pc]] = True
    is_term_N = np.zeros(comp_N.size, dtype=bool)
    is_term_N[a_Pc] = True
    is_term_N[b_Pc] = True
    return live_G[comp_N], is_term_N


def _ground_nodes(comp_N: np.ndarray, live_N: np.ndarray, is_term_N: np.ndarray) -> np.ndarray:
    """One node per live component, a non-terminal where there is one (every terminal then stays an
    unknown, and the terminal block of the factor holds the whole Schur complement)."""
    n = comp_N.size
    key_N = np.where(is_term_N, n, 0) + np.arange(n)
    best_G = np.full(comp_N.max() + 1, 2 * n)
    np.minimum.at(best_G, comp_N[live_N], key_N[live_N])
    best_G = best_G[best_G < 2 * n]
    return np.where(best_G >= n, best_G - n, best_G)


def _resistance_cholmod(lap: sp.csr_matrix, comp_N: np.ndarray, a_Pc: np.ndarray, b_Pc: np.ndarray) -> np.ndarray:
    """Resistances from one CHOLMOD factorisation of the grounded Laplacian.

    The queried nodes T are ordered after the others (a fill-reducing ordering of the rest), so the
    trailing T x T block of L is the Cholesky factor of the Schur complement onto T (THEORY.md §2:
    Kron reduction keeps resistances among the kept nodes) and R(a, b) = ||L_TT^-1 (e_a - e_b)||^2
    costs |T|^2 per pair instead of a solve through the whole factor. With too many queried nodes,
    a plain fill-reducing factorisation and the forward half of a solve per pair.
    """
    cholmod = _cholmod()
    if cholmod is None:
        raise ImportError(
            "resistance_solver='cholmod' needs scikit-sparse: pip install -e '.[cholmod]' "
            "(it builds against SuiteSparse, e.g. apt-get install libsuitesparse-dev)"
        )
    n = lap.shape[0]
    live_N, is_term_N = _live_nodes(comp_N, a_Pc, b_Pc)
    unknown_N = live_N.copy()
    unknown_N[_ground_nodes(comp_N, live_N, is_term_N)] = False
    inner_Ne = np.flatnonzero(unknown_N & ~is_term_N)
    term_Nt = np.flatnonzero(unknown_N & is_term_N)
    if inner_Ne.size + term_Nt.size == 0:
        return np.zeros(a_Pc.size)
    row_N = np.full(n, -1)
    if term_Nt.size <= _SCHUR_MAX_TERMINALS and _SCHUR_MIN_RATIO * term_Nt.size <= inner_Ne.size + term_Nt.size:
        perm_Ne = np.arange(0)
        if inner_Ne.size:
            lap_II = lap[inner_Ne][:, inner_Ne].tocsc()
            perm_Ne = cholmod.analyze(lap_II, ordering_method=_CHOLMOD_ORDERING, mode="supernodal").P()
        order_M = np.r_[inner_Ne[perm_Ne], term_Nt]
        factor = cholmod.cholesky(lap[order_M][:, order_M].tocsc(), ordering_method="natural", mode="supernodal")
        # CHOLMOD still postorders the elimination tree; that keeps every terminal's ancestors among
        # the terminals, so the columns of T hold rows of T only.
        pos_M = np.empty(order_M.size, dtype=np.int64)
        pos_M[factor.P()] = np.arange(order_M.size)
        pos_Nt = np.sort(pos_M[inner_Ne.size :])
        row_N[order_M[np.argsort(pos_M)][pos_Nt]] = np.arange(term_Nt.size)
        lower = factor.L()
        del factor
        lower_NtxNt = lower[:, pos_Nt][pos_Nt, :].toarray()
        del lower
        return _forward_norms(lower_NtxNt, row_N, a_Pc, b_Pc)
    unknown_M = np.flatnonzero(unknown_N)
    row_N[unknown_M] = np.arange(unknown_M.size)
    factor = cholmod.cholesky(lap[unknown_M][:, unknown_M].tocsc(), ordering_method=_CHOLMOD_ORDERING)
    out_Pc = np.empty(a_Pc.size)
    chunk = max(1, min(MAX_COLUMNS, BLOCK_BYTES // (8 * unknown_M.size)))
    for lo in range(0, a_Pc.size, chunk):
        rhs_MxK = _pair_rhs(row_N, a_Pc[lo : lo + chunk], b_Pc[lo : lo + chunk], unknown_M.size)
        # L L^T = P A P^T, so x^T A^-1 x = ||L^-1 P x||^2.
        y_MxK = np.asarray(factor.solve_L(factor.apply_P(rhs_MxK), use_LDLt_decomposition=False))
        out_Pc[lo : lo + chunk] = np.einsum("mk,mk->k", y_MxK, y_MxK)
    return out_Pc


def _star_mesh(adj: sp.csr_matrix, keep_N: np.ndarray, max_degree: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Eliminate low-degree nodes outside ``keep_N`` (Kron reduction, THEORY.md §2).

    Eliminating node i with conductances g_ij joins each pair of its neighbours j, k by g_ij g_ik / d_i
    (d_i = sum_j g_ij): the star-mesh transform, i.e. the Schur complement of the Laplacian, which
    keeps all resistances among the remaining nodes. Each round eliminates an independent set of
    near-minimum-degree nodes at once (a vectorised multiple-minimum-degree ordering), until the
    least degree left exceeds ``max_degree``. Only positive terms are added, so no cancellation.
    Returns the reduced conductance matrix and the original index of each remaining node.
    """
    w = adj.tocsr()
    node_Nr = np.arange(w.shape[0])
    while True:
        m = w.shape[0]
        deg_Nr = np.diff(w.indptr)
        cand_Nr = ~keep_N
        if not cand_Nr.any():
            break
        least = deg_Nr[cand_Nr].min()
        if least > max_degree:
            break
        cand_Nr &= deg_Nr <= max(least + 2, (3 * least) // 2)
        # Ties broken by index: a strict order, so the local minima form an independent set.
        key_Nr = deg_Nr * float(m) + np.arange(m)
        key_cand_Nr = np.where(cand_Nr, key_Nr, np.inf)
        near_Nr = np.full(m, np.inf)
        has_Nr = deg_Nr > 0
        near_Nr[has_Nr] = np.minimum.reduceat(key_cand_Nr[w.indices], w.indptr[:-1][has_Nr])
        elim_Nr = cand_Nr & (key_Nr < near_Nr)
        out_Ne, rest_Nr = np.flatnonzero(elim_Nr), np.flatnonzero(~elim_Nr)
        d_Ne = np.asarray(w[out_Ne].sum(axis=1)).ravel()
        w_NrxNe = w[rest_Nr][:, out_Ne]
        mesh = (w_NrxNe @ sp.diags(1.0 / np.where(d_Ne > 0, d_Ne, 1.0)) @ w_NrxNe.T).tocsr()
        mesh.setdiag(0.0)
        mesh.eliminate_zeros()
        w = (w[rest_Nr][:, rest_Nr] + mesh).tocsr()
        keep_N, node_Nr = keep_N[rest_Nr], node_Nr[rest_Nr]
    return w, node_Nr


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _blas_threads(size: int):
    """One BLAS thread for dense factors below ``_BLAS_MIN_NODES``, the library's own count above.

    A second thread slows small factors: idle, a Cholesky and 64 triangular solves of 250 nodes took
    0.9 ms on one thread against 5.8 ms on two, 500 nodes 3.5 against 10.2 ms, 1,000 nodes 20 against
    14 ms (2026-12-07). Beside another busy process it is worse: the quick scaling step with two BLAS
    threads beside a busy loop took 65 s without this limit and 44 s with it.
    """
    if size >= _BLAS_MIN_NODES:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


def _resistance_dense(
    adj: sp.csr_matrix, comp_N: np.ndarray, a_Pc: np.ndarray, b_Pc: np.ndarray, strict: bool
) -> np.ndarray | None:
    """Star-mesh elimination, then a dense Cholesky per component with the terminals last.

    Returns None (or raises, if ``strict``) when a component left has over ``_DENSE_MAX_NODES`` nodes.
    """
    live_N, is_term_N = _live_nodes(comp_N, a_Pc, b_Pc)
    live = np.flatnonzero(live_N)
    w, node_Nr = _star_mesh(adj[live][:, live], is_term_N[live], _KRON_MAX_DEGREE)
    node_Nr = live[node_Nr]
    comp_Nr = comp_N[node_Nr]
    size_G = np.bincount(comp_Nr)
    if size_G.max() > _DENSE_MAX_NODES:
        if strict:
            raise ValueError(
                f"a component keeps {size_G.max()} nodes after elimination, more than the dense limit "
                f"{_DENSE_MAX_NODES}; use resistance_solver='cholmod' or 'cg'"
            )
        return None
    d_Nr = np.asarray(w.sum(axis=1)).ravel()
    out_Pc = np.empty(a_Pc.size)
    term_Nr = is_term_N[node_Nr]
    row_N = np.full(comp_N.size, -1)
    for c in np.unique(comp_N[a_Pc]):
        # Non-terminals first: the first is grounded, and the pairs' right-hand sides vanish above
        # the terminal block, so only its trailing triangle is solved with.
        mine_Nr = np.flatnonzero(comp_Nr == c)
        mine_Nr = mine_Nr[np.argsort(term_Nr[mine_Nr], kind="stable")]
        unk_Nr = mine_Nr[1:]
        inner = int((~term_Nr[unk_Nr]).sum())
        g_MxM = -w[unk_Nr][:, unk_Nr].toarray()
        g_MxM[np.diag_indices_from(g_MxM)] += d_Nr[unk_Nr]
        q_Pc = np.flatnonzero(comp_N[a_Pc] == c)
        if unk_Nr.size == 0:
            out_Pc[q_Pc] = 0.0
            continue
        row_N[node_Nr[unk_Nr[inner:]]] = np.arange(unk_Nr.size - inner)
        with _blas_threads(unk_Nr.size):
            lower_MxM = sla.cholesky(g_MxM, lower=True, overwrite_a=True, check_finite=False)
            out_Pc[q_Pc] = _forward_norms(lower_MxM[inner:, inner:], row_N, a_Pc[q_Pc], b_Pc[q_Pc])
        row_N[node_Nr[mine_Nr]] = -1
    return out_Pc


def grounded_solver(
    adj: sp.csr_matrix,
    comp_N: np.ndarray,
    num: int,
    u_U: np.ndarray,
    v_U: np.ndarray,
    g_U: np.ndarray,
    solver: str,
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, int]:
    """A solve with the Laplacian grounded at the first node of each component (then nonsingular).

    solver: "cholmod" (scikit-sparse's CHOLMOD), "direct" (`common.linalg.SPDFactor`) or "cg" (forest-
    preconditioned block CG). Returns the solve (M x K -> M x K), each node's row (-1: grounded) and M.
    """
    n = adj.shape[0]
    ground_G = np.full(num, n)
    np.minimum.at(ground_G, comp_N, np.arange(n))
    m = n - num
    lap_NxN = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
    solve = None
    if solver in ("direct", "cholmod"):
        keep_N = np.ones(n, dtype=bool)
        keep_N[ground_G] = False
        node_M = np.flatnonzero(keep_N)
        lap = lap_NxN[node_M][:, node_M].tocsc()
        if m and solver == "cholmod":
            solve = _cholmod().cholesky(lap, ordering_method=_CHOLMOD_ORDERING)
        elif m:
            solve = SPDFactor(lap).solve
    else:
        forest = ForestSolver(n, u_U, v_U, 1.0 / g_U, ground_G)
        node_M = forest.perm_M  # BFS order of the forest, so its solve is level-vectorised
        lap = lap_NxN[node_M][:, node_M].tocsr()
        solve = lambda rhs: block_pcg(lap, rhs, forest.solve_into, CG_RTOL, max_iter=10 * m + 100)
    row_N = np.full(n, -1)
    row_N[node_M] = np.arange(m)
    return solve, row_N, m


def _resistance_grounded(
    adj: sp.csr_matrix,
    comp_N: np.ndarray,
    num: int,
    u_U: np.ndarray,
    v_U: np.ndarray,
    g_U: np.ndarray,
    a_Pc: np.ndarray,
    b_Pc: np.ndarray,
    solver: str,
) -> np.ndarray:
    """A sparse Cholesky factor ("direct", "cholmod") or forest-preconditioned block CG ("cg") on the
    grounded Laplacian, one solve per pair."""
    solve, row_N, m = grounded_solver(adj, comp_N, num, u_U, v_U, g_U, solver)
    a_Pc, b_Pc = row_N[a_Pc], row_N[b_Pc]
    res_Pc = np.zeros(a_Pc.size)
    if m == 0:
        return res_Pc
    chunk = SOLVE_COLUMNS if solver == "direct" else max(1, min(MAX_COLUMNS, BLOCK_BYTES // (8 * m)))
    q_all = np.arange(a_Pc.size)
    for lo in range(0, a_Pc.size, chunk):
        q = q_all[lo : lo + chunk]
        rhs_MxK = np.zeros((m, q.size))
        # e_a - e_b on the grounded system (a grounded endpoint has potential 0).
        ha, hb = a_Pc[q] >= 0, b_Pc[q] >= 0
        rhs_MxK[a_Pc[q][ha], q[ha] - lo] += 1.0
        rhs_MxK[b_Pc[q][hb], q[hb] - lo] -= 1.0
        x_MxK = solve(rhs_MxK)
        xa = np.where(ha, x_MxK[np.maximum(a_Pc[q], 0), q - lo], 0.0)
        xb = np.where(hb, x_MxK[np.maximum(b_Pc[q], 0), q - lo], 0.0)
        res_Pc[q] = xa - xb
    return res_Pc


RESISTANCE_SOLVERS = ("auto", "cholmod", "dense", "direct", "cg")


def resistance_distances(kernel: Network, a_P: np.ndarray, b_P: np.ndarray, solver: str) -> np.ndarray:
    n = kernel.num_nodes
    u_U, v_U, g_U = collapse_parallel(n, kernel.u_E, kernel.v_E, 1.0 / kernel.var_E, np.add)
    adj = symmetric(n, u_U, v_U, g_U)
    num, comp_N = csg.connected_components(adj, directed=False)
    out_P = np.full(a_P.shape[0], np.inf)
    same_P = comp_N[a_P] == comp_N[b_P]
    if not same_P.any():
        return out_P
    a_Pc, b_Pc = a_P[same_P], b_P[same_P]
    requested, direct_fits = solver, n - num <= _DIRECT_MAX_NODES
    if solver == "auto":
        if _cholmod() is not None:
            solver = "cholmod"
        elif direct_fits and (n - num) * a_Pc.size <= _DIRECT_MAX_WORK:
            solver = "direct"
        else:
            solver = "dense"
    res_Pc = None
    if solver == "cholmod":
        lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
        res_Pc = _resistance_cholmod(lap, comp_N, a_Pc, b_Pc)
    elif solver == "dense":
        res_Pc = _resistance_dense(adj, comp_N, a_Pc, b_Pc, strict=requested == "dense")
        # used only where the components left are too large for dense factors
        solver = "direct" if direct_fits else "cg"
    if res_Pc is None:
        res_Pc = _resistance_grounded(adj, comp_N, num, u_U, v_U, g_U, a_Pc, b_Pc, solver)
    out_P[same_P] = np.maximum(res_Pc, 0.0)
    return out_P
