"""Benchmark of the A-optimal design of comparisons (`rm_theory.ibn.design`, THEORY.md §2) at the
scale of an annotation campaign: 10^5 candidate responses and a budget of 10^4 comparisons.

Run by hand, not a test:

    PYTHONPATH=. python benchmarks/bench_design.py                  # pool 1e5, budget 1e4: ~10 min
    PYTHONPATH=. python benchmarks/bench_design.py --sections 1     # the large design alone: ~2 min
    PYTHONPATH=. python benchmarks/bench_design.py --quick          # pool 1e4, budget 1e3: ~15 s

(times on 2 CPU cores shared with other work, load 5-7; section 1 takes 108-138 s of design time,
exact greedy scaled to the same size ~34-47 min.)

World: `PrefixTreeSpace(V=4, L=12, 64 prompts)`. The pool is the leaves of response trees drawn
from the reference policy (B=2, D=3: 8 leaves a tree); the candidates are the leaf pairs within a
tree (the tree recipe's pairs, paper §3); the targets are independent pairs of reference-policy
responses to one prompt (what a policy must rank). One IBN of pool and targets with the prefix-trie
inductive-bias edges and no comparisons yet (`ibn.network.ibn_network`) is what the design sees,
as in `rm_theory.studies.design`.

Three tables:
1. large: the approximate design (`--targets-dim`, `--candidates`, `--resistance-dim`) at `--pool`
   and `--budget`: time, peak memory (peak_MiB: tracemalloc's peak of the design's Python and numpy
   allocations, SuperLU's factors not counted; maxrss_MiB: the whole process), mean target resistance
   before and after, and random pool pairs at the same budget.
2. exact greedy (targets_dim = candidates = resistance_dim = 0) timed on smaller pools
   (`--exact-pools`) with the budget scaled by pool/--pool, a power law t ∝ pool^p fitted to those
   times, and its value at `--pool` (the printout states the fit).
3. the approximation's error on a small pool: reduction of the mean target resistance by exact and by
   approximate greedy at equal budget (and by random pairs), and the relative error of the
   projected S_c against the exact S_c before the first choice.

Legend: N nodes, C candidates, T targets, K target directions.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np

from rm_theory.ibn import (
    DesignConfig,
    LabelVariance,
    add_hp_edges,
    design_comparisons,
    ibn_network,
    mean_resistance,
    target_sums,
)
from rm_theory.world import Comparisons, PrefixTreeSpace, Responses, TreeShape

PROMPTS, SHAPE = 64, TreeShape(B=2, D=3)


def world(pool: int, targets: int, seed: int):
    """(network, target node pairs T×2, candidate node pairs C×2) for a pool of about `pool` leaves."""
    rng = np.random.default_rng([seed, pool])
    space = PrefixTreeSpace(V=4, L=12, num_prompts=PROMPTS, seed=seed)
    S = SHAPE.B**SHAPE.D
    trees = max(1, pool // S)
    leaves = space.sample_trees(rng, rng.integers(0, PROMPTS, trees), SHAPE).leaves
    prompt_T = rng.integers(0, PROMPTS, targets)
    qa, qb = space.sample(rng, prompt_T), space.sample(rng, prompt_T)
    no_comps = Comparisons(leaves.take([]), leaves.take([]), np.zeros(0, np.int64))
    ibn = ibn_network(space, no_comps, Responses.concat([leaves, qa, qb]), LabelVariance("constant", xi2=4.0))
    ia, ib = np.triu_indices(S, 1)
    first = np.arange(trees)[:, None] * S
    cand = ibn.node_q[np.stack([(first + ia).ravel(), (first + ib).ravel()], 1)]
    cand = cand[cand[:, 0] != cand[:, 1]]  # two slots that drew the same response
    n = len(leaves)
    tg = np.stack([ibn.node_q[n + np.arange(targets)], ibn.node_q[n + targets + np.arange(targets)]], 1)
    tg = tg[tg[:, 0] != tg[:, 1]]
    return ibn.network, tg, cand, len(leaves)


def random_pairs(net, tg, cand, budget: int, xi2: float, seed: int) -> float:
    pick = np.random.default_rng(seed).choice(len(cand), min(budget, len(cand)), replace=False)
    return mean_resistance(add_hp_edges(net, cand[pick, 0], cand[pick, 1], xi2), tg)


def traced(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, dt, peak


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=100_000, help="candidate responses (tree leaves)")
    ap.add_argument("--budget", type=int, default=10_000, help="comparisons to choose")
    ap.add_argument("--batch", type=int, default=200, help="comparisons per round")
    ap.add_argument("--targets", type=int, default=1000, help="target query pairs")
    ap.add_argument("--targets-dim", type=int, default=32, help="k of the target projection (0: exact)")
    ap.add_argument("--candidates", type=int, default=100_000, help="candidates sampled per round (0: all)")
    ap.add_argument("--resistance-dim", type=int, default=32, help="k of the initial R_c sketch (0: exact)")
    ap.add_argument("--xi2", type=float, default=4.0)
    ap.add_argument("--exact-pools", type=int, nargs="+", default=[5000, 10_000, 20_000])
    ap.add_argument("--small-pool", type=int, default=2000, help="pool of the error measurement")
    ap.add_argument("--small-budget", type=int, default=200)
    ap.add_argument("--small-batch", type=int, default=50, help="rounds of the error measurement (several rounds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sections", type=int, nargs="+", default=[1, 2, 3], help="tables to print (each alone fits 10 min)"
    )
    ap.add_argument("--approx-seconds", type=float, help="section 1's design_s, for section 2's ratio when run apart")
    ap.add_argument(
        "--quick", action="store_true", help="pool 1e4, budget 1e3, 300 targets, smaller exact pools: under a minute"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.pool, args.budget, args.candidates, args.targets = 10_000, 1000, 10_000, 300
        args.exact_pools, args.small_pool, args.small_budget = [1000, 2000, 4000], 1000, 100
    approx = dict(targets_dim=args.targets_dim, candidates=args.candidates, resistance_dim=args.resistance_dim)
    print(f"# 2 CPU cores assumed; {load()}; seed {args.seed}; world PrefixTreeSpace(V=4, L=12, P={PROMPTS})")

    # 1. the approximate design at full size
    t0 = time.perf_counter()
    net, tg, cand, leaves = world(args.pool, args.targets, args.seed)
    build_s = time.perf_counter() - t0
    c_full, full_budget, secs = len(cand), min(args.budget, len(cand)), args.approx_seconds
    if 1 in args.sections:
        cfg = DesignConfig(budget=args.budget, batch=args.batch, xi2=args.xi2, seed=args.seed, **approx)
        d, secs, peak = traced(design_comparisons, net, tg, cand, cfg)
        rnd = random_pairs(net, tg, cand, args.budget, args.xi2, args.seed)
        print(f"\n## 1. approximate design: {approx}, batch {args.batch} ({load()})")
        print(
            "  pool  nodes      C     T budget rounds build_s design_s peak_MiB maxrss_MiB"
            "  R_before R_designed  R_random"
        )
        print(
            f"{leaves:6d} {net.num_nodes:6d} {len(cand):6d} {len(tg):5d} {len(d.chosen_B):6d}"
            f" {len(d.mean_resistance_R) - 1:6d} {build_s:7.1f} {secs:8.1f} {peak:8.0f}"
            f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:10.0f}"
            f" {d.mean_resistance_R[0]:9.4f} {d.mean_resistance_R[-1]:10.4f} {rnd:9.4f}",
            flush=True,
        )
    T_full = len(tg)
    del net, cand

    # 2. exact greedy on smaller pools, scaled
    if 2 in args.sections:
        print(f"\n## 2. exact greedy on smaller pools, budget = {args.budget}·pool/{args.pool} ({load()})")
        print("  pool      C  budget  exact_s approx_s")
        pools, times = [], []
        warm = world(500, 50, args.seed)  # first calls into scipy's solvers are not what is measured
        design_comparisons(*warm[:3], DesignConfig(budget=10, batch=args.batch, xi2=args.xi2))
        for p in args.exact_pools:
            net_p, tg_p, cand_p, leaves_p = world(p, args.targets, args.seed)
            b = max(1, round(args.budget * p / args.pool))
            ex = design_comparisons(net_p, tg_p, cand_p, DesignConfig(budget=b, batch=args.batch, xi2=args.xi2))
            kw = {**approx, "candidates": _scaled(args, cand_p, c_full)}
            ap_ = design_comparisons(net_p, tg_p, cand_p, DesignConfig(budget=b, batch=args.batch, xi2=args.xi2, **kw))
            pools.append(leaves_p)
            times.append(ex.seconds)
            print(f"{leaves_p:6d} {len(cand_p):6d} {b:6d} {ex.seconds:8.2f} {ap_.seconds:8.2f}", flush=True)
        slope, icept = np.polyfit(np.log(pools), np.log(times), 1)
        t_full = float(np.exp(icept) * leaves**slope)
        ratio = f", against {secs:.0f} s approximate ({t_full / secs:.1f}x)" if secs else ""
        # the slope between the two largest pools: the cost grows faster than the fit at the top
        last = np.log(times[-1] / times[-2]) / np.log(pools[-1] / pools[-2])
        t_last = times[-1] * (leaves / pools[-1]) ** last
        print(
            f"fit: exact_s = {np.exp(icept):.3g} · pool^{slope:.2f} (least squares on log-log over pools {pools},"
            f" budget ∝ pool); at pool {leaves}, budget {full_budget}: ~{t_full:.0f} s = {t_full / 60:.1f} min{ratio}"
        )
        print(
            f"     with the two largest pools' slope {last:.2f} instead: ~{t_last / 60:.1f} min;"
            f" exact greedy's C×T matrix (C={c_full}, T={T_full}) alone takes {c_full * T_full * 8 / 2**30:.1f} GiB"
        )

    # 3. the approximation's error on a small pool
    if 3 in args.sections:
        net_s, tg_s, cand_s, leaves_s = world(args.small_pool, args.targets, args.seed + 1)
        b = args.small_budget
        m = _scaled(args, cand_s, c_full)
        ex = design_comparisons(net_s, tg_s, cand_s, DesignConfig(budget=b, batch=args.small_batch, xi2=args.xi2))
        rows = [("exact greedy", ex)]
        for name, kw in [
            (f"targets_dim={args.targets_dim}", dict(targets_dim=args.targets_dim)),
            (f"candidates={m}", dict(candidates=m)),
            (f"resistance_dim={args.resistance_dim}", dict(resistance_dim=args.resistance_dim)),
            ("all three", {**approx, "candidates": m}),
        ]:
            dd = [
                design_comparisons(
                    net_s, tg_s, cand_s, DesignConfig(budget=b, batch=args.small_batch, xi2=args.xi2, **kw, seed=s)
                )
                for s in range(3)
            ]
            rows.append((name + " (3 seeds)", dd))
        r0 = ex.mean_resistance_R[0]
        red_rand = r0 - np.mean([random_pairs(net_s, tg_s, cand_s, b, args.xi2, s) for s in range(3)])
        print(
            f"\n## 3. error on a small pool: {leaves_s} responses, C={len(cand_s)}, T={len(tg_s)}, budget {b},"
            f" batch {args.small_batch}; candidates scaled to the large run's fraction ({load()})"
        )
        print(f"R_before {r0:.4f}")
        print("design                             R_after  reduction  of_exact  seconds")
        red_ex = r0 - ex.mean_resistance_R[-1]
        for name, dd in rows:
            dd = dd if isinstance(dd, list) else [dd]
            after = np.mean([x.mean_resistance_R[-1] for x in dd])
            sec = np.mean([x.seconds for x in dd])
            print(f"{name:32s} {after:9.4f} {r0 - after:10.4f} {(r0 - after) / red_ex:8.1%} {sec:8.2f}")
        print(f"{'random pairs (3 seeds)':32s} {r0 - red_rand:9.4f} {red_rand:10.4f} {red_rand / red_ex:8.1%}")
        s_exact = target_sums(net_s, tg_s, cand_s)
        ok = s_exact > 1e-12 * s_exact.max()
        print(f"projected S_c against exact S_c before the first choice ({ok.sum()} candidates with S_c > 0):")
        print("    k  median|rel err|  p90|rel err|  sqrt(2/k)  top-100 value")
        best = np.sort(s_exact)[-100:].sum()
        for k in sorted({8, args.targets_dim, 128}):
            s_k = target_sums(net_s, tg_s, cand_s, targets_dim=k, seed=args.seed)
            rel = np.abs(s_k[ok] - s_exact[ok]) / s_exact[ok]
            # exact S_c of the projection's top 100, against the best 100 (ties make overlap meaningless)
            value = s_exact[np.argsort(-s_k)[:100]].sum() / best
            print(f"{k:5d} {np.median(rel):15.3f} {np.quantile(rel, 0.9):13.3f} {np.sqrt(2 / k):10.3f} {value:14.1%}")
    print(f"\n# done ({load()})")


def _scaled(args, cand_p, c_full: int) -> int:
    """The large run's per-round candidate fraction, applied to a smaller pool (0 stays 0)."""
    if args.candidates <= 0:
        return 0
    return max(args.batch, round(args.candidates * len(cand_p) / c_full))


if __name__ == "__main__":
    main()
