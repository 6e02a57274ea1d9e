"""Exact reductions of an IBN before solving (THEORY.md §2, "Inference distance"): merging the ends of
zero-variance edges, the kernel for a set of terminals (dangling trees pruned, chains of degree-2
nodes in series), parallel edges combined, and the split of a kernel at its bridges, across which
both distances add in series.

Legend: N nodes, E edges, U edges (one per pair of nodes), Nt terminals, P pairs (asked), G components
(or chains of series nodes, or pieces: 2-edge-connected components), Eo outer edges of a chain, Eb
bridges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg

from rm_theory.ibn.graph import Network, validate_network


def _degree(n: int, u_E: np.ndarray, v_E: np.ndarray) -> np.ndarray:
    return np.bincount(u_E, minlength=n) + np.bincount(v_E, minlength=n)


def merge_zero_edges(net: Network) -> tuple[Network, np.ndarray]:
    """Merge endpoints of zero-variance edges (perfect information); returns net and node map."""
    zero_E = net.var_E == 0
    if not zero_E.any():
        return net, np.arange(net.num_nodes)
    n = net.num_nodes
    adj = sp.coo_matrix((np.ones(zero_E.sum()), (net.u_E[zero_E], net.v_E[zero_E])), shape=(n, n))
    num, label_N = csg.connected_components(adj, directed=False)
    keep_E = ~zero_E
    kind_E = None if net.kind_E is None else net.kind_E[keep_E]
    merged = Network(num, label_N[net.u_E[keep_E]], label_N[net.v_E[keep_E]], net.var_E[keep_E], kind_E)
    return merged, label_N.astype(np.int64)


def reduce_network(net: Network, terminals: Iterable[int] | np.ndarray) -> tuple[Network, np.ndarray]:
    """Exact kernel for terminal-to-terminal distances (both path and resistance).

    Repeatedly drops self-loops, prunes non-terminal nodes of degree <= 1 (dangling trees carry
    no current and no shortest path) and replaces every maximal chain of degree-2 non-terminals
    by one edge with the summed variance (series law; a chain closing on one node is dropped).
    Parallel edges are kept, since min (path) and conductance sum (resistance) differ. Returns
    the reduced network (``kind_E`` None: contracted edges have mixed kinds) and the new index of
    each terminal, in the order given.
    """
    validate_network(net)
    n = net.num_nodes
    t_Nt = np.asarray(list(terminals) if not isinstance(terminals, np.ndarray) else terminals, dtype=np.int64).reshape(
        -1
    )
    if t_Nt.size and (t_Nt.min() < 0 or t_Nt.max() >= n):
        raise ValueError(f"terminal out of range [0, {n})")
    is_term_N = np.zeros(n, dtype=bool)
    is_term_N[t_Nt] = True
    keep_E = net.u_E != net.v_E
    u_E, v_E, w_E = net.u_E[keep_E], net.v_E[keep_E], net.var_E[keep_E]
    while True:
        # Prune: each round strips one layer of the dangling trees.
        while True:
            leaf_N = (_degree(n, u_E, v_E) == 1) & ~is_term_N
            if not leaf_N.any():
                break
            keep_E = ~(leaf_N[u_E] | leaf_N[v_E])
            u_E, v_E, w_E = u_E[keep_E], v_E[keep_E], w_E[keep_E]
        # Series: all chains of degree-2 non-terminals at once, via their components.
        ser_N = (_degree(n, u_E, v_E) == 2) & ~is_term_N
        if not ser_N.any():
            break
        inner_E = ser_N[u_E] & ser_N[v_E]
        outer_E = ser_N[u_E] ^ ser_N[v_E]
        adj = sp.coo_matrix((np.ones(inner_E.sum()), (u_E[inner_E], v_E[inner_E])), shape=(n, n))
        num, comp_N = csg.connected_components(adj, directed=False)
        chain_sum = np.bincount(comp_N[u_E[inner_E]], w_E[inner_E], minlength=num).astype(float)
        in_Eo = np.where(ser_N[u_E[outer_E]], u_E[outer_E], v_E[outer_E])
        out_Eo = np.where(ser_N[u_E[outer_E]], v_E[outer_E], u_E[outer_E])
        comp_Eo = comp_N[in_Eo]
        chain_sum += np.bincount(comp_Eo, w_E[outer_E], minlength=num).astype(float)
        # A path-shaped chain has exactly two outer edges; a cycle of degree-2 nodes has none.
        order = np.argsort(comp_Eo, kind="stable")
        comp_Eo, out_Eo = comp_Eo[order], out_Eo[order]
        a_G, b_G, c_G = out_Eo[0::2], out_Eo[1::2], comp_Eo[0::2]
        new_G = a_G != b_G
        rest_E = ~(inner_E | outer_E)
        u_E = np.concatenate([u_E[rest_E], a_G[new_G]])
        v_E = np.concatenate([v_E[rest_E], b_G[new_G]])
        w_E = np.concatenate([w_E[rest_E], chain_sum[c_G[new_G]]])
    alive_N = is_term_N | (_degree(n, u_E, v_E) > 0)
    new_N = np.cumsum(alive_N) - 1
    kernel = Network(int(alive_N.sum()), new_N[u_E], new_N[v_E], w_E)
    return kernel, new_N[t_Nt]


def collapse_parallel(
    n: int, u_E: np.ndarray, v_E: np.ndarray, x_E: np.ndarray, combine: np.ufunc
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One edge per unordered node pair, combining parallel values with ``combine`` (min/add)."""
    if u_E.size == 0:
        return u_E, v_E, x_E
    lo_E, hi_E = np.minimum(u_E, v_E), np.maximum(u_E, v_E)
    key_E = lo_E * n + hi_E
    order = np.argsort(key_E, kind="stable")
    key_E, x_E = key_E[order], x_E[order]
    start = np.flatnonzero(np.r_[True, key_E[1:] != key_E[:-1]])
    x_U = combine.reduceat(x_E, start)
    return key_E[start] // n, key_E[start] % n, x_U


