"""Safe RLHF in the gold world (Dai et al., arXiv 2310.12773 §3): reward and cost models trained on
one data set, PPO with a Lagrange multiplier on the cost against fixed penalties.

Legend: X prompts, Y responses (leaves of a prompt), N items, K runs (the Lagrangian and each fixed λ),
S steps.
"""

from __future__ import annotations

import logging

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rm_theory.common.stats import mean_ci
from rm_theory.config.common import build, make_labels, make_tree_sampling
from rm_theory.config.downstream import (
    SafeRLHFSchema,
    model_configs,
    task_space,
)
from rm_theory.figures import safe_rlhf as safe_rlhf_figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.policy import ppo, tables
from rm_theory.policy import safe_rlhf as srl
from rm_theory.policy.rewards import leaf_inputs, score_table, to_pref_data
from rm_theory.rm.train import train_reward_and_cost
from rm_theory.runs.log import RunLog
from rm_theory.world.labels import gold_cost, label_comparisons
from rm_theory.world.spaces import Responses
from rm_theory.world.topology import make_dataset

log = logging.getLogger(__name__)


def run(cfg: SafeRLHFSchema, runlog: RunLog) -> dict:
    with jax.threefry_partitionable(False):
        return _safe_rlhf(cfg, runlog)


def _safe_rlhf(cfg: SafeRLHFSchema, runlog: RunLog) -> dict:
    tree = make_tree_sampling(cfg.tree)
    lcfg = make_labels(cfg.labels)
    ppo_cfg = build(ppo.PPOConfig, cfg.ppo)
    lag = srl.LagrangeConfig(
        threshold=cfg.threshold,
        lambda_init=cfg.lambda_init,
        lambda_lr=cfg.lambda_lr,
        lambda_max=cfg.lambda_max,
        lambda_min=cfg.lambda_min,
        delay=cfg.lambda_delay,
        dual=cfg.dual,
    )
    runs = ["lagrangian"] + [f"fixed_{lam:g}" for lam in cfg.fixed_lambdas]
    lam0 = np.array([cfg.lambda_init, *cfg.fixed_lambdas])
    lam_lr = np.array([cfg.lambda_lr] + [0.0] * len(cfg.fixed_lambdas))
    rows, curves = [], []
    for s in tqdm(range(cfg.seed, cfg.seed + cfg.seeds), desc="safe-rlhf seeds"):
        space = task_space(cfg.task, s)
        tt = tables.tabulate(space)
        leaves = space.enumerate(0).data
        gcost = np.stack([gold_cost(space, Responses(np.full(tt.Y, p), leaves), lcfg).cost_N for p in range(tt.P)])
        rng = np.random.default_rng(s)
        comps = make_dataset(space, cfg.topology, cfg.n, rng, tree=tree)
        labels = label_comparisons(space, comps, lcfg, rng)
        mc, tc = model_configs(space, cfg)
        trained = train_reward_and_cost(mc, tc, to_pref_data(space, comps, labels), jax.random.key(s), progress=False)
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
            ppo_cfg,
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
            for j, step in enumerate(range(0, ppo_cfg.steps + 1, ppo_cfg.log_every)):
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
    save_figures(safe_rlhf_figs.figures(RunTables(df, {"curves": curve_df}, cfg)), runlog.dir / "figures")
    return summarize(df, cfg.threshold)


def frontier_gap(fixed: pd.DataFrame, lag: pd.Series, cost: str = "cost") -> float:
    """Reward of the Lagrangian's end point minus the fixed-penalty frontier's reward at the same
    cost (linear interpolation between fixed-λ end points sorted by cost; NaN outside them)."""
    f = fixed.sort_values(cost)
    if len(f) < 2 or not f[cost].min() <= lag[cost] <= f[cost].max():
        return float("nan")
    return float(lag["gold"] - np.interp(lag[cost], f[cost], f["gold"]))


def summarize(df: pd.DataFrame, threshold: float) -> dict:
    """Headline scalars, each mean with its 95% half-width over seeds (worlds); a cost is judged
    by the cost model (the constraint's own units) and by the gold cost."""
    lag_rows = df[df["run"] == "lagrangian"]
    out: dict = {"threshold": threshold, "seeds": int(lag_rows["seed"].nunique())}
    for key, col in (
        ("final_reward", "gold"),
        ("final_cost", "gold_cost"),
        ("final_model_cost", "cost"),
        ("final_lambda", "lambda"),
        ("final_kl", "kl"),
    ):
        out[key], out[f"{key}_ci"] = mean_ci(lag_rows[col].to_numpy())
    out["constraint_gap"], out["constraint_gap_ci"] = mean_ci(lag_rows["cost"].to_numpy() - threshold)
    gaps = np.asarray(
        [frontier_gap(g[g["run"] != "lagrangian"], g[g["run"] == "lagrangian"].iloc[0]) for _, g in df.groupby("seed")]
    )
    # A seed whose Lagrangian ends outside the fixed-λ runs' cost range has no frontier to compare
    # with: it is no unit of the interval, and counted.
    out["frontier_gap"], out["frontier_gap_ci"] = mean_ci(gaps[np.isfinite(gaps)])
    out["frontier_gap_seeds"] = int(np.isfinite(gaps).sum())
    out["frontier_gap_outside"] = int((~np.isfinite(gaps)).sum())
    for name, g in df[df["run"] != "lagrangian"].groupby("run"):
        out[f"{name}_reward"], out[f"{name}_cost"] = float(g["gold"].mean()), float(g["gold_cost"].mean())
        out[f"{name}_model_cost"] = float(g["cost"].mean())
    return out
