"""The ideal learner: the exact Bayesian reward model the IBN describes, and how far neural ones fall from it.

THEORY.md §2 ("Induced Bayesian network", "Theory against practice"): the IBN's resistance is the
posterior variance of r(y1) − r(y2) for a learner whose prior is the gold field's. `rm.bayes` is that
learner (Laplace on Bradley–Terry labels). One run:

1. chain vs tree with the exact learner as the reward model, for every n × topology × budget × seed:
   held-out gold accuracy (the Bayes ceiling for the data set), the accuracy the posterior predicts
   (mean Φ(|μ|/σ)) and the mean posterior variance, on independent query pairs and the other query
   kinds; up to `identity_max_n` the posterior variance is checked against the IBN solver's resistance
   with edges of variance 1/(β² p̂(1 − p̂)) at the posterior mode (the identity of THEORY.md §2, made
   exact), and against the Fisher IBN of the scaling and design studies (edges at the true gap), which
   it equals only approximately;
2. at n = `neural_n`: neural ensembles (mlp, transformer, the prefix-embedding model at the MAP's
   objective, its anchored randomised-prior ensemble) on the same data and query pairs: gold-accuracy
   gap to the ceiling, per-pair Spearman of ensemble variance with the exact posterior variance, ECE;
3. at n = neural_n[0]: randomised-prior ensembles in the exact model class against the exact posterior
   as K grows (Gaussian observations, where members are exact posterior samples, then BT labels);
4. Best-of-N on the posterior mean, and on the lower bound μ − κσ, against N.

Outputs: `results.csv` (exact learner), `neural.csv`, `pairs.csv` (per-pair variances), `convergence.csv`,
`best_of_n.csv`, figures, and the headline scalars.

Legend: P comparisons, Q query pairs, E edges, F prefix nodes (the exact learner's unknowns), K ensemble
members, L depth, X prompts, B samples drawn per prompt.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import numpy as np
import pandas as pd
from scipy import stats

from rm_theory.common.rng import rng, tag
from rm_theory.common.stats import mean_ci, round_significant, seed_means
from rm_theory.config.common import make_labels, make_model, make_space, make_train, make_tree_sampling
from rm_theory.config.ideal_learner import IdealLearnerSchema
from rm_theory.figures import ideal_learner as plots
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import HP, Network
from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.rm import bayes, gp
from rm_theory.rm.evaluate import QueryPairs, query_pairs, reward_metrics
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import train_ensemble
from rm_theory.runs.log import RunLog
from rm_theory.world.labels import label_comparisons
from rm_theory.world.queries import QuerySpec, sample_query_sets
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.synthetic import input_spec, to_pref_data
from rm_theory.world.topology import Comparisons, annotation_tokens, make_dataset

log = logging.getLogger(__name__)


@dataclasses.dataclass
class World:
    """A seed's held-out query pairs: `q` (independent, labelled) and the other kinds as (a, b)."""

    q: QueryPairs
    kinds: dict[str, tuple[Responses, Responses]]

    def items(self) -> tuple[Responses, dict[str, np.ndarray]]:
        """All query items in one batch and each kind's pairs as indices into it."""
        parts, index, off = [self.q.items], {"independent": self.q.pairs_Qx2}, len(self.q.items)
        for name, (a, b) in self.kinds.items():
            parts += [a, b]
            index[name] = np.stack([off + np.arange(len(a)), off + len(a) + np.arange(len(a))], axis=1)
            off += 2 * len(a)
        return Responses.concat(parts), index


def make_world(cfg: IdealLearnerSchema, space: PrefixTreeSpace, seed: int) -> World:
    lc = make_labels(cfg.labels)
    q = query_pairs(space, cfg.num_queries, rng("queries", seed), lc)
    spec = QuerySpec(num_pairs=cfg.num_queries, kinds=tuple(cfg.query_kinds))
    kinds = (
        sample_query_sets(space, spec, rng("query_kinds", seed), make_tree_sampling(cfg.tree))
        if cfg.query_kinds
        else {}
    )
    return World(q, kinds)


def data_set(cfg: IdealLearnerSchema, space, n: int, topology: str, budget: str, seed: int):
    comps = make_dataset(
        space, topology, n, rng("data", seed, n, topology, budget), budget=budget, tree=make_tree_sampling(cfg.tree)
    )
    labels = label_comparisons(space, comps, make_labels(cfg.labels), rng("labels", seed, n, topology, budget))
    return comps, labels


IDENTITY_KEYS = ("posterior_vs_ibn_max_rel_err", "posterior_vs_fisher_ibn_ratio", "posterior_vs_fisher_ibn_max_rel_err")


