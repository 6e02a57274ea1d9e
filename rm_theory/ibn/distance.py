"""Inference distance on an induced Bayesian network (THEORY.md §2, "Inference distance").

An IBN is a multigraph whose edges carry variances. Two distances between nodes a, b:

* path:       d_path(a, b) = least sum of edge variances over a-b paths (parallel edges: min);
* resistance: d_res(a, b)  = effective resistance, each edge a resistor equal to its variance
  (parallel edges: conductances add). This is the exact Gaussian posterior variance of
  r(a) - r(b), so d_res <= d_path.

Pairs in different connected components are at distance ``inf``; zero-variance edges are
perfect information (their endpoints are merged before solving).

Two solvers: ``reference_distance`` (networkx, slow, obviously right) and ``network_distance``
(arrays; exact kernel reduction, then batched Dijkstra or a grounded-Laplacian solve).

Resistance between query nodes only needs the Schur complement of the Laplacian onto those nodes
(Kron reduction: resistances among the kept nodes are unchanged). The solvers exploit that: with
CHOLMOD (scikit-sparse, the ``cholmod`` extra) the queried nodes are ordered last, so one sparse
Cholesky factorisation leaves their Schur complement's factor in its trailing block and no solve
touches the rest of the factor; without it, low-degree nodes are eliminated in vectorised rounds
(star-mesh transform) and what remains is factored densely, component by component.
``mean_resistance_sketch`` is the one approximate tool: an unbiased estimate of a MEAN resistance
over many pairs, with its standard error, for when exact values are out of reach.

Legend: N nodes, E edges, P query pairs, T terminals, S sources, C components, K columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Literal

import networkx as nx
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
import scipy.sparse.linalg as spla
from threadpoolctl import ThreadpoolController

from rm_theory.common.linalg import SOLVE_COLUMNS, SPDFactor

Method = Literal["path", "resistance"]
KINDS = ("ib", "hp")
IB, HP = 0, 1  # kind_E codes: inductive-bias and human-preference edges

# Memory bound (bytes) for one dense block of Dijkstra rows or solve columns.
_BLOCK_BYTES = 1 << 27
# Right-hand sides solved together (CG keeps six such blocks).
_MAX_COLUMNS = 128
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
_CG_RTOL = 1e-10  # relative residual; fast vs reference agree to ~1e-11 on test graphs
# Forests deeper than this are solved by sparse LU rather than level by level.
_MAX_LEVELS = 64
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


# Positive variances the solvers accept. Conductances (1/variance), their sums and the products
# that elimination forms must stay finite and normal in float64 (max 1.8e308, smallest normal
# 2.2e-308); 1e±150 leaves that room. Distances scale with the variances, so a graph outside the
# range can be rescaled by a common factor. A variance of 0 is perfect information (merged).
VARIANCE_RANGE = (1e-150, 1e150)


def _variance_problem(x: float) -> str | None:
    """Why a variance is refused, or None."""
    if not np.isfinite(x) or x < 0:
        return "variances must be finite and >= 0"
    if x != 0 and not VARIANCE_RANGE[0] <= x <= VARIANCE_RANGE[1]:
        lo, hi = VARIANCE_RANGE
        return (
            f"positive variances must lie in [{lo:g}, {hi:g}] (0 merges the endpoints); "
            "rescale every variance by one factor: distances scale with it"
        )
    return None


@dataclasses.dataclass(frozen=True)
class Network:
    """Array form of an IBN: edge e joins u_E[e] and v_E[e] with variance var_E[e]."""

    num_nodes: int
    u_E: np.ndarray
    v_E: np.ndarray
    var_E: np.ndarray
    kind_E: np.ndarray | None = None  # int8, 0 = "ib", 1 = "hp"

    def __post_init__(self) -> None:
        u_E = np.asarray(self.u_E, dtype=np.int64).reshape(-1)
        v_E = np.asarray(self.v_E, dtype=np.int64).reshape(-1)
        var_E = np.asarray(self.var_E, dtype=np.float64).reshape(-1)
        if not (u_E.shape == v_E.shape == var_E.shape):
            raise ValueError("u_E, v_E and var_E must have the same length")
        object.__setattr__(self, "u_E", u_E)
        object.__setattr__(self, "v_E", v_E)
        object.__setattr__(self, "var_E", var_E)
        if self.kind_E is not None:
            kind_E = np.asarray(self.kind_E, dtype=np.int8).reshape(-1)
            if kind_E.shape != u_E.shape:
                raise ValueError("kind_E must have one entry per edge")
            object.__setattr__(self, "kind_E", kind_E)

    @property
    def num_edges(self) -> int:
        return int(self.u_E.shape[0])


def validate_network(net: Network) -> None:
    """Raise ValueError naming the first bad edge (endpoint out of range, variance <0/NaN/inf)."""
    n = net.num_nodes
    bad_E = (net.u_E < 0) | (net.u_E >= n) | (net.v_E < 0) | (net.v_E >= n)
    if bad_E.any():
        e = int(np.flatnonzero(bad_E)[0])
        raise ValueError(f"edge {e} ({net.u_E[e]}, {net.v_E[e]}) has an endpoint outside [0, {n})")
    bad_E = _bad_variances(net.var_E)
    if bad_E.any():
        e = int(np.flatnonzero(bad_E)[0])
        raise ValueError(
            f"edge {e} ({net.u_E[e]}, {net.v_E[e]}) has invalid variance {net.var_E[e]!r}; "
            f"{_variance_problem(float(net.var_E[e]))}"
        )
    if net.kind_E is not None and ((net.kind_E < 0) | (net.kind_E > 1)).any():
        raise ValueError("kind_E entries must be 0 (ib) or 1 (hp)")


def validate_pairs(net: Network, pairs_Px2: np.ndarray, what: str = "pair") -> np.ndarray:
    """Node-index pairs as an int64 [P, 2] array; ValueError naming the first one outside the network."""
    pairs_Px2 = np.asarray(pairs_Px2, dtype=np.int64).reshape(-1, 2)
    bad_P = (pairs_Px2 < 0) | (pairs_Px2 >= net.num_nodes)
    if bad_P.any():
        p = int(np.flatnonzero(bad_P.any(axis=1))[0])
        raise ValueError(f"{what} {p} {tuple(pairs_Px2[p])} names a node outside [0, {net.num_nodes})")
    return pairs_Px2


def _bad_variances(var_E: np.ndarray) -> np.ndarray:
    """Mask of the variances `_variance_problem` refuses (vectorised)."""
    positive_E = var_E > 0
    return (
        ~np.isfinite(var_E) | (var_E < 0) | (positive_E & ((var_E < VARIANCE_RANGE[0]) | (var_E > VARIANCE_RANGE[1])))
    )


def _is_number_type(t: type) -> bool:
    """A real number type: not a string that float() would parse, not a bool, not None."""
    return issubclass(t, int | float | np.integer | np.floating) and not issubclass(t, bool | np.bool_)


def _check_variance(u: Hashable, v: Hashable, var: object) -> float:
    if not _is_number_type(type(var)):
        raise ValueError(f"edge ({u!r}, {v!r}) has no numeric 'variance' (got {var!r})")
    x = float(var)  # type: ignore[arg-type]
    problem = _variance_problem(x)
    if problem:
        raise ValueError(f"edge ({u!r}, {v!r}) has invalid variance {x!r}; {problem}")
    return x


def _check_undirected(graph: nx.Graph) -> None:
    # A variance is symmetric (Var[r(a) - r(b)] = Var[r(b) - r(a)]): an IBN has no edge direction,
    # and treating a DiGraph's arcs as edges silently would merge a->b and b->a into parallel edges.
    if graph.is_directed():
        raise ValueError(
            f"{type(graph).__name__} is directed; an IBN's edges are undirected: pass graph.to_undirected() "
            "(nx.MultiGraph(graph) keeps arcs a->b and b->a as two parallel edges)"
        )


def _edge_arrays(graph: nx.Graph, with_kinds: bool) -> tuple[Network, list, dict]:
    """Edges of a networkx graph as arrays, without per-edge Python calls beyond the iteration.

    Reads the adjacency dicts directly (``graph.edges`` costs several times more per edge at 10^5
    nodes): an undirected edge is seen from both ends and kept from its lower-indexed one. Validation
    is vectorised; only a bad edge is looked up again, to name it.
    """
    _check_undirected(graph)
    nodes = list(graph)
    index = dict(zip(nodes, range(len(nodes)), strict=True))
    nbrs_N = [nbrs for _, nbrs in graph.adjacency()]
    if graph.is_multigraph():
        # nbrs[v] is {key: data}: one half-edge per key.
        deg_N = np.fromiter((sum(map(len, nbrs.values())) for nbrs in nbrs_N), dtype=np.int64, count=len(nodes))
        mult_H = np.fromiter((len(keys) for nbrs in nbrs_N for keys in nbrs.values()), dtype=np.int64)
        data_H = [d for nbrs in nbrs_N for keys in nbrs.values() for d in keys.values()]
        nbr_count = int(mult_H.size)
    else:
        deg_N = np.fromiter(map(len, nbrs_N), dtype=np.int64, count=len(nodes))
        mult_H = None
        data_H = [d for nbrs in nbrs_N for d in nbrs.values()]
        nbr_count = int(deg_N.sum())
    u_H = np.repeat(np.arange(len(nodes), dtype=np.int64), deg_N)
    v_H = np.fromiter(map(index.__getitem__, itertools.chain.from_iterable(nbrs_N)), dtype=np.int64, count=nbr_count)
    if mult_H is not None:
        v_H = np.repeat(v_H, mult_H)
    # Each undirected edge is seen twice (a self-loop once).
    keep_H = u_H <= v_H
    half_E = np.flatnonzero(keep_H)
    var_E = [data_H[h].get("variance") for h in half_E.tolist()]
    u_E, v_E = u_H[half_E], v_H[half_E]
    # Every variance must be a real number: "2" or True would convert to float silently. The set of
    # their types is small and cheap to check; an edge of another type is looked up and named.
    if all(_is_number_type(t) for t in set(map(type, var_E))):
        x_E = np.array(var_E, dtype=np.float64).reshape(u_E.size)
    else:
        x_E = np.array([_check_variance(nodes[a], nodes[b], x) for a, b, x in zip(u_E, v_E, var_E, strict=True)])
    bad_E = _bad_variances(x_E)
    if bad_E.any():
        e = int(np.flatnonzero(bad_E)[0])
        _check_variance(nodes[u_E[e]], nodes[v_E[e]], var_E[e])
    kind_E = None
    if with_kinds and u_E.size:
        kinds = [data_H[h].get("kind") for h in half_E.tolist()]
        if all(k is not None for k in kinds):
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                raise ValueError(f"edge kind {bad[0]!r} is not one of {KINDS}")
            kind_E = (np.array(kinds, dtype=object) == KINDS[1]).astype(np.int8)
    return Network(len(nodes), u_E, v_E, x_E, kind_E), nodes, index


def from_networkx(graph: nx.Graph) -> tuple[Network, list]:
    """Graph or MultiGraph with edge attribute ``variance`` (and optional ``kind``) -> arrays.

    Returns the network and the node list (index -> label). ``kind_E`` is None unless every edge
    carries a ``kind`` in {"ib", "hp"}.
    """
    net, nodes, _ = _edge_arrays(graph, with_kinds=True)
    return net, nodes


def to_networkx(net: Network, labels: Sequence | None = None) -> nx.MultiGraph:
    """Arrays -> MultiGraph with edge attributes ``variance`` and ``kind`` ("ib"/"hp" or None)."""
    labels = list(range(net.num_nodes)) if labels is None else list(labels)
    if len(labels) != net.num_nodes:
        raise ValueError(f"{len(labels)} labels for {net.num_nodes} nodes")
    graph = nx.MultiGraph()
    graph.add_nodes_from(labels)
    kinds = [None] * net.num_edges if net.kind_E is None else [KINDS[k] for k in net.kind_E]
    for a, b, var, kind in zip(net.u_E.tolist(), net.v_E.tolist(), net.var_E.tolist(), kinds, strict=True):
        graph.add_edge(labels[a], labels[b], variance=var, kind=kind)
    return graph


def ib_subnetwork(net: Network) -> Network:
    """Only the inductive-bias edges (all edges when ``kind_E`` is None)."""
    if net.kind_E is None:
        return net
    keep_E = net.kind_E == 0
    return Network(net.num_nodes, net.u_E[keep_E], net.v_E[keep_E], net.var_E[keep_E], net.kind_E[keep_E])


def add_hp_edges(net: Network, a_P: np.ndarray, b_P: np.ndarray, xi2: float) -> Network:
    """`net` plus one HP edge of variance ξ² per comparison (a_P[p], b_P[p]); edges without a kind are IB."""
    a_P, b_P = np.asarray(a_P, np.int64), np.asarray(b_P, np.int64)
    kind_E = net.kind_E if net.kind_E is not None else np.full(net.num_edges, IB, np.int8)
    return Network(
        net.num_nodes,
        np.r_[net.u_E, a_P],
        np.r_[net.v_E, b_P],
        np.r_[net.var_E, np.full(len(a_P), xi2)],
        np.r_[kind_E, np.full(len(a_P), HP, np.int8)],
    )


# ----------------------------------------------------------------------------- kernel reduction


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
    t_T = np.asarray(list(terminals) if not isinstance(terminals, np.ndarray) else terminals, dtype=np.int64).reshape(
        -1
    )
    if t_T.size and (t_T.min() < 0 or t_T.max() >= n):
        raise ValueError(f"terminal out of range [0, {n})")
    is_term_N = np.zeros(n, dtype=bool)
    is_term_N[t_T] = True
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
        in_O = np.where(ser_N[u_E[outer_E]], u_E[outer_E], v_E[outer_E])
        out_O = np.where(ser_N[u_E[outer_E]], v_E[outer_E], u_E[outer_E])
        comp_O = comp_N[in_O]
        chain_sum += np.bincount(comp_O, w_E[outer_E], minlength=num).astype(float)
        # A path-shaped chain has exactly two outer edges; a cycle of degree-2 nodes has none.
        order = np.argsort(comp_O, kind="stable")
        comp_O, out_O = comp_O[order], out_O[order]
        a_C, b_C, c_C = out_O[0::2], out_O[1::2], comp_O[0::2]
        new_C = a_C != b_C
        rest_E = ~(inner_E | outer_E)
        u_E = np.concatenate([u_E[rest_E], a_C[new_C]])
        v_E = np.concatenate([v_E[rest_E], b_C[new_C]])
        w_E = np.concatenate([w_E[rest_E], chain_sum[c_C[new_C]]])
    alive_N = is_term_N | (_degree(n, u_E, v_E) > 0)
    new_N = np.cumsum(alive_N) - 1
    kernel = Network(int(alive_N.sum()), new_N[u_E], new_N[v_E], w_E)
    return kernel, new_N[t_T]


def _collapse_parallel(
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


def _symmetric(n: int, u_U: np.ndarray, v_U: np.ndarray, x_U: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((np.r_[x_U, x_U], (np.r_[u_U, v_U], np.r_[v_U, u_U])), shape=(n, n))


def conductance_matrix(net: Network) -> sp.csr_matrix:
    """The symmetric N x N matrix of edge conductances (1/variance), parallel edges summed: the
    off-diagonal of the network's Laplacian, negated (no zero-variance edges: merge them first)."""
    u_U, v_U, g_U = _collapse_parallel(net.num_nodes, net.u_E, net.v_E, 1.0 / net.var_E, np.add)
    return _symmetric(net.num_nodes, u_U, v_U, g_U)


