"""Which comparisons to collect: IBN-guided design against the paper's recipes and ensemble
disagreement, at equal budgets, judged by the gold reward (THEORY.md §2; paper §3 asks which
topology of preference data generalises best).

Per seed (its own world): a candidate pool (leaves of response trees, pairs within a tree; or
reference-policy samples, pairs within a prompt), target pairs (independent reference-policy pairs:
what a policy must rank), and five recipes that each spend the same budget of comparisons:

* designed: greedy A-optimal pairs from the pool (`ibn.design`), in rounds of `batch`;
* chain, tree: the paper's two recipes (`world.topology.make_dataset`), not restricted to the pool;
* disagreement: the pool pairs on which an ensemble trained on the labels so far disagrees most
  (the variance of its score difference), re-trained each round;
* random: uniform pairs from the pool.

Budgets are nested: a recipe's data at budget n is the first n of its comparisons at the largest
budget. Each is measured by the IBN's mean resistance on the targets, the exact Bayesian learner's
held-out gold accuracy on them (`rm.bayes`, the Bayes ceiling), a neural ensemble's gold accuracy,
and Best-of-N gold reward with the exact learner's posterior mean as the reward model.

Legend: P prompts, Y leaves per prompt, T targets, C candidates, N items.
"""

from __future__ import annotations

import itertools
import logging

import jax
import numpy as np
import pandas as pd

from rm_theory.common.rng import rng as named_rng
from rm_theory.common.stats import mean_ci
from rm_theory.config.common import make_labels, make_model, make_space, make_train, make_tree_sampling
from rm_theory.config.design import DesignSchema
from rm_theory.figures import design as design_figs
from rm_theory.figures.common import save
from rm_theory.ibn.design import DesignConfig, design_comparisons
from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.policy import exact, tables
from rm_theory.rm import bayes
from rm_theory.rm.metrics import pairwise_accuracy
from rm_theory.rm.train import train_ensemble
from rm_theory.runs.folder import RunLog
from rm_theory.world.labels import label_comparisons, vocab_size
from rm_theory.world.queries import QuerySpec, sample_query_sets
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.synthetic import item_inputs, to_pref_data
from rm_theory.world.topology import Comparisons, make_dataset

log = logging.getLogger(__name__)
RECIPES = ("designed", "chain", "tree", "disagreement", "random")


