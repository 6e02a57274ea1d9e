"""The chain-vs-tree scaling study (paper Theorem 4.5 / Table 2; THEORY.md §2 "Generalisation measure").

A study point fixes the geometry, structural regime, label-variance model, budget, tree shape and
reference-policy temperature. A cell is (point, n, seed): its query sets are drawn once, chain and
tree data sets are drawn, their IBNs built with every query item as an extra node, and both are
measured on the same pairs (the cell's in-tree pairs included). Means are over the pairs reachable
in both networks, so every chain/tree ratio is a paired ratio, with an interval over seeds (over one
seed's pairs when there is one seed).

The paper's claim: in regime 𝔄 (large label variance) with polynomial F, tree data reduces the
distance by up to Θ(log n / log log n). `fit_log_ratio` fits c·log n / log log n to the measured
chain/tree ratio; the study reports it whatever the ratio does.

Legend: Q query pairs.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from scipy import stats

from rm_theory.common.rng import rng
from rm_theory.common.stats import mean_ci
from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.world.queries import QuerySpec, sample_query_sets, stack_queries
from rm_theory.world.spaces import ResponseSpace
from rm_theory.world.topology import TOPOLOGIES, TreeSampling, annotation_tokens, make_dataset

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


def _paired(dc_Q: np.ndarray, dt_Q: np.ndarray) -> dict[str, float]:
    """chain/tree ratio of mean distances over the pairs reachable in both networks, with the
    delta-method standard error of that ratio over those pairs (pairs drawn independently)."""
    both = np.isfinite(dc_Q) & np.isfinite(dt_Q)
    c, t = dc_Q[both], dt_Q[both]
    n = int(both.sum())
    if n == 0 or t.mean() <= 0:
        return {
            "pairs": n,
            "ratio": float("nan"),
            "se": float("nan"),
            "mean_chain": float("nan"),
            "mean_tree": float("nan"),
        }
    r = c.mean() / t.mean()
    # Var(mean_c / mean_t) ≈ Var(c − r·t) / (N · mean_t²) to first order.
    se = float(np.std(c - r * t, ddof=1) / (np.sqrt(n) * t.mean())) if n > 1 else float("nan")
    return {"pairs": n, "ratio": float(r), "se": se, "mean_chain": float(c.mean()), "mean_tree": float(t.mean())}


def run_cell(
    point: StudyPoint,
    n: int,
    seed: int,
    *,
    space_of: Callable[[StudyPoint, int], ResponseSpace],
    shapes: dict[str, TreeSampling],
    label_variances: dict[str, LabelVariance],
    queries: QuerySpec,
    methods: tuple[str, ...],
) -> list[dict]:
    """One cell of the study, paired: the chain and the tree data set of (point, n, seed) measured on
    the same query pairs (the cell's in-tree pairs included), one row per topology.

    Means are over the pairs reachable in both networks; each row counts its own unreachable pairs
    per query set, and the tree row carries the paired chain/tree ratio and its standard error.
    """
    start = time.perf_counter()
    space = space_of(point, seed)  # the point's geometry, regime and temperature; the seed's world
    tree = shapes[point.shape]
    lv = label_variances[point.label_variance]
    q_sets = sample_query_sets(
        space, queries, rng("queries", seed, point.geometry, point.regime, point.temperature, point.shape), tree
    )
    q_items, q_index = stack_queries(q_sets)
    all_pairs = np.concatenate(list(q_index.values()))
    rows, dist = {}, {}
    for topology in TOPOLOGIES:
        # Chain data ignores the tree shape and budget, so its draw must not depend on them.
        data_key = ("data", seed, n, topology, point.geometry, point.temperature)
        if topology == "tree":
            data_key += (point.shape, point.budget)
        comps = make_dataset(space, topology, n, rng(*data_key), budget=point.budget, tree=tree)
        ibn = ibn_network(space, comps, q_items, lv)
        rows[topology] = {
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
        for method in methods:
            dist[topology, method] = ibn.distance(ibn.node_q[all_pairs], method)
    for method in methods:
        tag, offset = ("res" if method == "resistance" else "path"), 0
        for name, pairs in q_index.items():
            sl = slice(offset, offset + len(pairs))
            offset += len(pairs)
            pr = _paired(dist["chain", method][sl], dist["tree", method][sl])
            for topology in TOPOLOGIES:
                row = rows[topology]
                row[f"d_{tag}_{name}"] = pr[f"mean_{topology}"]
                row[f"pairs_{tag}_{name}"] = pr["pairs"]
                row[f"unreachable_{tag}_{name}"] = int((~np.isfinite(dist[topology, method][sl])).sum())
                if name == "independent":
                    row[f"mean_d_{tag}"] = pr[f"mean_{topology}"]
                    row["frac_unreachable"] = float(row[f"unreachable_{tag}_{name}"] / max(len(pairs), 1))
            rows["tree"][f"paired_ratio_{tag}_{name}"] = pr["ratio"]
            rows["tree"][f"paired_ratio_{tag}_{name}_se"] = pr["se"]
    seconds = time.perf_counter() - start
    return [{**row, "seconds": seconds / 2} for row in rows.values()]


def row_key(row: dict) -> tuple:
    return (row["topology"], row["n"], row["seed"], *(row[a] for a in AXES))


def study_cells(
    curve_n: list[int], curve_points: list[StudyPoint], map_n: list[int], map_points: list[StudyPoint], seeds: list[int]
) -> list[tuple[StudyPoint, int, int]]:
    """Distinct (point, n, seed) cells of the curve and the heat map, small n first."""
    cells = [
        (p, n, s) for ns, pts in ((curve_n, curve_points), (map_n, map_points)) for n in ns for p in pts for s in seeds
    ]
    return sorted(dict.fromkeys(cells), key=lambda c: c[1])


def run_study(
    cells: list,
    run: Callable[..., list[dict]],
    done: dict[tuple, dict],
    on_row: Callable[[dict], None],
    progress: Callable[[Iterator], Iterator] = iter,
) -> pd.DataFrame:
    """Runs the cells not already `done` (resuming a killed study; a cell counts as done when both
    its rows are there)."""
    rows = dict(done)
    for point, n, seed in progress(cells):
        keys = [(t, n, seed, *dataclasses.astuple(point)) for t in TOPOLOGIES]
        if all(k in rows for k in keys):
            continue
        for row in run(point, n, seed):
            rows[row_key(row)] = row
            on_row(row)
    return pd.DataFrame(list(rows.values()))


def paired_ratio_table(df: pd.DataFrame, tag: str = "res", query: str = "independent") -> pd.DataFrame:
    """Per point and n: the paired chain/tree ratio averaged over seeds, and its 95% interval.

    The units are seeds (each draws its own world when `space.field_per_seed`): with two or more
    seeds of finite ratio the interval is Student t over the seeds' ratios (`mean_ci`; the spread of
    the seeds includes their pairs' noise). With one seed it is conditional on that seed's world: the
    delta-method standard error over its query pairs, with the t quantile of pairs − 1 degrees of
    freedom. `units` says which; `seeds` counts the seeds with a finite ratio.
    """
    col = f"paired_ratio_{tag}_{query}"
    columns = ["n", *AXES, "ratio", "lo", "hi", "seeds", "units"]
    tree = df[df["topology"] == "tree"] if "topology" in df else df.iloc[:0]
    if col not in tree or tree.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for key, g in tree.groupby(["n", *AXES], dropna=False):
        g = g[np.isfinite(g[col].to_numpy(float))]
        r = g[col].to_numpy(float)
        m, half = mean_ci(r)
        units = "seeds"
        if len(r) == 1:
            pairs = float(g[f"pairs_{tag}_{query}"].iloc[0]) if f"pairs_{tag}_{query}" in g else float("nan")
            se = float(g[f"{col}_se"].iloc[0])
            half = float(stats.t.ppf(0.975, pairs - 1) * se) if pairs > 1 else float("nan")
            units = "pairs of one seed"
        out.append(
            {
                **dict(zip(["n", *AXES], key, strict=True)),
                "ratio": m,
                "lo": m - half,
                "hi": m + half,
                "seeds": len(r),
                "units": units,
            }
        )
    return pd.DataFrame(out, columns=columns)


def ratio_table(df: pd.DataFrame, column: str = "mean_d_res") -> pd.DataFrame:
    """chain/tree ratio of a distance column per point and n (means over seeds first)."""
    keys = ["n", *AXES]
    if df.empty or column not in df:  # an empty sweep axis selects no rows
        return pd.DataFrame(columns=[*keys, "ratio"])
    m = df.groupby([*keys, "topology"], dropna=False)[column].mean().unstack("topology")
    if not {"chain", "tree"} <= set(m.columns):
        return pd.DataFrame(columns=[*keys, "ratio"])
    out = (m["chain"] / m["tree"]).rename("ratio").reset_index()
    return out.dropna(subset=["ratio"])


def fit_log_ratio(n: np.ndarray, ratio: np.ndarray) -> tuple[float, float]:
    """Least-squares c in ratio ≈ c·log n / log log n, and the R² of that fit (may be negative)."""
    n, ratio = np.asarray(n, dtype=float), np.asarray(ratio, dtype=float)
    if len(n) == 0:
        return float("nan"), float("nan")
    f = np.log(n) / np.log(np.log(n))
    c = float((f * ratio).sum() / (f * f).sum())
    ss_res = float(((ratio - c * f) ** 2).sum())
    ss_tot = float(((ratio - ratio.mean()) ** 2).sum())
    return c, (1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan")
