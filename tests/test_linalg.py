"""The sparse SPD factor every direct solve goes through, against dense linear algebra."""

import numpy as np
import pytest
import scipy.sparse as sp

from rm_theory.common.linalg import LDLFactor, SPDFactor


def _grounded_laplacian(n: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    u, v = rng.integers(0, n, (2, 4 * n))
    g = rng.uniform(0.1, 2.0, u.size)
    keep = u != v
    adj = sp.coo_matrix((g[keep], (u[keep], v[keep])), shape=(n, n))
    adj = (adj + adj.T).tocsr()
    lap = sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    return (lap + sp.diags(np.full(n, 0.05))).tocsr()  # grounded: positive definite


def test_solves_match_dense_for_one_and_many_right_hand_sides():
    a = _grounded_laplacian(300, 0)
    factor = SPDFactor(a)
    rng = np.random.default_rng(1)
    b_K = rng.normal(size=(300, 7))
    np.testing.assert_allclose(factor.solve(b_K), np.linalg.solve(a.toarray(), b_K), rtol=1e-10, atol=1e-12)
    b = rng.normal(size=300)
    np.testing.assert_allclose(factor.solve(b), np.linalg.solve(a.toarray(), b), rtol=1e-10, atol=1e-12)
    # Column-major right-hand sides and any sparse format of the matrix are accepted.
    np.testing.assert_allclose(SPDFactor(a.tocoo()).solve(np.asfortranarray(b_K)), factor.solve(b_K), rtol=1e-12)


def test_a_singular_or_indefinite_matrix_is_refused_and_shapes_are_checked():
    lap = _grounded_laplacian(50, 2) - sp.diags(np.full(50, 0.05))  # ungrounded: singular
    with pytest.raises(ValueError):
        SPDFactor(lap - sp.eye(50))
    with pytest.raises(ValueError, match="square"):
        SPDFactor(sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="rows"):
        SPDFactor(_grounded_laplacian(10, 3)).solve(np.ones(11))
    assert SPDFactor(sp.csr_matrix((0, 0))).solve(np.zeros((0, 2))).shape == (0, 2)


def test_both_backends_give_the_same_solves(monkeypatch):
    from rm_theory.common import linalg

    a = _grounded_laplacian(200, 4)
    b = np.random.default_rng(5).normal(size=(200, 3))
    small = SPDFactor(a).solve(b)
    monkeypatch.setattr(linalg, "CHOLESPY_MAX_UNKNOWNS", 10)  # the large-system backend
    np.testing.assert_allclose(SPDFactor(a).solve(b), small, rtol=1e-10)


def test_the_ldl_factor_of_a_newton_sequence_matches_dense_solves_as_the_pattern_stays_or_changes():
    a = _grounded_laplacian(200, 6)
    rng = np.random.default_rng(7)
    b = rng.normal(size=200)
    ldl = LDLFactor()
    ldl.factor(a)
    np.testing.assert_allclose(ldl.solve(b), np.linalg.solve(a.toarray(), b), rtol=1e-10, atol=1e-12)
    # The next step's matrix: same pattern, new values (the symbolic analysis is reused).
    a2 = a.copy()
    a2.data = a2.data * rng.uniform(0.5, 2.0, a2.nnz)
    a2 = (a2 + a2.T) / 2 + sp.diags(np.full(200, 50.0))
    assert np.array_equal(sp.csc_matrix(a2).indptr, sp.csc_matrix(a).indptr)
    ldl.factor(a2)
    np.testing.assert_allclose(ldl.solve(b), np.linalg.solve(a2.toarray(), b), rtol=1e-10, atol=1e-12)
    # Another pattern (an edge fewer): analysed afresh, not refactorised on the stale analysis.
    a3 = a2.tolil()
    i, j = sp.triu(a2, k=1).nonzero()
    a3[i[0], j[0]] = a3[j[0], i[0]] = 0.0
    a3 = sp.csr_matrix(a3)
    a3.eliminate_zeros()
    ldl.factor(a3)
    b_K = rng.normal(size=(200, 3))
    np.testing.assert_allclose(ldl.solve(b_K), np.linalg.solve(a3.toarray(), b_K), rtol=1e-10, atol=1e-12)


def test_the_ldl_factor_refuses_indefinite_and_singular_matrices_and_checks_shapes():
    ldl = LDLFactor()
    lap = _grounded_laplacian(50, 8) - sp.diags(np.full(50, 0.05))  # ungrounded
    singular = sp.csr_matrix(np.ones((2, 2)))  # an exact zero pivot
    for bad in (lap - sp.eye(50), sp.csr_matrix(np.array([[1.0, 2.0], [2.0, 1.0]])), singular):
        with pytest.raises(ValueError, match="positive definite"):
            ldl.factor(bad)
        with pytest.raises(RuntimeError):
            ldl.solve(np.ones(bad.shape[0]))
    with pytest.raises(ValueError, match="square"):
        ldl.factor(sp.csr_matrix((3, 4)))
    ldl.factor(_grounded_laplacian(10, 9))
    with pytest.raises(ValueError, match="rows"):
        ldl.solve(np.ones(11))
