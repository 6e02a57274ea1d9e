"""Chain and tree samplers under equal budgets."""

import numpy as np
import pytest

from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, TreeShape
from rm_theory.world.topology import TreeSampling, annotation_tokens, make_dataset

SPACE = PrefixTreeSpace(V=4, L=6, num_prompts=5, seed=1)


@pytest.mark.parametrize("topology", ["chain", "tree"])
def test_exact_size_and_determinism(topology):
    a = make_dataset(SPACE, topology, 333, np.random.default_rng(0))
    b = make_dataset(SPACE, topology, 333, np.random.default_rng(0))
    assert len(a) == 333
    np.testing.assert_array_equal(a.a.data, b.a.data)
    np.testing.assert_array_equal(a.b.data, b.b.data)
    assert (a.a.prompt == a.b.prompt).all()


def test_tree_pairs_are_leaves_of_one_tree():
    sampling = TreeSampling(shape=TreeShape(B=2, D=3), pairs="all")
    c = make_dataset(SPACE, "tree", 280, np.random.default_rng(1), tree=sampling)
    # all 28 pairs of a tree's 8 leaves, tree after tree
    assert np.bincount(c.tree_P).tolist() == [28] * 10
    lcp = SPACE.shared_length(c.a, c.b)
    assert (lcp < SPACE.L).all()
    # pairs within one tree share its prompt
    for t in range(10):
        m = c.tree_P == t
        assert len(set(c.a.prompt[m]) | set(c.b.prompt[m])) == 1


def test_sampled_pairs_and_incomplete_fraction():
    sampling = TreeSampling(pairs="sampled", pairs_per_tree=5, incomplete_frac=0.4)
    c = make_dataset(SPACE, "tree", 4000, np.random.default_rng(2), tree=sampling)
    depth = np.concatenate([SPACE.depth(c.a), SPACE.depth(c.b)])
    assert (depth >= 1).all()
    # pairs differing only in the last token cannot be cut, so slightly fewer than 40%
    assert 0.3 < np.mean(depth < SPACE.L) <= 0.41
    assert not (c.a.data == c.b.data).all(axis=1).any()


def test_token_budget_buys_more_tree_comparisons():
    n = 500
    chain = make_dataset(SPACE, "chain", n, np.random.default_rng(3), budget="tokens")
    tree = make_dataset(SPACE, "tree", n, np.random.default_rng(3), budget="tokens")
    budget = 2 * SPACE.L * n
    assert annotation_tokens(SPACE, chain.a, chain.b, shared_prefix_once=False).sum() == budget
    spent = annotation_tokens(SPACE, tree.a, tree.b, shared_prefix_once=True)
    assert budget - 2 * SPACE.L < spent.sum() <= budget
    assert len(tree) > n


def test_shared_prefix_is_read_once():
    c = make_dataset(SPACE, "tree", 50, np.random.default_rng(4))
    lcp = SPACE.shared_length(c.a, c.b)
    np.testing.assert_array_equal(annotation_tokens(SPACE, c.a, c.b, True), 2 * SPACE.L - lcp)


def test_metric_geometry_trees_are_clusters():
    space = MetricSpace(num_prompts=3, tree_scale=0.05)
    tree = make_dataset(space, "tree", 200, np.random.default_rng(0))
    chain = make_dataset(space, "chain", 200, np.random.default_rng(0))
    dist = lambda c: np.linalg.norm(c.a.data - c.b.data, axis=1).mean()
    assert dist(tree) < 0.5 * dist(chain)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="topology"):
        make_dataset(SPACE, "star", 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="budget"):
        make_dataset(SPACE, "tree", 10, np.random.default_rng(0), budget="dollars")
