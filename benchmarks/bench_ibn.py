"""Benchmark of the inference-distance solvers (issue "Foundation and the IBN engine").

Run by hand, not a test:

    PYTHONPATH=. python benchmarks/bench_ibn.py --n 1000 10000 100000 --queries 1000 \
        --methods path resistance

For each n and topology (chain, tree) it builds an IBN (THEORY.md §2) with L = 10, V = 4 and
several prompts, draws query pairs (two independent responses to one random prompt), and times
the fast solvers of ``rm_theory.ibn.distance`` against the networkx reference. The reference is
timed on a subsample of the queries (``--ref-queries``) and scaled linearly to all queries; the
printout says so. Goals at n = 1e5 with 1000 queries: fast path >= 30x faster than the
reference and < 60 s; fast resistance < 60 s.

Graphs come from ``rm_theory.ibn.network.ibn_network`` and ``rm_theory.world.topology`` when those modules
provide them (``--source lead``), else from the self-contained generator below
(``--source own``: a random V-ary trie, IB parent-child edges of variance s_j^2, one HP edge of
variance xi^2 per comparison).

Legend: n comparisons, L depth, V branching, N nodes, P query pairs.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
import tracemalloc

import numpy as np

from rm_theory.ibn.distance import (
    Network,
    network_distance,
    reduce_network,
    reference_distance,
    to_networkx,
)


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    L: int = 10
    V: int = 4
    prompts: int = 8
    alpha: float = 1.0  # polynomial regime, Delta(k) = I (V^-alpha k - V^-alpha L)
    scale: float = 1.0  # I
    xi2: float = 4.0  # HP-edge variance
    tree_depths: int = 3  # D branching depths per response tree
    tree_branch: int = 2  # B children at each branching depth


def _increments(cfg: SynthConfig) -> np.ndarray:
    """s_j^2 for j = 1..L such that 2 sum_{j>k} s_j^2 = Delta(k) (THEORY.md §2)."""
    k = np.arange(cfg.L + 1)
    delta_K = cfg.scale * (cfg.V ** (-cfg.alpha * k) - cfg.V ** (-cfg.alpha * cfg.L))
    return (delta_K[:-1] - delta_K[1:]) / 2.0


def _chain_responses(n: int, cfg: SynthConfig, rng: np.random.Generator):
    prompt_P = rng.integers(0, cfg.prompts, n)
    tok_2nxL = rng.integers(0, cfg.V, (2 * n, cfg.L))
    return np.r_[prompt_P, prompt_P], tok_2nxL


def _tree_responses(n: int, cfg: SynthConfig, rng: np.random.Generator):
    """Response trees: branch into B distinct children at D random depths; all leaf pairs."""
    b, d = cfg.tree_branch, cfg.tree_depths
    leaves = b**d
    pairs_per_tree = leaves * (leaves - 1) // 2
    trees = -(-n // pairs_per_tree)
    prompt_T = rng.integers(0, cfg.prompts, trees)
    tok_TxL = rng.integers(0, cfg.V, (trees, cfg.L))
    tok_TxBxL = np.repeat(tok_TxL[:, None, :], leaves, axis=1)
    digits_BxD = np.stack(np.unravel_index(np.arange(leaves), (b,) * d), axis=1)
    for t in range(trees):
        depths = np.sort(rng.choice(cfg.L, d, replace=False))
        for i, j in enumerate(depths):
            child = rng.permutation(cfg.V)[:b]  # distinct siblings
            tok_TxBxL[t, :, j] = child[digits_BxD[:, i]]
            # Below a branching depth each subtree continues on its own random path.
            if i + 1 < d:
                lo, hi = j + 1, depths[i + 1]
            else:
                lo, hi = j + 1, cfg.L
            if hi > lo:
                sub = digits_BxD[:, : i + 1] @ (b ** np.arange(i, -1, -1))
                fill = rng.integers(0, cfg.V, (b ** (i + 1), hi - lo))
                tok_TxBxL[t, :, lo:hi] = fill[sub]
    ia, ib = np.triu_indices(leaves, 1)
    tree_P = np.repeat(np.arange(trees), pairs_per_tree)[:n]
    a_P = tree_P * leaves + np.tile(ia, trees)[:n]
    b_P = tree_P * leaves + np.tile(ib, trees)[:n]
    prompt_R = np.repeat(prompt_T, leaves)
    return prompt_R, tok_TxBxL.reshape(-1, cfg.L), a_P, b_P


def synthetic_ibn(
    n: int, topology: str, queries: int, cfg: SynthConfig, rng: np.random.Generator
) -> tuple[Network, np.ndarray]:
    """Trie IBN over compared and queried responses; returns network and query pairs (P x 2)."""
    if topology == "chain":
        prompt_R, tok_RxL = _chain_responses(n, cfg, rng)
        a_P, b_P = np.arange(n), np.arange(n, 2 * n)
    else:
        prompt_R, tok_RxL, a_P, b_P = _tree_responses(n, cfg, rng)
    q_prompt, q_tok = _chain_responses(queries, cfg, rng)
    r0 = prompt_R.size
    prompt_R = np.r_[prompt_R, q_prompt]
    tok_RxL = np.r_[tok_RxL, q_tok]
    # Node key of the depth-j prefix: (prompt, j, base-V code of the prefix).
    code_RxJ = np.zeros((tok_RxL.shape[0], cfg.L + 1), dtype=np.int64)
    for j in range(cfg.L):
        code_RxJ[:, j + 1] = code_RxJ[:, j] * cfg.V + tok_RxL[:, j]
    depth_J = np.arange(cfg.L + 1)
    key_RxJ = ((prompt_R[:, None] * (cfg.L + 1) + depth_J) * cfg.V**cfg.L) + code_RxJ
    keys, idx = np.unique(key_RxJ, return_inverse=True)
    idx_RxJ = idx.reshape(key_RxJ.shape)
    # Parent-child IB edges, one per distinct child.
    child = idx_RxJ[:, 1:].ravel()
    parent = idx_RxJ[:, :-1].ravel()
    depth = np.tile(np.arange(1, cfg.L + 1), tok_RxL.shape[0])
    child_u, first = np.unique(child, return_index=True)
    s2_J = _increments(cfg)
    u_ib, v_ib, var_ib = parent[first], child_u, s2_J[depth[first] - 1]
    leaf_R = idx_RxJ[:, -1]
    u_hp, v_hp = leaf_R[a_P], leaf_R[b_P]
    net = Network(
        num_nodes=keys.size,
        u_E=np.r_[u_ib, u_hp],
        v_E=np.r_[v_ib, v_hp],
        var_E=np.r_[var_ib, np.full(u_hp.size, cfg.xi2)],
        kind_E=np.r_[np.zeros(u_ib.size, np.int8), np.ones(u_hp.size, np.int8)],
    )
    q = np.arange(queries)
    pairs_Px2 = np.stack([leaf_R[r0 + q], leaf_R[r0 + queries + q]], axis=1)
    return net, pairs_Px2


def lead_ibn(n: int, topology: str, queries: int, seed: int) -> tuple[Network, np.ndarray]:
    """Graphs from the lead's modules: PrefixTreeSpace(L=10, V=4, 8 prompts), chain or tree data
    (B=2, D=3, all leaf pairs), query pairs = two reference-policy responses to one prompt."""
    from rm_theory.ibn.network import ibn_network
    from rm_theory.world.spaces import PrefixTreeSpace, Responses
    from rm_theory.world.topology import make_dataset

    rng = np.random.default_rng([seed, n])
    space = PrefixTreeSpace(V=4, L=10, num_prompts=8, seed=seed)
    comps = make_dataset(space, topology, n, rng)
    prompt_Q = rng.integers(0, space.num_prompts, queries)
    qa, qb = space.sample(rng, prompt_Q), space.sample(rng, prompt_Q)
    ibn = ibn_network(space, comps, Responses.concat([qa, qb]))
    return ibn.network, np.stack([ibn.node_q[:queries], ibn.node_q[queries:]], axis=1)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn, trace: bool):
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = 0.0
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out, dt, peak


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument(
        "--ref-queries", type=int, default=20, help="queries timed with networkx; its time is scaled to --queries"
    )
    ap.add_argument("--methods", nargs="+", default=["path", "resistance"])
    ap.add_argument("--topologies", nargs="+", default=["chain", "tree"])
    ap.add_argument("--source", choices=["auto", "own", "lead"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--trace-memory", action="store_true", help="tracemalloc peak of the fast solve (slows it a little)"
    )
    args = ap.parse_args(argv)
    cfg = SynthConfig()
    print(
        f"# machine: {sys.platform}; reference timed on {args.ref_queries} queries, scaled linearly to {args.queries}"
    )
    print(
        "topology       n  method      nodes     edges  kernel  fast_s    ref_s(scaled)  ratio"
        "   mean_d     peak_MiB  maxrss_MiB"
    )
    for n in args.n:
        for topology in args.topologies:
            rng = np.random.default_rng([args.seed, n])
            built = None
            if args.source in ("auto", "lead"):
                try:
                    built = lead_ibn(n, topology, args.queries, args.seed)
                except ImportError:
                    if args.source == "lead":
                        raise
            if built is None:
                built = synthetic_ibn(n, topology, args.queries, cfg, rng)
            net, pairs_Px2 = built
            graph = None
            kernel, _ = reduce_network(net, np.unique(pairs_Px2))
            for method in args.methods:
                d_P, t_fast, peak = _timed(
                    lambda net=net, pairs=pairs_Px2, method=method: network_distance(net, pairs, method),
                    args.trace_memory,
                )
                ref_s = float("nan")
                if args.ref_queries > 0:
                    if graph is None:
                        graph = to_networkx(net)
                    sub = pairs_Px2[: args.ref_queries]
                    t0 = time.perf_counter()
                    if method == "resistance" and net.num_nodes > 20_000:
                        # Dense pseudo-inverse of a 1e5-node component is out of reach.
                        ref_s = float("nan")
                    else:
                        d_ref = reference_distance(graph, [tuple(p) for p in sub.tolist()], method)
                        ref_s = (time.perf_counter() - t0) * args.queries / len(sub)
                        err = np.max(np.abs(d_ref - d_P[: len(sub)]) / np.abs(d_ref))
                        if err > 1e-6:
                            print(f"  !! fast and reference disagree: max rel err {err:.2e}")
                print(
                    f"{topology:8s} {n:7d}  {method:10s} {net.num_nodes:8d} {net.num_edges:8d} "
                    f"{kernel.num_nodes:7d} "
                    f"{t_fast:7.2f}  {ref_s:13.1f}  {ref_s / t_fast:6.1f}  "
                    f"{np.mean(d_P):9.5f}  {peak:9.1f}  {_maxrss_mib():9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
