"""The chain-vs-tree scaling study (paper Theorem 4.5 / Table 2; THEORY.md §2 "Generalisation measure").

A study point fixes the geometry, structural regime, label-variance model, budget, tree shape and
reference-policy temperature. For each point, n and seed, chain and tree data sets are drawn, their
IBNs built with every query set's items as extra nodes, and the mean inference distance (path and
resistance) recorded per query set. Queries depend on the seed and point but not on the topology or
n, so chain and tree are compared on the same pairs.

The paper's claim: in regime 𝔄 (large label variance) with polynomial F, tree data reduces the
distance by up to Θ(log n / log log n). `fit_log_ratio` fits c·log n / log log n to the measured
chain/tree ratio; the study reports it whatever the ratio does.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from rm_theory.common.rng import rng
from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.world.queries import QuerySpec, sample_query_sets, stack_queries
from rm_theory.world.spaces import ResponseSpace
from rm_theory.world.topology import TreeSampling, annotation_tokens, make_dataset

AXES = ("geometry", "regime", "label_variance", "budget", "shape", "temperature")


@dataclasses.dataclass(frozen=True)
class StudyPoint:
    geometry: str
    regime: str
    label_variance: str
    budget: str
    shape: str
    temperature: float


def expand_points(axes: dict[str, list]) -> list[StudyPoint]:
    """All combinations of the axes' values; the metric geometry has only its own (polynomial) regime."""
    points = []
    for values in itertools.product(*(axes[a] for a in AXES)):
        p = StudyPoint(*values)
        if p.geometry == "metric":
            p = dataclasses.replace(p, regime="polynomial")
        if p not in points:
            points.append(p)
    return points


def run_point(
    point: StudyPoint,
    topology: str,
    n: int,
    seed: int,
    *,
    space_of: Callable[[StudyPoint], ResponseSpace],
    shapes: dict[str, TreeSampling],
    label_variances: dict[str, LabelVariance],
    queries: QuerySpec,
    methods: tuple[str, ...],
) -> dict:
    """One row of the study: mean inference distances of one data set on every query set."""
    start = time.perf_counter()
    space = space_of(point)  # the point's geometry, regime and temperature
    tree = shapes[point.shape]
    lv = label_variances[point.label_variance]
    q_sets = sample_query_sets(
        space, queries, rng("queries", seed, point.geometry, point.regime, point.temperature, point.shape), tree
    )
    q_items, q_index = stack_queries(q_sets)
    # Chain data ignores the tree shape and budget, so its draw must not depend on them.
    data_key = ("data", seed, n, topology, point.geometry, point.temperature)
    if topology == "tree":
        data_key += (point.shape, point.budget)
    comps = make_dataset(space, topology, n, rng(*data_key), budget=point.budget, tree=tree)
    ibn = ibn_network(space, comps, q_items, lv)
    row = {
        "topology": topology,
        "n": n,
        "seed": seed,
        **dataclasses.asdict(point),
        "label_model": lv.model,
        "xi2": lv.xi2 if lv.model == "constant" else float("nan"),
        "B": tree.shape.B,
        "D": tree.shape.D,
        "root_branching": tree.shape.root_branching,
        "n_comparisons": len(comps),
        "tokens": int(annotation_tokens(space, comps.a, comps.b, shared_prefix_once=topology == "tree").sum()),
        "num_nodes": ibn.network.num_nodes,
    }
    all_pairs = np.concatenate(list(q_index.values()))
    for method in methods:
        d = ibn.distance(ibn.node_q[all_pairs], method)
        offset, tag = 0, "res" if method == "resistance" else "path"
        for name, pairs in q_index.items():
            d_set = d[offset : offset + len(pairs)]
            offset += len(pairs)
            finite = np.isfinite(d_set)
            row[f"d_{tag}_{name}"] = float(d_set[finite].mean()) if finite.any() else float("inf")
            if name == "independent":
                row[f"mean_d_{tag}"] = row[f"d_{tag}_{name}"]
                row["frac_unreachable"] = float(1 - finite.mean())
    row["seconds"] = time.perf_counter() - start
    return row


def row_key(row: dict) -> tuple:
    return (row["topology"], row["n"], row["seed"], *(row[a] for a in AXES))


def study_jobs(
    curve_n: list[int], curve_points: list[StudyPoint], map_n: list[int], map_points: list[StudyPoint], seeds: int
) -> Iterator[tuple[StudyPoint, str, int, int]]:
    """Distinct (point, topology, n, seed) jobs of the curve and the heat map, small n first."""
    seen = set()
    jobs = [
        (p, t, n, s)
        for ns, pts in ((curve_n, curve_points), (map_n, map_points))
        for n in ns
        for p in pts
        for t in ("chain", "tree")
        for s in range(seeds)
    ]
    for job in sorted(jobs, key=lambda j: j[2]):
        if job not in seen:
            seen.add(job)
            yield job


def run_study(
    jobs: list,
    run: Callable[..., dict],
    done: dict[tuple, dict],
    on_row: Callable[[dict], None],
    progress: Callable[[Iterator], Iterator] = iter,
) -> pd.DataFrame:
    """Runs the jobs not already `done` (resuming a killed study), reusing chain rows across shapes."""
    rows = dict(done)
    chain_cache: dict[tuple, dict] = {}
    for row in done.values():
        if row["topology"] == "chain":
            chain_cache[
                (row["n"], row["seed"], row["geometry"], row["regime"], row["label_variance"], row["temperature"])
            ] = row
    for point, topology, n, seed in progress(jobs):
        key = (topology, n, seed, *dataclasses.astuple(point))
        if key in rows:
            continue
        ckey = (n, seed, point.geometry, point.regime, point.label_variance, point.temperature)
        if topology == "chain" and ckey in chain_cache:
            row = {**chain_cache[ckey], **dataclasses.asdict(point), "seconds": 0.0}
        else:
            row = run(point, topology, n, seed)
            if topology == "chain":
                chain_cache[ckey] = row
        rows[key] = row
        on_row(row)
    return pd.DataFrame(list(rows.values()))


def ratio_table(df: pd.DataFrame, column: str = "mean_d_res") -> pd.DataFrame:
    """chain/tree ratio of a distance column per point and n (means over seeds first)."""
    keys = ["n", *AXES]
    m = df.groupby([*keys, "topology"], dropna=False)[column].mean().unstack("topology")
    out = (m["chain"] / m["tree"]).rename("ratio").reset_index()
    return out.dropna(subset=["ratio"])


def fit_log_ratio(n: np.ndarray, ratio: np.ndarray) -> tuple[float, float]:
    """Least-squares c in ratio ≈ c·log n / log log n, and the R² of that fit (may be negative)."""
    n, ratio = np.asarray(n, dtype=float), np.asarray(ratio, dtype=float)
    f = np.log(n) / np.log(np.log(n))
    c = float((f * ratio).sum() / (f * f).sum())
    ss_res = float(((ratio - c * f) ** 2).sum())
    ss_tot = float(((ratio - ratio.mean()) ** 2).sum())
    return c, (1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")
