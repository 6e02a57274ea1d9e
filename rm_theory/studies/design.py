"""Which comparisons to collect: IBN-guided design against the paper's recipes and ensemble
disagreement, at equal budgets, judged by the gold reward (THEORY.md §2; paper §3 asks which
topology of preference data generalises best).

Per seed (its own world): a candidate pool (leaves of response trees, pairs within a tree; or
reference-policy samples, pairs within a prompt), target pairs (independent reference-policy pairs:
what a policy must rank), held-out targets drawn independently from the same distribution, and
five recipes that each spend the same budget of comparisons:

* designed: greedy A-optimal pairs from the pool (`ibn.design`), in rounds of `batch`;
* chain, tree: the paper's two recipes (`world.topology.make_dataset`), not restricted to the pool;
* disagreement: the pool pairs on which an ensemble trained on the labels so far disagrees most
  (the variance of its score difference), re-trained each round;
* random: uniform pairs from the pool.

Budgets are nested: a recipe's data at budget n is the first n of its comparisons at the largest
budget. A budget above the candidate pool is refused (naming `budgets`): the pool recipes would be
capped at the pool's size while chain and tree spend the whole budget, and the paired differences
would compare unequal budgets. Each recipe is measured by the IBN's mean resistance on the targets,
the exact Bayesian learner's gold accuracy on them (`rm.bayes`, the Bayes ceiling), a neural
ensemble's gold accuracy, and Best-of-N gold reward with the exact learner's posterior mean as the
reward model. The designed recipe sees the targets it is scored on (it greedily lowers their mean
resistance), so every target measure is also reported on the held-out targets, which no recipe
sees (columns and summary keys ending `_heldout`): those are the figures to cite.

Target pairs with equal gold rewards (the same response twice) have no order to get right and no
uncertainty to lower: they are left out of the design and of every measure alike, and counted
(`target_ties`). A target pair the IBN does not connect has infinite resistance: left out of the
mean resistance and counted (`unreachable_targets`). The designed recipe's paired differences with
the other recipes are a family of tests per measure: their p-values (paired t over seeds) are
Holm-adjusted (`*_p_holm`).

Legend: X prompts, Y responses (leaves of a prompt), Q targets, P candidates, N items, K ensemble
members, B round of comparisons (those chosen).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import jax
import numpy as np
import pandas as pd

from rm_theory.common.rng import rng as named_rng
from rm_theory.common.stats import holm_claims, mean_ci
from rm_theory.config.common import make_labels, make_model, make_space, make_train, make_tree_sampling
from rm_theory.config.design import DesignSchema
from rm_theory.figures import design as design_figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn.design import DesignConfig, design_comparisons
from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.policy import exact, tables
from rm_theory.rm import bayes
from rm_theory.rm.metrics import pairwise_accuracy
from rm_theory.rm.train import train_ensemble
from rm_theory.runs.log import RunLog
from rm_theory.world.labels import label_comparisons, vocab_size
from rm_theory.world.queries import QuerySpec, sample_query_sets
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.synthetic import item_inputs, to_pref_data
from rm_theory.world.topology import Comparisons, make_dataset

log = logging.getLogger(__name__)
RECIPES = ("designed", "chain", "tree", "disagreement", "random")
POOL_RECIPES = ("designed", "disagreement", "random")  # the recipes that draw from the candidate pool
TARGET_MEASURES = ("mean_resistance", "bayes_gold_accuracy", "gold_accuracy")  # each also on held-out targets
MEASURES = (*TARGET_MEASURES, "best_of_n_gold")
UNIT = ("seed", "recipe", "budget")  # one metrics.jsonl row each; a resumed run skips those logged


def _pool(space: PrefixTreeSpace, cfg: DesignSchema, rng: np.random.Generator) -> tuple[Responses, np.ndarray]:
    """Pool items and candidate pairs (indices into the pool)."""
    P = space.num_prompts
    if cfg.pool == "tree":
        trees = space.sample_trees(
            rng, np.repeat(np.arange(P), cfg.pool_trees_per_prompt), make_tree_sampling(cfg.tree).shape
        )
        items, S = trees.leaves, trees.slots
        group = np.repeat(np.arange(len(items) // S), S)
    else:  # "chain", the schema's other choice
        items = space.sample(rng, np.repeat(np.arange(P), cfg.pool_per_prompt))
        group = items.prompt
    cand = [
        (i, j)
        for g in np.unique(group)
        for i, j in itertools.combinations(np.flatnonzero(group == g), 2)
        if not np.array_equal(items.data[i], items.data[j])
    ]
    return items, np.array(cand, np.int64).reshape(-1, 2)


def target_pairs(
    space: PrefixTreeSpace, cfg: DesignSchema, rng: np.random.Generator
) -> tuple[Responses, Responses, int]:
    """`cfg.targets` independent reference-policy pairs, less those whose gold rewards are equal (the
    same response twice: no order to get right, no uncertainty to lower), and how many those were."""
    q_a, q_b = sample_query_sets(space, QuerySpec(cfg.targets, ("independent",)), rng, make_tree_sampling(cfg.tree))[
        "independent"
    ]
    keep = np.flatnonzero(space.gold_reward(q_a) != space.gold_reward(q_b))
    if not len(keep):
        raise ValueError(f"targets: all {cfg.targets} target pairs have equal gold rewards; the world is too small")
    return q_a.take(keep), q_b.take(keep), cfg.targets - len(keep)


@dataclasses.dataclass(frozen=True)
class World:
    """What every recipe of one seed shares: the world, its pool and both target sets."""

    space: PrefixTreeSpace
    pool: Responses
    cand_Px2: np.ndarray
    targets: dict[str, tuple[Responses, Responses]]  # by column suffix: "" (the design's), "_heldout"
    ties: dict[str, int]  # gold-tied target pairs left out, by the same suffix


def make_world(cfg: DesignSchema, seed: int) -> World:
    space = make_space(cfg.space, seed)  # the prefix-tree geometry (`DesignSchema.cross_checks`)
    rng = named_rng("design-world", seed)
    q_a, q_b, ties = target_pairs(space, cfg, rng)
    pool, cand = _pool(space, cfg, rng)
    # drawn alike from a stream of their own: no recipe sees them
    h_a, h_b, ties_h = target_pairs(space, cfg, named_rng("design-heldout", seed))
    return World(space, pool, cand, {"": (q_a, q_b), "_heldout": (h_a, h_b)}, {"": ties, "_heldout": ties_h})


def check_budget(cfg: DesignSchema, seed: int, cand_Px2: np.ndarray) -> None:
    """Refuses a budget the candidate pool cannot fill: the pool recipes would stop at the pool's size
    while chain and tree spend the whole budget, and the `*_minus_*` keys compare equal budgets only."""
    pooled = [r for r in cfg.recipes if r in POOL_RECIPES]
    if pooled and max(cfg.budgets) > len(cand_Px2):
        raise ValueError(
            f"budgets = {list(cfg.budgets)}: the largest budget exceeds the candidate pool of seed {seed} "
            f"({len(cand_Px2)} distinct pairs, pool={cfg.pool!r}): {', '.join(pooled)} could spend at most "
            f"{len(cand_Px2)} comparisons while chain and tree spend {max(cfg.budgets)}. Lower budgets to at most "
            f"{len(cand_Px2)}, or enlarge the pool (pool_trees_per_prompt, pool_per_prompt, space.num_prompts)"
        )


def _pairs(pool: Responses, idx_Px2: np.ndarray) -> Comparisons:
    return Comparisons(pool.take(idx_Px2[:, 0]), pool.take(idx_Px2[:, 1]), np.full(len(idx_Px2), -1))


def _disagreement(space, pool, cand, labels_of, cfg: DesignSchema, mc, tc, seed: int) -> np.ndarray:
    """Pool pairs in rounds: each round, the pairs whose score difference varies most across an
    ensemble trained on the pairs labelled so far (the first round is random)."""
    rng, key = named_rng("design-disagreement", seed), jax.random.key(seed)
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
        var_P = np.var(s_KxN[:, cand[:, 0]] - s_KxN[:, cand[:, 1]], axis=0)
        var_P[chosen] = -np.inf
        take = np.argsort(-var_P)[: min(cfg.batch, budget - len(chosen))]
        chosen += [int(c) for c in take if np.isfinite(var_P[c])]
        r += 1
    return np.array(chosen[:budget], np.int64)


def _recipe_data(space, cfg: DesignSchema, recipe: str, world: World, net_pool, targets_node, labels_of, mc, tc, seed):
    """The recipe's comparisons at the largest budget (smaller budgets are prefixes)."""
    n, pool, cand = max(cfg.budgets), world.pool, world.cand_Px2
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
    # "disagreement", the last of the schema's choices
    return _pairs(pool, cand[_disagreement(space, pool, cand, labels_of, cfg, mc, tc, seed)])


