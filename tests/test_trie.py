"""The prefix trie (`world.trie`): every prefix of every item with its increment's variance, unary
chains compressed by the series law, and one trie read by both the IBN and the exact learner (the
identity exact posterior variance = IBN resistance rests on it)."""

from __future__ import annotations

import numpy as np
import pytest

from rm_theory.ibn import LabelVariance, ibn_network
from rm_theory.rm import bayes
from rm_theory.world import PrefixTreeSpace, Responses, TreeSampling, make_dataset, prefix_trie

SPACE = PrefixTreeSpace(V=3, L=5, num_prompts=3, seed=2)


def _data(seed: int):
    """Tree data with incomplete responses (items of several depths) and independent queries."""
    rng = np.random.default_rng(seed)
    comps = make_dataset(SPACE, "tree", 30, rng, tree=TreeSampling(incomplete_frac=0.5))
    queries = SPACE.sample(rng, rng.integers(0, SPACE.num_prompts, 8))
    return comps, queries, Responses.concat([comps.a, comps.b, queries])


@pytest.mark.parametrize("seed", range(4))
def test_the_full_trie_is_every_prefix_with_its_increment(seed):
    items = _data(seed)[2]
    ids_NxL1, depth_N = SPACE.node_ids(items), SPACE.depth(items)
    edges = {}  # node -> (parent, depth); enumerated prefix by prefix
    for n in range(len(items)):
        for j in range(1, depth_N[n] + 1):
            edges[ids_NxL1[n, j]] = (ids_NxL1[n, j - 1], j)
    trie = prefix_trie(SPACE, items, compress=False)
    assert trie.node_id_F.tolist() == sorted(edges)
    assert trie.parent_id_F.tolist() == [edges[u][0] for u in trie.node_id_F]
    assert trie.depth_F.tolist() == [edges[u][1] for u in trie.node_id_F]
    np.testing.assert_array_equal(trie.parent_depth_F, trie.depth_F - 1)
    np.testing.assert_allclose(trie.var_F, SPACE.s2_L[trie.depth_F - 1], rtol=1e-12)
    np.testing.assert_array_equal(trie.item_id_N, ids_NxL1[np.arange(len(items)), depth_N])
    np.testing.assert_array_equal(trie.root_ids, np.unique(ids_NxL1[:, 0]))


@pytest.mark.parametrize("seed", range(4))
def test_compression_keeps_items_and_branches_and_sums_the_chains(seed):
    items = _data(seed)[2]
    full, trie = prefix_trie(SPACE, items, compress=False), prefix_trie(SPACE, items, compress=True)
    parent = dict(zip(full.node_id_F.tolist(), full.parent_id_F.tolist(), strict=True))
    var = dict(zip(full.node_id_F.tolist(), full.var_F.tolist(), strict=True))
    children = np.unique(full.parent_id_F, return_counts=True)
    branching = {int(u) for u, c in zip(*children, strict=True) if c >= 2}
    roots = set(full.root_ids.tolist())
    kept = (set(full.item_id_N.tolist()) | branching) - roots
    assert trie.node_id_F.tolist() == sorted(kept)
    for u, p, v in zip(trie.node_id_F.tolist(), trie.parent_id_F.tolist(), trie.var_F.tolist(), strict=True):
        chain, x = var[u], parent[u]
        while x not in kept and x not in roots:  # the unary chain up to the nearest kept ancestor
            chain, x = chain + var[x], parent[x]
        assert p == x and v == pytest.approx(chain, rel=1e-12)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_the_ibn_and_the_exact_learner_read_one_trie(seed, compress):
    comps, queries, items = _data(seed)
    ibn = ibn_network(SPACE, comps, queries, LabelVariance("constant", 1.0), compress=compress)
    net, ids = ibn.network, np.asarray(ibn.labels)
    ib = net.kind_E == 0
    roots = set(prefix_trie(SPACE, items, compress).root_ids.tolist())
    # each IB edge child -> (its parent, or None at a prompt root, where the learner fixes r = 0; variance)
    from_ibn = {
        int(ids[u]): (None if int(ids[v]) in roots else int(ids[v]), w)
        for u, v, w in zip(net.u_E[ib], net.v_E[ib], net.var_E[ib], strict=True)
    }
    nodes = bayes.prefix_nodes(SPACE, items, compress)
    from_learner = {
        int(u): (None if p < 0 else int(nodes.node_id_F[p]), w)
        for u, p, w in zip(nodes.node_id_F, nodes.parent_F, nodes.var_F, strict=True)
    }
    assert from_ibn == from_learner
