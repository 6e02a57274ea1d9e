"""Inference distance on an induced Bayesian network (THEORY.md §2, "Inference distance"): the public
entry, from arrays (`network_distance`) or any networkx graph (`inference_distance`).

An IBN is a multigraph whose edges carry variances (`ibn.graph.Network`). Two distances between nodes
a, b:

* path:       d_path(a, b) = least sum of edge variances over a-b paths (parallel edges: min);
* resistance: d_res(a, b)  = effective resistance, each edge a resistor equal to its variance
  (parallel edges: conductances add). This is the exact Gaussian posterior variance of
  r(a) - r(b), so d_res <= d_path.

Pairs in different connected components are at distance ``inf``; zero-variance edges are
perfect information (their endpoints are merged before solving).

A query goes: zero-variance merge and the exact kernel for the pairs' nodes (`ibn.reduction`), the
split at the kernel's bridges where it pays, then the path solver (`ibn.path`) or the resistance
solvers (`ibn.resistance`). ``reference_distance`` (`ibn.reference`, networkx) is the check of them
all; ``mean_resistance_sketch`` (`ibn.sketch`) the one approximate tool.

Legend: N nodes, P pairs (the pairs asked), Pk pairs of two distinct nodes (after the merge), Nt
terminals (their nodes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import networkx as nx
import numpy as np

from rm_theory.ibn.graph import Method, Network, check_pairs, edge_arrays, validate_network, validate_pairs
from rm_theory.ibn.path import path_distances
from rm_theory.ibn.reduction import across_bridges, merge_zero_edges, reduce_network
from rm_theory.ibn.reference import reference_distance
from rm_theory.ibn.resistance import RESISTANCE_SOLVERS, has_cholmod, resistance_distances


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
      ``across_bridges``). False solves the kernel whole, as before the split existed.

    resistance_solver (`ibn.resistance`):
      "auto": "cholmod" where scikit-sparse is installed; else "direct" where unknowns x pairs is
        small, else "dense", falling back to "direct" (up to a limit of unknowns) or "cg" when its
        components are too large (`resistance_distances`);
      "cholmod": one CHOLMOD factorisation with the queried nodes last;
      "dense": star-mesh elimination, then dense Cholesky per component;
      "direct": a sparse Cholesky factor (CHOLMOD through cholespy's wheels, `common.linalg`) and a
        full solve per pair; "cg": block CG preconditioned by the exact spanning-forest solve.
    """
    validate_network(net)
    pairs_Px2 = validate_pairs(net, pairs_Px2)
    if method not in ("path", "resistance"):
        raise ValueError(f"unknown method {method!r} (path, resistance)")
    if resistance_solver not in RESISTANCE_SOLVERS:
        raise ValueError(f"unknown resistance solver {resistance_solver!r} ({', '.join(RESISTANCE_SOLVERS)})")
    if method == "resistance" and resistance_solver == "cholmod" and not has_cholmod():
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
    term_Nt, inv = np.unique(np.r_[a_P[todo_P], b_P[todo_P]], return_inverse=True)
    kernel, kt_Nt = reduce_network(net, term_Nt)
    q = todo_P.sum()
    ka_P, kb_P = kt_Nt[inv[:q]], kt_Nt[inv[q:]]
    d_Pk = None
    if split:
        combine = "min" if method == "path" else "conductance"
        d_Pk = across_bridges(kernel, ka_P, kb_P, combine, lambda k, a, b: _distance(k, a, b, method, solver, False))
    if d_Pk is None:
        d_Pk = (
            path_distances(kernel, ka_P, kb_P) if method == "path" else resistance_distances(kernel, ka_P, kb_P, solver)
        )
    out_P[todo_P] = d_Pk
    return out_P


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
    pairs = check_pairs(graph, pairs)
    net, _, index = edge_arrays(graph, with_kinds=False)
    pairs_Px2 = np.array([[index[a], index[b]] for a, b in pairs], dtype=np.int64).reshape(-1, 2)
    return network_distance(net, pairs_Px2, method, resistance_solver, bridges)
