"""Best-of-N against chain and tree reward models, judged by the gold reward (paper §5, Best-of-N
with N = 2^2 … 2^9: the paper reports that the tree RM keeps improving with N while the chain RM
saturates).

Per seed: a small prefix-tree world is tabulated, chain and tree data of the same budget are drawn
and labelled, reward ensembles are trained, and E[r*] of the Best-of-N choice is computed exactly.
JAX work runs under `jax.threefry_partitionable(False)`: with the partitionable Threefry, XLA on
CPU spends seconds compiling each program that draws random numbers.

Legend: X prompts, Y responses (leaves of a prompt), P comparisons.
"""

from __future__ import annotations

import itertools
import logging

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rm_theory.common.stats import mean_ci
from rm_theory.config.common import make_tree_sampling
from rm_theory.config.downstream import (
    BestOfNSchema,
    model_configs,
    task_space,
)
from rm_theory.figures import best_of_n as best_of_n_figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.policy import exact, tables
from rm_theory.policy.rewards import leaf_inputs, reward_table
from rm_theory.runs.log import RunLog
from rm_theory.world.labels import labelled_data
from rm_theory.world.topology import TOPOLOGIES

log = logging.getLogger(__name__)


def run(cfg: BestOfNSchema, runlog: RunLog) -> dict:
    with jax.threefry_partitionable(False):
        return _best_of_n(cfg, runlog)


def _best_of_n(cfg: BestOfNSchema, runlog: RunLog) -> dict:
    tree = make_tree_sampling(cfg.tree)
    Ns = [2**k for k in range(cfg.log2_n_max + 1)]
    rows = []
    for s in tqdm(range(cfg.seed, cfg.seed + cfg.seeds), desc="best-of-n seeds"):
        space = task_space(cfg.task, s)
        tt = tables.tabulate(space)
        ref = tt.ref_logp()
        x_all = leaf_inputs(space)
        rng = np.random.default_rng(s)
        rm_tables = {"gold": tt.gold_XxY}
        for i, topo in enumerate(TOPOLOGIES):
            comps, labels = labelled_data(space, topo, cfg.n, tree, cfg.labels.beta, rng)
            rm_tables[topo], _ = reward_table(
                space, comps, labels, *model_configs(space, cfg), jax.random.fold_in(jax.random.key(s), i), x_all
            )
        for rm, N in itertools.product(rm_tables, Ns):
            g_X = exact.best_of_n(ref, rm_tables[rm], tt.gold_XxY, N)
            rows += [{"seed": s, "prompt": p, "rm": rm, "N": N, "gold_reward": float(g)} for p, g in enumerate(g_X)]
        runlog.metric(
            {
                "seed": s,
                **{
                    f"N{N}_{rm}": float(
                        np.mean([r["gold_reward"] for r in rows if r["seed"] == s and r["rm"] == rm and r["N"] == N])
                    )
                    for rm, N in itertools.product(rm_tables, [1, Ns[-1]])
                },
            }
        )
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    save_figures(best_of_n_figs.figures(RunTables(df, config=cfg)), runlog.dir / "figures")
    per_seed = df.groupby(["rm", "N", "seed"])["gold_reward"].mean()
    out = {}
    for (rm, N), g in per_seed.groupby(level=[0, 1]):
        m, ci = mean_ci(g.to_numpy())
        out[f"gold_reward_N{N}_{rm}"], out[f"gold_reward_N{N}_{rm}_ci"] = m, ci
    # Paired by seed (the same world and prompts): does the tree RM's Best-of-N beat the chain RM's?
    for N in (Ns[0], Ns[-1]):
        d = per_seed.loc["tree", N] - per_seed.loc["chain", N]
        out[f"gold_reward_N{N}_tree_minus_chain"], out[f"gold_reward_N{N}_tree_minus_chain_ci"] = mean_ci(d.to_numpy())
    out["seeds"], out["prompts"] = cfg.seeds, cfg.task.num_prompts
    return out