# ----------------------------------------------------------------------------- bridges

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
    adj = _symmetric(n, u_U, v_U, np.ones(u_U.size))
    num, comp_N = csg.connected_components(adj, directed=False)
    # One depth-first search from a virtual node joined to one node of each component.
    root_C = np.full(num, n)
    np.minimum.at(root_C, comp_N, np.arange(n))
    hub = sp.csr_matrix((np.ones(num), (np.full(num, n), root_C)), shape=(n + 1, n + 1))
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


def _across_bridges(
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
        u_U, v_U, var_U = _collapse_parallel(n, kernel.u_E, kernel.v_E, kernel.var_E, np.minimum)
    else:
        u_U, v_U, g_U = _collapse_parallel(n, kernel.u_E, kernel.v_E, 1.0 / kernel.var_E, np.add)
        var_U = 1.0 / g_U
    piece_N, bridge_U = two_edge_components(n, u_U, v_U)
    if not bridge_U.any():
        return None
    _, comp_N = csg.connected_components(_symmetric(n, u_U, v_U, np.ones(u_U.size)), directed=False)
    if np.bincount(piece_N).max() > _BRIDGE_SPLIT_SHARE * np.bincount(comp_N).max():
        return None
    # The tree of pieces, rooted at one piece per component: each other piece's parent bridge
    # (x in the piece, y in its parent piece) with its variance.
    num = int(piece_N.max()) + 1
    pu, pv = piece_N[u_U[bridge_U]], piece_N[v_U[bridge_U]]
    tree = _symmetric(num, pu, pv, np.ones(pu.size))
    order, pred_K = csg.breadth_first_order(
        sp.bmat([[tree, None], [None, sp.csr_matrix((1, 1))]]).tocsr()
        + sp.csr_matrix(
            (np.ones(comp_N.max() + 1), (np.full(comp_N.max() + 1, num), _first_of(piece_N, comp_N))),
            shape=(num + 1, num + 1),
        ),
        num,
        directed=False,
        return_predecessors=True,
    )
    is_root_K = pred_K[:num] == num
    depth_K = np.zeros(num, dtype=np.int64)
    for k in order[1:]:  # breadth-first: parents first
        depth_K[k] = 0 if is_root_K[k] else depth_K[pred_K[k]] + 1
    # the bridge of each non-root piece, oriented from the piece to its parent
    x_K, y_K, var_K = np.full(num, -1), np.full(num, -1), np.zeros(num)
    bu, bv, bw = u_U[bridge_U], v_U[bridge_U], var_U[bridge_U]
    child_B = np.where(pred_K[pu] == pv, pu, pv)
    up_B = piece_N[bu] == child_B
    x_K[child_B] = np.where(up_B, bu, bv)
    y_K[child_B] = np.where(up_B, bv, bu)
    var_K[child_B] = bw
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
        up_a = apart & (depth_K[ka] >= depth_K[kb])
        up_b = apart & (depth_K[kb] >= depth_K[ka])
        for node, piece, up in ((na, ka, up_a), (nb, kb, up_b)):
            sub_a.append(node[up])
            sub_b.append(x_K[piece[up]])
            owner.append(q_P[up])
            out_P[q_P[up]] += var_K[piece[up]]
            node[up] = y_K[piece[up]]
            piece[up] = pred_K[piece[up]]
    sub_a, sub_b, owner = np.concatenate([*sub_a, na]), np.concatenate([*sub_b, nb]), np.concatenate([*owner, q_P])
    keep_E = ~bridge_U
    inner = Network(n, u_U[keep_E], v_U[keep_E], var_U[keep_E])
    np.add.at(out_P, owner, solve(inner, sub_a, sub_b))
    return out_P


def _first_of(piece_N: np.ndarray, comp_N: np.ndarray) -> np.ndarray:
    """The piece of each component's first node (the root of that component's tree of pieces)."""
    first_C = np.full(comp_N.max() + 1, piece_N.size)
    np.minimum.at(first_C, comp_N, np.arange(piece_N.size))
    return piece_N[first_C]


# ----------------------------------------------------------------------------- solvers


def _path_kernel(kernel: Network, a_P: np.ndarray, b_P: np.ndarray) -> np.ndarray:
    n = kernel.num_nodes
    u_U, v_U, w_U = _collapse_parallel(n, kernel.u_E, kernel.v_E, kernel.var_E, np.minimum)
    graph = _symmetric(n, u_U, v_U, w_U)
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
    for nodes_M in _component_batches(comp_N, src_P[same_P]):
        local_N = np.full(n, -1)
        local_N[nodes_M] = np.arange(nodes_M.size)
        in_P = np.flatnonzero(same_P & (local_N[src_P] >= 0))
        src_S, row_P = np.unique(local_N[src_P[in_P]], return_inverse=True)
        sub = graph[nodes_M][:, nodes_M]
        chunk = max(1, _BLOCK_BYTES // (8 * nodes_M.size))
        for lo in range(0, src_S.size, chunk):
            dist_SxM = csg.dijkstra(sub, directed=False, indices=src_S[lo : lo + chunk])
            mine = (row_P >= lo) & (row_P < lo + chunk)
            out_P[in_P[mine]] = dist_SxM[row_P[mine] - lo, local_N[dst_P[in_P[mine]]]]
    return out_P


def _component_batches(comp_N: np.ndarray, src_P: np.ndarray) -> Iterable[np.ndarray]:
    """Node sets, each the union of whole components, that together hold every source: consecutive
    components join a batch while its nodes x distinct sources stay within one block of memory."""
    comp_C, src_C = np.unique(comp_N[np.unique(src_P)], return_counts=True)
    size_C = np.bincount(comp_N)[comp_C]
    batches, start, nodes, sources = [], 0, 0, 0
    for i in range(comp_C.size):
        nodes, sources = nodes + size_C[i], sources + src_C[i]
        if i > start and 8 * nodes * sources > _BLOCK_BYTES:
            batches.append(comp_C[start:i])
            start, nodes, sources = i, size_C[i], src_C[i]
    if comp_C.size:
        batches.append(comp_C[start:])
    order_N = np.argsort(comp_N, kind="stable")
    first_C = np.searchsorted(comp_N[order_N], np.arange(comp_N.max() + 2))
    for batch in batches:
        yield np.concatenate([order_N[first_C[c] : first_C[c + 1]] for c in batch])


class ForestSolver:
    """Exact solve with the grounded Laplacian of a minimum-variance spanning forest.

    MST is invariant to monotone reweighting, so this is the maximum-conductance forest. Nodes
    are put in BFS order from the grounded nodes; then L_forest^-1 b is one bottom-up pass of
    subtree sums and one top-down pass of potentials, vectorised per BFS level (IBN forests are
    shallow: a trie of depth L plus a few HP links).
    """

    def __init__(self, n: int, u_U: np.ndarray, v_U: np.ndarray, var_U: np.ndarray, ground_C: np.ndarray):
        forest = csg.minimum_spanning_tree(sp.csr_matrix((var_U, (u_U, v_U)), shape=(n, n)))
        forest = forest.tocoo()
        # A virtual super-root joined to every grounded node makes one BFS cover all components.
        fu = np.r_[forest.row, np.full(ground_C.size, n)]
        fv = np.r_[forest.col, ground_C]
        fw = np.r_[forest.data, np.ones(ground_C.size)]
        sym = _symmetric(n + 1, fu, fv, fw)
        order, pred = csg.breadth_first_order(sym, n, directed=False, return_predecessors=True)
        order = order[1:]  # drop the super-root
        is_ground = np.zeros(n + 1, dtype=bool)
        is_ground[ground_C] = True
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
        # up_D[d]: level d (children) -> level d-1 (parents); down_D[d] is its transpose.
        self.up_D, self.down_D = [None], [None]
        for prev, lev in zip(self.levels[:-1], self.levels[1:], strict=True):
            rows = parent_M[lev] - prev.start
            agg = sp.csr_matrix(
                (np.ones(rows.size), (rows, np.arange(rows.size))), shape=(prev.stop - prev.start, rows.size)
            )
            self.up_D.append(agg)
            self.down_D.append(agg.T.tocsr())
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
            _spmm_acc(self.up_D[d], x_MxK[self.levels[d]], x_MxK[self.levels[d - 1]])
        x_MxK *= self.res_M[:, None]
        for d in range(1, len(self.levels)):
            _spmm_acc(self.down_D[d], x_MxK[self.levels[d - 1]], x_MxK[self.levels[d]])


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


def _pair_rhs(row_N: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray, size: int) -> np.ndarray:
    """Columns e_a - e_b over ``size`` unknowns; a node with row -1 is grounded (potential 0)."""
    rhs_MxK = np.zeros((size, a_Q.size))
    ra, rb, q = row_N[a_Q], row_N[b_Q], np.arange(a_Q.size)
    rhs_MxK[ra[ra >= 0], q[ra >= 0]] += 1.0
    rhs_MxK[rb[rb >= 0], q[rb >= 0]] -= 1.0
    return rhs_MxK


def _forward_norms(lower_TxT: np.ndarray, row_N: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray) -> np.ndarray:
    """||C^-1 (e_a - e_b)||^2 per pair for a dense lower-triangular C (C C^T = grounded Laplacian).

    Only the forward half of a solve: x^T (C C^T)^-1 x = ||C^-1 x||^2.
    """
    t = lower_TxT.shape[0]
    out_Q = np.empty(a_Q.size)
    chunk = max(1, _BLOCK_BYTES // (8 * max(t, 1)))
    for lo in range(0, a_Q.size, chunk):
        y_TxK = sla.solve_triangular(
            lower_TxT, _pair_rhs(row_N, a_Q[lo : lo + chunk], b_Q[lo : lo + chunk], t), lower=True, check_finite=False
        )
        out_Q[lo : lo + chunk] = np.einsum("tk,tk->k", y_TxK, y_TxK)
    return out_Q


def _live_nodes(comp_N: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of components holding a pair (the rest is never factored) and the terminal mask."""
    live_C = np.zeros(comp_N.max() + 1, dtype=bool)
    live_C[comp_N[a_Q]] = True
    is_term_N = np.zeros(comp_N.size, dtype=bool)
    is_term_N[a_Q] = True
    is_term_N[b_Q] = True
    return live_C[comp_N], is_term_N


def _ground_nodes(comp_N: np.ndarray, live_N: np.ndarray, is_term_N: np.ndarray) -> np.ndarray:
    """One node per live component, a non-terminal where there is one (every terminal then stays an
    unknown, and the terminal block of the factor holds the whole Schur complement)."""
    n = comp_N.size
    key_N = np.where(is_term_N, n, 0) + np.arange(n)
    best_C = np.full(comp_N.max() + 1, 2 * n)
    np.minimum.at(best_C, comp_N[live_N], key_N[live_N])
    best_C = best_C[best_C < 2 * n]
    return np.where(best_C >= n, best_C - n, best_C)


def _resistance_cholmod(lap: sp.csr_matrix, comp_N: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray) -> np.ndarray:
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
    live_N, is_term_N = _live_nodes(comp_N, a_Q, b_Q)
    unknown_N = live_N.copy()
    unknown_N[_ground_nodes(comp_N, live_N, is_term_N)] = False
    inner_I = np.flatnonzero(unknown_N & ~is_term_N)
    term_T = np.flatnonzero(unknown_N & is_term_N)
    if inner_I.size + term_T.size == 0:
        return np.zeros(a_Q.size)
    row_N = np.full(n, -1)
    if term_T.size <= _SCHUR_MAX_TERMINALS and _SCHUR_MIN_RATIO * term_T.size <= inner_I.size + term_T.size:
        perm_I = np.arange(0)
        if inner_I.size:
            lap_II = lap[inner_I][:, inner_I].tocsc()
            perm_I = cholmod.analyze(lap_II, ordering_method=_CHOLMOD_ORDERING, mode="supernodal").P()
        order_M = np.r_[inner_I[perm_I], term_T]
        factor = cholmod.cholesky(lap[order_M][:, order_M].tocsc(), ordering_method="natural", mode="supernodal")
        # CHOLMOD still postorders the elimination tree; that keeps every terminal's ancestors among
        # the terminals, so the columns of T hold rows of T only.
        pos_M = np.empty(order_M.size, dtype=np.int64)
        pos_M[factor.P()] = np.arange(order_M.size)
        pos_T = np.sort(pos_M[inner_I.size :])
        row_N[order_M[np.argsort(pos_M)][pos_T]] = np.arange(term_T.size)
        lower = factor.L()
        del factor
        lower_TxT = lower[:, pos_T][pos_T, :].toarray()
        del lower
        return _forward_norms(lower_TxT, row_N, a_Q, b_Q)
    unknown_M = np.flatnonzero(unknown_N)
    row_N[unknown_M] = np.arange(unknown_M.size)
    factor = cholmod.cholesky(lap[unknown_M][:, unknown_M].tocsc(), ordering_method=_CHOLMOD_ORDERING)
    out_Q = np.empty(a_Q.size)
    chunk = max(1, min(_MAX_COLUMNS, _BLOCK_BYTES // (8 * unknown_M.size)))
    for lo in range(0, a_Q.size, chunk):
        rhs_MxK = _pair_rhs(row_N, a_Q[lo : lo + chunk], b_Q[lo : lo + chunk], unknown_M.size)
        # L L^T = P A P^T, so x^T A^-1 x = ||L^-1 P x||^2.
        y_MxK = np.asarray(factor.solve_L(factor.apply_P(rhs_MxK), use_LDLt_decomposition=False))
        out_Q[lo : lo + chunk] = np.einsum("mk,mk->k", y_MxK, y_MxK)
    return out_Q


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
    node_R = np.arange(w.shape[0])
    while True:
        m = w.shape[0]
        deg_R = np.diff(w.indptr)
        cand_R = ~keep_N
        if not cand_R.any():
            break
        least = deg_R[cand_R].min()
        if least > max_degree:
            break
        cand_R &= deg_R <= max(least + 2, (3 * least) // 2)
        # Ties broken by index: a strict order, so the local minima form an independent set.
        key_R = deg_R * float(m) + np.arange(m)
        key_cand_R = np.where(cand_R, key_R, np.inf)
        near_R = np.full(m, np.inf)
        has_R = deg_R > 0
        near_R[has_R] = np.minimum.reduceat(key_cand_R[w.indices], w.indptr[:-1][has_R])
        elim_R = cand_R & (key_R < near_R)
        out_I, rest_R = np.flatnonzero(elim_R), np.flatnonzero(~elim_R)
        d_I = np.asarray(w[out_I].sum(axis=1)).ravel()
        w_RxI = w[rest_R][:, out_I]
        mesh = (w_RxI @ sp.diags(1.0 / np.where(d_I > 0, d_I, 1.0)) @ w_RxI.T).tocsr()
        mesh.setdiag(0.0)
        mesh.eliminate_zeros()
        w = (w[rest_R][:, rest_R] + mesh).tocsr()
        keep_N, node_R = keep_N[rest_R], node_R[rest_R]
    return w, node_R


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
    adj: sp.csr_matrix, comp_N: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray, strict: bool
) -> np.ndarray | None:
    """Star-mesh elimination, then a dense Cholesky per component with the terminals last.

    Returns None (or raises, if ``strict``) when a component left has over ``_DENSE_MAX_NODES`` nodes.
    """
    live_N, is_term_N = _live_nodes(comp_N, a_Q, b_Q)
    live = np.flatnonzero(live_N)
    w, node_R = _star_mesh(adj[live][:, live], is_term_N[live], _KRON_MAX_DEGREE)
    node_R = live[node_R]
    comp_R = comp_N[node_R]
    size_C = np.bincount(comp_R)
    if size_C.max() > _DENSE_MAX_NODES:
        if strict:
            raise ValueError(
                f"a component keeps {size_C.max()} nodes after elimination, more than the dense limit "
                f"{_DENSE_MAX_NODES}; use resistance_solver='cholmod' or 'cg'"
            )
        return None
    d_R = np.asarray(w.sum(axis=1)).ravel()
    out_Q = np.empty(a_Q.size)
    term_R = is_term_N[node_R]
    row_N = np.full(comp_N.size, -1)
    for c in np.unique(comp_N[a_Q]):
        # Non-terminals first: the first is grounded, and the pairs' right-hand sides vanish above
        # the terminal block, so only its trailing triangle is solved with.
        mine_R = np.flatnonzero(comp_R == c)
        mine_R = mine_R[np.argsort(term_R[mine_R], kind="stable")]
        unk_R = mine_R[1:]
        inner = int((~term_R[unk_R]).sum())
        g_MxM = -w[unk_R][:, unk_R].toarray()
        g_MxM[np.diag_indices_from(g_MxM)] += d_R[unk_R]
        q_Q = np.flatnonzero(comp_N[a_Q] == c)
        if unk_R.size == 0:
            out_Q[q_Q] = 0.0
            continue
        row_N[node_R[unk_R[inner:]]] = np.arange(unk_R.size - inner)
        with _blas_threads(unk_R.size):
            lower_MxM = sla.cholesky(g_MxM, lower=True, overwrite_a=True, check_finite=False)
            out_Q[q_Q] = _forward_norms(lower_MxM[inner:, inner:], row_N, a_Q[q_Q], b_Q[q_Q])
        row_N[node_R[mine_R]] = -1
    return out_Q


def _grounded_solver(
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
    ground_C = np.full(num, n)
    np.minimum.at(ground_C, comp_N, np.arange(n))
    m = n - num
    lap_NxN = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
    solve = None
    if solver in ("direct", "cholmod"):
        keep_N = np.ones(n, dtype=bool)
        keep_N[ground_C] = False
        node_M = np.flatnonzero(keep_N)
        lap = lap_NxN[node_M][:, node_M].tocsc()
        if m and solver == "cholmod":
            solve = _cholmod().cholesky(lap, ordering_method=_CHOLMOD_ORDERING)
        elif m:
            solve = SPDFactor(lap).solve
    else:
        forest = ForestSolver(n, u_U, v_U, 1.0 / g_U, ground_C)
        node_M = forest.perm_M  # BFS order of the forest, so its solve is level-vectorised
        lap = lap_NxN[node_M][:, node_M].tocsr()
        solve = lambda rhs: block_pcg(lap, rhs, forest.solve_into, _CG_RTOL, max_iter=10 * m + 100)
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
    a_Q: np.ndarray,
    b_Q: np.ndarray,
    solver: str,
) -> np.ndarray:
    """A sparse Cholesky factor ("direct", "cholmod") or forest-preconditioned block CG ("cg") on the
    grounded Laplacian, one solve per pair."""
    solve, row_N, m = _grounded_solver(adj, comp_N, num, u_U, v_U, g_U, solver)
    a_Q, b_Q = row_N[a_Q], row_N[b_Q]
    res_Q = np.zeros(a_Q.size)
    if m == 0:
        return res_Q
    chunk = SOLVE_COLUMNS if solver == "direct" else max(1, min(_MAX_COLUMNS, _BLOCK_BYTES // (8 * m)))
    q_all = np.arange(a_Q.size)
    for lo in range(0, a_Q.size, chunk):
        q = q_all[lo : lo + chunk]
        rhs_MxK = np.zeros((m, q.size))
        # e_a - e_b on the grounded system (a grounded endpoint has potential 0).
        ha, hb = a_Q[q] >= 0, b_Q[q] >= 0
        rhs_MxK[a_Q[q][ha], q[ha] - lo] += 1.0
        rhs_MxK[b_Q[q][hb], q[hb] - lo] -= 1.0
        x_MxK = solve(rhs_MxK)
        xa = np.where(ha, x_MxK[np.maximum(a_Q[q], 0), q - lo], 0.0)
        xb = np.where(hb, x_MxK[np.maximum(b_Q[q], 0), q - lo], 0.0)
        res_Q[q] = xa - xb
    return res_Q


RESISTANCE_SOLVERS = ("auto", "cholmod", "dense", "direct", "cg")


def _resistance_kernel(kernel: Network, a_P: np.ndarray, b_P: np.ndarray, solver: str) -> np.ndarray:
    n = kernel.num_nodes
    u_U, v_U, g_U = _collapse_parallel(n, kernel.u_E, kernel.v_E, 1.0 / kernel.var_E, np.add)
    adj = _symmetric(n, u_U, v_U, g_U)
    num, comp_N = csg.connected_components(adj, directed=False)
    out_P = np.full(a_P.shape[0], np.inf)
    same_P = comp_N[a_P] == comp_N[b_P]
    if not same_P.any():
        return out_P
    a_Q, b_Q = a_P[same_P], b_P[same_P]
    requested, direct_fits = solver, n - num <= _DIRECT_MAX_NODES
    if solver == "auto":
        if _cholmod() is not None:
            solver = "cholmod"
        elif direct_fits and (n - num) * a_Q.size <= _DIRECT_MAX_WORK:
            solver = "direct"
        else:
            solver = "dense"
    res_Q = None
    if solver == "cholmod":
        lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
        res_Q = _resistance_cholmod(lap, comp_N, a_Q, b_Q)
    elif solver == "dense":
        res_Q = _resistance_dense(adj, comp_N, a_Q, b_Q, strict=requested == "dense")
        # used only where the components left are too large for dense factors
        solver = "direct" if direct_fits else "cg"
    if res_Q is None:
        res_Q = _resistance_grounded(adj, comp_N, num, u_U, v_U, g_U, a_Q, b_Q, solver)
    out_P[same_P] = np.maximum(res_Q, 0.0)
    return out_P


def network_distance(
    net: Network,
    pairs_Px2: np.ndarray,
    method: Method = "path",
    resistance_solver: str = "auto",
    bridges: bool = True,
) -> np.ndarray:
    """Fast inference distance for node-index pairs; one value per pair (inf if disconnected).

    bridges: split the kernel at its bridges where that leaves its largest piece at most half its
      largest component (exact: both distances add in series across a bridge; see
      ``_across_bridges``). False solves the kernel whole, as before the split existed.

    resistance_solver:
      "auto": "cholmod" where scikit-sparse is installed; else "direct" where unknowns x pairs is at
        most ``_DIRECT_MAX_WORK``, else "dense", falling back to "direct" (up to ``_DIRECT_MAX_NODES``
        unknowns) or "cg" when its components are too large;
      "cholmod": one CHOLMOD factorisation with the queried nodes last (see ``_resistance_cholmod``);
      "dense": star-mesh elimination, then dense Cholesky per component (see ``_resistance_dense``);
      "direct": a sparse Cholesky factor (CHOLMOD through cholespy's wheels, `common.linalg`) and a
        full solve per pair; "cg": block CG preconditioned by the exact spanning-forest solve.
    """
    validate_network(net)
    pairs_Px2 = validate_pairs(net, pairs_Px2)
    if method not in ("path", "resistance"):
        raise ValueError(f"unknown method {method!r} (path, resistance)")
    if resistance_solver not in RESISTANCE_SOLVERS:
        raise ValueError(f"unknown resistance solver {resistance_solver!r} ({', '.join(RESISTANCE_SOLVERS)})")
    if method == "resistance" and resistance_solver == "cholmod" and _cholmod() is None:
        raise ImportError("resistance_solver='cholmod' needs scikit-sparse: pip install -e '.[cholmod]'")
    merged, map_N = merge_zero_edges(net)
    return _distance(merged, map_N[pairs_Px2[:, 0]], map_N[pairs_Px2[:, 1]], method, resistance_solver, bridges)


def _distance(net: Network, a_P: np.ndarray, b_P: np.ndarray, method: Method, solver: str, split: bool) -> np.ndarray:
    """Distances of node pairs of a network without zero-variance edges: its kernel for the pairs'
    nodes, split at its bridges where that pays (``split``), then the path or resistance solver."""
    out_P = np.zeros(a_P.shape[0])
    todo_P = a_P != b_P
    if not todo_P.any():
        return out_P
    term_T, inv = np.unique(np.r_[a_P[todo_P], b_P[todo_P]], return_inverse=True)
    kernel, kt_T = reduce_network(net, term_T)
    q = todo_P.sum()
    ka_P, kb_P = kt_T[inv[:q]], kt_T[inv[q:]]
    d_Q = None
    if split:
        combine = "min" if method == "path" else "conductance"
        d_Q = _across_bridges(kernel, ka_P, kb_P, combine, lambda k, a, b: _distance(k, a, b, method, solver, False))
    if d_Q is None:
        d_Q = _path_kernel(kernel, ka_P, kb_P) if method == "path" else _resistance_kernel(kernel, ka_P, kb_P, solver)
    out_P[todo_P] = d_Q
    return out_P


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
    term_T, inv = np.unique(np.r_[a_P[todo_P], b_P[todo_P]], return_inverse=True)
    kernel, kt_T = reduce_network(merged, term_T)
    q = int(todo_P.sum())
    ka_Q, kb_Q = kt_T[inv[:q]], kt_T[inv[q:]]
    n = kernel.num_nodes
    u_U, v_U, g_U = _collapse_parallel(n, kernel.u_E, kernel.v_E, 1.0 / kernel.var_E, np.add)
    adj = _symmetric(n, u_U, v_U, g_U)
    num, comp_N = csg.connected_components(adj, directed=False)
    if (comp_N[ka_Q] != comp_N[kb_Q]).any():
        return float("inf"), 0.0
    solver = resistance_solver
    if solver == "auto":
        solver = "cholmod" if _cholmod() is not None else ("direct" if n - num <= _DIRECT_MAX_NODES else "cg")
    solve, row_N, m = _grounded_solver(adj, comp_N, num, u_U, v_U, g_U, solver)
    sqrt_g_U = np.sqrt(g_U)
    mean_K = np.empty(probes)
    chunk = max(1, min(_MAX_COLUMNS, _BLOCK_BYTES // (8 * max(m, 1))))
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
        z_QxK = x_NxK[ka_Q] - x_NxK[kb_Q]
        mean_K[lo : lo + k] = (z_QxK**2).sum(axis=0) / pairs_Px2.shape[0]
    return float(mean_K.mean()), float(mean_K.std(ddof=1) / np.sqrt(probes))


# ----------------------------------------------------------------------------- networkx side


def _validate_graph(graph: nx.Graph) -> None:
    _check_undirected(graph)
    for a, b, data in graph.edges(data=True):
        _check_variance(a, b, data.get("variance"))


def _check_pairs(graph: nx.Graph, pairs: Iterable[tuple]) -> list[tuple]:
    pairs = [tuple(p) for p in pairs]
    for p in pairs:
        if len(p) != 2:
            raise ValueError(f"pair {p!r} is not a (label, label) pair")
        for x in p:
            if x not in graph:
                raise KeyError(f"node {x!r} is not in the graph")
    return pairs


def _resistance_graph(graph: nx.Graph) -> tuple[nx.Graph, dict]:
    """Simple Graph with zero-variance edges contracted and parallel resistors combined."""
    uf = nx.utils.UnionFind(graph.nodes)
    for a, b, data in graph.edges(data=True):
        if float(data["variance"]) == 0.0:
            uf.union(a, b)
    rep = {x: uf[x] for x in graph.nodes}
    simple = nx.Graph()
    simple.add_nodes_from(set(rep.values()))
    for a, b, data in graph.edges(data=True):
        ra, rb = rep[a], rep[b]
        if ra == rb:
            continue
        g = 1.0 / float(data["variance"])
        if simple.has_edge(ra, rb):
            simple[ra][rb]["conductance"] += g
        else:
            simple.add_edge(ra, rb, conductance=g)
    for _, _, data in simple.edges(data=True):
        data["variance"] = 1.0 / data["conductance"]
    return simple, rep


def reference_distance(graph: nx.Graph, pairs: Iterable[tuple], method: Method = "path") -> np.ndarray:
    """networkx reference. path: ``nx.shortest_path_length(weight="variance")`` (networkx takes
    the min over parallel edges). resistance: ``nx.resistance_distance`` on the pair's component
    after contracting zero-variance edges and combining parallel resistors."""
    _validate_graph(graph)
    pairs = _check_pairs(graph, pairs)
    out = np.zeros(len(pairs))
    if method == "path":
        for i, (a, b) in enumerate(pairs):
            try:
                out[i] = nx.shortest_path_length(graph, a, b, weight="variance")
            except nx.NetworkXNoPath:
                out[i] = np.inf
        return out
    if method != "resistance":
        raise ValueError(f"unknown method {method!r} (path, resistance)")
    simple, rep = _resistance_graph(graph)
    comp = {}
    for nodes in nx.connected_components(simple):
        sub = simple.subgraph(nodes)
        for x in nodes:
            comp[x] = sub
    for i, (a, b) in enumerate(pairs):
        ra, rb = rep[a], rep[b]
        if ra == rb:
            out[i] = 0.0
        elif comp[ra] is not comp[rb]:
            out[i] = np.inf
        else:
            out[i] = nx.resistance_distance(comp[ra], ra, rb, weight="variance", invert_weight=True)
    return out


def inference_distance(
    graph: nx.Graph,
    pairs: Iterable[tuple],
    method: Method = "path",
    solver: Literal["fast", "reference"] = "fast",
    resistance_solver: str = "auto",
    bridges: bool = True,
) -> np.ndarray:
    """Inference distance between labelled nodes of any Graph/MultiGraph with edge ``variance``.

    ``resistance_solver`` and ``bridges`` are passed to ``network_distance`` (fast solver only).
    """
    if solver == "reference":
        return reference_distance(graph, pairs, method)
    if solver != "fast":
        raise ValueError(f"unknown solver {solver!r} (fast, reference)")
    pairs = _check_pairs(graph, pairs)
    net, _, index = _edge_arrays(graph, with_kinds=False)
    pairs_Px2 = np.array([[index[a], index[b]] for a, b in pairs], dtype=np.int64).reshape(-1, 2)
    return network_distance(net, pairs_Px2, method, resistance_solver, bridges)
