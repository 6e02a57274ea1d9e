"""The prefix trie of a set of responses (THEORY.md §2, "Induced Bayesian network"): the one builder of
the IBN's inductive-bias edges (`ibn.network`) and of the exact learner's unknowns (`rm.bayes`).

A response's reward is the sum of independent increments along its prefixes, r(y) = Σ_u θ_u with
θ_u ~ N(0, s²_depth(u)), so between a prefix and its child the reward changes with variance s²_j.
Both the IBN and the exact posterior are built on these edges, and the identity they are checked
against (the exact posterior variance of r(a) − r(b) equals the IBN's effective resistance between a
and b) holds only if they read the same trie: here it is built once.

With `compress`, a unary chain of prefixes (a prefix with one child and no item on it) is one edge
whose variance is the chain's sum (the series law): every node kept is an item, a prompt root or a
branching prefix, and every distance between items is unchanged.

Legend: N items, L depth, F prefix nodes (below the roots: the trie's edges, each to its nearest kept
ancestor).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rm_theory.world.spaces import PrefixTreeSpace, Responses


@dataclasses.dataclass(frozen=True)
class PrefixTrie:
    """Node ids are the space's (`PrefixTreeSpace.node_ids`). `item_id_N`: each item's node (a prompt
    root for an empty response); `root_ids`: the items' prompt roots (sorted); `node_id_F`: every kept
    node below the roots (sorted), `parent_id_F` its nearest kept ancestor (a root where none is
    kept below it) at depth `parent_depth_F`, `var_F` the variance of the edge between them, `depth_F`
    its depth."""

    item_id_N: np.ndarray
    root_ids: np.ndarray
    node_id_F: np.ndarray
    parent_id_F: np.ndarray
    parent_depth_F: np.ndarray
    var_F: np.ndarray
    depth_F: np.ndarray

    @property
    def node_ids(self) -> np.ndarray:
        """Every node of the trie, roots included (sorted)."""
        return np.union1d(self.root_ids, self.node_id_F)


def prefix_trie(space: PrefixTreeSpace, items: Responses, compress: bool = True) -> PrefixTrie:
    """The trie of `items`' prefixes; with `compress`, only items, roots and branching prefixes kept."""
    ids_NxL1 = space.node_ids(items)
    depth_N = space.depth(items)
    item_id_N = ids_NxL1[np.arange(len(items)), depth_N]
    valid = ids_NxL1 >= 0
    if compress:
        child, first = np.unique(ids_NxL1[:, 1:][valid[:, 1:]], return_index=True)
        parent = ids_NxL1[:, :-1][valid[:, 1:]][first]
        parents, counts = np.unique(parent, return_counts=True)
        keep = valid & np.isin(ids_NxL1, np.union1d(item_id_N, parents[counts >= 2]))
    else:
        keep = valid
    cum = space.cum_s2
    # each item's nearest kept ancestor so far (its root at first), and that ancestor's depth
    last_N, last_depth_N = ids_NxL1[:, 0].copy(), np.zeros(len(items), dtype=np.int64)
    node, parent_id, parent_depth, var, depth = [], [], [], [], []
    for j in range(1, space.L + 1):
        m = keep[:, j]
        node.append(ids_NxL1[m, j])
        parent_id.append(last_N[m])
        parent_depth.append(last_depth_N[m])
        var.append(cum[j] - cum[last_depth_N[m]])
        depth.append(np.full(int(m.sum()), j))
        last_N[m], last_depth_N[m] = ids_NxL1[m, j], j
    node_id_F, first = np.unique(np.concatenate(node), return_index=True)  # each node has one parent
    return PrefixTrie(
        item_id_N=item_id_N,
        root_ids=np.unique(ids_NxL1[:, 0]),
        node_id_F=node_id_F,
        parent_id_F=np.concatenate(parent_id)[first],
        parent_depth_F=np.concatenate(parent_depth)[first],
        var_F=np.concatenate(var)[first],
        depth_F=np.concatenate(depth)[first],
    )
