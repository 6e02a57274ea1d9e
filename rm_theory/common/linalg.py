"""The sparse direct solver: a Cholesky factor of a sparse symmetric positive-definite matrix (a
grounded IBN Laplacian, THEORY.md §2, or a posterior precision), solved for one or many
right-hand sides at once.

CHOLMOD through `cholespy`, whose wheels carry CHOLMOD and its BLAS, so it installs from the
package registry alone (the scikit-sparse binding of the optional `[cholmod]` extra needs the
system's SuiteSparse). Against SciPy's SuperLU on the exact learner's posterior precisions at
n = 4096 comparisons (3,072 pair variances, solved in blocks): chain 17 s -> 3.7 s, tree 16 s ->
0.45 s, equal to 3e-13 relative. Large systems keep SuperLU: its factorisation (minimum-degree
order) took 5.7 s against cholespy's 11 s at 184,089 unknowns (the exact learner at 2^16 chain
comparisons), and there a fit solves once per factorisation. All timed side by side on the 2-core
machine under load.

Newton's method factorises a new matrix of one sparsity pattern per step and solves once with each:
`LDLFactor` (QDLDL's LDLᵀ, from the `qdldl` wheels) serves that. On a Bradley–Terry Hessian of the
exact learner (21,824 unknowns, little fill) cholespy took 72 ms per factorisation, QDLDL 15 ms and
1.4 ms when it reuses the symbolic analysis (2026-12-07, idle). QDLDL's solves are slower (2-5x for
many right-hand sides), so `SPDFactor` keeps the systems solved many times; and with much fill it is
no faster than cholespy (78 s against 73 s for one factorisation of the 10^5-chain IBN Laplacian,
115,289 unknowns), so above `CHOLESPY_MAX_UNKNOWNS` Newton's steps factorise with SuperLU as well.
"""

from __future__ import annotations

import cholespy
import numpy as np
import qdldl
import scipy.sparse as sp
import scipy.sparse.linalg as spla

# Unknowns above which SuperLU factorises (see the module docstring).
CHOLESPY_MAX_UNKNOWNS = 100_000
# Right-hand sides to build and solve at once when a caller has many (pair variances, resistances):
# blocks of a few columns solve faster per column than wide ones (the exact learner's pair variances,
# 3,072 columns of 18,448 unknowns: 0.56-0.60 s in blocks of 8 against 1.03-1.31 s in blocks of 256;
# 2026-12-07, idle). Splitting one wide right-hand side inside `solve` gains nothing (1.30 s against
# 1.24 s): the gain is in building small blocks.
SOLVE_COLUMNS = 8
# Right-hand sides of an iterative block solve (block CG keeps six such blocks).
MAX_COLUMNS = 128
# Memory bound (bytes) for one dense block of rows or columns (Dijkstra rows, solve columns).
BLOCK_BYTES = 1 << 27


class SPDFactor:
    """A^-1 b for one sparse SPD matrix A, factorised once in a fill-reducing order (CHOLMOD's, or
    SuperLU's minimum degree above `CHOLESPY_MAX_UNKNOWNS`).

    Raises ValueError when A is not positive definite (an ungrounded Laplacian, say) up to
    `CHOLESPY_MAX_UNKNOWNS`; above it SuperLU does not check (it may still fail on a singular A).
    """

    def __init__(self, matrix: sp.spmatrix):
        a = sp.csr_matrix(matrix, dtype=np.float64)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"SPDFactor needs a square matrix, got {a.shape}")
        a.sum_duplicates()
        a.sort_indices()
        self.n = a.shape[0]
        self._chol = self._lu = None
        if 0 < self.n <= CHOLESPY_MAX_UNKNOWNS:
            indptr, indices = a.indptr.astype(np.int32), a.indices.astype(np.int32)
            self._chol = cholespy.CholeskySolverD(self.n, indptr, indices, a.data, cholespy.MatrixType.CSR)
        elif self.n:
            # SymmetricMode keeps the diagonal pivots of the symmetric fill-reducing order.
            self._lu = spla.splu(a.tocsc(), permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with A x = b, for b of shape [n] or [n, K] (all K columns in one blocked solve)."""
        b = np.ascontiguousarray(b, dtype=np.float64)
        if b.shape[0] != self.n:
            raise ValueError(f"right-hand side has {b.shape[0]} rows, the matrix {self.n}")
        if self._lu is not None:
            return self._lu.solve(np.asfortranarray(b))  # SuperLU works column by column
        x = np.empty_like(b)
        if self._chol is not None and b.size:
            self._chol.solve(b, x)
        return x


class LDLFactor:
    """A^-1 b for a sequence of sparse SPD matrices, one solve after each factorisation (Newton steps).

    `factor(A)` reuses the previous symbolic analysis (AMD order, elimination tree) when A has the
    previous matrix's sparsity pattern, and analyses afresh otherwise. Raises ValueError when A is
    not positive definite.
    """

    def __init__(self):
        self._ldl = None
        self._pattern: tuple[np.ndarray, np.ndarray] | None = None
        self.n = 0

    def factor(self, matrix: sp.spmatrix) -> None:
        a = sp.csc_matrix(matrix, dtype=np.float64)
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"LDLFactor needs a square matrix, got {a.shape}")
        a.sum_duplicates()
        a.sort_indices()
        self.n = a.shape[0]
        if not self.n:
            self._ldl = None
            return
        same = (
            self._ldl is not None
            and self._pattern is not None
            and np.array_equal(self._pattern[0], a.indptr)
            and np.array_equal(self._pattern[1], a.indices)
        )
        try:
            if same:
                self._ldl.update(a)  # numeric only: valid for the analysed pattern alone
            else:
                self._ldl = qdldl.Solver(a)
                self._pattern = (a.indptr.copy(), a.indices.copy())
        except RuntimeError as err:  # a zero pivot
            self._ldl = None
            raise ValueError(f"matrix is not positive definite ({err})") from err
        # QDLDL factors any quasi-definite matrix: positive definite means every pivot d > 0.
        if not np.all(self._ldl.factors()[1] > 0):
            self._ldl = None
            raise ValueError("matrix is not positive definite (a pivot of its LDLᵀ factor is <= 0)")

    def solve(self, b: np.ndarray) -> np.ndarray:
        """x with A x = b for the last factorised A, b of shape [n] or [n, K] (column by column)."""
        b = np.asarray(b, dtype=np.float64)
        if b.shape[0] != self.n:
            raise ValueError(f"right-hand side has {b.shape[0]} rows, the matrix {self.n}")
        if not self.n:
            return np.zeros_like(b)
        if self._ldl is None:
            raise RuntimeError("no factorised matrix: call factor() with a positive definite one first")
        if b.ndim == 1:
            return self._ldl.solve(b)
        return np.stack([self._ldl.solve(np.ascontiguousarray(b[:, k])) for k in range(b.shape[1])], axis=1)
