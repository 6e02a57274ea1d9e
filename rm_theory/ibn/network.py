"""Induced Bayesian networks of preference data sets (THEORY.md §2, paper §4).

Nodes are every compared or queried response and, in the prefix-tree geometry, all of their
prefixes. Inductive-bias ("ib") edges join a prefix to its child with variance s_j², so inference
through the tree alone between two responses costs Δ(depth of their common prefix); in the metric
geometry they join each point to its k nearest neighbours with variance κ_p·c·dist^γ (κ_p below).
Human-preference ("hp") edges join the two items of each comparison with the label's variance ξ².

The metric geometry's prior, calibrated. The field's variogram is Var[r(x) − r(y)] = c·|x − y|^γ
(`MetricSpace`), and one edge of variance c·d^γ alone would give its two ends exactly that. But the
k-NN graph joins each point to k or more others and the prior variance of a difference is the
effective resistance, over every parallel path: by Foster's theorem Σ_e R_eff(e)/r_e = N − 1 over the
E edges of a connected graph of N nodes, so across a typical edge R_eff ≈ (N − 1)/E·r_e ≈ 2/(mean
degree)·r_e, a fifth of the variogram at k = 8; between points farther apart the shortfall grows (in
two dimensions a graph's resistance grows like log h, the variogram like h^γ). Uncalibrated, the IBN's
mean resistance was 0.06 of the exact GP posterior variance (`rm.gp`). So every IB edge of prompt p is
scaled by one factor, chosen so that the prompt's IB graph reproduces the variogram on average over
pairs of its own points (method of moments):

    κ_p = Σ_i c·h_i^γ / Σ_i R_i^IB,   over `CALIBRATION_PAIRS` pairs i drawn uniformly from p's points,

with h_i their distance and R_i^IB their resistance in the IB graph with edges c·d^γ (pairs in
different components of a disconnected k-NN graph are left out). One factor per prompt keeps the
order of the prior's resistances; κ grows with the density of points (about 11 at 2,000 points over
16 prompts, 17 at 8,000: the finer the graph, the more parallel paths). The pairs are drawn from a
generator seeded by the prompt and its number of points, so the network is a function of its items.

`ibn_network` builds the array form used by the fast solvers. Its IB edges are the prefix trie of
`world.trie`, the one the exact learner (`rm.bayes`) is built on. By default it compresses the trie
to the items, the roots and the branching prefixes (a unary chain of prefixes is one series
resistor), which leaves every inference distance between items unchanged. `build_ibn` returns the
uncompressed networkx graph.

Legend: N items, L depth, P comparisons, Q query pairs, E edges, F prefix nodes (below the roots).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import networkx as nx
import numpy as np
from scipy import spatial

from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import HP, IB, Network, to_networkx
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses, ResponseSpace
from rm_theory.world.topology import Comparisons
from rm_theory.world.trie import prefix_trie

# Pairs per prompt that calibrate the metric geometry's IB edges (module docstring): a prompt's factor
# varies by 1-1.5% (s.d.) over draws of its 256 pairs (n = 1,024 and 4,096 chain comparisons, 16 prompts).
CALIBRATION_PAIRS = 256


@dataclasses.dataclass(frozen=True)
class LabelVariance:
    """Variance ξ² of a human-preference edge.

    constant: ξ² for every comparison. fisher: the inverse Fisher information of one
    Bradley–Terry label at the true gap, 1/(β² p(1−p)) with p = σ(β Δr*), so near-ties inform most.
    """

    model: Literal["constant", "fisher"] = "constant"
    xi2: float = 4.0
    beta: float = 1.0


def hp_variance(space: ResponseSpace, comps: Comparisons, lv: LabelVariance) -> np.ndarray:
    if lv.model == "constant":
        if not lv.xi2 > 0:
            raise ValueError(f"xi2 must be positive, got {lv.xi2}")
        return np.full(len(comps), float(lv.xi2))
    if lv.model == "fisher":
        x = lv.beta * (space.gold_reward(comps.a) - space.gold_reward(comps.b))
        # 1/(p(1−p)) = 2 + 2 cosh(x), exact and finite where p(1−p) would underflow.
        return (2.0 + 2.0 * np.cosh(np.clip(x, -700.0, 700.0))) / lv.beta**2
    raise ValueError(f"unknown label-variance model {lv.model!r}; expected 'constant' or 'fisher'")


@dataclasses.dataclass(frozen=True)
class IBN:
    """An IBN in array form, with the node index of every comparison item and query item."""

    network: Network
    node_a_P: np.ndarray
    node_b_P: np.ndarray
    node_q: np.ndarray
    labels: list

    def distance(self, pairs_Qx2: np.ndarray, method: Literal["path", "resistance"] = "resistance") -> np.ndarray:
        return network_distance(self.network, pairs_Qx2, method)


def _metric(space: MetricSpace, items: Responses):
    """IB edges of the k-nearest-neighbour graph of the distinct points of each prompt."""
    key = np.concatenate([items.prompt[:, None].astype(np.float64), items.data], axis=1)
    uniq, item_node = np.unique(key, axis=0, return_inverse=True)
    u, v = [], []
    for p in np.unique(uniq[:, 0]):
        idx = np.flatnonzero(uniq[:, 0] == p)
        k = min(space.knn, len(idx) - 1)
        if k < 1:
            continue
        _, nb = spatial.cKDTree(uniq[idx, 1:]).query(uniq[idx, 1:], k=k + 1)
        u.append(np.repeat(idx, k))
        v.append(idx[nb[:, 1:].ravel()])
    u = np.concatenate(u) if u else np.zeros(0, np.int64)
    v = np.concatenate(v) if v else np.zeros(0, np.int64)
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    edges = np.unique(np.stack([lo, hi], axis=1), axis=0)
    dist = np.linalg.norm(uniq[edges[:, 0], 1:] - uniq[edges[:, 1], 1:], axis=1)
    var = space.c * dist**space.gamma
    kappa_N = _variogram_calibration(uniq, edges[:, 0], edges[:, 1], var, space.c, space.gamma)
    return item_node.ravel(), uniq, edges[:, 0], edges[:, 1], kappa_N[edges[:, 0]] * var


def _variogram_calibration(
    uniq: np.ndarray, u_E: np.ndarray, v_E: np.ndarray, var_E: np.ndarray, c: float, gamma: float
) -> np.ndarray:
    """κ of each point's prompt (module docstring): the variogram's mean over the resistance's mean
    on pairs of the prompt's points in the IB graph `var_E`; 1 where a prompt has no such pair."""
    prompt_N = uniq[:, 0]
    pairs = []
    for p in np.unique(prompt_N):
        idx = np.flatnonzero(prompt_N == p)
        if len(idx) < 2:
            continue
        g = np.random.default_rng([int(p), len(idx)])
        a, b = g.choice(idx, CALIBRATION_PAIRS), g.choice(idx, CALIBRATION_PAIRS)
        pairs.append(np.stack([a, b], axis=1)[a != b])
    kappa_N = np.ones(len(uniq))
    if not pairs:
        return kappa_N
    pairs_Qx2 = np.concatenate(pairs)
    net = Network(len(uniq), u_E, v_E, var_E, np.full(len(u_E), IB, np.int8))
    r_Q = network_distance(net, pairs_Qx2, "resistance")
    h_Q = np.linalg.norm(uniq[pairs_Qx2[:, 0], 1:] - uniq[pairs_Qx2[:, 1], 1:], axis=1)
    ok = np.isfinite(r_Q) & (r_Q > 0)
    prompt_Q = prompt_N[pairs_Qx2[:, 0]]
    for p in np.unique(prompt_Q[ok]):
        m = ok & (prompt_Q == p)
        kappa_N[prompt_N == p] = (c * h_Q[m] ** gamma).sum() / r_Q[m].sum()
    return kappa_N


