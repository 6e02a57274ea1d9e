"""Benchmark of the inference-distance solvers against networkx and the direct and multigrid peers.

Run by hand, not a test (the ``bench`` extra installs the peers; a peer that is not installed is
skipped with a note):

    PYTHONPATH=. python benchmarks/bench_ibn.py --n 1000 10000 100000 --queries 1000

For each n and topology (chain, tree) it builds an IBN (THEORY.md §2) with L = 10, V = 4 and
several prompts, draws query pairs (two independent responses to one random prompt), and prints

* path: the fast solver against the networkx reference (timed on ``--ref-queries`` queries and
  scaled linearly to all of them; the printout says so);
* resistance: one row per solver, each run in a forked child (so its peak memory, C allocations
  included, is its own and a stuck peer is killed after ``--timeout`` seconds):
  - ``project``: ``network_distance`` as a user calls it (zero-variance merge, kernel reduction
    and solve all timed), with the solver ``auto`` picks, and ``project/dense`` and
    ``project/direct`` (CHOLMOD from cholespy's wheels, a full solve per pair), the paths open
    where scikit-sparse is absent;
  - peers, given the project's reduced grounded Laplacian for free (its build is not timed):
    ``cholmod`` (scikit-sparse: one factorisation with CHOLMOD's default ordering, then solves of
    all pairs), ``splu`` (scipy SuperLU, one factorisation then solves), ``pyamg`` (Ruge–Stüben
    V-cycle preconditioning scipy's CG to rtol 1e-10, one pair at a time).
  Peers that solve one pair at a time (splu, pyamg) are timed on ``--peer-queries`` pairs and
  their solve time scaled to all pairs (marked ``~``). ``ratio`` is the solver's time over the
  project's; ``agree`` is the largest relative difference from the exact values (networkx on the
  first ``--ref-queries`` pairs where the graph is small, else CHOLMOD's full solves, else splu's);
  ``cpu`` is the child's CPU time over all its threads (on a shared machine, a bound on the wall time
  it would take idle, where its BLAS threads would overlap); ``load`` is the 1-minute load average
  when the row finished.

Goals at n = 1e5 with 1000 queries: resistance under 10 s for chain data and faster than CHOLMOD
in the same run; fast path >= 30x faster than the reference and < 60 s.

Graphs come from ``rm_theory.ibn.network.ibn_network`` and ``rm_theory.world.topology`` when those modules
provide them (``--source lead``), else from the self-contained generator below
(``--source own``: a random V-ary trie, IB parent-child edges of variance s_j^2, one HP edge of
variance xi^2 per comparison).

Legend: n comparisons, L depth, V branching, N nodes, M unknowns, P query pairs, K columns.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import platform
import select
import signal
import time

import networkx as nx
import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
import scipy.sparse.linalg as spla

from rm_theory.ibn import (
    RESISTANCE_SOLVERS,
    Network,
    conductance_matrix,
    from_networkx,
    has_cholmod,
    inference_distance,
    merge_zero_edges,
    network_distance,
    reduce_network,
    reference_distance,
    to_networkx,
    two_edge_components,
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


@dataclasses.dataclass(frozen=True)
class OutsideConfig:
    """The graph of `outside_ibn`: L = 10, V = 4, 16 prompts, polynomial field alpha = 0.5, xi^2 = 4."""

    L: int = 10
    V: int = 4
    prompts: int = 16
    alpha: float = 0.5
    xi2: float = 4.0
    root_variance: float = 0.5


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
    from rm_theory.ibn import ibn_network
    from rm_theory.world import PrefixTreeSpace, Responses, make_dataset

    rng = np.random.default_rng([seed, n])
    space = PrefixTreeSpace(V=4, L=10, num_prompts=8, seed=seed)
    comps = make_dataset(space, topology, n, rng)
    prompt_Q = rng.integers(0, space.num_prompts, queries)
    qa, qb = space.sample(rng, prompt_Q), space.sample(rng, prompt_Q)
    ibn = ibn_network(space, comps, Responses.concat([qa, qb]))
    return ibn.network, np.stack([ibn.node_q[:queries], ibn.node_q[queries:]], axis=1)


def outside_ibn(n: int, queries: int, seed: int, cfg: OutsideConfig) -> tuple[nx.Graph, list[tuple]]:
    """A chain IBN as a user would build it, with networkx alone (nothing from the project): every
    prompt's prefix tree as explicit nodes, unary chains included (node = (prompt, t_1, ..., t_j)),
    parent-child IB edges of variance s_j^2 (polynomial field, THEORY.md §2), each prompt's root
    joined to one shared root, one HP edge of variance xi^2 per comparison of two uniformly random
    responses to a random prompt (a repeated comparison adds its conductance), and query pairs of
    two fresh random responses to one prompt. n = 10^5 gives 806,985 nodes and 906,984 edges."""
    rng = np.random.default_rng([seed, n])
    k = np.arange(cfg.L + 1)
    delta_K = cfg.V ** (-cfg.alpha * k) - cfg.V ** (-cfg.alpha * cfg.L)
    s2_J = ((delta_K[:-1] - delta_K[1:]) / 2.0).tolist()
    g = nx.Graph()
    g.add_node("root")

    def response(p: int) -> tuple:
        prev = ("p", p)
        if prev not in g:
            g.add_edge("root", prev, variance=cfg.root_variance)
        for j, tok in enumerate(rng.integers(cfg.V, size=cfg.L).tolist()):
            node = (*prev, tok)
            if node not in g:
                g.add_edge(prev, node, variance=s2_J[j])
            prev = node
        return prev

    for _ in range(n):
        p = int(rng.integers(cfg.prompts))
        a, b = response(p), response(p)
        if a == b:
            continue
        if g.has_edge(a, b):
            g[a][b]["variance"] = 1.0 / (1.0 / g[a][b]["variance"] + 1.0 / cfg.xi2)
        else:
            g.add_edge(a, b, variance=cfg.xi2)
    pairs = []
    for _ in range(queries):
        p = int(rng.integers(cfg.prompts))
        pairs.append((response(p), response(p)))
    return g, pairs


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _in_child(fn, timeout: float) -> dict:
    """Run ``fn() -> (values, note)`` in a forked child: its time, its peak RSS above its start, result.

    Forking gives each solver its own peak RSS (CHOLMOD allocates outside Python, where tracemalloc
    cannot see) and lets a peer that runs past ``timeout`` be killed.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            # Reset the high-water mark to the current RSS (Linux >= 4.0), so the peak is this solver's.
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            base = _status_mib("VmRSS")
            t0, c0 = time.perf_counter(), os.times()
            values, note = fn()
            c1 = os.times()
            payload = {"time": time.perf_counter() - t0, "values": values, "note": note}
            # CPU seconds (all threads): on a loaded machine, a bound on the idle wall time.
            payload["cpu"] = (c1.user - c0.user) + (c1.system - c0.system)
            payload["peak_mib"] = _status_mib("VmHWM") - base
        except Exception as e:  # reported in the table, not raised: the other solvers still run
            payload = {"error": f"{type(e).__name__}: {e}"}
        with os.fdopen(w, "wb") as f:
            f.write(pickle.dumps(payload))
        os._exit(0)
    os.close(w)
    data, deadline, killed = b"", time.monotonic() + timeout, False
    with os.fdopen(r, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
            chunk = f.read1(1 << 20)
            if not chunk:
                break
            data += chunk
    os.waitpid(pid, 0)
    out = {"error": f"killed after {timeout:.0f} s"} if killed else pickle.loads(data)
    out.setdefault("peak_mib", float("nan"))
    return out


# ----------------------------------------------------------------------------- peers


def grounded_system(net: Network, pairs_Px2: np.ndarray):
    """The reduced grounded Laplacian the project solves (CSC), and each pair's row pair (-1: ground).

    Pairs whose endpoints merge or lie in different components are left to the project's answer
    (0 or inf); ``same_P`` marks the others.
    """
    merged, map_N = merge_zero_edges(net)
    a_P, b_P = map_N[pairs_Px2[:, 0]], map_N[pairs_Px2[:, 1]]
    term_T, inv = np.unique(np.r_[a_P, b_P], return_inverse=True)
    kernel, kt_T = reduce_network(merged, term_T)
    p = a_P.size
    ka_P, kb_P = kt_T[inv[:p]], kt_T[inv[p:]]
    n = kernel.num_nodes
    adj = conductance_matrix(kernel)
    num, comp_N = csg.connected_components(adj, directed=False)
    ground_C = np.full(num, n)
    np.minimum.at(ground_C, comp_N, np.arange(n))
    keep_N = np.ones(n, dtype=bool)
    keep_N[ground_C] = False
    row_N = np.full(n, -1)
    row_N[keep_N] = np.arange(int(keep_N.sum()))
    lap = (sp.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj).tocsr()
    a_sys = lap[keep_N][:, keep_N].tocsc()
    same_P = (comp_N[ka_P] == comp_N[kb_P]) & (ka_P != kb_P)
    return a_sys, row_N[ka_P], row_N[kb_P], same_P


def _rhs(m: int, ra_K: np.ndarray, rb_K: np.ndarray) -> np.ndarray:
    rhs_MxK = np.zeros((m, ra_K.size))
    k = np.arange(ra_K.size)
    rhs_MxK[ra_K[ra_K >= 0], k[ra_K >= 0]] += 1.0
    rhs_MxK[rb_K[rb_K >= 0], k[rb_K >= 0]] -= 1.0
    return rhs_MxK


def _pair_values(x_MxK: np.ndarray, ra_K: np.ndarray, rb_K: np.ndarray) -> np.ndarray:
    k = np.arange(ra_K.size)
    xa = np.where(ra_K >= 0, x_MxK[np.maximum(ra_K, 0), k], 0.0)
    xb = np.where(rb_K >= 0, x_MxK[np.maximum(rb_K, 0), k], 0.0)
    return xa - xb


def peer_cholmod(a_sys, ra_P, rb_P, block: int = 250):
    from sksparse.cholmod import cholesky

    factor = cholesky(a_sys)
    out_P = np.empty(ra_P.size)
    for lo in range(0, ra_P.size, block):
        ra, rb = ra_P[lo : lo + block], rb_P[lo : lo + block]
        out_P[lo : lo + block] = _pair_values(factor(_rhs(a_sys.shape[0], ra, rb)), ra, rb)
    return out_P, "all pairs"


def peer_splu(a_sys, ra_P, rb_P, sub: int):
    t0 = time.perf_counter()
    lu = spla.splu(a_sys, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True})
    t_factor = time.perf_counter() - t0
    ra, rb = ra_P[:sub], rb_P[:sub]
    t0 = time.perf_counter()
    out = _pair_values(lu.solve(_rhs(a_sys.shape[0], ra, rb)), ra, rb)
    return out, {"scaled": t_factor + (time.perf_counter() - t0) * ra_P.size / max(ra.size, 1), "sub": ra.size}