def _measure(world: World, comps: Comparisons, lab, ens, lc, lv, tt, leaves: Responses, best_of_n: int) -> dict:
    """Every measure of one data set, on the design's targets and on the held-out ones."""
    space = world.space
    sets = list(world.targets.items())
    queries = Responses.concat([q for _, (a, b) in sets for q in (a, b)])
    ibn = ibn_network(space, comps, queries, lv)
    ex = bayes.fit(space, comps.a, comps.b, lab.better_P, queries=Responses.concat([queries, leaves]), beta=lc.beta)
    qi = ex.query_index(np.arange(len(queries) + len(leaves)))
    s_N = ens.score(item_inputs(space, queries)).mean(0)
    out, unreachable, at = {}, {}, 0
    for suffix, (a, b) in sets:
        T = len(a)
        ia, ib = at + np.arange(T), at + T + np.arange(T)
        at += 2 * T
        res_Q = ibn.distance(np.stack([ibn.node_q[ia], ibn.node_q[ib]], 1), "resistance")
        reach_Q = np.isfinite(res_Q)
        gold_gap_Q = space.gold_reward(a) - space.gold_reward(b)
        mu_Q = ex.posterior.pair_mean(np.stack([qi[ia], qi[ib]], 1))
        out[f"mean_resistance{suffix}"] = float(np.mean(res_Q[reach_Q])) if reach_Q.any() else float("nan")
        out[f"bayes_gold_accuracy{suffix}"] = bayes.gold_accuracy(mu_Q, gold_gap_Q)
        out[f"gold_accuracy{suffix}"] = pairwise_accuracy(s_N, ia, ib, (gold_gap_Q > 0).astype(float))
        unreachable[f"unreachable_targets{suffix}"] = int((~reach_Q).sum())
    table = ex.posterior.item_mean(qi[len(queries) :]).reshape(tt.P, tt.Y)
    out["best_of_n_gold"] = float(exact.best_of_n(tt.ref_logp(), table, tt.gold_XxY, best_of_n).mean())
    return out | unreachable