def ibn_network(
    space: ResponseSpace,
    comps: Comparisons,
    queries: Responses | None = None,
    label_variance: LabelVariance = LabelVariance(),
    compress: bool = True,
) -> IBN:
    """The IBN of a data set (plus query items as nodes) in array form."""
    parts = [comps.a, comps.b] + ([queries] if queries is not None else [])
    items = Responses.concat(parts)
    P = len(comps)
    if isinstance(space, PrefixTreeSpace):
        trie = prefix_trie(space, items, compress)
        nodes = trie.node_ids
        item_node = np.searchsorted(nodes, trie.item_id_N)
        ib_u, ib_v, ib_var = (
            np.searchsorted(nodes, trie.node_id_F),
            np.searchsorted(nodes, trie.parent_id_F),
            trie.var_F,
        )
        labels = nodes.tolist()
    elif isinstance(space, MetricSpace):
        item_node, uniq, ib_u, ib_v, ib_var = _metric(space, items)
        labels = [tuple(row) for row in uniq.tolist()]
    else:
        raise TypeError(f"no IBN construction for {type(space).__name__}")
    a, b = item_node[:P], item_node[P : 2 * P]
    hp_var = hp_variance(space, comps, label_variance)
    distinct = a != b  # a response compared with itself carries no information about differences
    net = Network(
        num_nodes=len(labels),
        u_E=np.concatenate([ib_u, a[distinct]]),
        v_E=np.concatenate([ib_v, b[distinct]]),
        var_E=np.concatenate([ib_var, hp_var[distinct]]),
        kind_E=np.concatenate([np.full(len(ib_u), IB), np.full(int(distinct.sum()), HP)]).astype(np.int8),
    )
    return IBN(network=net, node_a_P=a, node_b_P=b, node_q=item_node[2 * P :], labels=labels)


def node_label(space: ResponseSpace, node_id) -> tuple:
    """A readable node label: (prompt, *prefix tokens) or (prompt, *coordinates)."""
    if isinstance(space, PrefixTreeSpace):
        per_prompt = (space.V ** (space.L + 1) - 1) // (space.V - 1)
        prompt, rest = divmod(int(node_id), per_prompt)
        depth = 0
        while rest >= (space.V ** (depth + 1) - 1) // (space.V - 1):
            depth += 1
        value = rest - (space.V**depth - 1) // (space.V - 1)
        tokens = [(value // space.V ** (depth - 1 - j)) % space.V for j in range(depth)]
        return (prompt, *tokens)
    return tuple(node_id)


def build_ibn(
    space: ResponseSpace,
    comps: Comparisons,
    queries: Responses | None = None,
    label_variance: LabelVariance = LabelVariance(),
) -> nx.MultiGraph:
    """The uncompressed IBN as a networkx MultiGraph (one "hp" edge per comparison).

    Nodes are labelled (prompt, *prefix tokens) in the prefix-tree geometry and
    (prompt, *coordinates) in the metric one; edges carry `variance` and `kind` ("ib" or "hp").
    """
    ibn = ibn_network(space, comps, queries, label_variance, compress=False)
    return to_networkx(ibn.network, labels=[node_label(space, n) for n in ibn.labels])


def item_labels(space: ResponseSpace, resp: Responses) -> list[tuple]:
    """The `build_ibn` node label of each response."""
    if isinstance(space, PrefixTreeSpace):
        return [(int(p), *[int(t) for t in row if t >= 0]) for p, row in zip(resp.prompt, resp.data, strict=True)]
    return [(float(p), *map(float, row)) for p, row in zip(resp.prompt, resp.data, strict=True)]
