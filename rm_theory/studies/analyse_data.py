"""The IBN report of a user's own preference data (THEORY.md §2; paper §4: the data set's topology
decides how far a reward model generalises).

The data set is read by any loader (or the project's JSONL format), its items (prompt, response)
are embedded by the encoder, and its IBN is built as in the real-data study: comparisons are HP
edges, k-NN encoder similarities IB edges (`ibn.real`). With `score_model=<folder>` the embeddings
are a trained score model's own pooled hidden states instead (`real.model_ibn.item_vectors`: the
vector its head reads, the "hidden" IBN of `python -m experiments.real_theory`). The report folder holds:

* `components.csv`: connected components of the IBN (HP edges alone, and all edges) and their sizes;
* `distances.csv`: the inference distance (resistance and path) of every held-out pair (pairs of
  held-out prompts, whose comparisons are not in the network), and the degree of every item;
* `structural.csv`: F(M) by k-means clustering, two estimates, with the fitted regime or
  "indeterminate";
* `least_determined.jsonl`: the held-out pairs the data leaves least determined (largest resistance;
  `resistance: null` for a pair the network does not connect, counted as `least_determined_unreachable`);
* `next_batch.jsonl`: the comparisons the A-optimal design (`ibn.design`) would collect next, as
  records of the project's format with `better: null` and `meta.request: true` (to be labelled);
  targets are same-prompt pairs (what a policy ranks), candidates the same-prompt pairs not compared;
* `cross_prompt_batch.jsonl`, written instead where no same-prompt pair is left to compare (data with
  one comparison per prompt: the chosen/rejected shape of HH-RLHF, UltraFeedback and TRL): the same
  design over pairs of responses already collected under different prompts, for the same targets
  (each record holds prompt a's text and id; `meta.prompt_b` and `meta.prompt_id_b` give b's). The
  targets then all hold their own comparison, so the gains are what the new cycles through the IB
  edges buy; `summary.next_batch_why` says why no same-prompt batch was proposed;
* `prompts_to_extend.csv`: every prompt with two or more responses, ranked by how much one more
  response, compared with each of the prompt's responses, would lower the mean resistance of the
  prompt's pairs (`predicted_gain`, exact on the network: see `prompt_extension_gain`);
* figures, `summary.json` and `results.csv` (one row per quantity).

What enters the network, decided per kind of record and counted in the summary:
* a tie (`better: null`) is an HP edge like any comparison: counted as half a win each way (as the
  trainer counts it, `real.features.items_of`), its Bradley–Terry Fisher information β²p(1−p) is that
  of a decided comparison at the same p (`ties`);
* an unlabelled request (`better: null` and `meta.request: true`, e.g. a `next_batch.jsonl` appended
  before labelling) is no observation: left out (`unlabelled_requests`);
* a self-pair (a response compared with itself) says nothing about any reward difference: no HP
  edge and no held-out pair, so its distance 0 never enters a mean (`self_pairs`);
* two different texts the encoder cannot tell apart (identical after truncation, or differing only in
  case for an uncased encoder) get an IB edge of variance 0, i.e. one node, as everywhere in the
  solver; a held-out pair of them is at distance 0 and stays in the mean (`heldout_zero_distance`).

Legend: N items, Np items of one prompt, P comparisons, Q query pairs (held out, or targets), E edges, B
round of comparisons (the batch proposed), R rounds of the design, G components, K runs (one per value
of M).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from rm_theory.common.rng import str_hash
from rm_theory.config.analyse_data import AnalyseDataSchema
from rm_theory.figures import analyse_data as figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn import real as real_ibn
from rm_theory.ibn.design import DesignConfig, design_comparisons
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import HP, Network
from rm_theory.lm import load_score_model
from rm_theory.lm.encoders import load_encoder
from rm_theory.real.features import FeatureConfig, featurize, item_embeddings, items_of
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.model_ibn import item_vectors, unit_rows
from rm_theory.real.selection import DataSpec, load_selection
from rm_theory.real.selection import test_mask as heldout_mask
from rm_theory.runs.log import RunLog
from rm_theory.world.records import EmptyDataError, PreferenceRecord, write_jsonl

log = logging.getLogger(__name__)
# Outputs a run writes only when it has something to put in them (an earlier run's copy is removed).
OPTIONAL_OUTPUTS = ("next_batch.jsonl", "cross_prompt_batch.jsonl", "prompts_to_extend.csv")


def _within_prompt_pairs(prompt_N: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """All pairs of items that share a prompt (a random `cap` of them if there are more)."""
    pairs = [pq for items in _by_prompt(prompt_N).values() for pq in itertools.combinations(items, 2)]
    out = np.array(pairs, np.int64).reshape(-1, 2)
    if cap and len(out) > cap:
        out = out[np.sort(rng.choice(len(out), cap, replace=False))]
    return out


def _by_prompt(prompt_N: np.ndarray) -> dict[object, list[int]]:
    by_prompt: dict[object, list[int]] = {}
    for i, p in enumerate(prompt_N):
        by_prompt.setdefault(p, []).append(i)
    return by_prompt


def cross_prompt_pairs(prompt_N: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Pairs of items under different prompts, i < j: all of them, or a uniform random `cap` of them
    where there are more (drawn without enumerating the N² pairs)."""
    code_N = pd.factorize(np.asarray(prompt_N))[0]
    n, count_G = len(code_N), np.bincount(code_N)
    total = n * (n - 1) // 2 - int((count_G * (count_G - 1) // 2).sum())
    if not cap or total <= cap:
        i, j = np.triu_indices(n, 1)
        keep = code_N[i] != code_N[j]
        return np.stack([i[keep], j[keep]], 1).astype(np.int64)
    drawn = np.zeros((0, 2), np.int64)
    while True:
        ij = rng.integers(0, n, (2 * cap, 2))
        ij = np.sort(ij[code_N[ij[:, 0]] != code_N[ij[:, 1]]], axis=1)
        drawn = np.r_[drawn, ij]
        _, first = np.unique(drawn, axis=0, return_index=True)
        if len(first) >= cap:  # distinct pairs in the order drawn: a uniform sample without replacement
            return drawn[np.sort(first)[:cap]]


