"""Multi-dimensional preferences at equal annotation cost: dual against single preferences (PKU-
SafeRLHF, arXiv 2406.15513), sub-dimension labels (SafeSora, arXiv 2406.14477) and attribute
ratings with an ArmoRM-style model (arXiv 2406.12845), judged by the gold vector
(`docs/multi_dim_theory.md`).

Each seed draws its own world (`world.multidim`: gold vector, annotators' weights), one sequence of
training pairs and one set of held-out query pairs. For each budget and protocol the protocol buys
as many pairs as its labels cost (`world.multidim.pairs_for_budget`), the first of the seed's
sequence, so the protocols are paired: the same world, the same query pairs, nested training
pairs, and the same label noise on the heads they share. On each data set:

* a vector reward model (`rm.multidim`, a K-member ensemble) is trained; each gold dimension is read
  out from the protocol's heads by the prior's regression (`world.multidim.readouts`) and scored by its held-out
  gold accuracy, its ensemble variance beside it;
* the IBN predicts each dimension's inference distance (the exact joint posterior of the Gaussian-edge
  model, `ibn.multidim.JointPosterior`), the one of each labelled dimension's own network, and the
  Bayes learner's accuracy; for single data the closed form of theory §4 is checked against the joint
  solve in every run (`theory_check_rel_err`);
* downstream, on every response of each prompt: Safe RLHF with the pooled cost and with one cost per
  harm category (`policy.multi_cost`), over threshold factors (the Pareto front of helpfulness
  against the harmless rate), and Best-of-N and the KL-optimal policy under the scalarisation
  λ·helpfulness + (1 − λ)·harmlessness, all judged by the gold vector; the gold-reward policies
  (`oracle`) beside them.

Outputs: `results.csv` (one row per seed, budget and protocol), `dims.csv` (one row per dimension
of each), `downstream.csv` (one row per policy setting), figures, and the headline scalars, named
by protocol (`acc_helpfulness_dual`, `acc_helpfulness_dual_minus_single`, ...), each mean with its
Student t interval over seeds, and Holm's correction over the dual − single family.

Legend: N items, P pairs, Q query pairs, X prompts, Y responses (the candidates of a prompt), K ensemble
members, C harm categories, J annotators, Fa rated attributes.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import jax
import numpy as np
import pandas as pd
from scipy import special, stats
from tqdm import tqdm

from rm_theory.common.rng import rng, tag
from rm_theory.common.stats import holm_claims, mean_ci
from rm_theory.config.common import build, make_model, make_space, make_train, make_tree_sampling
from rm_theory.config.multi_dim import MultiDimSchema, make_annotators, make_armo, make_costs, make_world
from rm_theory.figures import multi_dim as figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn.multidim import (
    accuracy_ceiling,
    dimension_distances,
    kappa,
    label_variances,
    predicted_accuracy,
    vector_ibn,
    whitened,
)
from rm_theory.policy import multi_cost
from rm_theory.rm.multidim import (
    VectorConfig,
    VectorData,
    VectorTrainConfig,
    fit_armorm,
    frozen_embedding,
    train_vector_ensemble,
)
from rm_theory.runs.log import RunLog
from rm_theory.world import multidim as md
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses
from rm_theory.world.synthetic import input_spec, item_inputs
from rm_theory.world.topology import make_dataset, sample_chain

log = logging.getLogger(__name__)

HEADLINE_DIMS = ("helpfulness", "harmlessness", "utility")


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------


def _finite_mean(v: np.ndarray) -> float:
    """Mean over the finite entries (pairs in no common IB component are inf); NaN if none."""
    v = np.asarray(v, np.float64)
    ok = np.isfinite(v)
    return float(v[ok].mean()) if ok.any() else float("nan")


def _gold_hits(d_Q: np.ndarray, gold_Q: np.ndarray) -> float:
    """Accuracy of the estimated gaps' signs against the gold gaps' (gold ties left out)."""
    ok = gold_Q != 0
    if not ok.any():
        return float("nan")
    return float(np.mean(np.where(d_Q[ok] == 0, 0.5, (d_Q[ok] > 0) == (gold_Q[ok] > 0))))


def auc(score_N: np.ndarray, label_N: np.ndarray) -> float:
    """Area under the ROC curve (the Mann–Whitney U over n₁n₀), NaN without both classes."""
    pos, neg = label_N.sum(), (~label_N).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    r = stats.rankdata(score_N)
    return float((r[label_N].sum() - pos * (pos + 1) / 2) / (pos * neg))


# --------------------------------------------------------------------------------------------
# One seed's world
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SeedWorld:
    """Everything a seed's protocols and budgets share."""

    space: object
    world: md.MultiDimWorld
    weights_J: np.ndarray
    comps: object
    n_max: int
    x_items: np.ndarray
    gold_items: md.GoldVector
    item_labels: md.ItemLabels
    labels: dict[str, md.PairLabels]
    ratings_NxFa: np.ndarray | None
    queries: Responses
    x_q: np.ndarray
    gold_q: md.GoldVector
    ref_logp_XxY: np.ndarray
    x_cand: np.ndarray
    cand: Responses
    gold_cand: md.GoldVector


