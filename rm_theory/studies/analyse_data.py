"""The IBN report of a user's own preference data (THEORY.md §2; paper §4: the data set's topology
decides how far a reward model generalises).

The data set is read by any loader (or the project's JSONL format), its items (prompt, response)
are embedded by the encoder, and its IBN is built as in the real-data study: comparisons are HP
edges, k-NN encoder similarities IB edges (`ibn.real`). The report folder holds:

* `components.csv`: connected components of the IBN (HP edges alone, and all edges) and their sizes;
* `distances.csv`: the inference distance (resistance and path) of every held-out pair (pairs of
  held-out prompts, whose comparisons are not in the network), and the degree of every item;
* `structural.csv`: F(M) by k-means clustering, two estimates, with the fitted regime or
  "indeterminate";
* `least_determined.jsonl`: the held-out pairs the data leaves least determined (largest resistance);
* `next_batch.jsonl`: the comparisons the A-optimal design (`ibn.design`) would collect next, as
  records of the project's format with `better: null` and `meta.request: true` (to be labelled);
* figures, `summary.json` and `results.csv` (one row per quantity).

Legend: N items, P comparisons, T target pairs, C candidate pairs.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rm_theory.common.rng import str_hash
from rm_theory.config.analyse_data import AnalyseDataSchema
from rm_theory.figures import analyse_data as figs
from rm_theory.figures.common import save
from rm_theory.ibn import real as real_ibn
from rm_theory.ibn.design import DesignConfig, design_comparisons
from rm_theory.ibn.distance import network_distance
from rm_theory.real.encoders import load_encoder
from rm_theory.real.features import DataSpec, FeatureConfig, featurize, item_embeddings, items_of, load_selection
from rm_theory.real.features import test_mask as heldout_mask
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.loaders import LOADERS
from rm_theory.runs.folder import RunLog
from rm_theory.world.records import PreferenceRecord, write_jsonl

log = logging.getLogger(__name__)


def _within_prompt_pairs(prompt_N: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All pairs of items that share a prompt (a random `cap` of them if there are more)."""
    by_prompt: dict[object, list[int]] = {}
    for i, p in enumerate(prompt_N):
        by_prompt.setdefault(p, []).append(i)
    pairs = [pq for items in by_prompt.values() for pq in itertools.combinations(items, 2)]
    out = np.array(pairs, np.int64).reshape(-1, 2)
    if cap and len(out) > cap:
        out = out[np.sort(rng.choice(len(out), cap, replace=False))]
    return out


def _request(it, a: int, b: int, **meta) -> PreferenceRecord:
    return PreferenceRecord(
        it.prompt[a], str(it.prompt_id[a]), it.response[a], it.response[b], None, meta={"request": True, **meta}
    )