def _pool(space: PrefixTreeSpace, cfg: DesignSchema, rng: np.random.Generator) -> tuple[Responses, np.ndarray]:
    """Pool items and candidate pairs (indices into the pool)."""
    P = space.num_prompts
    if cfg.pool == "tree":
        trees = space.sample_trees(
            rng, np.repeat(np.arange(P), cfg.pool_trees_per_prompt), make_tree_sampling(cfg.tree).shape
        )
        items, S = trees.leaves, trees.slots
        group = np.repeat(np.arange(len(items) // S), S)
    elif cfg.pool == "chain":
        items = space.sample(rng, np.repeat(np.arange(P), cfg.pool_per_prompt))
        group = items.prompt
    else:
        raise ValueError(f"pool must be 'tree' or 'chain', got {cfg.pool!r}")
    cand = [
        (i, j)
        for g in np.unique(group)
        for i, j in itertools.combinations(np.flatnonzero(group == g), 2)
        if not np.array_equal(items.data[i], items.data[j])
    ]
    return items, np.array(cand, np.int64).reshape(-1, 2)


def _pairs(pool: Responses, idx_Cx2: np.ndarray) -> Comparisons:
    return Comparisons(pool.take(idx_Cx2[:, 0]), pool.take(idx_Cx2[:, 1]), np.full(len(idx_Cx2), -1))


def _disagreement(space, pool, cand, labels_of, cfg: DesignSchema, mc, tc, key) -> np.ndarray:
    """Pool pairs in rounds: each round, the pairs whose score difference varies most across an
    ensemble trained on the pairs labelled so far (the first round is random)."""
    rng = np.random.default_rng(0)
    budget = max(cfg.budgets)
    chosen = list(rng.choice(len(cand), min(cfg.batch, len(cand)), replace=False))
    x_pool = item_inputs(space, pool)
    r = 0
    while len(chosen) < min(budget, len(cand)):
        comps = _pairs(pool, cand[chosen])
        ens, _ = train_ensemble(
            mc, tc, to_pref_data(space, comps, labels_of(comps)).data, jax.random.fold_in(key, r), progress=False
        )
        s_KxN = ens.score(x_pool)
        var_C = np.var(s_KxN[:, cand[:, 0]] - s_KxN[:, cand[:, 1]], axis=0)
        var_C[chosen] = -np.inf
        take = np.argsort(-var_C)[: min(cfg.batch, budget - len(chosen))]
        chosen += [int(c) for c in take if np.isfinite(var_C[c])]
        r += 1
    return np.array(chosen[:budget], np.int64)


def _recipe_data(
    space, cfg: DesignSchema, recipe: str, pool, cand, net_pool, targets_node, labels_of, mc, tc, seed: int
) -> Comparisons:
    """The recipe's comparisons at the largest budget (smaller budgets are prefixes)."""
    n = max(cfg.budgets)
    rng = named_rng("design", seed, recipe)
    if recipe in ("chain", "tree"):
        return make_dataset(space, recipe, n, rng, tree=make_tree_sampling(cfg.tree))
    if recipe == "random":
        return _pairs(pool, cand[rng.choice(len(cand), min(n, len(cand)), replace=False)])
    if recipe == "designed":
        xi2 = cfg.xi2 if cfg.xi2 is not None else 4.0 / cfg.labels.beta**2
        # pool items are the network's first query items
        d = design_comparisons(
            net_pool.network,
            targets_node,
            net_pool.node_q[cand],
            DesignConfig(budget=n, batch=cfg.batch, xi2=xi2, seed=seed),
        )
        return _pairs(pool, cand[d.chosen_B])
    if recipe == "disagreement":
        return _pairs(pool, cand[_disagreement(space, pool, cand, labels_of, cfg, mc, tc, jax.random.key(seed))])
    raise ValueError(f"unknown recipe {recipe!r}; known: {RECIPES}")


def run(cfg: DesignSchema, runlog: RunLog) -> dict:
    if unknown := set(cfg.recipes) - set(RECIPES):
        raise ValueError(f"recipes: unknown {sorted(unknown)}; known: {list(RECIPES)}")
    lc = make_labels(cfg.labels)
    lv = LabelVariance("fisher", beta=lc.beta)
    rows = []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        space = make_space(cfg.space, seed)
        if not isinstance(space, PrefixTreeSpace):
            raise ValueError("the design study needs the prefix-tree geometry (space.geometry=tree)")
        rng = named_rng("design-world", seed)
        q_a, q_b = sample_query_sets(
            space, QuerySpec(cfg.targets, ("independent",)), rng, make_tree_sampling(cfg.tree)
        )["independent"]
        pool, cand = _pool(space, cfg, rng)
        # One network of the pool and the targets (no comparisons yet): what the design sees.
        net_pool = ibn_network(
            space,
            Comparisons(pool.take([]), pool.take([]), np.zeros(0, np.int64)),
            Responses.concat([pool, q_a, q_b]),
            LabelVariance("constant", xi2=4.0 / lc.beta**2),
        )
        T = len(q_a)
        targets_node = np.stack(
            [net_pool.node_q[len(pool) + np.arange(T)], net_pool.node_q[len(pool) + T + np.arange(T)]], 1
        )
        gold_gap_T = space.gold_reward(q_a) - space.gold_reward(q_b)
        tt = tables.tabulate(space)
        leaves = Responses.concat([Responses(np.full(tt.Y, p), space.enumerate(0).data) for p in range(tt.P)])
        mc = make_model(cfg.model, vocab=vocab_size(space), max_len=space.L + 1)
        tc = make_train(cfg.train)
        for recipe in cfg.recipes:
            # Labels from one generator per recipe: the first k draws are the same whatever the data's
            # length, so a prefix of the data (a smaller budget, an earlier round) keeps its labels.
            labels_of = lambda comps, r=recipe, sp=space, s=seed: label_comparisons(
                sp, comps, lc, named_rng("labels", s, r)
            )
            data = _recipe_data(space, cfg, recipe, pool, cand, net_pool, targets_node, labels_of, mc, tc, seed)
            for n in cfg.budgets:
                comps = data.take(np.arange(min(n, len(data))))
                lab = labels_of(comps)
                ibn = ibn_network(space, comps, Responses.concat([q_a, q_b]), lv)
                res_T = ibn.distance(np.stack([ibn.node_q[:T], ibn.node_q[T:]], 1), "resistance")
                ex = bayes.fit(
                    space, comps.a, comps.b, lab.better_P, queries=Responses.concat([q_a, q_b, leaves]), beta=lc.beta
                )
                qi = ex.query_index(np.arange(2 * T + len(leaves)))
                mu_T = ex.posterior.pair_mean(np.stack([qi[:T], qi[T : 2 * T]], 1))
                table = ex.posterior.item_mean(qi[2 * T :]).reshape(tt.P, tt.Y)
                ens, _ = train_ensemble(
                    mc,
                    tc,
                    to_pref_data(space, comps, lab).data,
                    jax.random.fold_in(jax.random.key(seed), n),
                    progress=False,
                )
                s_N = ens.score(item_inputs(space, Responses.concat([q_a, q_b]))).mean(0)
                gold_pref = (gold_gap_T > 0).astype(float)
                row = {
                    "seed": seed,
                    "recipe": recipe,
                    "budget": n,
                    "comparisons": len(comps),
                    "mean_resistance": float(np.mean(res_T[np.isfinite(res_T)])),
                    "bayes_gold_accuracy": bayes.gold_accuracy(mu_T, gold_gap_T),
                    "gold_accuracy": pairwise_accuracy(s_N, np.arange(T), T + np.arange(T), gold_pref),
                    "best_of_n_gold": float(exact.best_of_n(tt.ref_logp(), table, tt.gold_PxY, cfg.best_of_n).mean()),
                }
                rows.append(row)
                runlog.metric(row)
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    save(design_figs.against_budget(df), runlog.dir / "figures" / "design_vs_budget")
    out: dict = {
        "seeds": cfg.seeds,
        "targets": cfg.targets,
        "pool": cfg.pool,
        "field_per_seed": cfg.space.field_per_seed,
    }
    for (recipe, n), g in df.groupby(["recipe", "budget"]):
        for col in ("mean_resistance", "bayes_gold_accuracy", "gold_accuracy", "best_of_n_gold"):
            out[f"{col}_{recipe}_{n}"], out[f"{col}_{recipe}_{n}_ci"] = mean_ci(g[col].to_numpy())
    # Paired over worlds at the largest budget: every recipe of a seed shares its world, pool and targets.
    top = df[df["budget"] == max(cfg.budgets)]
    if "designed" in cfg.recipes:
        for col in ("mean_resistance", "bayes_gold_accuracy", "gold_accuracy", "best_of_n_gold"):
            wide = top.pivot_table(index="seed", columns="recipe", values=col)
            for other in (r for r in cfg.recipes if r != "designed"):
                key = f"{col}_designed_minus_{other}"
                out[key], out[f"{key}_ci"] = mean_ci((wide["designed"] - wide[other]).dropna().to_numpy())
        out["budget_max"] = int(max(cfg.budgets))
    return out