def prompt_extension_gain(R_SxS: np.ndarray, xi2: float) -> tuple[float, float]:
    """Mean resistance of the pairs of one prompt's S items, now and after one more response is
    collected and compared once with each of them (an HP edge of variance ξ² to each; no IB edge, as
    its embedding is unknown).

    Resistances among S determine the Laplacian of the network reduced onto S (Kron reduction): per
    connected part c of S (finite resistances), L_c⁺ = −½ J R_c J with J = I − 11ᵀ/|c|. The new
    response, eliminated in turn, adds w·J over all of S (w = 1/ξ²), which also joins the parts; the
    new resistances follow from (L_S + wJ)⁺. Exact: no approximation beyond the unknown embedding.
    """
    R_SxS = np.asarray(R_SxS, np.float64)
    m = len(R_SxS)
    iu = np.triu_indices(m, 1)
    part_Np = np.unique(np.isfinite(R_SxS), axis=0, return_inverse=True)[1].reshape(-1)
    lap_NpxNp = np.zeros((m, m))
    for c in np.unique(part_Np):
        idx = np.flatnonzero(part_Np == c)
        J = np.eye(len(idx)) - 1.0 / len(idx)
        lap_NpxNp[np.ix_(idx, idx)] = np.linalg.pinv(-0.5 * J @ R_SxS[np.ix_(idx, idx)] @ J, hermitian=True)
    L_plus = np.linalg.pinv(lap_NpxNp + (np.eye(m) - 1.0 / m) / xi2, hermitian=True)
    d_Np = np.diag(L_plus)
    after_NpxNp = d_Np[:, None] + d_Np[None, :] - 2 * L_plus
    return float(R_SxS[iu].mean()), float(after_NpxNp[iu].mean())