def _candidates(space, seed: int, per_prompt: int) -> tuple[Responses, np.ndarray]:
    """Every response of each prompt with log π_ref (prefix tree), or `per_prompt` draws of π_ref,
    each of weight 1/M (metric space: the policies are then exact on the empirical reference)."""
    P = space.num_prompts
    if isinstance(space, PrefixTreeSpace):
        parts = [space.enumerate(p) for p in range(P)]
        cand = Responses.concat(parts)
        return cand, space.log_prob(cand).reshape(P, -1)
    if isinstance(space, MetricSpace):
        cand = space.sample(rng("candidates", seed), np.repeat(np.arange(P), per_prompt))
        return cand, np.full((P, per_prompt), -math.log(per_prompt))
    raise TypeError(f"no candidate set for {type(space).__name__}")


def seed_world(cfg: MultiDimSchema, seed: int) -> SeedWorld:
    space = make_space(cfg.space, seed)
    acfg = make_annotators(cfg.annotators)
    world = md.MultiDimWorld(space, make_world(cfg.world), acfg.weight_mean)
    costs = make_costs(cfg.costs)
    n_max = max(
        md.pairs_for_budget(b, p, world.cfg, costs, cfg.item_labels) for b in cfg.budgets for p in cfg.protocols
    )
    if n_max < 1:
        raise ValueError(f"budgets = {cfg.budgets} buy no pair of any protocol; raise the budgets")
    data_rng = rng("pairs", seed)
    comps = make_dataset(space, cfg.topology, n_max, data_rng, tree=make_tree_sampling(cfg.tree))
    items = Responses.concat([comps.a, comps.b])
    gold_items = world.vector(items)
    gold_a, gold_b = gold_items.take(slice(0, n_max)), gold_items.take(slice(n_max, None))
    weights_J = md.annotator_weights(acfg, rng("annotators", seed))
    # One generator state per protocol: the protocols see the same noise on the heads they share.
    labels = {p: md.label_pairs(world, gold_a, gold_b, p, acfg, weights_J, rng("labels", seed)) for p in cfg.protocols}
    il = md.item_labels(gold_items, acfg, rng("items", seed))
    ratings = md.ratings(gold_items, world.cfg, acfg, rng("ratings", seed)) if "ratings" in cfg.protocols else None
    q = sample_chain(space, cfg.num_queries, rng("queries", seed))
    queries = Responses.concat([q.a, q.b])
    cand, ref_logp = _candidates(space, seed, cfg.downstream.candidates)
    return SeedWorld(
        space,
        world,
        weights_J,
        comps,
        n_max,
        item_inputs(space, items),
        gold_items,
        il,
        labels,
        ratings,
        queries,
        item_inputs(space, queries),
        world.vector(queries),
        ref_logp,
        item_inputs(space, cand),
        cand,
        world.vector(cand),
    )


# --------------------------------------------------------------------------------------------
# One (seed, budget, protocol)
# --------------------------------------------------------------------------------------------


def _items(sw: SeedWorld, n: int) -> np.ndarray:
    """Indices of the items of the first n pairs (a's, then b's) among the seed's items."""
    return np.r_[np.arange(n), sw.n_max + np.arange(n)]


def vector_config(cfg: MultiDimSchema, sw: SeedWorld) -> VectorConfig:
    # A point has no token sequence: the metric geometry's model is the MLP on features.
    family = "mlp" if isinstance(sw.space, MetricSpace) else cfg.model.family
    heads = md.heads(sw.world.cfg)
    trunk = make_model(cfg.model, family=family, **input_spec(sw.space))
    return VectorConfig(trunk, len(heads), heads.index("harmlessness"), sw.world.cfg.num_categories)