def symmetric(n: int, u_U: np.ndarray, v_U: np.ndarray, x_U: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((np.r_[x_U, x_U], (np.r_[u_U, v_U], np.r_[v_U, u_U])), shape=(n, n))


def conductance_matrix(net: Network) -> sp.csr_matrix:
    """The symmetric N x N matrix of edge conductances (1/variance), parallel edges summed: the
    off-diagonal of the network's Laplacian, negated (no zero-variance edges: merge them first)."""
    u_U, v_U, g_U = collapse_parallel(net.num_nodes, net.u_E, net.v_E, 1.0 / net.var_E, np.add)
    return symmetric(net.num_nodes, u_U, v_U, g_U)


# The kernel is split at its bridges only where that leaves its largest piece at most this share of
# its largest component: IBNs whose prompts hang from one shared root (a user's graph) fall apart
# into one piece per prompt, while the project's own networks (prompts already separate) keep their
# solve untouched.
_BRIDGE_SPLIT_SHARE = 0.5


def two_edge_components(n: int, u_U: np.ndarray, v_U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label of each node's 2-edge-connected component, and the mask of bridges among the edges.

    ``u_U, v_U``: the edges (parallel edges are never bridges; self-loops are ignored). A depth-first
    tree directed from the root, with every other edge directed back towards the root, is strongly
    connected exactly
    within each 2-edge-connected component (Robbins 1939; Tarjan 1974): so its strong components are
    those components, and the bridges are the tree edges between two of them. All of it runs in
    scipy's compiled graph routines (networkx's ``bridges`` took 2.9 s on a 128k-node kernel).
    """
    if u_U.size == 0:
        return np.arange(n), np.zeros(0, dtype=bool)
    adj = symmetric(n, u_U, v_U, np.ones(u_U.size))
    num, comp_N = csg.connected_components(adj, directed=False)
    # One depth-first search from a virtual node joined to one node of each component.
    root_G = np.full(num, n)
    np.minimum.at(root_G, comp_N, np.arange(n))
    hub = sp.csr_matrix((np.ones(num), (np.full(num, n), root_G)), shape=(n + 1, n + 1))
    order, pred_N = csg.depth_first_order(
        sp.bmat([[adj, None], [None, sp.csr_matrix((1, 1))]]).tocsr() + hub, n, directed=False, return_predecessors=True
    )
    pre_N = np.empty(n + 1, dtype=np.int64)
    pre_N[order] = np.arange(order.size)
    tree_U = (pred_N[v_U] == u_U) | (pred_N[u_U] == v_U)
    # of parallel copies of a tree edge, one is the tree edge and the others are back edges
    key_U = np.minimum(u_U, v_U) * (n + 1) + np.maximum(u_U, v_U)
    _, first = np.unique(key_U, return_index=True)
    once_U = np.zeros(u_U.size, dtype=bool)
    once_U[first] = True
    tree_U &= once_U
    first_U = pre_N[u_U] < pre_N[v_U]
    hi_U, lo_U = np.where(first_U, v_U, u_U), np.where(first_U, u_U, v_U)
    # tree edges point away from the root (from the earlier-visited end), back edges towards it
    src_U, dst_U = np.where(tree_U, lo_U, hi_U), np.where(tree_U, hi_U, lo_U)
    directed = sp.csr_matrix((np.ones(u_U.size), (src_U, dst_U)), shape=(n, n))
    _, label_N = csg.connected_components(directed, directed=True, connection="strong")
    return label_N, tree_U & (label_N[u_U] != label_N[v_U])


def across_bridges(
    kernel: Network, a_P: np.ndarray, b_P: np.ndarray, combine: Literal["min", "conductance"], solve: Callable
) -> np.ndarray | None:
    """Distances of the pairs through the kernel's bridges, or None where splitting would not pay.

    Both distances add up in series across a bridge (all paths, and all current, between its two
    sides cross it), so a pair in different 2-edge-connected components is the sum of the bridges'
    variances on its way and of one in-piece distance per piece it passes (entry node to exit
    node). Each pair climbs the tree of pieces towards their meeting piece; the in-piece pairs of all
    pairs are solved at once by ``solve(network, a, b)`` on the kernel without its bridges.
    """
    n = kernel.num_nodes
    if combine == "min":
        u_U, v_U, var_U = collapse_parallel(n, kernel.u_E, kernel.v_E, kernel.var_E, np.minimum)
    else:
        u_U, v_U, g_U = collapse_parallel(n, kernel.u_E, kernel.v_E, 1.0 / kernel.var_E, np.add)
        var_U = 1.0 / g_U
    piece_N, bridge_U = two_edge_components(n, u_U, v_U)
    if not bridge_U.any():
        return None
    _, comp_N = csg.connected_components(symmetric(n, u_U, v_U, np.ones(u_U.size)), directed=False)
    if np.bincount(piece_N).max() > _BRIDGE_SPLIT_SHARE * np.bincount(comp_N).max():
        return None
    # The tree of pieces, rooted at one piece per component: each other piece's parent bridge
    # (x in the piece, y in its parent piece) with its variance.
    num = int(piece_N.max()) + 1
    pu, pv = piece_N[u_U[bridge_U]], piece_N[v_U[bridge_U]]
    tree = symmetric(num, pu, pv, np.ones(pu.size))
    order, pred_G = csg.breadth_first_order(
        sp.bmat([[tree, None], [None, sp.csr_matrix((1, 1))]]).tocsr()
        + sp.csr_matrix(
            (np.ones(comp_N.max() + 1), (np.full(comp_N.max() + 1, num), _first_of(piece_N, comp_N))),
            shape=(num + 1, num + 1),
        ),
        num,
        directed=False,
        return_predecessors=True,
    )
    is_root_G = pred_G[:num] == num
    depth_G = np.zeros(num, dtype=np.int64)
    for k in order[1:]:  # breadth-first: parents first
        depth_G[k] = 0 if is_root_G[k] else depth_G[pred_G[k]] + 1
    # the bridge of each non-root piece, oriented from the piece to its parent
    x_G, y_G, var_G = np.full(num, -1), np.full(num, -1), np.zeros(num)
    bu, bv, bw = u_U[bridge_U], v_U[bridge_U], var_U[bridge_U]
    child_Eb = np.where(pred_G[pu] == pv, pu, pv)
    up_Eb = piece_N[bu] == child_Eb
    x_G[child_Eb] = np.where(up_Eb, bu, bv)
    y_G[child_Eb] = np.where(up_Eb, bv, bu)
    var_G[child_Eb] = bw
    out_P = np.zeros(a_P.size)
    far_P = comp_N[a_P] != comp_N[b_P]
    out_P[far_P] = np.inf
    q_P = np.flatnonzero(~far_P)
    na, nb = a_P[q_P], b_P[q_P]
    ka, kb = piece_N[na], piece_N[nb]
    sub_a, sub_b, owner = [], [], []
    while True:
        apart = ka != kb
        if not apart.any():
            break
        up_a = apart & (depth_G[ka] >= depth_G[kb])
        up_b = apart & (depth_G[kb] >= depth_G[ka])
        for node, piece, up in ((na, ka, up_a), (nb, kb, up_b)):
            sub_a.append(node[up])
            sub_b.append(x_G[piece[up]])
            owner.append(q_P[up])
            out_P[q_P[up]] += var_G[piece[up]]
            node[up] = y_G[piece[up]]
            piece[up] = pred_G[piece[up]]
    sub_a, sub_b, owner = np.concatenate([*sub_a, na]), np.concatenate([*sub_b, nb]), np.concatenate([*owner, q_P])
    keep_E = ~bridge_U
    inner = Network(n, u_U[keep_E], v_U[keep_E], var_U[keep_E])
    np.add.at(out_P, owner, solve(inner, sub_a, sub_b))
    return out_P


def _first_of(piece_N: np.ndarray, comp_N: np.ndarray) -> np.ndarray:
    """The piece of each component's first node (the root of that component's tree of pieces)."""
    first_G = np.full(comp_N.max() + 1, piece_N.size)
    np.minimum.at(first_G, comp_N, np.arange(piece_N.size))
    return piece_N[first_G]