def _prompts_to_extend(net: Network, it, xi2: float) -> pd.DataFrame:
    """Every prompt with two or more items, ranked by `prompt_extension_gain` (largest first)."""
    groups = {p: items for p, items in _by_prompt(it.prompt_id).items() if len(items) >= 2}
    pairs = [pq for items in groups.values() for pq in itertools.combinations(items, 2)]
    res = dict(zip(pairs, network_distance(net, np.array(pairs, np.int64).reshape(-1, 2), "resistance"), strict=True))
    hp_of = Counter(it.prompt_id[it.a_P[it.a_P != it.b_P]].tolist())  # comparisons per prompt, self-pairs aside
    rows = []
    for p, items in groups.items():
        R_SxS = np.zeros((len(items), len(items)))
        for (x, a), (y, b) in itertools.combinations(enumerate(items), 2):
            R_SxS[x, y] = R_SxS[y, x] = res[(a, b)]
        before, after = prompt_extension_gain(R_SxS, xi2)
        rows.append(
            {
                "prompt_id": str(p),
                "prompt": it.prompt[items[0]],
                "responses": len(items),
                "comparisons": hp_of[p],
                "mean_resistance": before,
                "mean_resistance_after": after,
                "predicted_gain": before - after,
            }
        )
    df = pd.DataFrame(rows, columns=["prompt_id", "prompt", "responses", "comparisons", "mean_resistance"])
    if rows:
        df = pd.DataFrame(rows).sort_values("predicted_gain", ascending=False, kind="stable")
    return df.reset_index(drop=True)


def _request(it, a: int, b: int, **meta) -> PreferenceRecord:
    if it.prompt_id[a] != it.prompt_id[b]:  # a cross-prompt pair: the record holds a's prompt
        meta = {"cross_prompt": True, "prompt_b": it.prompt[b], "prompt_id_b": str(it.prompt_id[b]), **meta}
    return PreferenceRecord(
        it.prompt[a], str(it.prompt_id[a]), it.response[a], it.response[b], None, meta={"request": True, **meta}
    )


def _shown_path(path: str, run_dir: Path) -> str:
    """A path inside the run folder relative to it (two identical runs in two folders then report the
    same), any other path as given."""
    p, root = Path(path).resolve(), run_dir.resolve()
    return os.path.relpath(p, root) if p.is_relative_to(root) else str(path)


