"""Reward and cost models trained on chain vs tree data, and the IBN's prediction beside them.

One run sweeps regime × n × topology × seed (THEORY.md §2 "Theory against practice"; paper §5):
for each point a data set of the topology is drawn under the budget of n chain comparisons, labelled
(`labels`), converted (`synthetic`), a K-member ensemble is trained on it (`train`, bootstrap
resamples, vmapped members), and it is evaluated on held-out query pairs from the reference policy
(`evaluate`; the same pairs for every n and topology of a seed and regime), beside the mean
effective resistance of the same pairs in the IBN of the same data. Outputs: `results.csv` (one row
per ensemble), `categories.csv` (cost model, per harm category), figures, and the headline scalars.

Legend: N items, Q query pairs, K ensemble members, C harm categories.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import jax
import pandas as pd
from tqdm import tqdm

from rm_theory.common.distributed import maybe_initialize
from rm_theory.common.rng import rng, tag
from rm_theory.common.stats import mean_ci, seed_means
from rm_theory.config.common import (
    make_label_variance,
    make_labels,
    make_model,
    make_space,
    make_train,
    make_tree_sampling,
)
from rm_theory.config.train_rm import TrainRMSchema
from rm_theory.figures import train_rm as plots_models
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.rm import sharding as distributed
from rm_theory.rm.evaluate import (
    correlation,
    cost_metrics,
    ibn_resistance,
    query_pairs,
    reward_metrics,
    theory_practice,
)
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import train_ensemble, train_reward_and_cost
from rm_theory.runs.log import RunLog
from rm_theory.world.labels import label_comparisons
from rm_theory.world.records import write_jsonl
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, ResponseSpace
from rm_theory.world.synthetic import input_spec, to_pref_data, to_records
from rm_theory.world.topology import annotation_tokens, make_dataset

log = logging.getLogger(__name__)

KEYS = ("regime", "n", "topology", "seed")


def model_config(cfg: TrainRMSchema, space: ResponseSpace) -> ModelConfig:
    # A point has no token sequence: the metric geometry's model is the MLP on features.
    family = "mlp" if isinstance(space, MetricSpace) else cfg.model.family
    return make_model(cfg.model, family=family, n_harm=cfg.labels.num_categories, **input_spec(space))


def run_point(
    cfg: TrainRMSchema, regime: str, n: int, topology: str, seed: int, export_dir=None, mesh=None, checkpoint_dir=None
) -> tuple[dict, list[dict]]:
    """Train and evaluate the ensemble(s) of one (regime, n, topology, seed); one row and category rows."""
    space = make_space(dataclasses.replace(cfg.space, regime=regime), seed)  # the seed's own world
    tree = make_tree_sampling(cfg.tree)
    lc = make_labels(cfg.labels)
    # Queries depend on (seed, regime) only: every n and topology is judged on the same pairs.
    q = query_pairs(space, cfg.num_queries, rng("queries", seed, regime), lc)
    comps = make_dataset(space, topology, n, rng("data", seed, regime, n, topology), budget=cfg.budget, tree=tree)
    labels = label_comparisons(space, comps, lc, rng("labels", seed, regime, n, topology))
    groups = cfg.tree_loss == "plackett_luce" and topology == "tree"
    syn = to_pref_data(space, comps, labels, groups=groups, beta=lc.beta, rng=rng("ranks", seed, regime, n))
    if export_dir is not None and isinstance(space, PrefixTreeSpace):
        export_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(
            export_dir / f"{regime}_{topology}_n{n}_seed{seed}.jsonl.gz",
            to_records(space, comps, labels),
        )

    mc, tc = model_config(cfg, space), make_train(cfg.train)
    key = jax.random.fold_in(jax.random.key(seed), tag(regime, n, topology)[0] % 2**31)
    if cfg.cost:
        trained = train_reward_and_cost(mc, tc, syn.data, key, progress=False, mesh=mesh, checkpoint_dir=checkpoint_dir)
    else:
        ens = train_ensemble(mc, tc, syn.data, key, progress=False, mesh=mesh, checkpoint_dir=checkpoint_dir)
        trained = {"reward": ens}
    reward, history = trained["reward"]
    rm, var_Q = reward_metrics(reward.score(q.x), q)
    lv = make_label_variance(cfg.ibn)
    tp = theory_practice(var_Q, ibn_resistance(space, comps, q, lv))
    row = {
        "regime": regime,
        "n": n,
        "topology": topology,
        "seed": seed,
        "geometry": cfg.space.geometry,
        "budget": cfg.budget,
        "n_comparisons": len(comps),
        "n_groups": syn.n_groups,
        "tokens": int(annotation_tokens(space, comps.a, comps.b, shared_prefix_once=topology == "tree").sum()),
        "n_inconsistent": syn.n_inconsistent,
        "train_loss": history[-1]["loss"],
        **rm,
        **tp,
    }
    cat_rows: list[dict] = []
    if "cost" in trained:
        cost, _ = trained["cost"]
        c_KxN, harm_KxNxC = cost.score_and_harm(q.x)
        cm, cat_rows = cost_metrics(c_KxN, q, harm_KxNxC)
        row.update(cm)
        cat_rows = [{k: row[k] for k in KEYS} | r for r in cat_rows]
    return row, cat_rows


def _at_max_n(df: pd.DataFrame, col: str) -> dict[str, tuple[float, float, int]]:
    """Per topology at the largest n: mean over seeds (worlds), its 95% half-width, the seeds."""
    top = df[df["n"] == df["n"].max()]
    return {t: (*mean_ci(g[col].to_numpy()), len(g)) for t, g in top.groupby("topology")}


def headline(df: pd.DataFrame, beta: float) -> dict:
    """Scalars of summary.json: per topology at the largest n (first regime), tree's as the plain key."""
    base = df[df["regime"] == df["regime"].iloc[0]]
    out: dict = {}
    cols = [
        "gold_accuracy",
        "label_accuracy",
        "ensemble_variance",
        "ibn_resistance",
        "spearman",
        "ece",
    ]
    cols += [c for c in ("cost_sign_accuracy", "cost_sign_accuracy_gold", "safer_gold_accuracy") if c in df]
    for col in cols:
        per = _at_max_n(base, col)
        for topo, (m, half, _) in per.items():
            out[f"{col}_{topo}"], out[f"{col}_{topo}_ci"] = m, half
        out[col], out[f"{col}_ci"], out["seeds_at_max_n"] = per.get("tree", next(iter(per.values())))
    # Paired by seed: chain and tree share the seed's world and query pairs.
    top = base[base["n"] == base["n"].max()]
    if {"chain", "tree"} <= set(top["topology"]):
        by = top.pivot_table(index="seed", columns="topology", values="gold_accuracy")
        d = (by["tree"] - by["chain"]).dropna().to_numpy()
        out["gold_accuracy_tree_minus_chain"], out["gold_accuracy_tree_minus_chain_ci"] = mean_ci(d)
    # Theory against practice, per data set: the rank correlation over the same query pairs of the
    # IBN's resistance with the ensemble's variance (the headline). The data sets of a seed share its
    # world and query pairs, so they are averaged within the seed first and the interval is over
    # seeds. The pooled correlation across n is kept as a secondary figure: both fall with n, so it
    # is positive almost by construction.
    per_seed, nan_sets = seed_means(df, "pair_spearman")
    out["theory_practice_pair_spearman"], out["theory_practice_pair_spearman_ci"] = mean_ci(per_seed)
    out["theory_practice_seeds"] = len(per_seed)
    out["theory_practice_datasets"] = int(df["pair_spearman"].notna().sum())
    out["theory_practice_datasets_nan"] = nan_sets
    corr = correlation(df["ibn_resistance"], df["ensemble_variance"] / beta**2)
    out["theory_practice_corr_pooled"] = corr["pearson_log"]
    out["theory_practice_spearman_pooled"] = corr["spearman"]
    out["max_n"] = int(df["n"].max())
    out["n_inconsistent"] = int(df["n_inconsistent"].sum())
    out["by_n"] = {
        col: {
            f"{r}/{t}": {int(n): float(v) for n, v in g.groupby("n")[col].mean().items()}
            for (r, t), g in df.groupby(["regime", "topology"])
        }
        for col in ("gold_accuracy", "ensemble_variance", "ibn_resistance")
    }
    return out