def peer_pyamg(a_sys, ra_P, rb_P, sub: int):
    import pyamg

    t0 = time.perf_counter()
    ml = pyamg.ruge_stuben_solver(a_sys.tocsr())
    precond = ml.aspreconditioner(cycle="V")
    t_setup = time.perf_counter() - t0
    ra, rb = ra_P[:sub], rb_P[:sub]
    t0 = time.perf_counter()
    out = np.empty(ra.size)
    for k in range(ra.size):
        rhs = _rhs(a_sys.shape[0], ra[k : k + 1], rb[k : k + 1])[:, 0]
        x, info = spla.cg(a_sys, rhs, rtol=1e-10, maxiter=5000, M=precond)
        if info != 0:
            raise RuntimeError(f"CG did not converge for pair {k} (info {info})")
        out[k] = _pair_values(x[:, None], ra[k : k + 1], rb[k : k + 1])[0]
    return out, {"scaled": t_setup + (time.perf_counter() - t0) * ra_P.size / max(ra.size, 1), "sub": ra.size}


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------- main


def _path_row(topology, n, net, kernel, pairs_Px2, args) -> None:
    t0 = time.perf_counter()
    d_P = network_distance(net, pairs_Px2, "path")
    t_fast = time.perf_counter() - t0
    sub = pairs_Px2[: args.ref_queries]
    t0 = time.perf_counter()
    d_ref = reference_distance(to_networkx(net), [tuple(p) for p in sub.tolist()], "path")
    ref_s = (time.perf_counter() - t0) * args.queries / max(len(sub), 1)
    err = np.max(np.abs(d_ref - d_P[: len(sub)]) / np.abs(d_ref)) if len(sub) else float("nan")
    print(
        f"{topology:6s} {n:7d}  path        {net.num_nodes:7d} {kernel.num_nodes:7d}  fast {t_fast:7.2f} s  "
        f"networkx ~{ref_s:8.1f} s (scaled from {len(sub)} pairs)  ratio {ref_s / t_fast:6.1f}  "
        f"agree {err:.1e}  load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def _resistance_rows(topology, n, net, kernel, pairs_Px2, args) -> None:
    a_sys, ra_P, rb_P, same_P = grounded_system(net, pairs_Px2)
    rq, sq = ra_P[same_P], rb_P[same_P]
    q = pairs_Px2.shape[0]
    print(
        f"{topology:6s} {n:7d}  resistance  N={net.num_nodes} kernel={kernel.num_nodes} "
        f"M={a_sys.shape[0]} nnz={a_sys.nnz} pairs={q} (in one component: {int(same_P.sum())})",
        flush=True,
    )
    rows = []
    auto = "cholmod" if has_cholmod() else "auto"
    rows.append((f"project/{auto}", lambda: (network_distance(net, pairs_Px2, "resistance"), "all pairs")))
    # The paths taken without scikit-sparse: star-mesh then dense factors, and CHOLMOD from cholespy's
    # wheels (a full solve per pair: no Schur complement, which needs the factor scikit-sparse exposes).
    for other in ("dense", "direct"):
        rows.append(
            (
                f"project/{other}",
                lambda other=other: (
                    network_distance(net, pairs_Px2, "resistance", resistance_solver=other),
                    "all pairs",
                ),
            )
        )
    peers = {
        "cholmod": ("sksparse.cholmod", lambda: peer_cholmod(a_sys, rq, sq)),
        "splu": ("scipy", lambda: peer_splu(a_sys, rq, sq, args.peer_queries)),
        "pyamg": ("pyamg", lambda: peer_pyamg(a_sys, rq, sq, args.peer_queries)),
    }
    for name in args.peers:
        module, fn = peers[name]
        if not _installed(module):
            print(f"    {name:15s} skipped: {module} is not installed (pip install -e '.[bench]')")
            continue
        rows.append((name, fn))
    rows_out = []
    full = {}  # each solver's values over all pairs (nan where it answered none)
    for name, fn in rows:
        res = _in_child(fn, args.timeout)
        if "values" in res:
            full[name] = res["values"] if name.startswith("project") else _spread(res["values"], same_P)
        res["load"] = os.getloadavg()[0]
        rows_out.append((name, res))
    # Exact values: networkx on a few pairs where that is feasible, else direct solves.
    exact, exact_name = None, "-"
    if net.num_nodes <= 20_000 and args.ref_queries > 0:
        sub = pairs_Px2[: args.ref_queries]
        exact = np.full(q, np.nan)
        exact[: len(sub)] = reference_distance(to_networkx(net), [tuple(p) for p in sub.tolist()], "resistance")
        exact_name = f"networkx, {len(sub)} pairs"
    else:
        for name in ("cholmod", "splu"):
            if name in full:
                exact, exact_name = full[name], f"{name} solves"
                break
    base = rows_out[0][1].get("time")
    for name, res in rows_out:
        if "error" in res:
            print(f"    {name:15s} {res['error']}  peak {res['peak_mib']:7.0f} MiB  load {res['load']:.1f}")
            continue
        t, mark, note = res["time"], " ", ""
        if isinstance(res["note"], dict):
            t, mark = res["note"]["scaled"], "~"
            note = f"(factor/setup + {res['note']['sub']} solves, scaled; cpu of the part run)"
        agree = float("nan")
        if exact is not None:
            x = full[name]
            ok = np.isfinite(x) & np.isfinite(exact) & (exact > 0)
            agree = float(np.max(np.abs(x[ok] - exact[ok]) / exact[ok])) if ok.any() else float("nan")
        print(
            f"    {name:15s} {mark}{t:8.2f} s  ratio {t / base:7.2f}  cpu {res['cpu']:8.2f} s  "
            f"peak {res['peak_mib']:7.0f} MiB  "
            f"agree {agree:.1e} (vs {exact_name})  load {res['load']:.1f}  {note}",
            flush=True,
        )


def _outside_rows(n: int, g: nx.Graph, pairs: list[tuple], args) -> None:
    """`inference_distance` on a graph built outside the project (conversion from networkx included),
    with its solver choices, against the same solve without the split at bridges (the code before it,
    in the same run) and against exact values: networkx where feasible (path: Dijkstra per pair;
    resistance: networkx's dense pseudo-inverse, up to 3,000 nodes), else SuperLU's direct solves."""
    net, nodes = from_networkx(g)
    index = dict(zip(nodes, range(len(nodes)), strict=True))
    pairs_Px2 = np.array([[index[a], index[b]] for a, b in pairs], dtype=np.int64)
    kernel, _ = reduce_network(net, np.unique(pairs_Px2))
    piece_N, bridge_U = two_edge_components(kernel.num_nodes, kernel.u_E, kernel.v_E)
    print(
        f"outside {n:7d}  N={net.num_nodes} E={net.num_edges} kernel={kernel.num_nodes} "
        f"bridges={int(bridge_U.sum())} largest piece={np.bincount(piece_N).max()} pairs={len(pairs)}",
        flush=True,
    )

    for method in args.methods:
        rows = [("project", lambda m=method: (inference_distance(g, pairs, m), "all pairs"))]
        if method == "resistance":
            for other in ("dense", "direct"):
                rows.append(
                    (
                        f"project/{other}",
                        lambda o=other: (inference_distance(g, pairs, "resistance", resistance_solver=o), "all pairs"),
                    )
                )
        rows.append(("no bridge split", lambda m=method: (inference_distance(g, pairs, m, bridges=False), "all pairs")))
        sub = pairs[: args.ref_queries]
        exact, exact_name = np.full(len(pairs), np.nan), "-"
        if method == "path" or net.num_nodes <= 3_000:
            t0 = time.perf_counter()
            exact[: len(sub)] = reference_distance(g, sub, method)
            exact_name = f"networkx, {len(sub)} pairs, {time.perf_counter() - t0:.1f} s"
        else:
            a_sys, ra_P, rb_P, same_P = grounded_system(net, pairs_Px2)
            x, _ = peer_splu(a_sys, ra_P[same_P], rb_P[same_P], args.ref_queries)
            exact = _spread(x, same_P)
            exact_name = f"SuperLU solves, {x.size} pairs"
        base = None
        for name, fn in rows:
            res = _in_child(fn, args.timeout)
            load = os.getloadavg()[0]
            if "error" in res:
                print(f"    {method:10s} {name:16s} {res['error']}  load {load:.1f}", flush=True)
                continue
            base = base or res["time"]
            x = res["values"]
            ok = np.isfinite(exact) & (exact > 0)
            agree = float(np.max(np.abs(x[ok] - exact[ok]) / exact[ok])) if ok.any() else float("nan")
            print(
                f"    {method:10s} {name:16s} {res['time']:8.2f} s  ratio {res['time'] / base:7.2f}  "
                f"cpu {res['cpu']:8.2f} s  peak {res['peak_mib']:7.0f} MiB  agree {agree:.1e} (vs {exact_name})  "
                f"load {load:.1f}",
                flush=True,
            )


def _spread(values: np.ndarray, same_P: np.ndarray) -> np.ndarray:
    """A peer's answers (the first pairs in one component) over all pairs, nan elsewhere."""
    out = np.full(same_P.size, np.nan)
    out[np.flatnonzero(same_P)[: values.size]] = values
    return out


def _warm_up(peers: list[str]) -> None:
    """Load every solver's modules in the parent, so no forked child pays first-call imports."""
    tiny = Network(4, [0, 1, 2, 3, 0], [1, 2, 3, 0, 2], [1.0, 2.0, 3.0, 4.0, 5.0])
    for solver in RESISTANCE_SOLVERS:
        if solver != "cholmod" or has_cholmod():
            network_distance(tiny, [[0, 2], [1, 3]], "resistance", resistance_solver=solver)
    network_distance(tiny, [[0, 2]], "path")
    for module in {"cholmod": "sksparse.cholmod", "pyamg": "pyamg"}.values():
        _installed(module)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument(
        "--ref-queries", type=int, default=20, help="queries timed with networkx; its time is scaled to --queries"
    )
    ap.add_argument("--peer-queries", type=int, default=20, help="pairs timed with one-pair-at-a-time peers")
    ap.add_argument("--methods", nargs="+", default=["path", "resistance"])
    ap.add_argument("--topologies", nargs="+", default=["chain", "tree"])
    ap.add_argument("--peers", nargs="*", default=["cholmod", "splu", "pyamg"], choices=["cholmod", "splu", "pyamg"])
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a solver's child is killed")
    ap.add_argument("--source", choices=["auto", "own", "lead"], default="auto")
    ap.add_argument(
        "--graphs",
        nargs="+",
        choices=["project", "outside"],
        default=["project", "outside"],
        help="the project's own networks, and/or a chain IBN built with networkx alone (outside_ibn)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = SynthConfig()
    print(
        f"# {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()}; "
        f"networkx timed on {args.ref_queries} queries and scaled linearly to {args.queries}"
    )
    _warm_up(args.peers)
    for n in args.n:
        if "outside" in args.graphs:
            t0 = time.perf_counter()
            g, pairs = outside_ibn(n, args.queries, args.seed, OutsideConfig())
            print(f"# outside graph built in {time.perf_counter() - t0:.1f} s (not timed below)", flush=True)
            _outside_rows(n, g, pairs, args)
            del g, pairs
        if "project" not in args.graphs:
            continue
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
            kernel, _ = reduce_network(net, np.unique(pairs_Px2))
            if "path" in args.methods:
                _path_row(topology, n, net, kernel, pairs_Px2, args)
            if "resistance" in args.methods:
                _resistance_rows(topology, n, net, kernel, pairs_Px2, args)


if __name__ == "__main__":
    main()
