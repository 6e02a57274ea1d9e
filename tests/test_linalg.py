"""The sparse SPD factor every direct solve goes through, against dense linear algebra."""

import numpy as np
import pytest
import scipy.sparse as sp

from rm_theory.common.linalg import SPDFactor


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