def _done_points(logged: list[dict]) -> tuple[dict[tuple, dict], dict[tuple, list[dict]]]:
    """Result rows and category rows of the points a killed run finished, by (regime, n, topology, seed).

    Older folders logged category rows as lines of their own before the result row; those count
    only for a finished point, once.
    """
    done, cats = {}, {}
    for r in logged:
        if r.get("kind") == "result":
            key = tuple(r[k] for k in KEYS)
            done[key] = {k: v for k, v in r.items() if k not in ("kind", "categories")}
            cats[key] = list(r.get("categories", []))
    legacy: dict[tuple, dict[str, dict]] = {}
    for r in logged:
        if r.get("kind") == "category" and tuple(r[k] for k in KEYS) in done:
            row = {k: v for k, v in r.items() if k != "kind"}
            legacy.setdefault(tuple(r[k] for k in KEYS), {})[json.dumps(row, sort_keys=True)] = row
    for key, rows in legacy.items():
        cats[key] = cats[key] or list(rows.values())
    return done, cats


def run(cfg: TrainRMSchema, runlog: RunLog) -> dict:
    maybe_initialize(cfg.distributed)  # multi-host: before any other JAX work
    mesh = distributed.make_mesh(cfg.distributed, cfg.train.ensemble_size)
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    jobs = [(r, n, t, s) for n in sorted(cfg.n_values) for r in cfg.regimes for s in seeds for t in cfg.topologies]
    done, cats_done = _done_points(runlog.rows())
    if done:
        log.info("resuming: %d of %d points already done", len(done), len(jobs))
    rows, cats = [], []
    for job in tqdm(jobs, desc="train_rm", mininterval=5.0):
        if job in done:
            rows.append(done[job])
            cats += cats_done.get(job, [])
            continue
        export = runlog.dir / "data" if cfg.export_jsonl and job[1] == max(cfg.n_values) else None
        ckpt = runlog.dir / "checkpoints" / "_".join(map(str, job)) if cfg.checkpoint else None
        row, cat_rows = run_point(cfg, *job, export_dir=export, mesh=mesh, checkpoint_dir=ckpt)
        log.info(
            "%s: gold acc %.3f, ens var %.4g, IBN res %.4g",
            dict(zip(KEYS, job, strict=True)),
            row["gold_accuracy"],
            row["ensemble_variance"],
            row["ibn_resistance"],
        )
        # One line per point, its category rows inside: a kill leaves a point wholly done or not at all.
        runlog.metric({"kind": "result", **row, "categories": cat_rows})
        if ckpt is not None:
            shutil.rmtree(ckpt, ignore_errors=True)  # the row is the unit's record now
        rows.append(row)
        cats += cat_rows
    df = pd.DataFrame(rows).sort_values(list(KEYS), kind="stable").reset_index(drop=True)
    df = df.drop(columns=["kind"], errors="ignore")
    df.to_csv(runlog.dir / "results.csv", index=False)
    if cats:
        pd.DataFrame(cats).to_csv(runlog.dir / "categories.csv", index=False)
    save_figures(plots_models.figures(RunTables(df, config=cfg)), runlog.dir / "figures")
    return headline(df, cfg.labels.beta) | {
        "rows": len(df),
        "heldout_pairs": cfg.num_queries,
        "seeds": cfg.seeds,
        "field_per_seed": cfg.space.field_per_seed,
    }