def identity_error(
    space, comps: Comparisons, post: bayes.Posterior, fit: bayes.ExactLearner, q: QueryPairs, beta: float
) -> dict[str, float]:
    """The Laplace posterior variance against two IBNs of the same data (THEORY.md §2):

    * `posterior_vs_ibn_max_rel_err`: preference edges of variance 1/(β² p̂(1 − p̂)) at the posterior
      mode p̂; equal up to rounding, the identity made exact;
    * `posterior_vs_fisher_ibn_*`: the Fisher IBN that the scaling and design studies use, edges of
      variance 1/(β² p(1 − p)) at the true gap p = σ(β Δr*); not equal (p̂ ≠ p), its mean ratio to the
      posterior variance and its largest relative error per pair.
    """
    v_Q = post.pair_variance(fit.query_index(q.pairs_Qx2))
    ibn = ibn_network(space, comps, q.items, LabelVariance("constant", 1.0))
    distinct = ibn.node_a_P != ibn.node_b_P
    var_E = ibn.network.var_E.copy()
    var_E[ibn.network.kind_E == HP] = 1.0 / post.w_P[distinct]
    net = Network(ibn.network.num_nodes, ibn.network.u_E, ibn.network.v_E, var_E, ibn.network.kind_E)
    d_Q = network_distance(net, ibn.node_q[q.pairs_Qx2], "resistance")
    fisher = ibn_network(space, comps, q.items, LabelVariance("fisher", beta=beta))
    f_Q = fisher.distance(fisher.node_q[q.pairs_Qx2], "resistance")
    ok = d_Q > 0
    if not ok.any():
        return dict.fromkeys(IDENTITY_KEYS, float("nan")) | {"posterior_vs_ibn_max_rel_err": 0.0}
    return {
        "posterior_vs_ibn_max_rel_err": float(np.max(np.abs(v_Q[ok] - d_Q[ok]) / d_Q[ok])),
        "posterior_vs_fisher_ibn_ratio": float(f_Q[ok].mean() / v_Q[ok].mean()),
        "posterior_vs_fisher_ibn_max_rel_err": float(np.max(np.abs(f_Q[ok] / v_Q[ok] - 1))),
    }


def exact_point(cfg, space, world: World, n, topology, budget, seed) -> tuple[list[dict], dict]:
    """Rows of the exact learner on one data set (one per query kind), and what later steps reuse."""
    comps, labels = data_set(cfg, space, n, topology, budget, seed)
    q_items, index = world.items()
    fit = bayes.fit(space, comps.a, comps.b, labels.better_P, queries=q_items, beta=cfg.labels.beta)
    post = fit.posterior
    gold_q = space.gold_reward(q_items)
    nan = dict.fromkeys(IDENTITY_KEYS, float("nan"))
    err = identity_error(space, comps, post, fit, world.q, cfg.labels.beta) if n <= cfg.identity_max_n else nan
    tokens = int(annotation_tokens(space, comps.a, comps.b, shared_prefix_once=topology == "tree").sum())
    rows, keep = [], {}
    for kind, pairs in index.items():
        mu, var = post.pair_mean(fit.query_index(pairs)), post.pair_variance(fit.query_index(pairs))
        gap = gold_q[pairs[:, 0]] - gold_q[pairs[:, 1]]
        rows.append(
            {
                "n": n,
                "topology": topology,
                "budget": budget,
                "seed": seed,
                "kind": kind,
                "n_comparisons": len(comps),
                "tokens": tokens,
                "n_pairs": int((gap != 0).sum()),
                "unknowns": post.nodes.F,
                "newton_steps": post.newton_steps,
                "bayes_gold_accuracy": bayes.gold_accuracy(mu, gap),
                "bayes_expected_accuracy": bayes.expected_accuracy(mu, var),
                "posterior_variance": float(var.mean()),
                **(err if kind == "independent" else nan),
            }
        )
        if kind == "independent":
            keep = {"comps": comps, "labels": labels, "var_Q": var, "mu_Q": mu, "acc": rows[-1]["bayes_gold_accuracy"]}
    return rows, keep


