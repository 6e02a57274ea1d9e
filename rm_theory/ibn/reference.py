"""The networkx reference of the inference distance (slow, obviously right): what every fast solver is
checked against.

path: ``nx.shortest_path_length(weight="variance")`` (networkx takes the min over parallel edges);
resistance: ``nx.resistance_distance`` on the pair's component after contracting zero-variance edges
and combining parallel resistors.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np

from rm_theory.ibn.graph import Method, check_pairs, validate_graph


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
    validate_graph(graph)
    pairs = check_pairs(graph, pairs)
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