def train_config(cfg: MultiDimSchema) -> VectorTrainConfig:
    items = 1.0 if cfg.item_labels else 0.0
    return VectorTrainConfig(
        make_train(cfg.train),
        bt=cfg.losses.bt,
        sign=items * cfg.losses.sign,
        category=items * cfg.losses.category,
        severity=items * cfg.losses.severity,
        l2=cfg.train.l2_coef,
        centre=cfg.train.centre_coef,
    )


def train_unit(cfg: MultiDimSchema, sw: SeedWorld, protocol: str, n: int, key: jax.Array):
    idx = _items(sw, n)
    lab = sw.labels[protocol].take(slice(0, n))
    il = sw.item_labels.take(idx)
    data = VectorData(
        sw.x_items[idx],
        np.arange(n),
        n + np.arange(n),
        lab.y_PxG,
        lab.mask_PxG,
        il.safe_N,
        il.present_NxC,
        il.severity_N,
        np.full(2 * n, cfg.item_labels),
    )
    return train_vector_ensemble(vector_config(cfg, sw), train_config(cfg), data, key)


def ibn_unit(cfg: MultiDimSchema, sw: SeedWorld, protocol: str, n: int) -> dict:
    """What the IBN of the first n pairs tells about each dimension on the first `ibn_pairs` query pairs
    (`ibn.multidim.dimension_distances`), each label's variance as `label_variance` says."""
    Qi, Q = cfg.ibn_pairs, cfg.num_queries
    q_items = Responses.concat([sw.queries.take(np.arange(Qi)), sw.queries.take(Q + np.arange(Qi))])
    vibn = vector_ibn(sw.space, sw.comps.take(np.arange(n)), q_items)
    pairs = np.stack([vibn.node_q[:Qi], vibn.node_q[Qi:]], axis=1)
    prior_P = vibn.prior_distance(np.stack([vibn.node_a_P, vibn.node_b_P], axis=1))
    acfg, w = make_annotators(cfg.annotators), sw.world
    dirs = w.directions()
    gap_P = {g: v[:n] - v[sw.n_max : sw.n_max + n] for g, v in sw.gold_items.dims.items()}
    r_hs = float(dirs["helpfulness"] @ w.R @ dirs["harmlessness"])
    betas = md.label_betas(protocol, w.cfg, acfg)
    var_P = label_variances(betas, gap_P, acfg.weight_var, r_hs, prior_P, cfg.label_variance == "constant")
    return dimension_distances(vibn, pairs, dirs, w.L, var_P)


def _tables(sw: SeedWorld, t_N: np.ndarray) -> np.ndarray:
    return np.asarray(t_N, np.float64).reshape(sw.ref_logp_XxY.shape)


def _gold_tables(sw: SeedWorld) -> dict[str, np.ndarray]:
    """What a policy is judged by: gold helpfulness, harmlessness and the harmless rate of every candidate."""
    g = sw.gold_cand
    return {
        "helpfulness": _tables(sw, g.dims["helpfulness"]),
        "harmlessness": _tables(sw, g.dims["harmlessness"]),
        "harmless_rate": _tables(sw, g.safe_N),
    }


def downstream_rows(cfg: MultiDimSchema, sw: SeedWorld, reward: dict[str, np.ndarray], cost_N, cat_NxC) -> list[dict]:
    """The policies of one reward model (module docstring; `policy.multi_cost.judged_policies`), judged
    by the gold vector. `reward` holds helpfulness and harmlessness tables (N = X·Y values each);
    `cost_N` the pooled cost as a probability of harm, `cat_NxC` one per category (None: no cost model)."""
    present_CxXxY = np.stack([_tables(sw, c) for c in sw.gold_cand.present_NxC.T])
    pooled = cats = None
    if cost_N is not None:
        pooled, cats = _tables(sw, cost_N), np.stack([_tables(sw, c) for c in np.asarray(cat_NxC).T])
    return multi_cost.judged_policies(
        build(multi_cost.PolicyGrid, cfg.downstream),
        sw.ref_logp_XxY,
        _gold_tables(sw),
        present_CxXxY,
        _tables(sw, reward["helpfulness"]),
        _tables(sw, reward["harmlessness"]),
        pooled,
        cats,
    )