def family_configs(cfg: IdealLearnerSchema, space: PrefixTreeSpace, family: str, P: int):
    """(model, trainer) configs of a neural family; the prefix families' objective is the exact one / P."""
    spec = input_spec(space)
    if family in ("mlp", "transformer"):
        return make_model(cfg.model, family=family, **spec), make_train(cfg.train)
    # "prefix" or "anchored" (the schema's FAMILIES). Neural scores are β·r (the BT loss has no β), so their
    # prior variances are β² s_j².
    prior_var = tuple(float(v) for v in cfg.labels.beta**2 * space.s2_L)
    mc = ModelConfig(
        family="prefix", table_size=cfg.prefix_table_size, prior_var=prior_var, anchored=family == "anchored", **spec
    )
    tc = make_train(
        cfg.train,
        steps=cfg.prefix_steps,
        batch_size=cfg.prefix_batch_size,
        lr=cfg.prefix_lr,
        end_lr_frac=0.01,
        weight_decay=0.0,
        l2_coef=0.0,
        centre_coef=0.0,
        clip_norm=1e9,
        bootstrap=family == "anchored",  # MAP members would all agree; anchored ones resample
        prior_coef=1.0 / P,
        log_every=cfg.prefix_steps,
    )
    return mc, tc


def neural_point(cfg, space, world: World, n, topology, seed, keep) -> tuple[list[dict], list[pd.DataFrame]]:
    comps, labels = keep["comps"], keep["labels"]
    syn = to_pref_data(space, comps, labels)
    rows, pairs = [], []
    beta2 = cfg.labels.beta**2
    for family in cfg.families:
        mc, tc = family_configs(cfg, space, family, len(comps))
        key = jax.random.fold_in(jax.random.key(seed), tag(n, topology, family)[0] % 2**31)
        ens, history = train_ensemble(mc, tc, syn.data, key, progress=False)
        rm, var_Q = reward_metrics(ens.score(world.q.x), world.q)
        var_Q = var_Q / beta2  # back to the gold reward's scale
        exact = keep["var_Q"]
        rows.append(
            {
                "n": n,
                "topology": topology,
                "seed": seed,
                "family": family,
                "gold_accuracy": rm["gold_accuracy"],
                "bayes_gold_accuracy": keep["acc"],
                "gap_to_ceiling": keep["acc"] - rm["gold_accuracy"],
                "ensemble_variance": float(var_Q.mean()),
                "posterior_variance": float(exact.mean()),
                "ensemble_vs_posterior_spearman": float(stats.spearmanr(var_Q, exact).statistic),
                "ece": rm["ece"],
                "train_loss": history[-1]["loss"],
            }
        )
        pairs.append(
            pd.DataFrame({"family": family, "topology": topology, "seed": seed, "exact": exact, "ensemble": var_Q})
        )
        log.info(
            "%s n=%d %s seed %d: gold acc %.3f (ceiling %.3f)",
            family,
            n,
            topology,
            seed,
            rm["gold_accuracy"],
            keep["acc"],
        )
    return rows, pairs


def convergence_point(cfg, space, world: World, topology, seed, keep) -> list[dict]:
    """Randomised-prior ensembles of K members against the exact posterior variance, per pair."""
    comps, labels = keep["comps"], keep["labels"]
    P = len(comps)
    a_P, b_P = np.arange(P), P + np.arange(P)
    g = rng("anchored", seed, topology)
    rows = []
    Kmax = max(cfg.ensemble_sizes)
    # Gaussian observations of the gold gaps: members are exact posterior samples.
    d_P = space.gold_reward(comps.a) - space.gold_reward(comps.b) + np.sqrt(cfg.xi2) * g.normal(size=P)
    fit = bayes.fit(space, comps.a, comps.b, d_P, queries=world.q.items, likelihood="gaussian", xi2=cfg.xi2)
    q = fit.query_index(world.q.pairs_Qx2)
    cases = {"gaussian": (fit, bayes.anchored_gaussian_ensemble(fit.posterior, a_P, b_P, d_P, Kmax, g))}
    bt = bayes.fit(space, comps.a, comps.b, labels.better_P, queries=world.q.items, beta=cfg.labels.beta)
    v_bt = bayes.anchored_bt_ensemble(bt.posterior.nodes, a_P, b_P, labels.better_P, cfg.labels.beta, Kmax, g)
    cases["bradley_terry"] = (bt, v_bt)
    for likelihood, (f, v_KxF) in cases.items():
        exact = f.posterior.pair_variance(q)
        ok = exact > 0
        for K in cfg.ensemble_sizes:
            ens = bayes.ensemble_pair_variance(v_KxF[:K], f.posterior.nodes, q)
            rel = np.abs(ens[ok] / exact[ok] - 1)
            rows.append(
                {
                    "likelihood": likelihood,
                    "topology": topology,
                    "seed": seed,
                    "K": K,
                    "median_rel_err": float(np.median(rel)),
                    "mean_ratio": float(ens[ok].mean() / exact[ok].mean()),
                    "spearman": float(stats.spearmanr(ens[ok], exact[ok]).statistic),
                }
            )
    return rows


