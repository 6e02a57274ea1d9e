"""Query distributions over response pairs, on which inference distances are averaged (THEORY.md §2).

* independent: two independent responses from the reference policy for a random prompt;
* depth{k}: pairs whose longest common prefix has depth exactly k (prefix-tree geometry);
* low_temp: independent pairs from the policy at a low temperature;
* best_of_n: every pair inside sets of N candidates for one prompt (what Best-of-N must rank);
* in_tree: two leaves of one fresh response tree (in-distribution for tree data).

Legend: Q pairs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rm_theory.world.spaces import PrefixTreeSpace, Responses, ResponseSpace
from rm_theory.world.topology import TreeSampling


@dataclasses.dataclass(frozen=True)
class QuerySpec:
    num_pairs: int = 256
    kinds: tuple[str, ...] = ("independent", "depth", "low_temp", "best_of_n", "in_tree")
    depths: tuple[int, ...] = (0, 1, 3, 6)
    low_temperature: float = 0.3
    bon_candidates: int = 16


def sample_query_sets(
    space: ResponseSpace, spec: QuerySpec, rng: np.random.Generator, tree: TreeSampling
) -> dict[str, tuple[Responses, Responses]]:
    """Named query sets of (a, b) pairs; `depth` expands to one set per depth."""
    Q = spec.num_pairs
    prompts = lambda m: rng.integers(0, space.num_prompts, size=m)
    out: dict[str, tuple[Responses, Responses]] = {}
    for kind in spec.kinds:
        if kind == "independent":
            p = prompts(Q)
            out[kind] = (space.sample(rng, p), space.sample(rng, p))
        elif kind == "depth":
            if not isinstance(space, PrefixTreeSpace):
                continue  # common-prefix depth exists only in the prefix-tree geometry
            for k in spec.depths:
                if k < space.L:
                    out[f"depth{k}"] = space.sample_with_common_depth(rng, prompts(Q), k)
        elif kind == "low_temp":
            p = prompts(Q)
            out[kind] = (space.sample(rng, p, spec.low_temperature), space.sample(rng, p, spec.low_temperature))
        elif kind == "best_of_n":
            N = spec.bon_candidates
            sets = max(1, Q // (N * (N - 1) // 2))
            cand = space.sample(rng, np.repeat(prompts(sets), N))
            i, j = np.triu_indices(N, k=1)
            base = np.repeat(np.arange(sets) * N, len(i))
            out[kind] = (cand.take(base + np.tile(i, sets)), cand.take(base + np.tile(j, sets)))
        elif kind == "in_tree":
            trees = space.sample_trees(rng, prompts(Q), tree.shape)
            S = trees.slots
            i = rng.integers(0, S, size=Q)
            j = (i + rng.integers(1, S, size=Q)) % S
            base = np.arange(Q) * S
            out[kind] = (trees.leaves.take(base + i), trees.leaves.take(base + j))
        else:
            raise ValueError(f"unknown query kind {kind!r}; expected one of {QuerySpec.kinds}")
    return out


def stack_queries(sets: dict[str, tuple[Responses, Responses]]) -> tuple[Responses, dict[str, np.ndarray]]:
    """All query items in one batch, and each set's pairs as indices into it (`pairs_Qx2`)."""
    parts, index, offset = [], {}, 0
    for name, (a, b) in sets.items():
        q = len(a)
        parts += [a, b]
        index[name] = np.stack([offset + np.arange(q), offset + q + np.arange(q)], axis=1)
        offset += 2 * q
    return Responses.concat(parts), index