def run(cfg: DesignSchema, runlog: RunLog) -> dict:
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    worlds = {seed: make_world(cfg, seed) for seed in seeds}
    for seed, world in worlds.items():  # before any work: a budget the pool cannot fill is refused
        check_budget(cfg, seed, world.cand_Px2)
    units = [(seed, recipe, n) for seed in seeds for recipe in cfg.recipes for n in cfg.budgets]
    done = {tuple(r[k] for k in UNIT): r for r in runlog.rows() if all(k in r for k in UNIT)}
    if done:
        log.info("resuming: %d of %d units already done", len(done.keys() & set(units)), len(units))
    lc = make_labels(cfg.labels)
    lv = LabelVariance("fisher", beta=lc.beta)
    rows = []
    for seed, world in worlds.items():
        todo = [u for u in units if u[0] == seed and u not in done]
        if not todo:
            rows += [done[u] for u in units if u[0] == seed]
            continue
        space, pool = world.space, world.pool
        q_a, q_b = world.targets[""]
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
        tt = tables.tabulate(space)
        leaves = Responses.concat([Responses(np.full(tt.Y, p), space.enumerate(0).data) for p in range(tt.P)])
        mc = make_model(cfg.model, vocab=vocab_size(space), max_len=space.L + 1)
        tc = make_train(cfg.train)
        for recipe in cfg.recipes:
            if all((seed, recipe, n) in done for n in cfg.budgets):
                rows += [done[(seed, recipe, n)] for n in cfg.budgets]
                continue
            # Labels from one generator per recipe: the first k draws are the same whatever the data's
            # length, so a prefix of the data (a smaller budget, an earlier round) keeps its labels.
            labels_of = lambda comps, r=recipe, sp=space, s=seed: label_comparisons(
                sp, comps, lc, named_rng("labels", s, r)
            )
            data = _recipe_data(space, cfg, recipe, world, net_pool, targets_node, labels_of, mc, tc, seed)
            for n in cfg.budgets:
                if (seed, recipe, n) in done:
                    rows.append(done[(seed, recipe, n)])
                    continue
                comps = data.take(np.arange(min(n, len(data))))
                lab = labels_of(comps)
                key = jax.random.fold_in(jax.random.key(seed), n)
                ens, _ = train_ensemble(mc, tc, to_pref_data(space, comps, lab).data, key, progress=False)
                row = {
                    "seed": seed,
                    "recipe": recipe,
                    "budget": n,
                    "comparisons": len(comps),
                    "target_ties": world.ties[""],
                    "target_ties_heldout": world.ties["_heldout"],
                    **_measure(world, comps, lab, ens, lc, lv, tt, leaves, cfg.best_of_n),
                }
                rows.append(row)
                runlog.metric(row)
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    save_figures(design_figs.figures(RunTables(df, config=cfg)), runlog.dir / "figures")
    return summarise(df, cfg, worlds)


