"""Benchmark of the exact Bayesian learner (rm.bayes) against the IBN resistance solver on the same network.

Run by hand, not a test:

    PYTHONPATH=. python benchmarks/bench_bayes.py --n 65536 --queries 1000 --topologies chain tree

For each topology it draws n comparisons with Bradley–Terry labels in the prefix-tree world (V = 4,
L = 10, 16 prompts; THEORY.md §2) and 1000 independent query pairs, then, each step in its own
process so that peak memory (max RSS) is its own:

* exact: the Laplace fit (sparse Newton on the prefix-node system, THEORY.md §2 "Labels") and the
  posterior variances of the query pairs;
* ibn: the IBN of the same data and queries whose preference edges have variance 1/(β² p̂(1 − p̂)) at
  the exact learner's MAP, and its effective resistances (`rm_theory.ibn.network_distance`).

The two answers are the same quantity (the identity the tests check on small spaces); the printout
gives both times, the ratio, peak memory, and their largest relative difference at this size.

Legend: n comparisons, Q query pairs, F unknowns of the exact learner.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

import numpy as np


def _world(n: int, topology: str, queries: int, L: int, seed: int):
    from rm_theory.world import LabelConfig, PrefixTreeSpace, Responses, label_comparisons, make_dataset

    space = PrefixTreeSpace(V=4, L=L, num_prompts=16)
    rng = np.random.default_rng(seed)
    comps = make_dataset(space, topology, n, rng)
    labels = label_comparisons(space, comps, LabelConfig(beta=1.0), rng)
    qa = space.sample(rng, rng.integers(0, space.num_prompts, queries))
    qb = space.sample(rng, qa.prompt)
    pairs = np.stack([np.arange(queries), queries + np.arange(queries)], axis=1)
    return space, comps, labels, Responses.concat([qa, qb]), pairs


def _exact(args, out):
    from rm_theory.rm import bayes

    space, comps, labels, items, pairs = _world(*args)
    t0 = time.perf_counter()
    fit = bayes.fit(space, comps.a, comps.b, labels.better_P, queries=items)
    t1 = time.perf_counter()
    var_Q = fit.posterior.pair_variance(fit.query_index(pairs))
    t2 = time.perf_counter()
    out.put(
        {
            "fit_s": t1 - t0,
            "var_s": t2 - t1,
            "F": fit.posterior.nodes.F,
            "newton": fit.posterior.newton_steps,
            "solver": fit.posterior.solver.method,
            "w_P": fit.posterior.w_P,
            "var_Q": var_Q,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _ibn(args, w_P, out):
    from rm_theory.ibn import HP, LabelVariance, Network, ibn_network, network_distance

    space, comps, _, items, pairs = _world(*args)
    t0 = time.perf_counter()
    ibn = ibn_network(space, comps, items, LabelVariance("constant", 1.0))
    var_E = ibn.network.var_E.copy()
    var_E[ibn.network.kind_E == HP] = 1.0 / w_P[ibn.node_a_P != ibn.node_b_P]
    net = Network(ibn.network.num_nodes, ibn.network.u_E, ibn.network.v_E, var_E, ibn.network.kind_E)
    t1 = time.perf_counter()
    d_Q = network_distance(net, ibn.node_q[pairs], "resistance")
    t2 = time.perf_counter()
    out.put(
        {
            "build_s": t1 - t0,
            "solve_s": t2 - t1,
            "nodes": net.num_nodes,
            "d_Q": d_Q,
            "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _in_child(fn, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    res = q.get()
    p.join()
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[65536])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--topologies", nargs="+", default=["chain", "tree"])
    ap.add_argument("--L", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(f"load average {os.getloadavg()}")
    print(
        f"{'topology':>8} {'n':>7} {'F':>8} {'solver':>6} {'newton':>6} {'fit_s':>7} {'var_s':>7} {'exact_s':>8} "
        f"{'rss_MiB':>8} | {'ibn_nodes':>9} {'ibn_s':>7} {'rss_MiB':>8} | {'exact/ibn':>9} {'max_rel_diff':>12}"
    )
    for n in a.n:
        for topology in a.topologies:
            args = (n, topology, a.queries, a.L, a.seed)
            ex = _in_child(_exact, args)
            ib = _in_child(_ibn, args, ex["w_P"])
            ok = ib["d_Q"] > 0
            rel = float(np.max(np.abs(ex["var_Q"][ok] - ib["d_Q"][ok]) / ib["d_Q"][ok]))
            exact_s = ex["fit_s"] + ex["var_s"]
            ibn_s = ib["build_s"] + ib["solve_s"]
            print(
                f"{topology:>8} {n:>7} {ex['F']:>8} {ex['solver']:>6} {ex['newton']:>6} {ex['fit_s']:>7.1f} "
                f"{ex['var_s']:>7.1f} {exact_s:>8.1f} {ex['maxrss_mib']:>8.0f} | {ib['nodes']:>9} {ibn_s:>7.1f} "
                f"{ib['maxrss_mib']:>8.0f} | {exact_s / ibn_s:>9.2f} {rel:>12.2e}",
                flush=True,
            )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