def run_unit(cfg: MultiDimSchema, sw: SeedWorld, seed: int, budget: float, protocol: str):
    """One protocol at one budget: its row, its dimension rows and its downstream rows."""
    w, acfg, costs = sw.world, make_annotators(cfg.annotators), make_costs(cfg.costs)
    n = md.pairs_for_budget(budget, protocol, w.cfg, costs, cfg.item_labels)
    base = {"seed": seed, "budget": budget, "protocol": protocol}
    if n < 2:
        log.warning("%s: budget %g buys %d %s pairs; left out", base, budget, n, protocol)
        return None, [], []
    key = jax.random.fold_in(jax.random.key(seed), tag(budget, protocol)[0] % 2**31)
    ens = train_unit(cfg, sw, protocol, n, key)
    heads = md.heads(w.cfg)
    Q = cfg.num_queries
    parts = ens.split(ens.outputs(sw.x_q))
    by_head = {h: parts["pref"][..., i] for i, h in enumerate(heads)}
    labelled = md.label_betas(protocol, w.cfg, acfg)
    family, ro = "vector", md.readouts(w, labelled)
    est = {g: md.apply_readout(ro[g], by_head) for g in ro}  # K x 2Q
    if protocol == "ratings":  # the ArmoRM-style model's attribute heads and gate instead
        family, armo = "armorm", fit_unit_armorm(cfg, sw, n, key)
        est = armorm_estimates(cfg, sw, armo, sw.queries)
    Qi = cfg.ibn_pairs
    if protocol == "ratings":
        # Ratings are observations of a response, not of a pair: no edges of this IBN (theory §6).
        nan = np.full(Qi, np.nan)
        ibn = {"prior": nan, "dropped_labels": 0, "theory_check_rel_err": float("nan")}
        ibn |= {f"dist_{g}": nan for g in est}
    else:
        ibn = ibn_unit(cfg, sw, protocol, n)
    row = base | {
        "family": family,
        "n_pairs": n,
        "cost": n * md.cost_per_pair(protocol, w.cfg, costs, cfg.item_labels),
        "preference_labels": n * len(labelled),
        "train_loss": float(ens.loss_KxS[:, -max(1, ens.loss_KxS.shape[1] // 10) :].mean()),
        "theory_check_rel_err": ibn["theory_check_rel_err"],
        "dropped_labels": ibn["dropped_labels"],
    }
    dim_rows = []
    for g, e_KxN in est.items():
        gap = sw.gold_q.dims[g][:Q] - sw.gold_q.dims[g][Q:]
        d_KxQ = e_KxN[:, :Q] - e_KxN[:, Q:]
        acc = _gold_hits(d_KxQ.mean(0), gap)
        var_Q = d_KxQ.var(0, ddof=1) if len(d_KxQ) > 1 else np.full(Q, np.nan)
        dist = ibn[f"dist_{g}"]
        own = ibn.get(f"dist_own_{g}")
        pred = predicted_accuracy(dist, ibn["prior"])
        dim_rows.append(
            base
            | {
                "family": family,
                "n_pairs": n,
                "dim": g,
                "labelled": g in labelled,
                "acc": acc,
                "pred_acc": _finite_mean(pred),
                "acc_ibn_pairs": _gold_hits(d_KxQ.mean(0)[:Qi], gap[:Qi]),
                "dist": _finite_mean(dist),
                "dist_own": _finite_mean(own) if own is not None else float("nan"),
                "prior": _finite_mean(ibn["prior"]),
                "ens_var": float(np.mean(var_Q)),
            }
        )
        row |= {f"acc_{g}": acc, f"pred_acc_{g}": dim_rows[-1]["pred_acc"], f"dist_{g}": dim_rows[-1]["dist"]}
    # The cost model (Safe RLHF's sign and ranking terms), its category and severity heads.
    cost = parts["cost"].mean(0)
    gq = sw.gold_q
    if cfg.item_labels:
        sev_pred = parts["severity"].mean(0).argmax(-1)
        cat_auc = [auc(parts["category"].mean(0)[:, c], gq.present_NxC[:, c]) for c in range(w.cfg.num_categories)]
        row |= {
            "cost_sign_accuracy": float(np.mean((cost <= 0) == gq.safe_N)),
            "cost_auc": auc(cost, ~gq.safe_N),
            "category_auc_mean": float(np.nanmean(cat_auc)) if np.isfinite(cat_auc).any() else float("nan"),
            "severity_accuracy": float(np.mean(sev_pred == gq.severity_N)),
            "severity_accuracy_unsafe": float(np.mean(sev_pred[~gq.safe_N] == gq.severity_N[~gq.safe_N]))
            if (~gq.safe_N).any()
            else float("nan"),
        }
    # Downstream, on every candidate: the protocol's estimates of helpfulness and harmlessness.
    cand = ens.split(ens.outputs(sw.x_cand))
    if family == "armorm":
        reward = {g: e.mean(0) for g, e in armorm_estimates(cfg, sw, armo, sw.cand).items()}
    else:
        by_head_c = {h: cand["pref"][..., i].mean(0) for i, h in enumerate(heads)}
        reward = {g: md.apply_readout(ro[g], by_head_c) for g in ("helpfulness", "harmlessness")}
    pooled = special.expit(cand["cost"].mean(0)) if cfg.item_labels else None
    cats = special.expit(cand["category"].mean(0)) if cfg.item_labels else None
    down = [base | {"family": family} | r for r in downstream_rows(cfg, sw, reward, pooled, cats)]
    ds = cfg.downstream
    for r in down:
        if r["policy"] in ("safe_pooled", "safe_percat") and r["factor"] == ds.factor:
            tag_ = r["policy"]
            row |= {
                f"helpfulness_{tag_}": r["helpfulness"],
                f"harmless_rate_{tag_}": r["harmless_rate"],
                f"category_excess_{tag_}": r["category_excess"],
            }
    return row, dim_rows, down


def fit_unit_armorm(cfg: MultiDimSchema, sw: SeedWorld, n: int, key: jax.Array):
    """The ArmoRM-style model of the first n `ratings` pairs: ridge heads on the items' ratings, the
    gate on the pairs' single-preference labels."""
    idx = _items(sw, n)
    items = Responses.concat([sw.comps.a.take(np.arange(n)), sw.comps.b.take(np.arange(n))])
    acfg = make_armo(cfg.armorm)
    phi = frozen_embedding(sw.space, items, acfg.embed_width)
    y = sw.labels["ratings"].take(slice(0, n)).y_PxG[:, md.heads(sw.world.cfg).index("utility")]
    P = sw.space.num_prompts
    return fit_armorm(phi, sw.ratings_NxFa[idx], items.prompt, P, np.arange(n), n + np.arange(n), y, acfg, key)


def armorm_estimates(cfg: MultiDimSchema, sw: SeedWorld, model, target: Responses) -> dict[str, np.ndarray]:
    """Each dimension of `target`'s responses read out from the attribute regressions (a rating
    estimates 2 + s·g), utility from the gated combination; 1 x N arrays (one member)."""
    attrs = md.rating_attributes(sw.world.cfg)
    phi = frozen_embedding(sw.space, target, make_armo(cfg.armorm).embed_width)
    r_NxFa = (model.attributes(phi) - 2.0) / cfg.annotators.rating_scale
    ro = md.readouts(sw.world, {a: 1.0 for a in attrs})
    out = {g: md.apply_readout(ro[g], {a: r_NxFa[:, i] for i, a in enumerate(attrs)})[None] for g in ro}
    out["utility"] = model.score(phi, target.prompt)[None]
    return out


def reference_rows(cfg: MultiDimSchema, sw: SeedWorld, seed: int) -> list[dict]:
    """π_ref, and the policies of the gold vector itself (`oracle`: gold helpfulness as the reward,
    gold harm indicators as the costs)."""
    g = sw.gold_cand
    gold_reward = {k: g.dims[k] for k in ("helpfulness", "harmlessness")}
    oracle = downstream_rows(cfg, sw, gold_reward, (~g.safe_N).astype(float), g.present_NxC.astype(float))
    ref = {"policy": "reference"} | multi_cost.gold_of_policy(sw.ref_logp_XxY, _gold_tables(sw))
    return [{"seed": seed, "budget": float("nan"), "protocol": "oracle", "family": "gold"} | r for r in oracle] + [
        {"seed": seed, "budget": float("nan"), "protocol": "reference", "family": "gold"} | ref
    ]


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def candidate_dims(protocol: str, cfg) -> tuple[str, ...]:
    """The dimensions among which a protocol's largest inference distance is sought: what it labels
    (sub: the sub-dimensions and harmlessness), else helpfulness and harmlessness."""
    return md.labelled_dims("sub", cfg) if protocol == "sub" else ("helpfulness", "harmlessness")


def headline(df: pd.DataFrame, dims: pd.DataFrame, down: pd.DataFrame, cfg: MultiDimSchema, world_cfg) -> dict:
    """Summary scalars at the largest budget, named by protocol, each with its Student t interval over
    seeds (each seed its own world); dual − single paired by seed, Holm over that family."""
    out: dict = {}
    top = df["budget"].max()
    at = df[df["budget"] == top]
    dims_top = dims[dims["budget"] == top]
    protocols = list(dict.fromkeys(df["protocol"]))
    metrics = [f"acc_{g}" for g in HEADLINE_DIMS] + ["helpfulness_safe_pooled", "harmless_rate_safe_pooled"]
    metrics += [c for c in ("cost_sign_accuracy", "cost_auc", "category_auc_mean", "severity_accuracy") if c in df]
    for p in protocols:
        g = at[at["protocol"] == p].sort_values("seed")
        cols = metrics + ([f"acc_{d}" for d in world_cfg.help_names] if p == "sub" else [])
        cols += [f"pred_acc_{d}" for d in HEADLINE_DIMS]
        for c in cols:
            if c in g:
                out[f"{c}_{p}"], out[f"{c}_{p}_ci"] = mean_ci(g[c].to_numpy())
        out[f"n_pairs_{p}"] = int(g["n_pairs"].iloc[0]) if len(g) else 0
        if "helpfulness_safe_percat" in g:
            for m in ("helpfulness", "harmless_rate", "category_excess"):
                d = (g[f"{m}_safe_percat"] - g[f"{m}_safe_pooled"]).to_numpy()
                out[f"{m}_percat_minus_pooled_{p}"], out[f"{m}_percat_minus_pooled_{p}_ci"] = mean_ci(d)
        # Which dimension is hardest to infer, and is it the one the model gets most wrong (per seed)?
        cand = candidate_dims(p, world_cfg)
        d = dims_top[(dims_top["protocol"] == p) & dims_top["dim"].isin(cand)]
        if len(d) and d["dist"].notna().any():
            # Equal networks (same β, symmetric correlations) are a tie, not a largest dimension.
            rel = d["dist"] / d.groupby("seed")["dist"].transform("max")
            largest = d[rel >= 1 - 1e-9]
            unique = largest.groupby("seed")["dim"].agg(list)
            unique = unique[unique.map(len) == 1].map(lambda v: v[0])
            worst = d.loc[d.groupby("seed")["acc"].idxmin()].set_index("seed")["dim"]
            mean_dist = d.groupby("dim")["dist"].mean()
            tied = sorted(mean_dist.index[mean_dist >= mean_dist.max() * (1 - 1e-9)])
            out[f"largest_distance_dim_{p}"] = tied[0] if len(tied) == 1 else "tie: " + ", ".join(tied)
            out[f"worst_accuracy_dim_{p}"] = str(d.groupby("dim")["acc"].mean().idxmin())
            out[f"largest_distance_unique_seeds_{p}"] = len(unique)
            same = (unique == worst.reindex(unique.index)).to_numpy()
            out[f"largest_distance_is_worst_{p}"] = float(same.mean()) if len(same) else float("nan")
            for dim, gd in d.groupby("dim"):  # relative to the prior: the share of it left unknown
                gd = gd.sort_values("seed")
                out[f"dist_rel_{dim}_{p}"], out[f"dist_rel_{dim}_{p}_ci"] = mean_ci(
                    (gd["dist"] / gd["prior"]).to_numpy()
                )
    # Best-of-N (the largest N) and the KL-optimal policy under the scalarisation at the annotators'
    # mean weight (the grid's nearest), judged by the gold vector.
    weights = down["weight"].dropna().unique() if "weight" in down else []
    if len(weights):
        w = float(weights[np.argmin(np.abs(weights - make_annotators(cfg.annotators).weight_mean))])
        sel = down[(down["budget"] == top) & (down["weight"] == w)]
        for policy, extra in (
            ("kl", sel["policy"] == "kl"),
            ("bon", (sel["policy"] == "bon") & (sel["N"] == sel["N"].max())),
        ):
            for p in protocols:
                g = sel[extra & (sel["protocol"] == p)].sort_values("seed")
                for m in ("helpfulness", "harmless_rate"):
                    if len(g):
                        out[f"{m}_{policy}_{p}"], out[f"{m}_{policy}_{p}_ci"] = mean_ci(g[m].to_numpy())
        out["scalarisation_weight"] = w
    if {"dual", "single"} <= set(protocols):
        by = at.pivot_table(index="seed", columns="protocol", values=[m for m in metrics if m in at])
        units = {}
        for m in (
            "acc_helpfulness",
            "acc_harmlessness",
            "acc_utility",
            "helpfulness_safe_pooled",
            "harmless_rate_safe_pooled",
        ):
            if m in by:
                diff = (by[m]["dual"] - by[m]["single"]).dropna().to_numpy()
                key = f"{m}_dual_minus_single"
                out[key], out[f"{key}_ci"] = mean_ci(diff)
                units[key] = diff
        for key, claim in holm_claims(units).items():
            out[f"{key}_p"], out[f"{key}_p_holm"], out[f"{key}_verdict_holm"] = claim.p, claim.p_holm, claim.verdict
    # Theory against the runs: the Bayes learner's predicted accuracy beside the model's, every cell.
    ok = dims[["acc", "pred_acc"]].dropna()
    if len(ok) >= 3:
        out["pred_vs_measured_acc_pearson"] = float(stats.pearsonr(ok["pred_acc"], ok["acc"]).statistic)
        out["pred_minus_measured_acc"] = float((ok["pred_acc"] - ok["acc"]).mean())
    out["theory_check_rel_err"] = float(np.nanmax(df["theory_check_rel_err"].to_numpy(), initial=0.0))
    out["dropped_labels"] = int(df["dropped_labels"].sum())
    return out


def run(cfg: MultiDimSchema, runlog: RunLog) -> dict:
    costs = make_costs(cfg.costs)
    world_cfg = make_world(cfg.world)
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    rows, dim_rows, down_rows = [], [], []
    for seed in tqdm(seeds, desc="multi_dim", mininterval=5.0):
        sw = seed_world(cfg, seed)
        down_rows += reference_rows(cfg, sw, seed)
        for budget in sorted(cfg.budgets):
            for protocol in cfg.protocols:
                row, dr, down = run_unit(cfg, sw, seed, budget, protocol)
                if row is None:
                    continue
                log.info(
                    "seed %d budget %g %s (%d pairs): acc help %.3f harm %.3f",
                    seed,
                    budget,
                    protocol,
                    row["n_pairs"],
                    row["acc_helpfulness"],
                    row["acc_harmlessness"],
                )
                runlog.metric({"kind": "result", **row})
                rows.append(row)
                dim_rows += dr
                down_rows += down
    if not rows:
        raise ValueError(f"no protocol could buy two pairs with budgets {cfg.budgets}")
    df = pd.DataFrame(rows)
    dims = pd.DataFrame(dim_rows)
    down = pd.DataFrame(down_rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    dims.to_csv(runlog.dir / "dims.csv", index=False)
    down.to_csv(runlog.dir / "downstream.csv", index=False)
    save_figures(figs.figures(RunTables(df, {"dims": dims, "downstream": down}, cfg)), runlog.dir / "figures")
    # Theory §4: the accuracy single labels reach on each dimension with unlimited data.
    w0 = md.MultiDimWorld(None, world_cfg, make_annotators(cfg.annotators).weight_mean)
    t = {g: whitened(a, w0.L) for g, a in w0.directions().items()}
    ceilings = {
        f"single_ceiling_{g}": accuracy_ceiling(kappa(t["utility"], t[g])) for g in ("helpfulness", "harmlessness")
    }
    summary = headline(df, dims, down, cfg, world_cfg) | ceilings
    return summary | {
        "seeds": cfg.seeds,
        "heldout_pairs": cfg.num_queries,
        "ibn_pairs": cfg.ibn_pairs,
        "max_budget": float(df["budget"].max()),
        "protocols": list(cfg.protocols),
        **{f"cost_per_pair_{p}": md.cost_per_pair(p, world_cfg, costs, cfg.item_labels) for p in cfg.protocols},
    }
