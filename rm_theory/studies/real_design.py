"""Which real pairs to label, on real human labels (`real.active`; THEORY.md §2; `ibn.design`).

Per in-domain set and replicate (replicate i: its own selection and prompt split, `data_seed + i`,
and training randomness, `seed + i`): the pool is the training prompts' pairs (capped by whole prompts,
`train.max_train_pairs`), the held-out prompts' pairs are only ever scored. A random seed set of
`active.init_pairs` pool pairs is labelled, the backbone fine-tuned on it (`studies.finetune_rm`'s
training, `config.real_theory`'s settings) and frozen; its pooled hidden states are the features of
every recipe's heads (`real.active.fit_heads`), and, with its head gradients or the frozen encoder's
embeddings, the representation of the IBN the "ibn" recipe designs on (`active.design_rep`). Every
recipe then buys `active.batch` labels per round up to `active.budget`, the heads refitted after each.

Reported per set (Student t 95% over replicates; recipes are paired: the same pool, seed set,
backbone and held-out pairs in each replicate): held-out accuracy against labelled pairs (curves), the
final accuracy of each recipe and its paired difference to random, and the labels each recipe needed to
reach random's final accuracy (linear between rounds; replicates where it never does are counted, and
the saving is then 0 for that replicate, so a recipe that never gets there is not flattered), beside the
same for random's own curve: a flat or noisy curve crosses its final value early, so a recipe's saving
counts only beyond random's (`labels_saved_<recipe>_minus_random_<set>`).

Outputs: results.csv (one row per set, replicate, recipe and round), figures/, summary.json
(`accuracy_<recipe>_<set>[_ci]`, `accuracy_<recipe>_minus_random_<set>[_ci]`,
`labels_saved_<recipe>[_minus_random]_<set>[_ci]`, `labels_to_random_<recipe>_<set>`, `reached_<recipe>_<set>`,
`test_pairs_<set>`, `pool_pairs_<set>`, `replicates`). Finished (set, replicate) units are reused
by a rerun into the same folder.

Legend: N items, H hidden width, D feature width, P comparisons (pool pairs), Q query pairs (held out).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd

from rm_theory.common.stats import mean_ci
from rm_theory.config.real_theory import RealDesignSchema, make_active
from rm_theory.figures import real_design as plots
from rm_theory.real.active import labels_to_reach, run_recipe
from rm_theory.real.features import featurize, item_embeddings
from rm_theory.real.model_ibn import head_gradients, unit_rows
from rm_theory.runs import RunLog
from rm_theory.studies.finetune_rm import Study, item_tokens, train_model
from rm_theory.studies.real_theory import replicate_config, run_replicated

log = logging.getLogger(__name__)


def run_unit(cfg: RealDesignSchema, name: str, i: int, runlog: RunLog) -> dict:
    t0 = time.perf_counter()
    ac = make_active(cfg.active, cfg.ibn)
    st = Study(replicate_config(cfg, i), runlog.dir)
    p = st.get(name, "in_domain")
    it = p.items
    pool_P, test_Q = np.flatnonzero(p.train_P), np.flatnonzero(p.test_P)
    if len(pool_P) < ac.budget:
        raise ValueError(
            f"{name}: the pool holds {len(pool_P)} pairs, fewer than active.budget = {ac.budget} "
            "(lower the budget or raise train.max_train_pairs / the set's max_pairs)"
        )
    rng = np.random.default_rng([cfg.seed + i, 11])
    seed_P = np.sort(rng.choice(pool_P, ac.init_pairs, replace=False))
    seed_mask = np.zeros(len(it.a_P), bool)
    seed_mask[seed_P] = True
    res, info = train_model(
        st, dataclasses.replace(p, train_P=seed_mask, val_P=np.zeros_like(seed_mask)), "reward", runlog
    )
    t = time.perf_counter()
    used = np.zeros(len(it.a_P), bool)
    used[pool_P], used[test_Q] = True, True
    item_N = np.unique(np.r_[it.a_P[used], it.b_P[used]])
    ids, types, _, _ = item_tokens(st, p, item_N)
    member0 = res.member(0)
    h_local = member0.pooled_ids(ids, types, batch_size=st.eval_batch)
    # z-scored on the pool's items (held-out items do not shape the features)
    pool_items = np.unique(np.r_[it.a_P[pool_P], it.b_P[pool_P]])
    h_NxH = np.zeros((it.n, h_local.shape[1]), np.float32)
    h_NxH[item_N] = h_local
    mu, sd = h_NxH[pool_items].mean(0), h_NxH[pool_items].std(0) + 1e-6
    z_NxH = (h_NxH - mu) / sd
    rep = cfg.active.design_rep
    if rep == "hidden":
        design = (unit_rows(h_NxH), "cosine")
    elif rep == "gradient":
        g_local = head_gradients(member0, h_local, cfg.ibn.grad_dim, seed=cfg.seed + i)
        g_NxD = np.zeros((it.n, g_local.shape[1]), np.float32)
        g_NxD[item_N] = g_local
        design = (g_NxD, "sqeuclidean")
    else:
        design = (item_embeddings(featurize(st.encoder, it, st.fc, progress=False), st.fc.mode), "cosine")
    rep_s = time.perf_counter() - t
    rows = []
    for recipe in ac.recipes:
        t = time.perf_counter()
        got = run_recipe(recipe, z_NxH, design, it, pool_P, test_Q, seed_P, ac, cfg.seed + i)
        secs = time.perf_counter() - t
        rows += [{"set": name, "replicate": i, "recipe_s": secs, **r} for r in got]
        log.info("%s:%d %s: final accuracy %.3f (%.1fs)", name, i, recipe, got[-1]["accuracy"], secs)
    base = {"test_pairs": len(test_Q), "pool_pairs": len(pool_P)}
    rows = [r | base for r in rows]
    timing = {"train_s": info["train_s"], "representation_s": rep_s, "unit_s": time.perf_counter() - t0}
    return {"kind": "unit", "unit": f"{name}:{i}", "rows": rows, "info": timing}


def _paired(out: dict, key: str, d) -> None:
    m, h = mean_ci(np.asarray(d, float))
    out |= {key: m, f"{key}_ci": [m - h, m + h]}


def summarize(df: pd.DataFrame, cfg: RealDesignSchema) -> dict:
    out: dict = {
        "replicates": cfg.replicates,
        "interval": "Student t 95% over replicates (independent splits and seeds)",
    }
    budget = int(df["labelled"].max())
    for name, g in df.groupby("set", sort=False):
        out[f"test_pairs_{name}"] = int(g["test_pairs"].iloc[0])
        out[f"pool_pairs_{name}"] = int(g["pool_pairs"].iloc[0])
        final = g[g["labelled"] == budget].pivot(index="replicate", columns="recipe", values="accuracy")
        saved_by: dict[str, np.ndarray] = {}
        for recipe in dict.fromkeys(g["recipe"]):
            m, h = mean_ci(final[recipe].to_numpy(float))
            out |= {f"accuracy_{recipe}_{name}": m, f"accuracy_{recipe}_{name}_ci": [m - h, m + h]}
            if "random" not in final:
                continue
            if recipe == "same_prompt" and "one_per_prompt" in final:  # tree-like against chain-like (§5)
                _paired(
                    out, f"accuracy_same_prompt_minus_one_per_prompt_{name}", final[recipe] - final["one_per_prompt"]
                )
            if recipe != "random":
                _paired(out, f"accuracy_{recipe}_minus_random_{name}", final[recipe] - final["random"])
            need, saved = [], []
            for rep, gr in g[g["recipe"] == recipe].groupby("replicate"):
                gr = gr.sort_values("labelled")
                n = labels_to_reach(
                    gr["labelled"].to_numpy(), gr["accuracy"].to_numpy(), float(final.loc[rep, "random"])
                )
                need.append(n)
                saved.append(0.0 if not np.isfinite(n) else 1.0 - n / budget)
            saved_by[recipe] = np.array(saved)
            m, h = mean_ci(saved_by[recipe])
            out |= {f"labels_saved_{recipe}_{name}": m, f"labels_saved_{recipe}_{name}_ci": [m - h, m + h]}
            reached = np.array([n for n in need if np.isfinite(n)])
            out[f"labels_to_random_{recipe}_{name}"] = float(reached.mean()) if len(reached) else float("nan")
            out[f"reached_{recipe}_{name}"] = int(len(reached))
        # Random's own curve crosses its final accuracy before the budget wherever the curve is flat or
        # noisy: the labels a recipe "saves" count only beyond what random saves against itself.
        for recipe, v in saved_by.items():
            if recipe != "random" and "random" in saved_by:
                _paired(out, f"labels_saved_{recipe}_minus_random_{name}", v - saved_by["random"])
    return out | {"budget": budget}


def run(cfg: RealDesignSchema, runlog: RunLog) -> dict:
    t0 = time.perf_counter()
    df, info = run_replicated(cfg, runlog, run_unit, plots.figures)
    return summarize(df, cfg) | {"recipes": list(cfg.active.recipes), "total_s": time.perf_counter() - t0} | info
