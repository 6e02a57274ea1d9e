"""The downstream studies as runs (paper §5): Best-of-N, win rates of KL-regularised policies
(PPO against chain and tree reward models, DPO on the same data) and Safe RLHF.

Per task and seed: a small prefix-tree space is tabulated (`policy.tabulate`), chain and tree data
of the same budget are drawn and labelled, reward models are trained with `rm_theory.train`, and
their mean score of every leaf becomes the table the policy optimises. Policies are judged by the
gold reward. All JAX work runs under `jax.threefry_partitionable(False)`: with the partitionable
Threefry, XLA on CPU spends seconds compiling each program that draws random numbers.

Legend: P prompts, Y leaves per prompt, K runs (seeds x reward models), S steps.
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

from rm_theory import dpo, plots_downstream, policy, synthetic
from rm_theory import safe_rlhf as srl
from rm_theory.config.common import build, make_tree_sampling
from rm_theory.config.downstream import (
    BestOfNConfig,
    DPOSchema,
    PPOSchema,
    RMConfig,
    SafeRLHFConfig,
    TaskConfig,
    WinRatesConfig,
)
from rm_theory.labels import (
    LabelConfig,
    Labels,
    gold_cost,
    label_comparisons,
    model_tokens,
    vocab_size,
)
from rm_theory.models import ModelConfig
from rm_theory.plotting import save
from rm_theory.results import RunLog
from rm_theory.spaces import PrefixTreeSpace, Responses
from rm_theory.topology import Comparisons, TreeSampling, annotation_tokens, make_dataset
from rm_theory.train import PrefData, TrainConfig, train_ensemble, train_reward_and_cost

log = logging.getLogger(__name__)
TOPOLOGIES = ("chain", "tree")


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def task_space(t: TaskConfig, field_seed: int) -> PrefixTreeSpace:
    return build(PrefixTreeSpace, t, seed=field_seed)


def to_pref_data(space: PrefixTreeSpace, comps: Comparisons, labels: Labels) -> PrefData:
    """The trainer's arrays; downstream cost models learn safety without the harm-category head."""
    return dataclasses.replace(synthetic.to_pref_data(space, comps, labels).data, harm_NxC=None)