def run(cfg: AnalyseDataSchema, runlog: RunLog) -> dict:
    out = runlog.dir
    for name in OPTIONAL_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    path, fmt, encoder_dir, cache_dir = cfg.data.path, cfg.data.format, cfg.features.encoder_dir or None, None
    if cfg.fixture:  # a tiny random encoder; and a tiny data set unless data.path names one
        fx = write_fixture(out / "fixture", cfg.seed)
        if not path:
            path, fmt = fx["pku"], "pku-saferlhf"
        encoder_dir, cache_dir = fx["encoder_dir"], str(out / "feature_cache")
    rng = np.random.default_rng([cfg.seed, str_hash("analyse_data")])
    t0 = time.perf_counter()
    records, report = load_selection(DataSpec("data", fmt, path, cfg.data.max_pairs), cfg.seed)
    report = dataclasses.replace(report, path=_shown_path(report.path, out))
    n_loaded = len(records)
    records = [r for r in records if not (r.better is None and r.meta.get("request"))]
    requests = n_loaded - len(records)
    if requests:
        log.warning("%s: %d unlabelled requests (better: null, meta.request: true) left out", path, requests)
    log.info("%s; analysing %d pairs", report.summary(), len(records))
    if not records:
        raise ValueError(f"{path}: no comparisons to analyse ({report.summary()})")
    it = items_of(records)
    self_P = it.a_P == it.b_P
    fc = cfg.features
    if cfg.score_model:  # the trained model's own representation (real.model_ibn)
        h, cut = item_vectors(load_score_model(cfg.score_model), it, fc.prompt_chars, fc.batch_size)
        if cut:
            log.warning("%d of %d items are longer than the score model's positions: their ends are cut", cut, it.n)
        e = unit_rows(h)
    else:
        encoder = load_encoder(encoder_dir, fc.max_len if not cfg.fixture else 32)
        x = featurize(encoder, it, FeatureConfig(fc.mode, fc.prompt_chars, fc.batch_size, cache_dir or fc.cache_dir))
        e = item_embeddings(x, fc.mode)
    icfg = real_ibn.IBNConfig(k=cfg.ibn.k, c=cfg.ibn.c, gamma=cfg.ibn.gamma, xi2=cfg.ibn.xi2, mst=cfg.ibn.mst)

    # Held-out prompts: their comparisons stay out of the network, and their pairs are the ones
    # whose inference distance says how well the rest of the data determines them.
    try:
        test_P = heldout_mask(records, cfg.test_frac, cfg.seed)
    except EmptyDataError as err:
        k = len(set(it.prompt_id))
        fix = "analyse a file with more prompts" if k < 2 else "raise test_frac or analyse more prompts"
        raise EmptyDataError(
            f"{path}: {len(records)} pairs under {k} prompt(s) leave no prompt to hold out at "
            f"test_frac={cfg.test_frac} (the held-out distances need one prompt held out and one kept): {fix}"
        ) from err
    train_P = ~test_P & ~self_P
    net = real_ibn.real_ibn(e, it.a_P[train_P], it.b_P[train_P], icfg)
    topo = real_ibn.topology(net, it.prompt_id)
    pairs_Qx2 = np.stack([it.a_P[test_P & ~self_P], it.b_P[test_P & ~self_P]], axis=1)
    dist = pd.DataFrame({"a": pairs_Qx2[:, 0], "b": pairs_Qx2[:, 1]})
    for method in ("resistance", "path"):
        dist[method] = network_distance(net, pairs_Qx2, method) if len(pairs_Qx2) else []
    dist.to_csv(out / "distances.csv", index=False)
    deg_N = np.bincount(np.r_[net.u_E, net.v_E], minlength=net.num_nodes)
    degrees = pd.DataFrame({"item": np.arange(it.n), "prompt_id": it.prompt_id, "degree": deg_N})
    degrees.to_csv(out / "degrees.csv", index=False)
    comp_rows = [{"edges": "all", "size": int(s)} for s in np.bincount(real_ibn.components(it.n, net.u_E, net.v_E))]
    hp = net.kind_E == HP
    touched = np.bincount(np.r_[net.u_E[hp], net.v_E[hp]], minlength=it.n) > 0
    hp_comp = real_ibn.components(it.n, net.u_E[hp], net.v_E[hp])[touched]
    comp_rows += [{"edges": "hp", "size": int(s)} for s in np.bincount(hp_comp) if s > 0]
    pd.DataFrame(comp_rows).to_csv(out / "components.csv", index=False)

    least = dist.sort_values("resistance", ascending=False).head(cfg.ibn.least_determined)
    # an unreachable pair's resistance is infinite, which JSON cannot hold: null, and counted
    least_unreachable = int((~np.isfinite(least["resistance"].to_numpy(float))).sum())
    write_jsonl(
        out / "least_determined.jsonl",
        [
            _request(it, int(r.a), int(r.b), resistance=float(r.resistance) if np.isfinite(r.resistance) else None)
            for r in least.itertuples()
        ],
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
    structural = pd.DataFrame(struct_rows, columns=["method", "M", "F", "F_sem", "regime", "fit_regime"])
    structural.to_csv(out / "structural.csv", index=False)
    if structural.empty:
        log.warning(
            "F(M) not measured: no M of ibn.M_values=%s is at most half the %d items", list(cfg.ibn.M_values), it.n
        )

    # The next comparisons: targets are same-prompt pairs (what a policy ranks), candidates the
    # same-prompt pairs not compared yet; the network is the whole data set's.
    full = real_ibn.real_ibn(e, it.a_P[~self_P], it.b_P[~self_P], icfg)
    targets = _within_prompt_pairs(it.prompt_id, 1000, rng)
    if not len(targets):
        raise ValueError(f"{path}: no prompt has two different responses, so there is no pair to rank")
    compared = {tuple(sorted(p)) for p in zip(it.a_P.tolist(), it.b_P.tolist(), strict=True)}
    same = _within_prompt_pairs(it.prompt_id, 0, rng)
    cand = same[[tuple(p) not in compared for p in same.tolist()]]
    batch_file, why = "next_batch.jsonl", ""
    if not len(cand):
        why = (
            f"every same-prompt pair ({len(same)} of them) is already compared "
            "(one comparison per prompt, the chosen/rejected shape): no same-prompt comparison is left to ask "
            "for. Proposed instead: cross-prompt comparisons among the responses already collected "
            "(cross_prompt_batch.jsonl) and the prompts that most need another response (prompts_to_extend.csv)"
        )
        log.warning("%s: %s", path, why)
        cand, batch_file = cross_prompt_pairs(it.prompt_id, cfg.ibn.max_candidates, rng), "cross_prompt_batch.jsonl"
    if cfg.ibn.max_candidates and len(cand) > cfg.ibn.max_candidates:
        cand = cand[np.sort(rng.choice(len(cand), cfg.ibn.max_candidates, replace=False))]
    dcfg = DesignConfig(
        budget=cfg.ibn.next_batch,
        batch=cfg.ibn.next_batch,
        xi2=cfg.ibn.xi2,
        targets_dim=cfg.ibn.targets_dim,
        seed=cfg.seed,
    )
    design = design_comparisons(full, targets, cand, dcfg) if len(cand) else None
    proposed = 0 if design is None else len(design.chosen_B)
    if not proposed:
        raise ValueError(
            f"{path}: the design proposes no comparison ({len(cand)} candidate pairs, none joined to a target pair "
            f"in the network){': ' + why if why else ''}; with ibn.mst=false the IB edges may leave the items apart"
        )
    write_jsonl(
        out / batch_file,
        [
            _request(it, int(cand[c, 0]), int(cand[c, 1]), predicted_gain=float(g))
            for c, g in zip(design.chosen_B, design.gain_B, strict=True)
        ],
    )
    extend = _prompts_to_extend(full, it, cfg.ibn.xi2)
    extend.to_csv(out / "prompts_to_extend.csv", index=False)

    res = dist["resistance"].to_numpy(float)
    finite = np.isfinite(res)
    if not finite.any():
        raise ValueError(
            f"{path}: no held-out pair has a finite inference distance ({len(res)} held-out pairs, "
            f"{int((~finite).sum())} unreachable); with ibn.mst=false the IB edges may leave the items apart"
        )
    rows = [{"quantity": k, "value": v} for k, v in topo.items()]
    summary = {
        "representation": f"score model {cfg.score_model}" if cfg.score_model else "frozen encoder",
        "pairs": len(records),
        "items": it.n,
        "prompts": int(len(set(it.prompt_id))),
        "load_report": report.summary(),
        "ties": int(sum(r.better is None for r in records)),
        "unlabelled_requests": requests,
        "self_pairs": int(self_P.sum()),
        **{f"ibn_{k}": v for k, v in topo.items()},
        "heldout_pairs": len(res),
        "heldout_resistance_mean": float(res[finite].mean()),
        "heldout_resistance_median": float(np.median(res[finite])),
        "heldout_unreachable": int((~finite).sum()),
        "heldout_zero_distance": int((res == 0).sum()),
        "least_determined_unreachable": least_unreachable,
        "fm_points": int(structural["M"].nunique()),
        "fm_regime": regimes["resistance"],
        "fm_regime_edge_variance": regimes["edge_variance"],
        "next_batch": proposed if batch_file == "next_batch.jsonl" else 0,
        "next_batch_why": why,
        "cross_prompt_batch": proposed if batch_file == "cross_prompt_batch.jsonl" else 0,
        "target_pairs": len(targets),
        "target_resistance_before": float(design.mean_resistance_R[0]),
        "target_resistance_after": float(design.mean_resistance_R[-1]),
        "design_approximate": bool(design.approximate),
        "prompts_to_extend": len(extend),
        "prompts_to_extend_top_gain": float(extend["predicted_gain"].iloc[0]) if len(extend) else 0.0,
        "analyse_s": time.perf_counter() - t0,
    }
    rows += [{"quantity": k, "value": v} for k, v in summary.items() if isinstance(v, int | float)]
    pd.DataFrame(rows).to_csv(out / "results.csv", index=False)
    if cfg.figures:
        tables = {"distances": dist, "degrees": degrees, "structural": structural}
        extra = {"design": design, "batch": batch_file.removesuffix(".jsonl")}
        save_figures(figs.figures(RunTables(pd.DataFrame(rows), tables, cfg, extra)), out / "figures")
    return summary
