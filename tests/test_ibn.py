"""IBN construction: the prior through the trie, HP edges, compression, networkx agreement."""

import networkx as nx
import numpy as np
import pytest
from scipy import special

from rm_theory.ibn import LabelVariance, build_ibn, hp_variance, ibn_network, inference_distance, item_labels
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace
from rm_theory.world.topology import TreeSampling, make_dataset

SPACE = PrefixTreeSpace(V=3, L=5, num_prompts=2, regime="logarithmic", alpha=0.7, seed=4)


def _queries(space, rng, m=12):
    return space.sample(rng, rng.integers(0, space.num_prompts, size=2 * m))


def _pairs(ibn, m):
    return np.stack([ibn.node_q[:m], ibn.node_q[m:]], axis=1)


@pytest.mark.parametrize("method", ["path", "resistance"])
def test_zero_comparisons_give_the_prior_delta_of_the_common_depth(method):
    rng = np.random.default_rng(0)
    q = _queries(SPACE, rng)
    ibn = ibn_network(SPACE, make_dataset(SPACE, "chain", 0, rng), q)
    d = ibn.distance(_pairs(ibn, 12), method)
    a, b = q.take(np.arange(12)), q.take(np.arange(12, 24))
    same = a.prompt == b.prompt
    np.testing.assert_allclose(d[same], SPACE.delta_k[SPACE.shared_length(a, b)][same], rtol=1e-12)
    assert np.isinf(d[~same]).all()  # different prompts: no path


@pytest.mark.parametrize("topology", ["chain", "tree"])
def test_fast_compressed_equals_networkx_reference(topology):
    rng = np.random.default_rng(1)
    comps = make_dataset(SPACE, topology, 40, rng, tree=TreeSampling(incomplete_frac=0.3))
    q = _queries(SPACE, rng)
    lv = LabelVariance("fisher", beta=2.0)
    graph = build_ibn(SPACE, comps, q, lv)
    labels = item_labels(SPACE, q)
    pairs = list(zip(labels[:12], labels[12:], strict=True))
    ibn = ibn_network(SPACE, comps, q, lv)
    assert ibn.network.num_nodes < graph.number_of_nodes()  # compression removed unary prefixes
    for method in ("path", "resistance"):
        ref = inference_distance(graph, pairs, method, solver="reference")
        np.testing.assert_allclose(inference_distance(graph, pairs, method), ref, rtol=1e-9)
        np.testing.assert_allclose(ibn.distance(_pairs(ibn, 12), method), ref, rtol=1e-9)


def test_graph_has_all_prefixes_and_edge_kinds():
    rng = np.random.default_rng(2)
    comps = make_dataset(SPACE, "chain", 7, rng)
    g = build_ibn(SPACE, comps)
    assert isinstance(g, nx.Graph)
    for resp in (comps.a, comps.b):
        for label in item_labels(SPACE, resp):
            for j in range(1, len(label) + 1):
                assert label[:j] in g  # (prompt, t_1 .. t_j)
    kinds = [k for _, _, k in g.edges(data="kind")]
    assert kinds.count("hp") == int((~(comps.a.data == comps.b.data).all(1)).sum())
    for u, v, data in g.edges(data=True):
        if data["kind"] == "ib":
            child = u if len(u) > len(v) else v
            assert data["variance"] == pytest.approx(SPACE.s2_L[len(child) - 2])


def test_adding_a_comparison_never_increases_a_distance():
    rng = np.random.default_rng(3)
    comps = make_dataset(SPACE, "chain", 30, rng)
    q = _queries(SPACE, rng)
    before = ibn_network(SPACE, comps.take(np.arange(29)), q)
    after = ibn_network(SPACE, comps, q)
    for method in ("path", "resistance"):
        d0, d1 = before.distance(_pairs(before, 12), method), after.distance(_pairs(after, 12), method)
        assert (d1 <= d0 + 1e-12).all()
    assert (after.distance(_pairs(after, 12), "resistance") <= after.distance(_pairs(after, 12), "path") + 1e-12).all()


def test_one_comparison_acts_as_a_parallel_resistor():
    space = PrefixTreeSpace(V=2, L=3, num_prompts=1, seed=0)
    comps = make_dataset(space, "chain", 1, np.random.default_rng(5))
    while space.shared_length(comps.a, comps.b)[0] == space.L:
        comps = make_dataset(space, "chain", 1, np.random.default_rng(int(comps.a.data.sum()) + 7))
    ibn = ibn_network(space, comps, None, LabelVariance("constant", 0.3))
    prior = space.delta_k[space.shared_length(comps.a, comps.b)[0]]
    pair = np.array([[ibn.node_a_P[0], ibn.node_b_P[0]]])
    assert ibn.distance(pair, "resistance")[0] == pytest.approx(1 / (1 / prior + 1 / 0.3))
    assert ibn.distance(pair, "path")[0] == pytest.approx(min(prior, 0.3))


def test_fisher_variance_is_inverse_bradley_terry_information():
    rng = np.random.default_rng(6)
    comps = make_dataset(SPACE, "chain", 50, rng)
    beta = 1.7
    gap = SPACE.gold_reward(comps.a) - SPACE.gold_reward(comps.b)
    p = special.expit(beta * gap)
    np.testing.assert_allclose(
        hp_variance(SPACE, comps, LabelVariance("fisher", beta=beta)), 1 / (beta**2 * p * (1 - p)), rtol=1e-9
    )
    with pytest.raises(ValueError, match="label-variance model"):
        hp_variance(SPACE, comps, LabelVariance("gaussian"))


def test_metric_ibn_matches_reference():
    space = MetricSpace(num_prompts=2, knn=4, seed=1)
    rng = np.random.default_rng(7)
    comps = make_dataset(space, "tree", 30, rng)
    q = space.sample(rng, np.tile([0, 1], 6))  # pair i and i + 6 share a prompt
    g = build_ibn(space, comps, q)
    labels = item_labels(space, q)
    pairs = list(zip(labels[:6], labels[6:], strict=True))
    ibn = ibn_network(space, comps, q)
    for method in ("path", "resistance"):
        ref = inference_distance(g, pairs, method, solver="reference")
        assert np.isfinite(ref).all()
        np.testing.assert_allclose(ibn.distance(_pairs(ibn, 6), method), ref, rtol=1e-9)