def run(cfg: AnalyseDataSchema, runlog: RunLog) -> dict:
    out = runlog.dir
    path, fmt, encoder_dir, cache_dir = cfg.data.path, cfg.data.format, cfg.features.encoder_dir or None, None
    if fmt not in LOADERS:
        raise ValueError(f"data.format={fmt!r} is not a loader; choose one of {sorted(LOADERS)}")
    if cfg.fixture:  # a tiny random encoder; and a tiny data set unless data.path names one
        fx = write_fixture(out / "fixture", cfg.seed)
        if not path:
            path, fmt = fx["pku"], "pku-saferlhf"
        encoder_dir, cache_dir = fx["encoder_dir"], str(out / "feature_cache")
    if not path:
        raise ValueError("data.path is not set: give the file (or folder) to analyse, e.g. data.path=pairs.jsonl")
    if not Path(path).exists():
        raise FileNotFoundError(f"data.path={path} does not exist (relative paths are read from {Path.cwd()})")
    rng = np.random.default_rng([cfg.seed, str_hash("analyse_data")])
    t0 = time.perf_counter()
    records, report = load_selection(DataSpec("data", fmt, path, cfg.data.max_pairs), cfg.seed)
    log.info("%s; analysing %d pairs", report.summary(), len(records))
    if not records:
        raise ValueError(f"{path}: no comparisons to analyse ({report.summary()})")
    it = items_of(records)
    fc = cfg.features
    encoder = load_encoder(encoder_dir, fc.max_len if not cfg.fixture else 32)
    x = featurize(encoder, it, FeatureConfig(fc.mode, fc.prompt_chars, fc.batch_size, cache_dir or fc.cache_dir))
    e = item_embeddings(x, fc.mode)
    icfg = real_ibn.IBNConfig(k=cfg.ibn.k, c=cfg.ibn.c, gamma=cfg.ibn.gamma, xi2=cfg.ibn.xi2, mst=cfg.ibn.mst)

    # Held-out prompts: their comparisons stay out of the network, and their pairs are the ones
    # whose inference distance says how well the rest of the data determines them.
    test_P = heldout_mask(records, cfg.test_frac, cfg.seed)
    net = real_ibn.real_ibn(e, it.a_P[~test_P], it.b_P[~test_P], icfg)
    topo = real_ibn.topology(net, it.prompt_id)
    pairs_Hx2 = np.stack([it.a_P[test_P], it.b_P[test_P]], axis=1)
    dist = pd.DataFrame({"a": pairs_Hx2[:, 0], "b": pairs_Hx2[:, 1]})
    for method in ("resistance", "path"):
        dist[method] = network_distance(net, pairs_Hx2, method) if len(pairs_Hx2) else []
    dist.to_csv(out / "distances.csv", index=False)
    deg_N = np.bincount(np.r_[net.u_E, net.v_E], minlength=net.num_nodes)
    pd.DataFrame({"item": np.arange(it.n), "prompt_id": it.prompt_id, "degree": deg_N}).to_csv(
        out / "degrees.csv", index=False
    )
    comp_rows = [{"edges": "all", "size": int(s)} for s in np.bincount(real_ibn.components(it.n, net.u_E, net.v_E))]
    hp = net.kind_E == real_ibn.HP
    touched = np.bincount(np.r_[net.u_E[hp], net.v_E[hp]], minlength=it.n) > 0
    hp_comp = real_ibn.components(it.n, net.u_E[hp], net.v_E[hp])[touched]
    comp_rows += [{"edges": "hp", "size": int(s)} for s in np.bincount(hp_comp) if s > 0]
    pd.DataFrame(comp_rows).to_csv(out / "components.csv", index=False)

    least = dist.sort_values("resistance", ascending=False).head(cfg.ibn.least_determined)
    write_jsonl(
        out / "least_determined.jsonl",
        [_request(it, int(r.a), int(r.b), resistance=float(r.resistance)) for r in least.itertuples()],
    )

    # F(M) two ways (see ibn.real.measure_structural on why the network estimate is nearly flat).
    struct_rows, regimes = [], {}
    for method in ("resistance", "edge_variance"):
        sr = real_ibn.measure_structural(e, cfg.ibn.M_values, icfg, rng, method, cfg.ibn.f_pairs)
        regimes[method] = sr.regime
        struct_rows += [
            {"method": method, "M": int(M), "F": F, "F_sem": s, "regime": sr.regime, "fit_regime": sr.leading}
            for M, F, s in zip(sr.M_K, sr.F_K, sr.sem_K, strict=True)
        ]
    structural = pd.DataFrame(struct_rows)
    structural.to_csv(out / "structural.csv", index=False)

    # The next comparisons: targets are same-prompt pairs (what a policy ranks), candidates the
    # same-prompt pairs not compared yet; the network is the whole data set's.
    full = real_ibn.real_ibn(e, it.a_P, it.b_P, icfg)
    targets = _within_prompt_pairs(it.prompt_id, 1000, rng)
    compared = {tuple(sorted(p)) for p in zip(it.a_P.tolist(), it.b_P.tolist(), strict=True)}
    cand = _within_prompt_pairs(it.prompt_id, 0, rng)
    cand = cand[[tuple(p) not in compared for p in cand.tolist()]] if len(cand) else cand
    if cfg.ibn.max_candidates and len(cand) > cfg.ibn.max_candidates:
        cand = cand[np.sort(rng.choice(len(cand), cfg.ibn.max_candidates, replace=False))]
    design = None
    if len(cand) and len(targets):
        dcfg = DesignConfig(
            budget=cfg.ibn.next_batch,
            batch=cfg.ibn.next_batch,
            xi2=cfg.ibn.xi2,
            targets_dim=cfg.ibn.targets_dim,
            seed=cfg.seed,
        )
        design = design_comparisons(full, targets, cand, dcfg)
        write_jsonl(
            out / "next_batch.jsonl",
            [
                _request(it, int(cand[c, 0]), int(cand[c, 1]), predicted_gain=float(g))
                for c, g in zip(design.chosen_B, design.gain_B, strict=True)
            ],
        )
    res = dist["resistance"].to_numpy(float)
    finite = np.isfinite(res)
    rows = [{"quantity": k, "value": v} for k, v in topo.items()]
    summary = {
        "pairs": len(records),
        "items": it.n,
        "prompts": int(len(set(it.prompt_id))),
        "load_report": report.summary(),
        **{f"ibn_{k}": v for k, v in topo.items()},
        "heldout_pairs": len(res),
        "heldout_resistance_mean": float(res[finite].mean()) if finite.any() else float("nan"),
        "heldout_resistance_median": float(np.median(res[finite])) if finite.any() else float("nan"),
        "heldout_unreachable": int((~finite).sum()),
        "fm_regime": regimes["resistance"],
        "fm_regime_edge_variance": regimes["edge_variance"],
        "next_batch": 0 if design is None else len(design.chosen_B),
        "target_resistance_before": float("nan") if design is None else float(design.mean_resistance_R[0]),
        "target_resistance_after": float("nan") if design is None else float(design.mean_resistance_R[-1]),
        "design_approximate": bool(design is not None and design.approximate),
        "analyse_s": time.perf_counter() - t0,
    }
    rows += [{"quantity": k, "value": v} for k, v in summary.items() if isinstance(v, int | float)]
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    if cfg.figures:
        save(figs.distances(dist, deg_N), out / "figures" / "distances")
        save(figs.structural(structural), out / "figures" / "structural")
        if design is not None:
            save(figs.design_curve(design), out / "figures" / "next_batch")
    return summary