def best_of_n_point(cfg, space, world: World, topology, seed, keep) -> list[dict]:
    """Best-of-N among the reference policy's candidates on μ − κσ (κ = 0: plain Best-of-N)."""
    comps, labels = keep["comps"], keep["labels"]
    g = rng("bon", seed)
    M = cfg.bon_max_n
    prompts = g.integers(0, space.num_prompts, cfg.bon_prompts)
    cand = space.sample(g, np.repeat(prompts, M))
    fit = bayes.fit(space, comps.a, comps.b, labels.better_P, queries=cand, beta=cfg.labels.beta)
    idx = fit.query_index(np.arange(len(cand)))
    mu_XxB = fit.posterior.item_mean(idx).reshape(-1, M)
    sd_XxB = np.sqrt(fit.posterior.item_variance(idx)).reshape(-1, M)
    gold_XxB = space.gold_reward(cand).reshape(-1, M)
    rows = []
    N = 1
    while N <= M:
        for kappa in cfg.kappas:
            # Candidates the data cannot tell apart have equal scores up to the solver's rounding:
            # rounded, the tie goes to the first drawn, whichever solver computed the posterior.
            pick_X = np.argmax(round_significant(mu_XxB[:, :N] - kappa * sd_XxB[:, :N]), axis=1)
            rows.append(
                {
                    "topology": topology,
                    "seed": seed,
                    "N": N,
                    "kappa": kappa,
                    "gold_reward": float(gold_XxB[np.arange(len(pick_X)), pick_X].mean()),
                    "oracle": float(gold_XxB[:, :N].max(axis=1).mean()),
                }
            )
        N *= 2
    return rows


def gp_point(cfg: IdealLearnerSchema, seed: int) -> dict:
    """Metric geometry: per-pair exact GP posterior variance against the IBN's resistance (k-NN prior)."""
    space = make_space(dataclasses.replace(cfg.space, geometry="metric", num_prompts=4), seed)
    g = rng("gp", seed)
    comps = make_dataset(space, "chain", cfg.gp_n, g)
    qa = space.sample(g, g.integers(0, space.num_prompts, cfg.num_queries))
    queries = Responses.concat([qa, space.sample(g, qa.prompt)])
    P, Q = len(comps), cfg.num_queries
    items = Responses.concat([comps.a, comps.b, queries])
    d_P = space.gold_reward(comps.a) - space.gold_reward(comps.b) + np.sqrt(cfg.xi2) * g.normal(size=P)
    post = gp.gp_posterior(space, items, np.arange(P), P + np.arange(P), d_P, cfg.xi2)
    pairs = np.stack([np.arange(Q), Q + np.arange(Q)], axis=1)
    exact = post.pair_variance(2 * P + pairs)
    ibn = ibn_network(space, comps, queries, LabelVariance("constant", cfg.xi2))
    d_Q = ibn.distance(ibn.node_q[pairs], "resistance")
    ok = np.isfinite(d_Q) & (exact > 0)
    return {
        "seed": seed,
        "gp_vs_ibn_spearman": float(stats.spearmanr(d_Q[ok], exact[ok]).statistic),
        "gp_vs_ibn_mean_ratio": float(d_Q[ok].mean() / exact[ok].mean()),
        "gp_vs_ibn_median_rel_err": float(np.median(np.abs(d_Q[ok] / exact[ok] - 1))),
        "gp_ibn_unreachable": float(1 - np.isfinite(d_Q).mean()),
    }


def _ci_entries(prefix: str, values) -> dict:
    m, h = mean_ci(values)
    return {prefix: m, f"{prefix}_ci": h}


