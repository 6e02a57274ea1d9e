"""Inference distance: circuit laws, fast solvers against networkx, exact kernel reduction."""

import itertools

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rm_theory.ibn import (
    Network,
    cg,
    from_networkx,
    graph,
    inference_distance,
    network_distance,
    reduce_network,
    reduction,
    reference,
    reference_distance,
    resistance,
    sketch,
    to_networkx,
)

METHODS = ("path", "resistance")
SOLVERS = ("fast", "reference")
pos = st.floats(0.01, 100.0)


def _graph(edges, nodes=()):
    g = nx.MultiGraph()
    g.add_nodes_from(nodes)
    for a, b, var in edges:
        g.add_edge(a, b, variance=var)
    return g


def random_graph(seed: int, zero_frac: float = 0.05) -> tuple[nx.MultiGraph, list]:
    """5..60 nodes, several components, parallel edges, a few zero variances, 40 query pairs."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 61))
    comps = int(rng.integers(1, 4))
    comp_N = rng.integers(0, comps, n)
    g = nx.MultiGraph()
    g.add_nodes_from(f"y{i}" for i in range(n))
    for _ in range(int(rng.integers(n // 2, 3 * n))):
        a = int(rng.integers(n))
        same = np.flatnonzero(comp_N == comp_N[a])
        b = int(rng.choice(same))
        var = 0.0 if rng.random() < zero_frac else float(rng.uniform(0.05, 5.0))
        g.add_edge(f"y{a}", f"y{b}", variance=var, kind="ib" if rng.random() < 0.5 else "hp")
    pairs = [(f"y{a}", f"y{b}") for a, b in rng.integers(0, n, (40, 2))]
    return g, pairs


def _close(x, y, rtol=1e-9):
    x, y = np.asarray(x), np.asarray(y)
    assert np.array_equal(np.isinf(x), np.isinf(y))
    fin = np.isfinite(y)
    np.testing.assert_allclose(x[fin], y[fin], rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("solver", SOLVERS)
@given(a=pos, b=pos, c=pos)
@settings(max_examples=25, deadline=None)
def test_series_law(solver, a, b, c):
    g = _graph([(0, 1, a), (1, 2, b), (2, 3, c)])
    for method in METHODS:
        d = inference_distance(g, [(0, 3), (3, 0), (1, 3)], method, solver)
        _close(d, [a + b + c, a + b + c, b + c])


@pytest.mark.parametrize("solver", SOLVERS)
@given(a=pos, b=pos, c=pos)
@settings(max_examples=25, deadline=None)
def test_parallel_law(solver, a, b, c):
    # Two routes 0-1: a direct edge and a two-edge path of b + c.
    g = _graph([(0, 1, a), (0, 2, b), (2, 1, c)])
    _close(inference_distance(g, [(0, 1)], "path", solver), [min(a, b + c)])
    _close(inference_distance(g, [(0, 1)], "resistance", solver), [1 / (1 / a + 1 / (b + c))])


@pytest.mark.parametrize("solver", SOLVERS)
def test_parallel_multi_edges(solver):
    g = _graph([("x", "y", 2.0), ("x", "y", 3.0), ("x", "y", 6.0)])
    _close(inference_distance(g, [("x", "y")], "path", solver), [2.0])
    _close(inference_distance(g, [("x", "y")], "resistance", solver), [1.0])


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("method", METHODS)
def test_disconnected_is_inf_and_self_is_zero(solver, method):
    g = _graph([(0, 1, 1.0), (2, 3, 1.0)], nodes=[4])
    d = inference_distance(g, [(0, 2), (0, 4), (4, 4), (1, 1), (0, 1)], method, solver)
    _close(d, [np.inf, np.inf, 0.0, 0.0, 1.0])
    assert d[2] == d[3] == 0.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_variance_merges_endpoints(solver):
    # 0 =(0)= 1, then two parallel routes 1-2 of variance 2 each.
    g = _graph([(0, 1, 0.0), (1, 2, 2.0), (0, 2, 2.0), (2, 3, 0.0)])
    _close(inference_distance(g, [(0, 1), (0, 3)], "path", solver), [0.0, 2.0])
    _close(inference_distance(g, [(0, 1), (0, 3)], "resistance", solver), [0.0, 1.0])


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), None])
def test_bad_variance_raises_naming_edge(solver, bad):
    g = _graph([("a", "b", 1.0), ("b", "c", bad)])
    with pytest.raises(ValueError, match=r"'b', 'c'"):
        inference_distance(g, [("a", "c")], "path", solver)
    with pytest.raises(ValueError, match="edge 0"):
        network_distance(Network(2, [0], [1], [bad if bad is not None else -1.0]), [[0, 1]])


@pytest.mark.parametrize("solver", SOLVERS)
def test_unknown_label_raises(solver):
    g = _graph([("a", "b", 1.0)])
    with pytest.raises(KeyError, match="'zz'"):
        inference_distance(g, [("a", "zz")], "path", solver)
    with pytest.raises(ValueError, match="outside"):
        network_distance(Network(2, [0], [1], [1.0]), [[0, 7]])


@pytest.mark.parametrize("seed", range(12))
def test_fast_agrees_with_reference(seed):
    g, pairs = random_graph(seed)
    for method in METHODS:
        _close(inference_distance(g, pairs, method, "fast"), reference_distance(g, pairs, method), rtol=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_levels", [64, 1])
def test_cg_solver_agrees_with_reference(seed, max_levels, monkeypatch):
    # Level-vectorised forest preconditioner, and its sparse-LU fallback for deep forests.
    monkeypatch.setattr(cg, "_MAX_LEVELS", max_levels)
    g, pairs = random_graph(100 + seed)
    net, nodes = from_networkx(g)
    index = {x: i for i, x in enumerate(nodes)}
    pairs_Px2 = np.array([[index[a], index[b]] for a, b in pairs])
    _close(
        network_distance(net, pairs_Px2, "resistance", resistance_solver="cg"),
        reference_distance(g, pairs, "resistance"),
        rtol=1e-9,
    )


@pytest.mark.parametrize("seed", range(8))
def test_reduce_network_preserves_terminal_distances(seed):
    rng = np.random.default_rng(seed)
    g, _ = random_graph(seed, zero_frac=0.0)
    net, _ = from_networkx(g)
    term_T = rng.choice(net.num_nodes, size=min(6, net.num_nodes), replace=False)
    kernel, new_T = reduce_network(net, term_T)
    assert kernel.num_nodes <= net.num_nodes
    pairs = np.array([(i, j) for i in range(term_T.size) for j in range(term_T.size)])
    kg = to_networkx(kernel)
    for method in METHODS:
        before = reference_distance(to_networkx(net), term_T[pairs].tolist(), method)
        after = reference_distance(kg, new_T[pairs].tolist(), method)
        _close(after, before, rtol=1e-12)


def test_reduce_network_collapses_chain_and_prunes_dangling():
    # 0-1-2-3 chain with a dangling tree 2-4-5; terminals 0 and 3.
    net = Network(6, [0, 1, 2, 2, 4], [1, 2, 3, 4, 5], [1.0, 2.0, 3.0, 5.0, 7.0])
    kernel, new_T = reduce_network(net, [0, 3])
    assert kernel.num_nodes == 2 and kernel.num_edges == 1
    assert kernel.var_E[0] == pytest.approx(6.0)
    assert sorted(new_T.tolist()) == [0, 1]


@pytest.mark.parametrize("seed", range(6))
def test_adding_an_edge_never_increases_distance(seed):
    g, pairs = random_graph(seed)
    rng = np.random.default_rng(seed)
    nodes = list(g.nodes)
    before = {m: inference_distance(g, pairs, m) for m in METHODS}
    for _ in range(5):
        a, b = rng.choice(len(nodes), 2)
        g.add_edge(nodes[a], nodes[b], variance=float(rng.uniform(0.1, 3.0)))
        for m in METHODS:
            after = inference_distance(g, pairs, m)
            assert np.all(after <= before[m] * (1 + 1e-12) + 1e-15)
            before[m] = after


@pytest.mark.parametrize("seed", range(6))
def test_resistance_at_most_path(seed):
    g, pairs = random_graph(seed)
    res = inference_distance(g, pairs, "resistance")
    path = inference_distance(g, pairs, "path")
    assert np.all(res <= path * (1 + 1e-12) + 1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_tree_resistance_equals_path(seed):
    # On a tree the unique path is the only current route.
    rng = np.random.default_rng(seed)
    t = nx.random_labeled_tree(int(rng.integers(5, 50)), seed=seed)
    g = _graph([(a, b, float(rng.uniform(0.1, 4.0))) for a, b in t.edges])
    pairs = [tuple(p) for p in rng.integers(0, t.number_of_nodes(), (30, 2)).tolist()]
    _close(inference_distance(g, pairs, "resistance"), inference_distance(g, pairs, "path"), rtol=1e-10)


def test_star_closed_form():
    # Star with leaf variances w_i: R(i, j) = w_i + w_j.
    w = [0.5, 1.5, 2.0, 4.0]
    g = _graph([("c", i, wi) for i, wi in enumerate(w)])
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    want = [w[i] + w[j] for i, j in pairs]
    for method in METHODS:
        for solver in SOLVERS:
            _close(inference_distance(g, pairs, method, solver), want)


def test_networkx_round_trip_keeps_kinds_and_variances():
    g, _ = random_graph(3)
    net, nodes = from_networkx(g)
    assert net.kind_E is not None and set(np.unique(net.kind_E)) <= {0, 1}
    back = to_networkx(net, nodes)
    net2, nodes2 = from_networkx(back)
    assert nodes2 == nodes
    np.testing.assert_array_equal(net2.var_E, net.var_E)
    np.testing.assert_array_equal(net2.kind_E, net.kind_E)
    ib = graph.ib_subnetwork(net)
    assert ib.num_edges == int((net.kind_E == 0).sum())


def test_simple_graph_input_and_large_kernel_direct_matches_cg():
    # A Graph (not Multi) input, and both resistance solvers on a mid-size IBN-like graph.
    rng = np.random.default_rng(7)
    t = nx.random_labeled_tree(400, seed=7)
    g = nx.Graph()
    for a, b in t.edges:
        g.add_edge(a, b, variance=float(rng.uniform(0.01, 1.0)))
    for a, b in rng.integers(0, 400, (300, 2)).tolist():
        if a != b:
            g.add_edge(a, b, variance=4.0)
    net, nodes = from_networkx(g)
    pairs = rng.integers(0, 400, (50, 2))
    direct = network_distance(net, pairs, "resistance", resistance_solver="direct")
    cg = network_distance(net, pairs, "resistance", resistance_solver="cg")
    _close(cg, direct, rtol=1e-8)
    few = [tuple(nodes[i] for i in p) for p in pairs[:4].tolist()]  # nx is O(N^3) per pair
    _close(direct[:4], reference_distance(g, few, "resistance"), rtol=1e-9)


# ----------------------------------------------------------------------------- resistance solvers


def _cholmod_or_skip(solver):
    if solver == "cholmod":
        pytest.importorskip("sksparse.cholmod", reason="the cholmod extra (scikit-sparse) is not installed")


def _index_pairs(g, pairs):
    net, nodes = from_networkx(g)
    index = {x: i for i, x in enumerate(nodes)}
    return net, np.array([[index[a], index[b]] for a, b in pairs], dtype=np.int64).reshape(-1, 2)


# Forced variants of each path: the terminals-last Schur factor and the plain factor with forward
# solves (cholmod); star-mesh rounds then dense factors, and dense factors alone (dense).
SOLVER_PATHS = [
    ("cholmod", {"_SCHUR_MIN_RATIO": 0}),
    ("cholmod", {"_SCHUR_MAX_TERMINALS": 0}),
    ("dense", {}),
    ("dense", {"_KRON_MAX_DEGREE": 0}),
    ("direct", {}),
    ("cg", {}),
]


@pytest.mark.parametrize("solver, patch", SOLVER_PATHS)
@pytest.mark.parametrize("seed", range(10))
def test_resistance_solvers_agree_with_reference(solver, patch, seed, monkeypatch):
    _cholmod_or_skip(solver)
    for name, value in patch.items():
        monkeypatch.setattr(resistance, name, value)
    g, pairs = random_graph(200 + seed)
    net, pairs_Px2 = _index_pairs(g, pairs)
    _close(
        network_distance(net, pairs_Px2, "resistance", resistance_solver=solver),
        reference_distance(g, pairs, "resistance"),
        rtol=1e-9,
    )


@pytest.mark.parametrize("solver, patch", SOLVER_PATHS)
def test_resistance_solvers_edge_cases(solver, patch, monkeypatch):
    _cholmod_or_skip(solver)
    for name, value in patch.items():
        monkeypatch.setattr(resistance, name, value)
    # Component {0..3}: a 4-cycle with a zero-variance chord 1=3 (merged), so R(0, 2) is two
    # parallel pairs of resistors; component {4, 5, 6}: a triangle whose every node is queried (the
    # ground is then a terminal); node 7 alone; component {8, 9} never queried.
    g = _graph(
        [(0, 1, 1.0), (1, 2, 2.0), (2, 3, 3.0), (3, 0, 4.0), (1, 3, 0.0), (4, 5, 1.0), (5, 6, 1.0), (6, 4, 1.0)]
        + [(8, 9, 1.0)],
        nodes=[7],
    )
    pairs = [(0, 2), (1, 3), (0, 4), (4, 5), (5, 6), (6, 4), (7, 7), (7, 0), (2, 0), (0, 2)]
    want = reference_distance(g, pairs, "resistance")
    _close(want[:2], [1 / (1 / 1.0 + 1 / 4.0) + 1 / (1 / 2.0 + 1 / 3.0), 0.0])
    _close(want[3:6], [2 / 3] * 3)
    net, pairs_Px2 = _index_pairs(g, pairs)
    got = network_distance(net, pairs_Px2, "resistance", resistance_solver=solver)
    _close(got, want, rtol=1e-12)
    assert got[1] == got[6] == 0.0 and np.isinf(got[2]) and np.isinf(got[7])
    # No pair in a shared component: nothing is factored.
    _close(network_distance(net, pairs_Px2[[2, 7]], "resistance", resistance_solver=solver), [np.inf, np.inf])


def test_unknown_resistance_solver_raises():
    with pytest.raises(ValueError, match="unknown resistance solver 'lu'"):
        network_distance(Network(2, [0], [1], [1.0]), [[0, 1]], "resistance", resistance_solver="lu")


def test_cholmod_solver_without_scikit_sparse_names_the_extra(monkeypatch):
    monkeypatch.setattr(resistance, "_cholmod", lambda: None)
    with pytest.raises(ImportError, match=r"\[cholmod\]"):
        network_distance(Network(2, [0], [1], [1.0]), [[0, 1]], "resistance", resistance_solver="cholmod")


def test_auto_falls_back_to_cg_when_dense_blocks_are_too_large(monkeypatch):
    # No CHOLMOD, a kernel above the sparse-LU size and components above the dense limit.
    monkeypatch.setattr(resistance, "_cholmod", lambda: None)
    monkeypatch.setattr(resistance, "_DIRECT_MAX_NODES", 0)
    monkeypatch.setattr(resistance, "_DENSE_MAX_NODES", 1)
    calls = []
    grounded = resistance._resistance_grounded
    monkeypatch.setattr(resistance, "_resistance_grounded", lambda *a: calls.append(a[-1]) or grounded(*a))
    g, pairs = random_graph(300, zero_frac=0.0)
    net, pairs_Px2 = _index_pairs(g, pairs)
    _close(network_distance(net, pairs_Px2, "resistance"), reference_distance(g, pairs, "resistance"), rtol=1e-9)
    assert calls == ["cg"]
    with pytest.raises(ValueError, match="dense limit"):
        network_distance(net, pairs_Px2, "resistance", resistance_solver="dense")


@pytest.mark.parametrize(
    "max_work, dense_max, want", [(10**12, 12_000, ["direct"]), (0, 12_000, ["dense"]), (0, 1, ["dense", "direct"])]
)
def test_auto_picks_the_sparse_factor_for_little_work_else_dense_then_the_sparse_factor(
    max_work, dense_max, want, monkeypatch
):
    # Without CHOLMOD: unknowns x pairs within _DIRECT_MAX_WORK -> one sparse factor; above it the
    # star-mesh route, and the sparse factor (not CG) where its blocks are too large but it fits.
    monkeypatch.setattr(resistance, "_cholmod", lambda: None)
    monkeypatch.setattr(resistance, "_DIRECT_MAX_WORK", max_work)
    monkeypatch.setattr(resistance, "_DENSE_MAX_NODES", dense_max)
    calls = []
    dense, grounded = resistance._resistance_dense, resistance._resistance_grounded
    monkeypatch.setattr(resistance, "_resistance_dense", lambda *a, **k: calls.append("dense") or dense(*a, **k))
    monkeypatch.setattr(resistance, "_resistance_grounded", lambda *a: calls.append(a[-1]) or grounded(*a))
    g, pairs = random_graph(301, zero_frac=0.0)
    net, pairs_Px2 = _index_pairs(g, pairs)
    _close(network_distance(net, pairs_Px2, "resistance"), reference_distance(g, pairs, "resistance"), rtol=1e-9)
    assert calls == want


def test_small_dense_factors_run_on_one_blas_thread():
    from threadpoolctl import threadpool_info

    blas = lambda: [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    before = blas()
    with resistance._blas_threads(resistance._BLAS_MIN_NODES - 1):
        assert blas() == [1] * len(before)
    with resistance._blas_threads(resistance._BLAS_MIN_NODES):
        assert blas() == before
    assert blas() == before


@pytest.mark.parametrize("seed", range(6))
def test_star_mesh_keeps_resistances_among_kept_nodes(seed):
    # Kron reduction is exact: resistances among the kept nodes equal those of the full graph.
    g, _ = random_graph(400 + seed, zero_frac=0.0)
    g = nx.Graph(reference._resistance_graph(g)[0])
    big = max(nx.connected_components(g), key=len)
    g = g.subgraph(big).copy()
    nodes = list(g.nodes)
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(nodes), size=min(4, len(nodes)), replace=False)
    net, _ = from_networkx(g)
    adj = reduction.symmetric(net.num_nodes, net.u_E, net.v_E, 1.0 / net.var_E)
    keep_N = np.zeros(net.num_nodes, dtype=bool)
    keep_N[keep] = True
    w, node_R = resistance._star_mesh(adj, keep_N, max_degree=10**9)
    assert set(node_R.tolist()) == set(keep.tolist())
    reduced = nx.Graph()
    reduced.add_nodes_from(node_R.tolist())
    coo = sp.triu(w).tocoo()
    reduced.add_weighted_edges_from(
        zip(node_R[coo.row].tolist(), node_R[coo.col].tolist(), (1 / coo.data).tolist(), strict=True)
    )
    for i in range(keep.size):
        for j in range(i + 1, keep.size):
            a, b = int(keep[i]), int(keep[j])
            want = nx.resistance_distance(g, nodes[a], nodes[b], weight="variance", invert_weight=True)
            got = nx.resistance_distance(reduced, a, b, weight="weight", invert_weight=True)
            assert got == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("multi", [False, True])
def test_from_networkx_reads_every_edge_once(multi):
    # Parallel edges, a self-loop and labels whose order differs from insertion.
    g = nx.MultiGraph() if multi else nx.Graph()
    g.add_nodes_from(["z", "a", "m"])
    g.add_edge("a", "z", variance=1.0, kind="ib")
    g.add_edge("m", "a", variance=2.0, kind="hp")
    g.add_edge("m", "m", variance=3.0, kind="hp")
    g.add_edge("z", "m", variance=0.0, kind="ib")
    if multi:
        g.add_edge("a", "z", variance=5.0, kind="hp")
    net, nodes = from_networkx(g)
    got = sorted(
        (frozenset((nodes[u], nodes[v])), x, k)
        for u, v, x, k in zip(net.u_E.tolist(), net.v_E.tolist(), net.var_E.tolist(), net.kind_E.tolist(), strict=True)
    )
    want = sorted((frozenset((a, b)), d["variance"], graph.KINDS.index(d["kind"])) for a, b, d in g.edges(data=True))
    assert nodes == ["z", "a", "m"] and got == want
    g.add_edge("a", "m", variance="wide")
    with pytest.raises(ValueError, match="no numeric 'variance'"):
        from_networkx(g)


# ----------------------------------------------------------------------------- mean resistance sketch


class _AllSigns:
    """Stands in for the Generator: its sign vectors are every vector of signs, once each."""

    def choice(self, values, size):
        num_edges, probes = size
        signs = np.array(list(itertools.product([-1.0, 1.0], repeat=num_edges))).T
        assert signs.shape == (num_edges, probes)
        return signs


@pytest.mark.parametrize("solver", ["direct", "cg", "cholmod"])
def test_mean_resistance_sketch_is_exact_on_average_over_all_sign_vectors(solver):
    # Unbiasedness, checked exactly: over all 2^E sign vectors the sketch's mean is the exact mean.
    _cholmod_or_skip(solver)
    # A 4-cycle with a chord, a pendant chain (contracted to one kernel edge) and a zero-variance
    # edge: 6 kernel edges, 64 sign vectors.
    net = Network(7, [0, 1, 2, 3, 0, 3, 4, 5], [1, 2, 3, 0, 2, 4, 5, 6], [1.0, 2.0, 3.0, 4.0, 0.5, 1.5, 2.5, 0.0])
    pairs = np.array([[0, 2], [1, 3], [1, 5], [6, 0], [5, 6]])
    exact = network_distance(net, pairs, "resistance")
    est, stderr = sketch.mean_resistance_sketch(net, pairs, 64, _AllSigns(), resistance_solver=solver)
    assert est == pytest.approx(exact.mean(), rel=1e-12) and stderr > 0


@pytest.mark.parametrize("seed", range(4))
def test_mean_resistance_sketch_within_its_stated_error(seed):
    g, pairs = random_graph(500 + seed, zero_frac=0.05)
    net, pairs_Px2 = _index_pairs(g, pairs)
    exact = network_distance(net, pairs_Px2, "resistance")
    pairs_Px2 = pairs_Px2[np.isfinite(exact)]
    est, stderr = sketch.mean_resistance_sketch(net, pairs_Px2, 400, np.random.default_rng(seed))
    assert abs(est - exact[np.isfinite(exact)].mean()) < 5 * stderr


def test_mean_resistance_sketch_edge_cases():
    net = Network(5, [0, 1, 3], [1, 2, 4], [1.0, 0.0, 2.0])
    rng = np.random.default_rng(0)
    assert sketch.mean_resistance_sketch(net, [[0, 3]], 8, rng) == (np.inf, 0.0)
    assert sketch.mean_resistance_sketch(net, [[1, 2], [3, 3]], 8, rng) == (0.0, 0.0)
    # One edge: every sign gives the exact value, so the error is zero.
    est, stderr = sketch.mean_resistance_sketch(net, [[3, 4]], 8, rng)
    assert est == pytest.approx(2.0, rel=1e-12) and stderr == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        sketch.mean_resistance_sketch(net, [[0, 1]], 1, rng)
    with pytest.raises(ValueError, match="unknown resistance solver"):
        sketch.mean_resistance_sketch(net, [[0, 1]], 8, rng, resistance_solver="dense")


# --- graph input the solvers refuse, alike -------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("cls", [nx.DiGraph, nx.MultiDiGraph])
def test_a_directed_graph_is_refused_by_both_solvers(solver, cls):
    g = cls()
    g.add_edge("a", "b", variance=1.0)
    g.add_edge("b", "c", variance=1.0)
    with pytest.raises(ValueError, match=r"directed.*to_undirected"):
        inference_distance(g, [("a", "c")], "resistance", solver)
    # what the message suggests works, and both agree on it
    assert inference_distance(g.to_undirected(), [("a", "c")], "resistance", solver)[0] == pytest.approx(2.0)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("bad", ["2", b"2", True, np.bool_(False), [1.0]])
def test_a_non_numeric_variance_is_refused_naming_the_edge(solver, bad):
    g = nx.Graph()
    g.add_edge("a", "b", variance=1.0)
    g.add_edge("b", "c", variance=bad)
    with pytest.raises(ValueError, match=r"\('b', 'c'\) has no numeric 'variance'"):
        inference_distance(g, [("a", "c")], "resistance", solver)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("method", ["path", "resistance"])
@pytest.mark.parametrize("extreme", [1e308, 1e200, 1e-200, 1e-320])
def test_variances_outside_the_supported_range_are_refused_stating_it(solver, method, extreme):
    g = _graph([("a", "b", extreme), ("b", "c", extreme), ("a", "c", extreme)])
    with pytest.raises(ValueError, match=r"must lie in \[1e-150, 1e\+150\].*rescale"):
        inference_distance(g, [("a", "c")], method, solver)
    with pytest.raises(ValueError, match=r"edge 0 .*must lie in"):
        network_distance(Network(3, [0, 1, 0], [1, 2, 2], [extreme] * 3), [[0, 2]], method)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("scale", [1e-150, 1e-100, 1e100, 1e150])
def test_variances_at_the_ends_of_the_range_give_the_scaled_distance(solver, scale):
    # a triangle of equal variances s: resistance 2s/3 between any two corners, path s
    g = _graph([("a", "b", scale), ("b", "c", scale), ("a", "c", scale)])
    assert inference_distance(g, [("a", "c")], "resistance", solver)[0] == pytest.approx(2 * scale / 3, rel=1e-9)
    assert inference_distance(g, [("a", "c")], "path", solver)[0] == pytest.approx(scale, rel=1e-12)