def model_configs(space: PrefixTreeSpace, rm: RMConfig) -> tuple[ModelConfig, TrainConfig]:
    mc = ModelConfig(
        family=rm.family,
        vocab=vocab_size(space),
        max_len=space.L + 1,
        embed_dim=rm.embed_dim,
        hidden=tuple(rm.hidden),
        d_model=rm.d_model,
        layers=rm.layers,
        heads=rm.heads,
    )
    tc = TrainConfig(
        ensemble_size=rm.ensemble_size,
        steps=rm.steps,
        batch_size=rm.batch_size,
        lr=rm.lr,
        weight_decay=rm.weight_decay,
        warmup_steps=min(50, rm.steps // 5),
        log_every=rm.steps,
    )
    return mc, tc


def leaf_inputs(space: PrefixTreeSpace) -> np.ndarray:
    """Model tokens of every leaf of every prompt, prompt-major (P·Y rows)."""
    leaves = space.enumerate(0).data
    Y = len(leaves)
    return np.concatenate(
        [model_tokens(space, Responses(np.full(Y, p), leaves)) for p in range(space.num_prompts)]
    )


def score_table(ens, space: PrefixTreeSpace, x_all: np.ndarray) -> np.ndarray:
    """Mean ensemble score of every leaf, `s_PxY`."""
    return ens.score(x_all).mean(0).reshape(space.num_prompts, -1)


def reward_table(
    space: PrefixTreeSpace,
    comps: Comparisons,
    labels,
    rm: RMConfig,
    key: jax.Array,
    x_all: np.ndarray,
) -> tuple[np.ndarray, float]:
    mc, tc = model_configs(space, rm)
    ens, hist = train_ensemble(mc, tc, to_pref_data(space, comps, labels), key, progress=False)
    return score_table(ens, space, x_all), float(hist[-1].get("acc", np.nan))


def ppo_config(p: PPOSchema) -> policy.PPOConfig:
    return build(policy.PPOConfig, p)


def dpo_config(d: DPOSchema) -> dpo.DPOConfig:
    return build(dpo.DPOConfig, d)


def mean_ci(v: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of a normal 95% interval over units (seeds)."""
    v = np.asarray(v, np.float64)
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float(
        "nan"
    )


def draw_data(space, topology, n, tree: TreeSampling, label_beta, rng):
    comps = make_dataset(space, topology, n, rng, tree=tree)
    return comps, label_comparisons(space, comps, LabelConfig(beta=label_beta), rng)


# --------------------------------------------------------------------------------------------
# Best-of-N
# --------------------------------------------------------------------------------------------


def run_best_of_n(cfg: BestOfNConfig, runlog: RunLog) -> dict:
    with jax.threefry_partitionable(False):
        return _best_of_n(cfg, runlog)


def _best_of_n(cfg: BestOfNConfig, runlog: RunLog) -> dict:
    tree = make_tree_sampling(cfg.tree)
    Ns = [2**k for k in range(cfg.log2_n_max + 1)]
    rows = []
    for s in tqdm(range(cfg.seed, cfg.seed + cfg.seeds), desc="best-of-n seeds"):
        space = task_space(cfg.task, s)
        tt = policy.tabulate(space)
        ref = tt.ref_logp()
        x_all = leaf_inputs(space)
        rng = np.random.default_rng(s)
        tables = {"gold": tt.gold_PxY}
        for i, topo in enumerate(TOPOLOGIES):
            comps, labels = draw_data(space, topo, cfg.n, tree, cfg.label_beta, rng)
            tables[topo], _ = reward_table(
                space, comps, labels, cfg.rm, jax.random.fold_in(jax.random.key(s), i), x_all
            )
        for rm, N in itertools.product(tables, Ns):
            g_P = policy.best_of_n(ref, tables[rm], tt.gold_PxY, N)
            rows += [
                {"seed": s, "prompt": p, "rm": rm, "N": N, "gold_reward": float(g)}
                for p, g in enumerate(g_P)
            ]
        runlog.metric(
            {
                "seed": s,
                **{
                    f"N{N}_{rm}": float(
                        np.mean(
                            [
                                r["gold_reward"]
                                for r in rows
                                if r["seed"] == s and r["rm"] == rm and r["N"] == N
                            ]
                        )
                    )
                    for rm, N in itertools.product(tables, [1, Ns[-1]])
                },
            }
        )
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    save(plots_downstream.best_of_n_curve(df), runlog.dir / "figures" / "best_of_n")
    per_seed = df.groupby(["rm", "N", "seed"])["gold_reward"].mean()
    out = {}
    for (rm, N), g in per_seed.groupby(level=[0, 1]):
        m, ci = mean_ci(g.to_numpy())
        out[f"gold_reward_N{N}_{rm}"], out[f"gold_reward_N{N}_{rm}_ci"] = m, ci
    return out


# --------------------------------------------------------------------------------------------
# Win rates
# --------------------------------------------------------------------------------------------

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
)


def run_win_rates(cfg: WinRatesConfig, runlog: RunLog) -> dict:
    with jax.threefry_partitionable(False):
        return _win_rates(cfg, runlog)


def _win_point(
    cfg: WinRatesConfig, name: str, task: TaskConfig, n: int, frac: float, runlog: RunLog
):
    """One (task, n, incomplete fraction) point, all seeds: policies, wins, curves, annotation."""
    tree = dataclasses.replace(make_tree_sampling(cfg.tree), incomplete_frac=frac)
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    spaces = [task_space(task, s) for s in seeds]
    # Seeds draw different worlds (fields and reference policies), so each seed is tabulated apart.
    tts = [policy.tabulate(sp) for sp in spaces]
    rm_tables, dpo_data, rm_acc, ann = [], [], {}, []
    for s, sp, tt in zip(seeds, spaces, tts, strict=True):
        rng = np.random.default_rng([s, n, int(frac * 1000)])
        x_all = leaf_inputs(sp)
        for i, topo in enumerate(TOPOLOGIES):
            comps, labels = draw_data(sp, topo, n, tree, cfg.label_beta, rng)
            table, acc = reward_table(
                sp, comps, labels, cfg.rm, jax.random.fold_in(jax.random.key(s), i), x_all
            )
            rm_tables.append(table)
            rm_acc[(s, topo)] = acc
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
                        "tokens_per_comparison": float(
                            annotation_tokens(sp, comps.a, comps.b, once).mean()
                        ),
                    }
                )
    ppo = ppo_config(cfg.ppo)
    rows, wins, curves = [], [], []
    # PPO against the chain and tree RM of a seed runs as one vmapped program (same shapes for
    # every seed, so it compiles once).
    for k, (s, tt) in enumerate(zip(seeds, tts, strict=True)):
        ref = tt.ref_logp()
        pol = {"ref": ref, "opt_gold": policy.optimal_logp(ref, tt.gold_PxY, ppo.beta)}
        logp, trace = policy.optimise(
            tt, np.stack(rm_tables[2 * k : 2 * k + 2]), ppo, jax.random.key(s)
        )
        for i, topo in enumerate(TOPOLOGIES):
            pol[f"ppo_{topo}"] = logp[i]
            pol[f"opt_{topo}"] = policy.optimal_logp(ref, rm_tables[2 * k + i], ppo.beta)
            for j, step in enumerate(range(0, ppo.steps + 1, ppo.log_every)):
                curves.append(
                    {
                        "task": name,
                        "n": n,
                        "incomplete_frac": frac,
                        "seed": s,
                        "rm": topo,
                        "step": step,
                        "beta": ppo.beta,
                        **{m: float(trace[m][i, j]) for m in ("gold", "rm", "kl")},
                    }
                )
        if cfg.run_dpo:
            dlogp, _ = dpo.train_dpo(tt, dpo_data[2 * k : 2 * k + 2], dpo_config(cfg.dpo))
            pol["dpo_chain"], pol["dpo_tree"] = dlogp
        gold = tt.gold_PxY
        for m, lp in pol.items():
            rows.append(
                {
                    "task": name,
                    "n": n,
                    "incomplete_frac": frac,
                    "seed": s,
                    "policy": m,
                    "gold_reward": float((np.exp(lp) * gold).sum(1).mean()),
                    "accuracy": float(policy.accuracy(lp, ref, gold).mean()),
                    "kl_ref": float(policy.kl(lp, ref).mean()),
                    "rm_train_acc": rm_acc.get((s, m.split("_")[-1]), np.nan),
                }
            )
        judge_rng = np.random.default_rng([s, 7])
        for a, b in COMPARISONS:
            if a not in pol or b not in pol:
                continue
            w = (
                policy.win_rates(pol[a], pol[b], gold)
                if cfg.judge_samples <= 0
                else policy.win_rates_sampled(judge_rng, pol[a], pol[b], gold, cfg.judge_samples)
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


def _win_rates(cfg: WinRatesConfig, runlog: RunLog) -> dict:
    unknown = set(cfg.run_tasks) - cfg.tasks.keys()
    if unknown:
        raise KeyError(f"run_tasks names tasks that are not defined under tasks: {sorted(unknown)}")
    tasks = [(k, v) for k, v in cfg.tasks.items() if not cfg.run_tasks or k in cfg.run_tasks]
    points = list(itertools.product(tasks, cfg.n_values, cfg.incomplete_fracs))
    rows, wins, curves, ann = [], [], [], []
    for (name, task), n, frac in tqdm(points, desc="win-rate points"):
        t0 = time.time()
        r, w, c, a = _win_point(cfg, name, task, n, frac, runlog)
        rows += r
        wins += w
        curves += c
        ann += a
        for row in w:
            runlog.metric({"unit": "win", **row})
        log.info("point %s n=%d frac=%.2f done in %.1fs", name, n, frac, time.time() - t0)
    out_dir = runlog.dir
    wins_df, pol_df, curve_df, ann_df = map(pd.DataFrame, (wins, rows, curves, ann))
    wins_df.to_csv(out_dir / "results.csv", index=False)
    pol_df.to_csv(out_dir / "policies.csv", index=False)
    curve_df.to_csv(out_dir / "curves.csv", index=False)
    ann_table = (
        ann_df.groupby(["task", "topology", "shared_prefix_once"])["tokens_per_comparison"]
        .mean()
        .unstack()
    )
    ann_table.to_csv(out_dir / "annotation_cost.csv")
    figs = out_dir / "figures"
    save(plots_downstream.win_rate_bars(wins_df), figs / "win_rates")
    save(plots_downstream.overoptimisation(curve_df), figs / "overoptimisation")
    if len(cfg.n_values) > 1:
        save(plots_downstream.win_rate_vs(wins_df, "n"), figs / "win_rate_vs_n")
    if len(cfg.incomplete_fracs) > 1:
        save(
            plots_downstream.win_rate_vs(wins_df, "incomplete_frac"),
            figs / "win_rate_vs_incomplete_frac",
        )

    base = wins_df[
        (wins_df["n"] == cfg.n_values[0]) & (wins_df["incomplete_frac"] == cfg.incomplete_fracs[0])
    ]
    out: dict = {}
    for (a, b), key in {
        ("ppo_tree", "ppo_chain"): "tree_vs_chain",
        ("ppo_tree", "ref"): "tree_vs_ref",
        ("ppo_chain", "ref"): "chain_vs_ref",
        ("dpo_tree", "ref"): "dpo_tree_vs_ref",
        ("dpo_chain", "ref"): "dpo_chain_vs_ref",
        ("ppo_tree", "dpo_tree"): "ppo_tree_vs_dpo_tree",
        ("opt_tree", "opt_chain"): "opt_tree_vs_opt_chain",
    }.items():
        sel = base[(base["a"] == a) & (base["b"] == b)]
        if len(sel) == 0:
            continue
        per_seed = sel.groupby("seed")["win_rate"].mean().to_numpy()  # mean over tasks, per seed
        out[f"win_rate_{key}"], out[f"win_rate_{key}_ci"] = mean_ci(per_seed)
        out[f"tie_{key}"] = float(sel["tie"].mean())
        for task, g in sel.groupby("task"):
            out[f"win_rate_{key}_{task}"] = float(g["win_rate"].mean())
    pb = pol_df[
        (pol_df["n"] == cfg.n_values[0]) & (pol_df["incomplete_frac"] == cfg.incomplete_fracs[0])
    ]
    for (task, m), g in pb.groupby(["task", "policy"]):
        out[f"accuracy_{task}_{m}"] = float(g["accuracy"].mean())
        out[f"gold_reward_{task}_{m}"] = float(g["gold_reward"].mean())
    out["annotation_tokens_chain"] = float(
        ann_df[(ann_df.topology == "chain") & ~ann_df.shared_prefix_once][
            "tokens_per_comparison"
        ].mean()
    )
    out["annotation_tokens_tree_shared_once"] = float(
        ann_df[(ann_df.topology == "tree") & ann_df.shared_prefix_once][
            "tokens_per_comparison"
        ].mean()
    )
    return out


# --------------------------------------------------------------------------------------------
# Safe RLHF
# --------------------------------------------------------------------------------------------


def run_safe_rlhf(cfg: SafeRLHFConfig, runlog: RunLog) -> dict:
    with jax.threefry_partitionable(False):
        return _safe_rlhf(cfg, runlog)


def _safe_rlhf(cfg: SafeRLHFConfig, runlog: RunLog) -> dict:
    tree = make_tree_sampling(cfg.tree)
    lcfg = LabelConfig(
        beta=cfg.label_beta, cost_beta=cfg.label_beta, rho=cfg.rho, cost_offset=cfg.cost_offset
    )
    ppo = ppo_config(cfg.ppo)
    lag = srl.LagrangeConfig(
        threshold=cfg.threshold, lambda_init=cfg.lambda_init, lambda_lr=cfg.lambda_lr,
        lambda_max=cfg.lambda_max, lambda_min=cfg.lambda_min, delay=cfg.lambda_delay,
    )
    runs = ["lagrangian"] + [f"fixed_{lam:g}" for lam in cfg.fixed_lambdas]
    lam0 = np.array([cfg.lambda_init, *cfg.fixed_lambdas])
    lam_lr = np.array([cfg.lambda_lr] + [0.0] * len(cfg.fixed_lambdas))
    rows, curves = [], []
    for s in tqdm(range(cfg.seed, cfg.seed + cfg.seeds), desc="safe-rlhf seeds"):
        space = task_space(cfg.task, s)
        tt = policy.tabulate(space)
        leaves = space.enumerate(0).data
        gcost = np.stack(
            [
                gold_cost(space, Responses(np.full(tt.Y, p), leaves), lcfg).cost_N
                for p in range(tt.P)
            ]
        )
        rng = np.random.default_rng(s)
        comps = make_dataset(space, cfg.topology, cfg.n, rng, tree=tree)
        labels = label_comparisons(space, comps, lcfg, rng)
        mc, tc = model_configs(space, cfg.rm)
        trained = train_reward_and_cost(
            mc, tc, to_pref_data(space, comps, labels), jax.random.key(s), progress=False
        )
        x_all = leaf_inputs(space)
        r = score_table(trained["reward"][0], space, x_all)
        c = gcost if cfg.cost_source == "gold" else score_table(trained["cost"][0], space, x_all)
        K = len(runs)
        logp, m = srl.optimise_safe(
            tt,
            np.stack([r] * K),
            np.stack([c] * K),
            gcost,
            lam0,
            lam_lr,
            ppo,
            lag,
            jax.random.key(s),
        )
        for k, name in enumerate(runs):
            rows.append(
                {
                    "seed": s,
                    "run": name,
                    "lambda_init": lam0[k],
                    **{key: float(v[k, -1]) for key, v in m.items()},
                }
            )
            for j, step in enumerate(range(0, ppo.steps + 1, ppo.log_every)):
                curves.append(
                    {
                        "seed": s,
                        "run": name,
                        "step": step,
                        **{key: float(v[k, j]) for key, v in m.items()},
                    }
                )
        runlog.metric({"seed": s, **{f"{key}_lagrangian": float(v[0, -1]) for key, v in m.items()}})
    df, curve_df = pd.DataFrame(rows), pd.DataFrame(curves)
    df.to_csv(runlog.dir / "results.csv", index=False)
    curve_df.to_csv(runlog.dir / "curves.csv", index=False)
    save(
        plots_downstream.safe_traces(curve_df, cfg.threshold),
        runlog.dir / "figures" / "safe_rlhf_traces",
    )
    save(
        plots_downstream.safe_frontier(df, cfg.threshold),
        runlog.dir / "figures" / "safe_rlhf_frontier",
    )
    lag_rows = df[df["run"] == "lagrangian"]
    out = {
        "final_reward": float(lag_rows["gold"].mean()),
        "final_cost": float(lag_rows["gold_cost"].mean()),
        "final_model_cost": float(lag_rows["cost"].mean()),
        "threshold": cfg.threshold,
        "final_lambda": float(lag_rows["lambda"].mean()),
        "final_kl": float(lag_rows["kl"].mean()),
    }
    for name, g in df[df["run"] != "lagrangian"].groupby("run"):
        out[f"{name}_reward"], out[f"{name}_cost"] = (
            float(g["gold"].mean()),
            float(g["gold_cost"].mean()),
        )
    return out
