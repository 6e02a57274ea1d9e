"""Chain and tree preference data sets under equal budgets (THEORY.md §2, paper §5 "tree-based data").

* chain: each comparison pairs two responses drawn independently from the reference policy for a
  random prompt;
* tree: for a prompt, draw a response tree (B children at D branch depths), compare pairs of its
  leaves (all pairs or a sample), optionally replacing a fraction of compared items by incomplete
  responses, until the budget is spent.

Budgets are equal numbers of comparisons, or equal annotation tokens: an annotator reads both
responses of a chain pair, but a tree pair's shared prefix only once (the paper's 21% shorter
annotation text comes from this).

Legend: P comparisons, G trees.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from rm_theory.world.spaces import Responses, ResponseSpace, TreeShape

Budget = Literal["comparisons", "tokens"]


TOPOLOGIES = ("chain", "tree")  # the two data recipes the paper compares (§3, §5)


@dataclasses.dataclass(frozen=True)
class Comparisons:
    """P comparisons between responses `a` and `b`; `tree_P` is −1 for chain pairs."""

    a: Responses
    b: Responses
    tree_P: np.ndarray

    def __len__(self) -> int:
        return len(self.tree_P)

    def take(self, idx) -> Comparisons:
        return Comparisons(self.a.take(idx), self.b.take(idx), self.tree_P[idx])


@dataclasses.dataclass(frozen=True)
class TreeSampling:
    """How tree data is drawn: the tree shape, which leaf pairs are compared, incomplete items."""

    shape: TreeShape = TreeShape()
    pairs: Literal["all", "sampled"] = "all"
    pairs_per_tree: int = 8
    incomplete_frac: float = 0.0


def annotation_tokens(space: ResponseSpace, a: Responses, b: Responses, shared_prefix_once: bool) -> np.ndarray:
    """Tokens an annotator reads per comparison (the prompt, common to both designs, is left out)."""
    total = space.length(a) + space.length(b)
    return total - space.shared_length(a, b) if shared_prefix_once else total


def sample_chain(
    space: ResponseSpace, n: int, rng: np.random.Generator, temperature: float | None = None
) -> Comparisons:
    prompt = rng.integers(0, space.num_prompts, size=n)
    a = space.sample(rng, prompt, temperature)
    b = space.sample(rng, prompt, temperature)
    return Comparisons(a, b, np.full(n, -1, dtype=np.int64))


def _tree_pairs(rng: np.random.Generator, T: int, S: int, sampling: TreeSampling) -> tuple[np.ndarray, np.ndarray]:
    """Leaf-slot pairs per tree as flat indices into the T·S leaves, tree-major."""
    if sampling.pairs == "all":
        i, j = np.triu_indices(S, k=1)
        i, j = np.tile(i, T), np.tile(j, T)
        tree = np.repeat(np.arange(T), S * (S - 1) // 2)
    elif sampling.pairs == "sampled":
        m = sampling.pairs_per_tree
        i = rng.integers(0, S, size=(T, m))
        j = (i + rng.integers(1, S, size=(T, m))) % S  # j ≠ i
        i, j, tree = i.ravel(), j.ravel(), np.repeat(np.arange(T), m)
    else:
        raise ValueError(f"unknown tree pair sampling {sampling.pairs!r}; expected 'all' or 'sampled'")
    return tree * S + i, tree * S + j


def sample_tree_data(
    space: ResponseSpace,
    rng: np.random.Generator,
    sampling: TreeSampling,
    *,
    n: int | None = None,
    token_budget: int | None = None,
) -> Comparisons:
    """Tree data with exactly `n` comparisons, or as many as fit in `token_budget` annotation tokens."""
    if (n is None) == (token_budget is None):
        raise ValueError("give exactly one of n and token_budget")
    parts: list[Comparisons] = []
    spent, count, next_tree = 0, 0, 0
    S = sampling.shape.B**sampling.shape.D
    per_tree = S * (S - 1) // 2 if sampling.pairs == "all" else sampling.pairs_per_tree
    while (n is not None and count < n) or (token_budget is not None and spent < token_budget):
        if n is not None:
            T = -(-(n - count) // per_tree)
        else:
            T = max(1, -(-(token_budget - spent) // (per_tree * 2)))
        trees = space.sample_trees(rng, rng.integers(0, space.num_prompts, size=T), sampling.shape)
        ia, ib = _tree_pairs(rng, T, trees.slots, sampling)
        a, b = trees.leaves.take(ia), trees.leaves.take(ib)
        if sampling.incomplete_frac > 0:
            # Cutting below the pair's common prefix would make the two items identical.
            lcp = space.shared_length(a, b) + 1
            a = space.truncate(a, rng, rng.random(len(ia)) < sampling.incomplete_frac, lcp)
            b = space.truncate(b, rng, rng.random(len(ib)) < sampling.incomplete_frac, lcp)
        batch = Comparisons(a, b, next_tree + ia // trees.slots)
        next_tree += T
        count += len(batch)
        spent += int(annotation_tokens(space, a, b, shared_prefix_once=True).sum())
        parts.append(batch)
    out = Comparisons(
        Responses.concat([p.a for p in parts]),
        Responses.concat([p.b for p in parts]),
        np.concatenate([p.tree_P for p in parts]),
    )
    if n is not None:
        return out.take(np.arange(n))
    cost = np.cumsum(annotation_tokens(space, out.a, out.b, shared_prefix_once=True))
    return out.take(np.arange(int(np.searchsorted(cost, token_budget, side="right"))))


def make_dataset(
    space: ResponseSpace,
    topology: Literal["chain", "tree"],
    n: int,
    rng: np.random.Generator,
    *,
    budget: Budget = "comparisons",
    tree: TreeSampling = TreeSampling(),
    temperature: float | None = None,
) -> Comparisons:
    """A data set of the given topology whose budget equals that of n chain comparisons."""
    if topology == "chain":
        return sample_chain(space, n, rng, temperature)
    if topology != "tree":
        raise ValueError(f"unknown topology {topology!r}; expected 'chain' or 'tree'")
    if budget == "comparisons":
        return sample_tree_data(space, rng, tree, n=n)
    if budget == "tokens":
        # The chain design reads two complete responses per comparison.
        probe = space.sample(np.random.default_rng(0), np.zeros(64, dtype=np.int64))
        return sample_tree_data(space, rng, tree, token_budget=int(2 * n * space.length(probe).mean()))
    raise ValueError(f"unknown budget {budget!r}; expected 'comparisons' or 'tokens'")