def summarise(df: pd.DataFrame, cfg: DesignSchema, worlds: dict[int, World]) -> dict:
    """Mean and interval over seeds of every measure per recipe and budget (`*_heldout`: on the held-out
    targets), the designed recipe's paired differences at the largest budget with Holm-adjusted
    p-values, and the counts of what the means leave out."""
    out: dict = {
        "seeds": cfg.seeds,
        "targets": cfg.targets,
        "pool": cfg.pool,
        "field_per_seed": cfg.space.field_per_seed,
        "candidate_pool_min": int(min(len(w.cand_Px2) for w in worlds.values())),
    }
    for suffix in ("", "_heldout"):
        out[f"target_ties{suffix}"] = int(sum(w.ties[suffix] for w in worlds.values()))
        out[f"unreachable_targets{suffix}"] = int(df[f"unreachable_targets{suffix}"].sum())
        if out[f"unreachable_targets{suffix}"]:
            log.warning(
                "%d target pairs%s unreachable in the IBN, left out of the mean resistance",
                out[f"unreachable_targets{suffix}"],
                suffix.replace("_", " "),
            )
    columns = [(m, s) for m in MEASURES for s in (("", "_heldout") if m in TARGET_MEASURES else ("",))]
    for (recipe, n), g in df.groupby(["recipe", "budget"]):
        for m, s in columns:
            out[f"{m}_{recipe}_{n}{s}"], out[f"{m}_{recipe}_{n}{s}_ci"] = mean_ci(g[m + s].to_numpy())
    # Paired over worlds at the largest budget: every recipe of a seed shares its world, pool and targets.
    others = [r for r in cfg.recipes if r != "designed"]
    if "designed" in cfg.recipes and others:
        top = df[df["budget"] == max(cfg.budgets)]
        for m, s in columns:
            wide = top.pivot(index="seed", columns="recipe", values=m + s)
            diffs = [(wide["designed"] - wide[o]).dropna().to_numpy() for o in others]
            claims = holm_claims(dict(zip(others, diffs, strict=True)), null=0.0)
            for o, d in zip(others, diffs, strict=True):
                key = f"{m}_designed_minus_{o}{s}"
                out[key], out[f"{key}_ci"] = mean_ci(d)
                # no test (one seed): no adjusted p either
                out[f"{key}_p_holm"] = claims[o].p_holm if np.isfinite(claims[o].p) else float("nan")
        out["multiple_comparisons"] = (
            f"Holm over the designed recipe's {len(others)} paired differences per measure (*_p_holm; p from a "
            "paired t test over seeds); the *_ci intervals are each at 95%, uncorrected"
        )
        out["budget_max"] = int(max(cfg.budgets))
    return out
