"""Block conjugate gradients preconditioned by the exact solve on a spanning forest: the iterative
grounded-Laplacian solve of the resistance solver (`ibn.resistance`, method "cg") and of the exact
learner's large posteriors (`rm.bayes`).

Legend: N nodes, U edges (one per pair of nodes), M unknowns (grounded nodes left out), K columns
(right-hand sides), G components, L levels of the forest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
import scipy.sparse.linalg as spla

from rm_theory.ibn.reduction import symmetric

CG_RTOL = 1e-10  # relative residual; fast vs reference agree to ~1e-11 on test graphs


# Forests deeper than this are solved by sparse LU rather than level by level.
_MAX_LEVELS = 64


class ForestSolver:
    """Exact solve with the grounded Laplacian of a minimum-variance spanning forest.

    MST is invariant to monotone reweighting, so this is the maximum-conductance forest. Nodes
    are put in BFS order from the grounded nodes; then L_forest^-1 b is one bottom-up pass of
    subtree sums and one top-down pass of potentials, vectorised per BFS level (IBN forests are
    shallow: a trie of depth L plus a few HP links).
    """

    def __init__(self, n: int, u_U: np.ndarray, v_U: np.ndarray, var_U: np.ndarray, ground_G: np.ndarray):
        forest = csg.minimum_spanning_tree(sp.csr_matrix((var_U, (u_U, v_U)), shape=(n, n)))
        forest = forest.tocoo()
        # A virtual super-root joined to every grounded node makes one BFS cover all components.
        fu = np.r_[forest.row, np.full(ground_G.size, n)]
        fv = np.r_[forest.col, ground_G]
        fw = np.r_[forest.data, np.ones(ground_G.size)]
        sym = symmetric(n + 1, fu, fv, fw)
        order, pred = csg.breadth_first_order(sym, n, directed=False, return_predecessors=True)
        order = order[1:]  # drop the super-root
        is_ground = np.zeros(n + 1, dtype=bool)
        is_ground[ground_G] = True
        order = order[~is_ground[order]]  # BFS order of the unknowns
        self.perm_M = order  # position i of the permuted system holds node order[i]
        rank_N = np.full(n + 1, -1)
        rank_N[order] = np.arange(order.size)
        parent_M = rank_N[pred[order]]  # -1 where the parent is grounded
        self.res_M = np.asarray(sym.tocsr()[order, pred[order]]).ravel()
        # Depth from the grounded nodes; BFS order makes every level a contiguous slice.
        top_M = parent_M < 0
        depth_M = np.zeros(order.size, dtype=np.int64)
        while True:
            new_M = np.where(top_M, 0, depth_M[np.maximum(parent_M, 0)] + 1)
            if np.array_equal(new_M, depth_M):
                break
            depth_M = new_M
        edges = np.searchsorted(depth_M, np.arange(depth_M.max(initial=0) + 2))
        self.levels = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        # up_L[d]: level d (children) -> level d-1 (parents); down_L[d] is its transpose.
        self.up_L, self.down_L = [None], [None]
        for prev, lev in zip(self.levels[:-1], self.levels[1:], strict=True):
            rows = parent_M[lev] - prev.start
            agg = sp.csr_matrix(
                (np.ones(rows.size), (rows, np.arange(rows.size))), shape=(prev.stop - prev.start, rows.size)
            )
            self.up_L.append(agg)
            self.down_L.append(agg.T.tocsr())
        self.lu = None
        if len(self.levels) > _MAX_LEVELS:
            # Deep forest (not an IBN trie): a sparse LU of the forest has no fill either.
            g = 1.0 / self.res_M
            has_p = parent_M >= 0
            i, j = np.flatnonzero(has_p), parent_M[has_p]
            off = sp.csr_matrix((-g[has_p], (i, j)), shape=(order.size,) * 2)
            diag = g.copy()
            np.add.at(diag, j, g[has_p])
            lap_t = (off + off.T + sp.diags(diag)).tocsc()
            self.lu = spla.splu(lap_t, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})

    def solve_into(self, b_MxK: np.ndarray, x_MxK: np.ndarray) -> None:
        """x = L_forest^-1 b, in place (x may be b): subtree sums up, potentials down."""
        if self.lu is not None:
            x_MxK[...] = self.lu.solve(b_MxK)
            return
        if x_MxK is not b_MxK:
            x_MxK[...] = b_MxK
        for d in range(len(self.levels) - 1, 0, -1):
            _spmm_acc(self.up_L[d], x_MxK[self.levels[d]], x_MxK[self.levels[d - 1]])
        x_MxK *= self.res_M[:, None]
        for d in range(1, len(self.levels)):
            _spmm_acc(self.down_L[d], x_MxK[self.levels[d - 1]], x_MxK[self.levels[d]])


def _spmm_acc(a_csr: sp.csr_matrix, x_NxK: np.ndarray, y_MxK: np.ndarray) -> None:
    """y += A @ x without allocating (x, y C-contiguous row blocks)."""
    try:
        from scipy.sparse import _sparsetools

        _sparsetools.csr_matvecs(
            a_csr.shape[0],
            a_csr.shape[1],
            x_NxK.shape[1],
            a_csr.indptr,
            a_csr.indices,
            a_csr.data,
            x_NxK.reshape(-1),
            y_MxK.reshape(-1),
        )
    except (ImportError, AttributeError, TypeError):  # private API moved: allocate instead
        y_MxK += a_csr @ x_NxK


def block_pcg(
    lap: sp.csr_matrix,
    rhs_MxK: np.ndarray,
    precond_into: Callable[[np.ndarray, np.ndarray], None],
    rtol: float,
    max_iter: int,
) -> np.ndarray:
    """Preconditioned CG on K right-hand sides at once (independent recurrences per column).

    All updates are in place: at 1e5 unknowns, page faults on fresh arrays cost more than the
    arithmetic.
    """
    x = np.zeros_like(rhs_MxK)
    r = rhs_MxK.copy()
    z = np.empty_like(r)
    q = np.empty_like(r)
    precond_into(r, z)
    p = z.copy()
    rz = np.einsum("nk,nk->k", r, z)
    stop = rtol * np.linalg.norm(rhs_MxK, axis=0)
    for _ in range(max_iter):
        live = np.sqrt(np.einsum("nk,nk->k", r, r)) > stop
        if not live.any():
            return x
        q.fill(0.0)
        _spmm_acc(lap, p, q)
        pq = np.einsum("nk,nk->k", p, q)
        alpha = np.where(live, rz / np.where(live, pq, 1.0), 0.0)
        np.multiply(p, alpha, out=z)
        x += z
        np.multiply(q, alpha, out=z)
        r -= z
        precond_into(r, z)
        rz_new = np.einsum("nk,nk->k", r, z)
        beta = np.where(live, rz_new / np.where(rz == 0, 1.0, rz), 0.0)
        p *= beta
        p += z
        rz = rz_new
    raise RuntimeError(f"CG did not reach rtol={rtol} in {max_iter} iterations")
