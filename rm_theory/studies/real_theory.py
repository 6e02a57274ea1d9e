"""The theory on fine-tuned reward models: does the IBN of a trained model predict where it is unsure and
what it gets wrong? (`real.model_ibn`; THEORY.md §2; the paper's §4 and its closing question.)

Per in-domain set and replicate (the units: replicate i has its own selection and prompt split,
`data_seed + i`, and its own training randomness, `seed + i`): an ensemble of K score heads on one
fine-tuned backbone (`config.real_theory`: the top layers and K heads on Poisson(1) weights) is trained
on the training prompts' pairs (`studies.finetune_rm`'s preparation, training and scoring). On the
held-out prompts' pairs, every predictor of `real.model_ibn` (the frozen-encoder IBN, the trained
model's hidden-state and head-gradient IBNs, the last-layer Laplace variance, the ensemble's variance)
is scored by its per-pair Spearman against the ensemble's variance and its AUROC for a wrong prediction
of the ensemble mean, and the pairs are binned by the predictor's quantile (accuracy by quintile). The
IBNs' scales are fitted on training items only.

Intervals: Student t over the replicates of each set (`common.stats.mean_ci`); differences between
predictors are paired (the same pairs and model in each replicate).

Outputs: results.csv (one row per set, replicate and predictor), figures/, summary.json
(`spearman_<predictor>_<set>[_ci]`, `auroc_<predictor>_<set>[_ci]`, `auroc_pwrong_<predictor>_<set>[_ci]`,
paired `auroc[_pwrong]_<p>_minus_<q>_<set>[_ci]`, `test_accuracy_<set>[_ci]`, `test_pairs_<set>`, `errors_<set>`,
`replicates`). A finished (set, replicate) unit's row in metrics.jsonl is reused by a rerun into the
same folder; a model killed mid-training resumes from its checkpoint.

Legend: N items, H hidden width, D feature width, P comparisons, Q query pairs (held out), K ensemble
members.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd

from rm_theory.common.stats import mean_ci
from rm_theory.config.real_theory import RealTheorySchema, make_ibn
from rm_theory.figures import real_theory as plots
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.real.features import featurize, item_embeddings
from rm_theory.real.model_ibn import PREDICTORS, head_gradients, predictor_scores, predictors, unit_rows
from rm_theory.runs import RunLog
from rm_theory.studies.finetune_rm import Prepared, Study, from_json, hits_of, item_tokens, train_model

log = logging.getLogger(__name__)
PAIRED = (("ibn_hidden", "ibn_frozen"), ("ibn_gradient", "ibn_frozen"), ("ibn_hidden", "ensemble"))
PAIRED_PWRONG = (("ibn_hidden", "ibn_frozen"), ("ibn_hidden", "ensemble"))


def replicate_config(cfg, i: int):
    """Replicate i: its own selection and split, its own training randomness."""
    return dataclasses.replace(cfg, seed=cfg.seed + i, data_seed=cfg.data_seed + i)


def representations(st: Study, p: Prepared, res, item_N: np.ndarray, grad_dim: int):
    """(s_KxN scores, h_NxH pooled, g_NxD head gradients, e_NxH frozen unit embeddings) of the items
    `item_N` (rows in that order). With one shared backbone (K heads) the pooled vectors are computed
    once and every member's head reads them; with K adapters each member's whole pass is run."""
    ids, types, _, _ = item_tokens(st, p, item_N)
    member0 = res.member(0)
    h_NxH = member0.pooled_ids(ids, types, batch_size=st.eval_batch)
    if res.share_backbone:
        s_KxN = np.stack([np.asarray(res.member(k).net.head(h_NxH))[:, 0] for k in range(res.size)])
    else:
        s_KxN = res.scores(ids, types, batch_size=st.eval_batch)
    g_NxD = head_gradients(member0, h_NxH, grad_dim, seed=st.cfg.seed)
    x_NxD = featurize(st.encoder, p.items, st.fc, progress=False)[item_N]
    return s_KxN, h_NxH, g_NxD, item_embeddings(x_NxD, st.fc.mode)


def run_unit(cfg: RealTheorySchema, name: str, i: int, runlog: RunLog) -> dict:
    t0 = time.perf_counter()
    st = Study(replicate_config(cfg, i), runlog.dir)
    p = st.get(name, "in_domain")
    res, info = train_model(st, p, "reward", runlog)
    it = p.items
    item_N = np.unique(np.r_[it.a_P[p.train_P | p.test_P], it.b_P[p.train_P | p.test_P]])
    local = np.full(it.n, -1, np.int64)
    local[item_N] = np.arange(len(item_N))
    t = time.perf_counter()
    s_KxN, h_NxH, g_NxD, e_NxH = representations(st, p, res, item_N, cfg.ibn.grad_dim)
    rep_s = time.perf_counter() - t
    a_P, b_P = local[it.a_P[p.train_P]], local[it.b_P[p.train_P]]
    a_Q, b_Q = local[it.a_P[p.test_P]], local[it.b_P[p.test_P]]
    reps = {"frozen": (e_NxH, "cosine"), "hidden": (unit_rows(h_NxH), "cosine"), "gradient": (g_NxD, "sqeuclidean")}
    t = time.perf_counter()
    pred, ibn_info = predictors(reps, g_NxD, s_KxN, a_P, b_P, a_Q, b_Q, make_ibn(cfg.ibn))
    ibn_s = time.perf_counter() - t
    r_full = np.full(it.n, np.nan)
    r_full[item_N] = s_KxN.mean(0)
    hit_Q = hits_of(r_full, p, p.test_P)
    base = {
        "set": name,
        "replicate": i,
        "train_pairs": int(p.train_P.sum()),
        "test_pairs": int(p.test_P.sum()),
        "test_prompts": int(len(np.unique(it.group_P[p.test_P]))),
        "accuracy": float(np.nanmean(hit_Q)),
        "errors": int(np.nansum(1.0 - hit_Q)),
        "ties": int(np.isnan(hit_Q).sum()),
    }
    margin_Q = r_full[it.a_P[p.test_P]] - r_full[it.b_P[p.test_P]]
    rows = [base | r for r in predictor_scores(pred, hit_Q, margin_Q, cfg.ibn.quantiles)]
    timing = {"train_s": info["train_s"], "representation_s": rep_s, "ibn_s": ibn_s, "unit_s": time.perf_counter() - t0}
    return {"kind": "unit", "unit": f"{name}:{i}", "rows": rows, "info": ibn_info | timing}


def summarize(df: pd.DataFrame, cfg: RealTheorySchema) -> dict:
    out: dict = {
        "replicates": cfg.replicates,
        "interval": "Student t 95% over replicates (independent splits and seeds)",
    }
    for name, g in df.groupby("set", sort=False):
        first = g.drop_duplicates("replicate")
        m, h = mean_ci(first["accuracy"])
        out |= {f"test_accuracy_{name}": m, f"test_accuracy_{name}_ci": [m - h, m + h]}
        out[f"test_pairs_{name}"] = int(first["test_pairs"].mean())
        out[f"errors_{name}"] = int(first["errors"].sum())
        # an AUROC needs an error: a replicate without one gives none (Safer-Instruct's refusals)
        out[f"replicates_with_errors_{name}"] = int((first["errors"] > 0).sum())
        for pname, gp in g.groupby("predictor", sort=False):
            for col in ("spearman", "auroc", "auroc_pwrong"):
                v = gp.sort_values("replicate")[col].to_numpy(float)
                v = v[np.isfinite(v)]
                if not len(v):
                    continue
                m, h = mean_ci(v)
                out[f"{col}_{pname}_{name}"] = m
                out[f"{col}_{pname}_{name}_ci"] = [m - h, m + h]
        for col, paired in (("auroc", PAIRED), ("auroc_pwrong", PAIRED_PWRONG)):
            piv = g.pivot(index="replicate", columns="predictor", values=col)
            for p_, q in paired:
                if p_ in piv and q in piv:
                    d = (piv[p_] - piv[q]).to_numpy(float)
                    d = d[np.isfinite(d)]
                    if len(d):
                        m, h = mean_ci(d)
                        out[f"{col}_{p_}_minus_{q}_{name}"] = m
                        out[f"{col}_{p_}_minus_{q}_{name}_ci"] = [m - h, m + h]
    return out


def run_replicated(cfg, runlog: RunLog, unit, figures) -> tuple[pd.DataFrame, dict]:
    """Every (set, replicate) unit in order, a unit finished in an earlier run of this folder reused
    (its row in metrics.jsonl); writes results.csv and the figures. Returns the rows and each unit's
    info keyed `<k>_<set>_<replicate>`. Shared with `studies.real_design`."""
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
    done = {r["unit"]: from_json(r) for r in runlog.rows() if r.get("kind") == "unit"}
    rows, info = [], {}
    for name in cfg.in_domain:
        for i in range(cfg.replicates):
            key = f"{name}:{i}"
            if key in done:
                log.info("unit %s: done in an earlier run of this folder, reused", key)
                out = done[key]
            else:
                out = unit(cfg, name, i, runlog)
                runlog.metric(out)
            rows += out["rows"]
            info |= {f"{k}_{name}_{i}": v for k, v in out["info"].items()}
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    if not len(df) or not np.isfinite(df["accuracy"]).any():
        raise ValueError("no held-out pair was scored (check the data sets and test_frac)")
    if cfg.figures:
        save_figures(figures(RunTables(df, {}, cfg)), runlog.dir / "figures")
    return df, info


def run(cfg: RealTheorySchema, runlog: RunLog) -> dict:
    t0 = time.perf_counter()
    df, info = run_replicated(cfg, runlog, run_unit, plots.figures)
    return summarize(df, cfg) | {"predictors": list(PREDICTORS), "total_s": time.perf_counter() - t0} | info
