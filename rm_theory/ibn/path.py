"""The path distance on a kernel (THEORY.md §2): least sum of edge variances over a-b paths, parallel
edges at their least variance, by Dijkstra from each distinct source, run per batch of components.

Legend: N nodes, E edges, U edges (one per pair of nodes), P pairs (asked), Ns sources (the nodes a
search starts from), Nb nodes of a batch of components, G components.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse.csgraph as csg

from rm_theory.common.linalg import BLOCK_BYTES
from rm_theory.ibn.graph import Network
from rm_theory.ibn.reduction import collapse_parallel, symmetric


def path_distances(kernel: Network, a_P: np.ndarray, b_P: np.ndarray) -> np.ndarray:
    n = kernel.num_nodes
    u_U, v_U, w_U = collapse_parallel(n, kernel.u_E, kernel.v_E, kernel.var_E, np.minimum)
    graph = symmetric(n, u_U, v_U, w_U)
    # Fewer distinct sources: each pair starts from its more frequently queried endpoint.
    count_N = np.bincount(np.r_[a_P, b_P], minlength=n)
    flip_P = count_N[b_P] > count_N[a_P]
    src_P, dst_P = np.where(flip_P, b_P, a_P), np.where(flip_P, a_P, b_P)
    out_P = np.full(a_P.shape[0], np.inf)
    # A search only reaches its own component: each runs on the subgraph of the components its
    # sources lie in (batched, so many small components cost a few searches), not on all n nodes
    # (a network split at its bridges: 16 pieces of 8k nodes, 3.4 s -> see _batches).
    _, comp_N = csg.connected_components(graph, directed=False)
    same_P = comp_N[src_P] == comp_N[dst_P]
    for nodes_Nb in _component_batches(comp_N, src_P[same_P]):
        local_N = np.full(n, -1)
        local_N[nodes_Nb] = np.arange(nodes_Nb.size)
        in_P = np.flatnonzero(same_P & (local_N[src_P] >= 0))
        src_Ns, row_P = np.unique(local_N[src_P[in_P]], return_inverse=True)
        sub = graph[nodes_Nb][:, nodes_Nb]
        chunk = max(1, BLOCK_BYTES // (8 * nodes_Nb.size))
        for lo in range(0, src_Ns.size, chunk):
            dist_NsxNb = csg.dijkstra(sub, directed=False, indices=src_Ns[lo : lo + chunk])
            mine = (row_P >= lo) & (row_P < lo + chunk)
            out_P[in_P[mine]] = dist_NsxNb[row_P[mine] - lo, local_N[dst_P[in_P[mine]]]]
    return out_P


def _component_batches(comp_N: np.ndarray, src_P: np.ndarray) -> Iterable[np.ndarray]:
    """Node sets, each the union of whole components, that together hold every source: consecutive
    components join a batch while its nodes x distinct sources stay within one block of memory."""
    comp_G, src_G = np.unique(comp_N[np.unique(src_P)], return_counts=True)
    size_G = np.bincount(comp_N)[comp_G]
    batches, start, nodes, sources = [], 0, 0, 0
    for i in range(comp_G.size):
        nodes, sources = nodes + size_G[i], sources + src_G[i]
        if i > start and 8 * nodes * sources > BLOCK_BYTES:
            batches.append(comp_G[start:i])
            start, nodes, sources = i, size_G[i], src_G[i]
    if comp_G.size:
        batches.append(comp_G[start:])
    order_N = np.argsort(comp_N, kind="stable")
    first_G = np.searchsorted(comp_N[order_N], np.arange(comp_N.max() + 2))
    for batch in batches:
        yield np.concatenate([order_N[first_G[c] : first_G[c + 1]] for c in batch])