def headline(cfg, df: pd.DataFrame, neural: pd.DataFrame, conv: pd.DataFrame, bon: pd.DataFrame) -> dict:
    out: dict = {}
    budget = cfg.budgets[0]
    ind = df[(df["kind"] == "independent") & (df["budget"] == budget)]
    top = ind[ind["n"] == ind["n"].max()]
    for topo, g in top.groupby("topology"):
        out |= _ci_entries(f"bayes_gold_accuracy_{topo}", g["bayes_gold_accuracy"])
        out |= _ci_entries(f"bayes_expected_accuracy_{topo}", g["bayes_expected_accuracy"])
        out[f"posterior_variance_{topo}"] = float(g["posterior_variance"].mean())
    # Paired over worlds: the same seed draws one world and one set of query pairs for both topologies.
    by_seed = top.pivot_table(index="seed", columns="topology", values="bayes_gold_accuracy")
    if {"chain", "tree"} <= set(by_seed.columns):
        out |= _ci_entries("bayes_gold_accuracy_tree_minus_chain", (by_seed["tree"] - by_seed["chain"]).dropna())
    out["bayes_n"] = int(top["n"].max())
    out["bayes_budget"] = budget
    out["bayes_n_pairs"] = int(top["n_pairs"].min())
    out["bayes_seeds"] = int(top["seed"].nunique())
    out["posterior_vs_ibn_max_rel_err"] = float(np.nanmax(df["posterior_vs_ibn_max_rel_err"]))
    # The Fisher IBN (edges at the true gap) is not the exact learner's posterior: how far it is.
    out["posterior_vs_fisher_ibn_max_rel_err"] = float(np.nanmax(df["posterior_vs_fisher_ibn_max_rel_err"]))
    out["posterior_vs_fisher_ibn_ratio"] = float(np.nanmean(df["posterior_vs_fisher_ibn_ratio"]))
    out["bayes_by_n"] = {
        f"{b}/{t}/{k}": {int(n): float(v) for n, v in g.groupby("n")["bayes_gold_accuracy"].mean().items()}
        for (b, t, k), g in df.groupby(["budget", "topology", "kind"])
    }
    for fam, g in neural.groupby("family"):
        out[f"gold_accuracy_{fam}"] = float(g["gold_accuracy"].mean())
        # A seed's chain and tree data sets (and its neural_n values) share its world and query
        # pairs: one unit per seed.
        out |= _ci_entries(f"gap_to_ceiling_{fam}", seed_means(g, "gap_to_ceiling")[0])
        out["gap_to_ceiling_seeds"] = int(g["seed"].nunique())
        out[f"ensemble_vs_posterior_spearman_{fam}"] = float(g["ensemble_vs_posterior_spearman"].mean())
        out[f"ece_{fam}"] = float(g["ece"].mean())
    if len(neural):
        out["neural_n"] = int(neural["n"].max())
    for (lik, K), g in conv.groupby(["likelihood", "K"]):
        out[f"anchored_{lik}_rel_err_K{K}"] = float(g["median_rel_err"].mean())
        out[f"anchored_{lik}_spearman_K{K}"] = float(g["spearman"].mean())
    if len(bon):
        top_n = bon[bon["N"] == bon["N"].max()]
        for (topo, kappa), g in top_n.groupby(["topology", "kappa"]):
            out[f"bon_gold_{topo}_kappa{kappa:g}"] = float(g["gold_reward"].mean())
    return out


def run(cfg: IdealLearnerSchema, runlog: RunLog) -> dict:
    rows, neural, pairs, conv, bon = [], [], [], [], []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        space = make_space(cfg.space, seed)  # the seed's own world (one gold field when field_per_seed=false)
        world = make_world(cfg, space, seed)
        for n in sorted(cfg.n_values + [m for m in cfg.neural_n if m not in cfg.n_values]):
            for budget in cfg.budgets:
                for topology in cfg.topologies:
                    point_rows, keep = exact_point(cfg, space, world, n, topology, budget, seed)
                    if n in cfg.n_values:
                        rows += point_rows
                        for r in point_rows:
                            runlog.metric({"kind_of_row": "exact", **r})
                    if budget != "comparisons" or n not in cfg.neural_n:
                        continue
                    nr, pr = neural_point(cfg, space, world, n, topology, seed, keep)
                    neural += nr
                    pairs += pr
                    if n == cfg.neural_n[0]:
                        conv += convergence_point(cfg, space, world, topology, seed, keep)
                        bon += best_of_n_point(cfg, space, world, topology, seed, keep)
    df = pd.DataFrame(rows)
    neural_df, conv_df, bon_df = pd.DataFrame(neural), pd.DataFrame(conv), pd.DataFrame(bon)
    pairs_df = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    for name, table in [
        ("results", df),
        ("neural", neural_df),
        ("pairs", pairs_df),
        ("convergence", conv_df),
        ("best_of_n", bon_df),
    ]:
        table.to_csv(runlog.dir / f"{name}.csv", index=False)
    tables = {"neural": neural_df, "pairs": pairs_df, "convergence": conv_df, "best_of_n": bon_df}
    save_figures(plots.figures(RunTables(df, tables, cfg)), runlog.dir / "figures")
    out = headline(cfg, df, neural_df, conv_df, bon_df) | {"rows": len(df), "field_per_seed": cfg.space.field_per_seed}
    if cfg.gp_n:
        gp_df = pd.DataFrame([gp_point(cfg, s) for s in range(cfg.seed, cfg.seed + cfg.seeds)])
        gp_df.to_csv(runlog.dir / "gp_vs_ibn.csv", index=False)
        out |= {k: float(gp_df[k].mean()) for k in gp_df if k != "seed"}
    return out
