"""The scaling study as one run: jobs → tidy `results.csv` → figures → headline scalars."""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import pandas as pd
from tqdm import tqdm

from rm_theory.common.stats import mean_ci, seed_means
from rm_theory.config.common import make_label_variance, make_space, make_tree_sampling
from rm_theory.config.scaling import IBNScalingSchema
from rm_theory.figures import ibn_scaling as ibn_scaling_figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn.scaling import (
    AXES,
    expand_points,
    fit_log_ratio,
    paired_ratio_table,
    ratio_table,
    row_key,
    run_cell,
    run_study,
    study_cells,
)
from rm_theory.runs.log import RunLog
from rm_theory.world.queries import QuerySpec

log = logging.getLogger(__name__)


def in_tree_by_shape(on_map: pd.DataFrame) -> dict[str, dict]:
    """The map's paired chain/tree ratio on each cell's own in-tree pairs, per tree shape.

    The cells of a shape (geometry × regime × label variance × budget × temperature) are a designed
    grid, not replicates: they are averaged within each seed first, and the interval is over the
    seeds (`mean_ci`; units: seeds, each its own world). `cells` is the number of cells per seed.
    """
    col = "paired_ratio_res_in_tree"
    tree = on_map[on_map["topology"] == "tree"] if "topology" in on_map else on_map.iloc[:0]
    out = {}
    if col not in tree:
        return out
    for shape, g in tree.groupby("shape"):
        per_seed, dropped = seed_means(g, col)
        m, half = mean_ci(per_seed)
        cells = int(g.groupby("seed").size().max())
        out[shape] = {"ratio": m, "ci": half, "seeds": len(per_seed), "cells": cells, "nan_cells": dropped}
    return out


def _at_point(table: pd.DataFrame, point) -> pd.DataFrame:
    """The rows of a ratio table at one study point, by n (none when the table is empty)."""
    at = [row == dataclasses.astuple(point) for row in table[list(AXES)].itertuples(index=False, name=None)]
    return table[np.asarray(at, dtype=bool)].sort_values("n")


def _units(row, field_per_seed: bool) -> str:
    """What the units of a `paired_ratio_table` row's interval are, for the report."""
    if row is None:
        return ""
    if row["units"] != "seeds":
        return str(row["units"])
    return "seeds (worlds)" if field_per_seed else "seeds (one shared world)"


def run(cfg: IBNScalingSchema, runlog: RunLog) -> dict:
    axes = lambda sweep: {a: list(getattr(sweep, a)) for a in AXES}
    curve_points, map_points = expand_points(axes(cfg.curve)), expand_points(axes(cfg.map))
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    cells = study_cells(cfg.curve.n_values, curve_points, cfg.map.n_values, map_points, seeds)
    q = cfg.queries
    job = functools.partial(
        run_cell,
        space_of=lambda p, seed: make_space(
            dataclasses.replace(cfg.space, geometry=p.geometry, regime=p.regime, temperature=p.temperature), seed
        ),
        shapes={k: make_tree_sampling(v) for k, v in cfg.shapes.items()},
        label_variances={k: make_label_variance(v) for k, v in cfg.label_variances.items()},
        queries=QuerySpec(q.num_pairs, tuple(q.kinds), tuple(q.depths), q.low_temperature, q.bon_candidates),
        methods=tuple(cfg.methods),
    )
    done = {row_key(r): r for r in runlog.rows()}  # rows of a killed run are not recomputed
    if done:
        log.info("resuming: %d of %d rows already done", len(done), 2 * len(cells))
    bar = functools.partial(tqdm, desc="scaling study", mininterval=5.0, total=len(cells))
    df = run_study(cells, job, done, runlog.metric, progress=bar)
    lead = ["topology", "n", "seed", *AXES]
    df = df[lead + sorted(set(df.columns) - set(lead))]  # resumed rows come back with sorted keys
    df = df.sort_values(["n", "topology", "seed", *AXES], kind="stable").reset_index(drop=True)
    df.to_csv(runlog.dir / "results.csv", index=False)

    base = curve_points[0]
    curve = df[df[list(AXES)].apply(tuple, axis=1).isin([dataclasses.astuple(p) for p in curve_points])]
    curve = curve[curve["n"].isin(cfg.curve.n_values)]
    on_map = df[df["n"].isin(cfg.map.n_values)]
    on_map = on_map[on_map[list(AXES)].apply(tuple, axis=1).isin([dataclasses.astuple(p) for p in map_points])]
    if cfg.figures:
        # An empty axis (e.g. map.n_values=[] for the curve only) selects no rows: its figure is skipped.
        tables = RunTables(df, {"curve": curve, "map": on_map}, cfg)
        save_figures(ibn_scaling_figs.figures(tables), runlog.dir / "figures")

    rb = _at_point(ratio_table(curve), base)
    c, r2 = fit_log_ratio(rb["n"].to_numpy(), rb["ratio"].to_numpy())
    pb = _at_point(paired_ratio_table(curve), base)
    pm = paired_ratio_table(on_map)
    pm.to_csv(runlog.dir / "map_ratios.csv", index=False)
    ratios = pd.concat([ratio_table(df, col).assign(query=col) for col in df.columns if col.startswith("d_res_")])
    ratios.to_csv(runlog.dir / "ratios.csv", index=False)
    by_shape = in_tree_by_shape(on_map) if "in_tree" in cfg.queries.kinds else {}
    last = pb.iloc[-1] if len(pb) else None
    return {
        "ratio_fit_c": c,
        "ratio_fit_r2": r2,
        "base_point": dataclasses.asdict(base),
        "ratio_by_n": {int(n): float(r) for n, r in zip(pb["n"], pb["ratio"], strict=True)},
        "ratio_at_max_n": float(last["ratio"]) if last is not None else float("nan"),
        "ratio_at_max_n_lo": float(last["lo"]) if last is not None else float("nan"),
        "ratio_at_max_n_hi": float(last["hi"]) if last is not None else float("nan"),
        "ratio_at_max_n_pairs": int(cfg.queries.num_pairs),
        "ratio_at_max_n_units": _units(last, cfg.space.field_per_seed),
        "seeds": len(seeds),
        "field_per_seed": cfg.space.field_per_seed,
        "map_n": int(pm["n"].max()) if len(pm) else None,
        "map_cells": len(pm),
        "map_frac_tree_wins": float((pm["ratio"] > 1).mean()) if len(pm) else float("nan"),
        "map_frac_tree_wins_significant": float((pm["lo"] > 1).mean()) if len(pm) else float("nan"),
        "map_frac_chain_wins_significant": float((pm["hi"] < 1).mean()) if len(pm) else float("nan"),
        "map_ratio_min": float(pm["ratio"].min()) if len(pm) else float("nan"),
        "map_ratio_max": float(pm["ratio"].max()) if len(pm) else float("nan"),
        "map_in_tree_ratio_by_shape": by_shape,
        "query_ratio_at_max_n": {
            name: float(np.exp(np.log(g["ratio"]).mean()))
            for name, g in ratios[ratios["n"] == ratios["n"].max()].groupby("query")
        },
        "rows": len(df),
    }
