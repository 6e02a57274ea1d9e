"""The IBN as arrays (THEORY.md §2, "Induced Bayesian network"): `Network`, its validation, and its
conversion from and to networkx graphs.

An IBN is a multigraph whose edges carry variances: edge e joins u_E[e] and v_E[e] with variance
var_E[e], of kind "ib" (inductive bias) or "hp" (human preference). A variance of 0 is perfect
information (the solvers merge its endpoints); positive ones must lie in `VARIANCE_RANGE`.

Legend: N nodes, E edges, P pairs (asked), Eh half-edges (an undirected edge seen from each end).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Hashable, Iterable, Sequence
from typing import Literal

import networkx as nx
import numpy as np

Method = Literal["path", "resistance"]  # the two inference distances
KINDS = ("ib", "hp")
IB, HP = 0, 1  # kind_E codes: inductive-bias and human-preference edges


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


def edge_arrays(graph: nx.Graph, with_kinds: bool) -> tuple[Network, list, dict]:
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
        mult_Eh = np.fromiter((len(keys) for nbrs in nbrs_N for keys in nbrs.values()), dtype=np.int64)
        data_Eh = [d for nbrs in nbrs_N for keys in nbrs.values() for d in keys.values()]
        nbr_count = int(mult_Eh.size)
    else:
        deg_N = np.fromiter(map(len, nbrs_N), dtype=np.int64, count=len(nodes))
        mult_Eh = None
        data_Eh = [d for nbrs in nbrs_N for d in nbrs.values()]
        nbr_count = int(deg_N.sum())
    u_Eh = np.repeat(np.arange(len(nodes), dtype=np.int64), deg_N)
    v_Eh = np.fromiter(map(index.__getitem__, itertools.chain.from_iterable(nbrs_N)), dtype=np.int64, count=nbr_count)
    if mult_Eh is not None:
        v_Eh = np.repeat(v_Eh, mult_Eh)
    # Each undirected edge is seen twice (a self-loop once).
    keep_Eh = u_Eh <= v_Eh
    half_E = np.flatnonzero(keep_Eh)
    var_E = [data_Eh[h].get("variance") for h in half_E.tolist()]
    u_E, v_E = u_Eh[half_E], v_Eh[half_E]
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
        kinds = [data_Eh[h].get("kind") for h in half_E.tolist()]
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
    net, nodes, _ = edge_arrays(graph, with_kinds=True)
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


def validate_graph(graph: nx.Graph) -> None:
    _check_undirected(graph)
    for a, b, data in graph.edges(data=True):
        _check_variance(a, b, data.get("variance"))


def check_pairs(graph: nx.Graph, pairs: Iterable[tuple]) -> list[tuple]:
    pairs = [tuple(p) for p in pairs]
    for p in pairs:
        if len(p) != 2:
            raise ValueError(f"pair {p!r} is not a (label, label) pair")
        for x in p:
            if x not in graph:
                raise KeyError(f"node {x!r} is not in the graph")
    return pairs
