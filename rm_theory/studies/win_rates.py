"""Win rates of KL-regularised policies (paper §5, Table of PPO win rates; GSM-8K accuracy; the
incomplete-response ablation and the data-size scaling figure): PPO against chain and tree reward
models, DPO on the same data, and the exact KL-regularised optima against those reward models and
against the exact Bayesian learner's posterior mean (`rm.bayes`), judged by the gold reward.

Legend: X prompts, Y responses (leaves of a prompt), K runs (seeds x reward models), S steps.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rm_theory.common.stats import mean_ci
from rm_theory.config.common import SpaceSchema, build, make_tree_sampling
from rm_theory.config.downstream import (
    WinRatesSchema,
    model_configs,
    task_space,
)
from rm_theory.figures import win_rates as win_rates_figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.policy import dpo, exact, ppo, tables
from rm_theory.policy.rewards import exact_reward_table, leaf_inputs, reward_table
from rm_theory.runs.jsonio import from_jsonable
from rm_theory.runs.log import RunLog
from rm_theory.world.labels import labelled_data
from rm_theory.world.topology import TOPOLOGIES, annotation_tokens

log = logging.getLogger(__name__)


COMPARISONS = (
    ("ppo_tree", "ppo_chain"),
    ("ppo_tree", "ref"),
    ("ppo_chain", "ref"),
    ("dpo_tree", "ref"),
    ("dpo_chain", "ref"),
    ("dpo_tree", "dpo_chain"),
    ("ppo_tree", "dpo_tree"),
    ("ppo_chain", "dpo_chain"),
    ("opt_tree", "opt_chain"),
    ("opt_gold", "ref"),
    ("opt_bayes_tree", "opt_bayes_chain"),
    ("opt_bayes_tree", "ref"),
    ("opt_bayes_chain", "ref"),
)


def run(cfg: WinRatesSchema, runlog: RunLog) -> dict:
    with jax.threefry_partitionable(False):
        return _win_rates(cfg, runlog)


def _win_point(cfg: WinRatesSchema, name: str, task: SpaceSchema, n: int, frac: float, runlog: RunLog):
    """One (task, n, incomplete fraction) point, all seeds: policies, wins, curves, annotation."""
    tree = dataclasses.replace(make_tree_sampling(cfg.tree), incomplete_frac=frac)
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    spaces = [task_space(task, s) for s in seeds]
    # Seeds draw different worlds (fields and reference policies), so each seed is tabulated apart.
    tts = [tables.tabulate(sp) for sp in spaces]
    rm_tables, dpo_data, rm_acc, ann, bayes_tables = [], [], {}, [], {}
    for s, sp, tt in zip(seeds, spaces, tts, strict=True):
        rng = np.random.default_rng([s, n, int(frac * 1000)])
        x_all = leaf_inputs(sp)
        for i, topo in enumerate(TOPOLOGIES):
            comps, labels = labelled_data(sp, topo, n, tree, cfg.labels.beta, rng)
            table, acc = reward_table(
                sp, comps, labels, *model_configs(sp, cfg), jax.random.fold_in(jax.random.key(s), i), x_all
            )
            rm_tables.append(table)
            rm_acc[(s, topo)] = acc
            if cfg.exact_rm:  # the same data learnt without training noise: the RM the IBN describes
                bayes_tables[(s, topo)] = exact_reward_table(sp, comps, labels, cfg.labels.beta)
            dpo_data.append(dpo.item_arrays(tt, comps, labels.better_P))
            for once in (False, True):
                ann.append(
                    {
                        "task": name,
                        "n": n,
                        "incomplete_frac": frac,
                        "seed": s,
                        "topology": topo,
                        "shared_prefix_once": once,
                        "tokens_per_comparison": float(annotation_tokens(sp, comps.a, comps.b, once).mean()),
                    }
                )
    ppo_cfg = build(ppo.PPOConfig, cfg.ppo)
    rows, wins, curves = [], [], []
    # PPO against the chain and tree RM of a seed runs as one vmapped program (same shapes for
    # every seed, so it compiles once).
    for k, (s, tt) in enumerate(zip(seeds, tts, strict=True)):
        ref = tt.ref_logp()
        pol = {"ref": ref, "opt_gold": exact.optimal_logp(ref, tt.gold_XxY, ppo_cfg.beta)}
        logp, trace = ppo.optimise(tt, np.stack(rm_tables[2 * k : 2 * k + 2]), ppo_cfg, jax.random.key(s))
        for i, topo in enumerate(TOPOLOGIES):
            pol[f"ppo_{topo}"] = logp[i]
            pol[f"opt_{topo}"] = exact.optimal_logp(ref, rm_tables[2 * k + i], ppo_cfg.beta)
            if (s, topo) in bayes_tables:
                pol[f"opt_bayes_{topo}"] = exact.optimal_logp(ref, bayes_tables[(s, topo)], ppo_cfg.beta)
            for j, step in enumerate(range(0, ppo_cfg.steps + 1, ppo_cfg.log_every)):
                curves.append(
                    {
                        "task": name,
                        "n": n,
                        "incomplete_frac": frac,
                        "seed": s,
                        "rm": topo,
                        "step": step,
                        "beta": ppo_cfg.beta,
                        **{m: float(trace[m][i, j]) for m in ("gold", "rm", "kl")},
                    }
                )
        if cfg.run_dpo:
            dlogp, _ = dpo.train_dpo(tt, dpo_data[2 * k : 2 * k + 2], build(dpo.DPOConfig, cfg.dpo))
            pol["dpo_chain"], pol["dpo_tree"] = dlogp
        gold = tt.gold_XxY
        for m, lp in pol.items():
            rows.append(
                {
                    "task": name,
                    "n": n,
                    "incomplete_frac": frac,
                    "seed": s,
                    "policy": m,
                    "gold_reward": float((np.exp(lp) * gold).sum(1).mean()),
                    "accuracy": float(exact.accuracy(lp, ref, gold).mean()),
                    "kl_ref": float(exact.kl(lp, ref).mean()),
                    "rm_train_acc": rm_acc.get((s, m.split("_")[-1]), np.nan),
                }
            )
        judge_rng = np.random.default_rng([s, 7])
        for a, b in COMPARISONS:
            if a not in pol or b not in pol:
                continue
            w = (
                exact.win_rates(pol[a], pol[b], gold)
                if cfg.judge_samples <= 0
                else exact.win_rates_sampled(judge_rng, pol[a], pol[b], gold, cfg.judge_samples)
            )
            win, lose, tie = (float(w[x].mean()) for x in ("win", "lose", "tie"))
            wins.append(
                {
                    "task": name,
                    "n": n,
                    "incomplete_frac": frac,
                    "seed": s,
                    "a": a,
                    "b": b,
                    "win": win,
                    "lose": lose,
                    "tie": tie,
                    "win_rate": win / max(win + lose, 1e-12),
                }
            )
    return rows, wins, curves, ann


TABLES = ("rows", "wins", "curves", "ann")  # what a point gives: policies, win rates, PPO curves, annotation cost


def _done_points(logged: list[dict]) -> dict[tuple, dict[str, list[dict]]]:
    """The tables of each point a killed (or finished) run logged, by (task, n, incomplete_frac).

    Each point is one line, so a kill leaves it wholly done or not at all; rows of folders written
    before points were logged whole (`unit: win`) are not reused."""
    return {
        (r["task"], r["n"], r["incomplete_frac"]): {k: [from_jsonable(x) for x in r[k]] for k in TABLES}
        for r in logged
        if r.get("unit") == "point"
    }


def _win_rates(cfg: WinRatesSchema, runlog: RunLog) -> dict:
    tasks = [(k, v) for k, v in cfg.tasks.items() if not cfg.run_tasks or k in cfg.run_tasks]
    points = list(itertools.product(tasks, cfg.n_values, cfg.incomplete_fracs))
    done = _done_points(runlog.rows())  # the README's contract: finished units are not recomputed
    if done:
        log.info("resuming: %d points already done", len(done))
    rows, wins, curves, ann = [], [], [], []
    for (name, task), n, frac in tqdm(points, desc="win-rate points"):
        t0 = time.time()
        point = done.get((name, n, frac))
        if point is None:
            point = dict(zip(TABLES, _win_point(cfg, name, task, n, frac, runlog), strict=True))
            runlog.metric({"unit": "point", "task": name, "n": n, "incomplete_frac": frac, **point})
            log.info("point %s n=%d frac=%.2f done in %.1fs", name, n, frac, time.time() - t0)
        rows += point["rows"]
        wins += point["wins"]
        curves += point["curves"]
        ann += point["ann"]
    out_dir = runlog.dir
    wins_df, pol_df, curve_df, ann_df = map(pd.DataFrame, (wins, rows, curves, ann))
    wins_df.to_csv(out_dir / "results.csv", index=False)
    pol_df.to_csv(out_dir / "policies.csv", index=False)
    curve_df.to_csv(out_dir / "curves.csv", index=False)
    ann_table = ann_df.groupby(["task", "topology", "shared_prefix_once"])["tokens_per_comparison"].mean().unstack()
    ann_table.to_csv(out_dir / "annotation_cost.csv")
    base = wins_df[(wins_df["n"] == cfg.n_values[0]) & (wins_df["incomplete_frac"] == cfg.incomplete_fracs[0])]
    tables = RunTables(wins_df, {"curves": curve_df, "base": base}, cfg)
    save_figures(win_rates_figs.figures(tables), out_dir / "figures")

    out: dict = {"seeds": cfg.seeds, "tasks": len(tasks)}
    for (a, b), key in {
        ("ppo_tree", "ppo_chain"): "tree_vs_chain",
        ("ppo_tree", "ref"): "tree_vs_ref",
        ("ppo_chain", "ref"): "chain_vs_ref",
        ("dpo_tree", "ref"): "dpo_tree_vs_ref",
        ("dpo_chain", "ref"): "dpo_chain_vs_ref",
        ("ppo_tree", "dpo_tree"): "ppo_tree_vs_dpo_tree",
        ("opt_tree", "opt_chain"): "opt_tree_vs_opt_chain",
        ("opt_bayes_tree", "opt_bayes_chain"): "bayes_tree_vs_chain",
        ("opt_bayes_tree", "ref"): "bayes_tree_vs_ref",
        ("opt_bayes_chain", "ref"): "bayes_chain_vs_ref",
    }.items():
        sel = base[(base["a"] == a) & (base["b"] == b)]
        if len(sel) == 0:
            continue
        per_seed = sel.groupby("seed")["win_rate"].mean().to_numpy()  # mean over tasks, per seed
        out[f"win_rate_{key}"], out[f"win_rate_{key}_ci"] = mean_ci(per_seed)
        out[f"tie_{key}"] = float(sel["tie"].mean())
        for task, g in sel.groupby("task"):
            out[f"win_rate_{key}_{task}"] = float(g["win_rate"].mean())
    pb = pol_df[(pol_df["n"] == cfg.n_values[0]) & (pol_df["incomplete_frac"] == cfg.incomplete_fracs[0])]
    for (task, m), g in pb.groupby(["task", "policy"]):
        out[f"accuracy_{task}_{m}"] = float(g["accuracy"].mean())
        out[f"gold_reward_{task}_{m}"] = float(g["gold_reward"].mean())
    out["annotation_tokens_chain"] = float(
        ann_df[(ann_df.topology == "chain") & ~ann_df.shared_prefix_once]["tokens_per_comparison"].mean()
    )
    out["annotation_tokens_tree_shared_once"] = float(
        ann_df[(ann_df.topology == "tree") & ann_df.shared_prefix_once]["tokens_per_comparison"].mean()
    )
    return out
