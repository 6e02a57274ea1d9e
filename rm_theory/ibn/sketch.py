"""The one approximate tool: an unbiased estimate of a MEAN effective resistance over many pairs, with
its standard error, for when exact values are out of reach.

Legend: N nodes, E edges, U edges (one per pair of nodes), P pairs (asked), Pk pairs of two distinct
nodes (after the merge), Nt terminals, M unknowns, K probes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.csgraph as csg

from rm_theory.common.linalg import BLOCK_BYTES, MAX_COLUMNS
from rm_theory.ibn.graph import Network, validate_network
from rm_theory.ibn.reduction import collapse_parallel, merge_zero_edges, reduce_network, symmetric
from rm_theory.ibn.resistance import grounded_solver, sparse_solver


def mean_resistance_sketch(
    net: Network,
    pairs_Px2: np.ndarray,
    probes: int,
    rng: np.random.Generator,
    resistance_solver: str = "auto",
) -> tuple[float, float]:
    """Unbiased estimate of the MEAN resistance over pairs, and its standard error (an option, never a default).

    R(a, b) = ||W^1/2 B L^+ (e_a - e_b)||^2 (B the edge-node incidence, W the conductances). For a
    vector q of independent random signs over the edges, E[(q^T W^1/2 B L^+ (e_a - e_b))^2] = R(a, b)
    (the Johnson–Lindenstrauss sketch of Spielman & Srivastava, "Graph sparsification by effective
    resistances", 2008), so each probe costs one Laplacian solve, whatever the number of pairs, and
    its mean over the pairs is an unbiased estimate of the mean resistance. The probes are
    independent: the result is their average, and the standard error is their sample standard
    deviation over sqrt(probes) (the error to state beside the estimate; a single pair's relative
    variance is at most 2 / probes). Worth it only where exact resistances are out of reach (many
    thousands of queried nodes); ``network_distance`` gives exact values otherwise.

    resistance_solver: "auto" (CHOLMOD where installed, else sparse LU for small kernels, else
    block CG), "cholmod", "direct" or "cg". Returns (inf, 0) if a pair is disconnected.
    """
    if probes < 2:
        raise ValueError(f"probes must be at least 2 for a standard error (got {probes})")
    if resistance_solver not in ("auto", "cholmod", "direct", "cg"):
        raise ValueError(f"unknown resistance solver {resistance_solver!r} (auto, cholmod, direct, cg)")
    validate_network(net)
    pairs_Px2 = np.asarray(pairs_Px2, dtype=np.int64).reshape(-1, 2)
    if pairs_Px2.size and ((pairs_Px2 < 0) | (pairs_Px2 >= net.num_nodes)).any():
        raise ValueError(f"a pair names a node outside [0, {net.num_nodes})")
    if pairs_Px2.shape[0] == 0:
        raise ValueError("no pairs to average over")
    merged, map_N = merge_zero_edges(net)
    a_P, b_P = map_N[pairs_Px2[:, 0]], map_N[pairs_Px2[:, 1]]
    todo_P = a_P != b_P  # merged pairs are at resistance 0 exactly
    if not todo_P.any():
        return 0.0, 0.0
    term_Nt, inv = np.unique(np.r_[a_P[todo_P], b_P[todo_P]], return_inverse=True)
    kernel, kt_Nt = reduce_network(merged, term_Nt)
    q = int(todo_P.sum())
    ka_Pk, kb_Pk = kt_Nt[inv[:q]], kt_Nt[inv[q:]]
    n = kernel.num_nodes
    u_U, v_U, g_U = collapse_parallel(n, kernel.u_E, kernel.v_E, 1.0 / kernel.var_E, np.add)
    adj = symmetric(n, u_U, v_U, g_U)
    num, comp_N = csg.connected_components(adj, directed=False)
    if (comp_N[ka_Pk] != comp_N[kb_Pk]).any():
        return float("inf"), 0.0
    solver = resistance_solver
    if solver == "auto":
        solver = sparse_solver(n - num)
    solve, row_N, m = grounded_solver(adj, comp_N, num, u_U, v_U, g_U, solver)
    sqrt_g_U = np.sqrt(g_U)
    mean_K = np.empty(probes)
    chunk = max(1, min(MAX_COLUMNS, BLOCK_BYTES // (8 * max(m, 1))))
    held_N = row_N >= 0
    for lo in range(0, probes, chunk):
        k = min(chunk, probes - lo)
        flow_UxK = rng.choice([-1.0, 1.0], size=(u_U.size, k)) * sqrt_g_U[:, None]
        # B^T W^1/2 q: each edge injects its signed flow at one end and removes it at the other.
        inj_NxK = np.zeros((n, k))
        np.add.at(inj_NxK, u_U, flow_UxK)
        np.subtract.at(inj_NxK, v_U, flow_UxK)
        # Each component's injections sum to zero, so the grounded potentials differ from L^+ b by
        # a constant per component, which the differences below cancel.
        rhs_MxK = np.zeros((m, k))
        rhs_MxK[row_N[held_N]] = inj_NxK[held_N]
        x_NxK = np.zeros((n, k))
        if m:
            x_NxK[held_N] = solve(rhs_MxK)[row_N[held_N]]
        z_PkxK = x_NxK[ka_Pk] - x_NxK[kb_Pk]
        mean_K[lo : lo + k] = (z_PkxK**2).sum(axis=0) / pairs_Px2.shape[0]
    return float(mean_K.mean()), float(mean_K.std(ddof=1) / np.sqrt(probes))
