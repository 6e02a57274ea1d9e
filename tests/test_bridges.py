"""Splitting an IBN at its bridges: the 2-edge-connected components against networkx, and distances
through the split against the networkx reference on graphs whose prompts hang from one shared root
(the shape of a graph users build themselves; issue: the public solver on a user's graph)."""

import networkx as nx
import numpy as np
import pytest

from rm_theory.ibn import distance as dist
from rm_theory.ibn import inference_distance, reduction, reference_distance


def _simple(seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Random simple graphs with bridges: a few dense blobs joined by trees and single edges."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    g = nx.gnm_random_graph(n, int(rng.integers(0, 2 * n)), seed=int(rng.integers(1 << 30)))
    for _ in range(int(rng.integers(0, 4))):  # pendant paths and trees: all bridges
        a = int(rng.integers(n))
        g.add_edge(a, n)
        n += 1
    u, v = np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2).T
    return n, u, v


@pytest.mark.parametrize("seed", range(40))
def test_two_edge_components_match_networkx(seed):
    n, u, v = _simple(seed)
    if seed % 2:  # a multigraph: some edges doubled (never bridges), and self-loops (ignored)
        rng = np.random.default_rng(seed)
        twice = rng.random(u.size) < 0.3
        loops = rng.integers(0, n, 2)
        u, v = np.r_[u, v[twice], loops], np.r_[v, u[twice], loops]
    label_N, bridge_U = reduction.two_edge_components(n, u, v)
    g = nx.MultiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(u.tolist(), v.tolist(), strict=True))
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    assert {frozenset(e) for e in zip(u[bridge_U].tolist(), v[bridge_U].tolist(), strict=True)} == {
        frozenset(e) for e in nx.bridges(g)
    }
    h = g.copy()
    h.remove_edges_from(nx.bridges(g))
    want = {frozenset(c) for c in nx.connected_components(h)}
    got = {frozenset(np.flatnonzero(label_N == k).tolist()) for k in np.unique(label_N)}
    assert got == want


def rooted_prompts(seed: int, prompts: int = 4, L: int = 4, V: int = 3, n: int = 40, queries: int = 30):
    """Every prompt's prefix tree as explicit nodes (unary chains included), each prompt's root joined
    to one shared root, HP edges between two random responses of a prompt, query pairs likewise."""
    rng = np.random.default_rng(seed)
    s2 = rng.uniform(0.05, 1.0, L)
    g = nx.Graph()

    def response(p: int) -> tuple:
        prev = ("p", p)
        if prev not in g:
            g.add_edge("root", prev, variance=0.5)
        for j, tok in enumerate(rng.integers(V, size=L).tolist()):
            node = (*prev, tok)
            if node not in g:
                g.add_edge(prev, node, variance=float(s2[j]))
            prev = node
        return prev

    for _ in range(n):
        p = int(rng.integers(prompts))
        a, b = response(p), response(p)
        if a != b:
            g.add_edge(a, b, variance=4.0)
    pairs = []
    for _ in range(queries):
        p, q = rng.integers(prompts, size=2)
        pairs.append((response(int(p)), response(int(p if rng.random() < 0.7 else q))))
    return g, pairs


@pytest.mark.parametrize("method", ["path", "resistance"])
@pytest.mark.parametrize("seed", range(8))
def test_distances_through_bridges_equal_the_reference(seed, method, monkeypatch):
    g, pairs = rooted_prompts(seed)
    calls = []
    across = dist.across_bridges
    monkeypatch.setattr(dist, "across_bridges", lambda *a: calls.append(out := across(*a)) or out)
    fast = inference_distance(g, pairs, method)
    assert calls and calls[0] is not None, "the split did not engage on prompts under one root"
    np.testing.assert_allclose(fast, reference_distance(g, pairs, method), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["path", "resistance"])
@pytest.mark.parametrize("seed", range(20))
def test_forced_split_on_random_multigraphs_equals_the_reference(seed, method, monkeypatch):
    """Any graph, split wherever it has a bridge (parallel edges, zero variances, several components,
    pairs across components): the same distances as networkx."""
    from tests.test_inference import random_graph

    monkeypatch.setattr(reduction, "_BRIDGE_SPLIT_SHARE", 1.0)
    g, pairs = random_graph(seed)
    for a in list(g.nodes)[:3]:  # pendant chains, so there are bridges to split at
        g.add_edge(a, f"{a}-leaf", variance=0.7)
        g.add_edge(f"{a}-leaf", f"{a}-leaf2", variance=1.3)
        pairs.append((f"{a}-leaf2", pairs[0][1]))
    np.testing.assert_allclose(
        inference_distance(g, pairs, method), reference_distance(g, pairs, method), rtol=1e-9, atol=1e-12
    )


def test_networks_without_a_shared_root_are_solved_without_the_split(monkeypatch):
    """The project's own networks (prompts in separate components) keep their solve: the split is
    declined when it would not shrink the largest piece."""
    g, pairs = rooted_prompts(0)
    g.remove_node("root")
    pairs = [(a, b) for a, b in pairs if a[1] == b[1]]
    calls = []
    across = dist.across_bridges
    monkeypatch.setattr(dist, "across_bridges", lambda *a: calls.append(out := across(*a)) or out)
    inference_distance(g, pairs, "resistance")
    assert calls == [None]


@pytest.mark.parametrize("method", ["path", "resistance"])
def test_bridges_false_solves_the_kernel_whole_with_the_same_distances(method, monkeypatch):
    g, pairs = rooted_prompts(3)
    calls = []
    monkeypatch.setattr(dist, "across_bridges", lambda *a: calls.append(a))
    whole = inference_distance(g, pairs, method, bridges=False)
    assert calls == []
    np.testing.assert_allclose(whole, reference_distance(g, pairs, method), rtol=1e-9, atol=1e-12)


def test_path_searches_run_per_component_and_leave_other_components_inf():
    # two components, each a triangle; a pair across them is inf
    g = nx.Graph()
    for off in (0, 10):
        g.add_edge(off, off + 1, variance=1.0)
        g.add_edge(off + 1, off + 2, variance=2.0)
        g.add_edge(off, off + 2, variance=5.0)
    d = inference_distance(g, [(0, 2), (10, 12), (0, 12)], "path")
    np.testing.assert_array_equal(d, [3.0, 3.0, np.inf])
