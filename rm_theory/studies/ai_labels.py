"""Preference data built without annotators, against human data at equal cost: the Safer-Instruct
pipeline (Shi et al. 2024, NAACL, arXiv 2311.08685) and AI judges (RLAIF, Lee et al. 2023; MT-Bench,
Zheng et al. 2023), in the gold world and on real data. See conf/experiment/ai_labels*.yaml and
docs/ai_labels_theory.md.

Parts (`cfg.parts`), each seed its own world (gold field, reference policy, expert, judge):

* world: at each budget (in units of `label_cost`: a human label costs c_H, an AI call c_AI), data of
  each source: `human` (independent π_ref pairs labelled by annotators of slope β_H), `ai` (the
  same design labelled by the judge), `mixed` (a share `ai_share` of the budget spent on AI labels),
  `safer_instruct` (the pipeline, `policy.safer_instruct`), `ai_learned` (a judge learned from a
  human seed set, `rm.judges`, labelling the rest). Reward and cost models are the exact learner
  (`rm.mixed_labels`); judged by the gold world on held-out π_ref pairs (gold accuracy) and by the
  policies they lead to: Best-of-N on r̂ − w·ĉ and Safe RLHF's exact constrained optimum
  (`policy.constrained`), each scored by its helpfulness E[r*] and harmlessness rate P(c* ≤ 0).
  Beside the measured reward-model error, the mixed-label IBN's prediction (`ibn.mixed_labels`).
* theory: at one budget, AI share × bias scale: the IBN's predicted mean squared error and gold
  accuracy against the exact learner's, on Bradley–Terry labels and on the Gaussian readings in which
  the prediction is exact.
* ablations: the pipeline with each stage switched off, at one budget, on the same sources and draws.
* judges: agreement rates (closed form and drawn labels) and bias gaps of the calibrated judge on
  held-out pairs; the learned judge's agreement, accuracy and coverage.
* real: heads on frozen features trained on Safer-Instruct's pairs and PKU-SafeRLHF's, each
  evaluated on both held-out splits; canned refusals counted and left out.

Every comparison is paired: the sources, budgets and stages of a seed share its world, its query pairs
and its pool of pairs; intervals are Student t over seeds (`common.stats.mean_ci`), Holm's correction
over each family of source-against-human claims. Real-data intervals are cluster bootstraps over
held-out prompts (`real.evaluation.bootstrap_mean`, `real.transfer`).

The computations in the gold world are `policy.label_sources`'s; this module reads the config, runs
the parts and summarises them.

Legend: P comparisons (pairs), Q query pairs, N items (of a real data set), K ensemble members.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from rm_theory.common.rng import rng as named_rng
from rm_theory.common.rng import str_hash
from rm_theory.common.stats import holm_claims, mean_ci
from rm_theory.config.ai_labels import AILabelsSchema, RealSchema
from rm_theory.config.common import build, make_labels, make_model, make_space, make_train
from rm_theory.config.finetune_rm import make_finetune, model_folder
from rm_theory.figures import ai_labels as figs
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn import mixed_labels as mixed
from rm_theory.lm.encoders import load_encoder
from rm_theory.policy.constrained import expected
from rm_theory.policy.label_sources import (
    Downstream,
    JudgeSetup,
    Labelled,
    Pools,
    World,
    evaluate,
    judge_agreements,
    label,
    learned_labels,
    pipeline_data,
    policy_metrics,
    predicted,
    ref_pairs,
    seed_set,
)
from rm_theory.policy.label_sources import make_world as label_world
from rm_theory.policy.safer_instruct import (
    PipelineConfig,
    induction_accuracy,
    pipeline_stats,
    run_pipeline,
    within_budget,
)
from rm_theory.real import safer_instruct as si_data
from rm_theory.real.features import FeatureConfig
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.heads import feature_model, train_heads
from rm_theory.real.selection import DataSpec
from rm_theory.real.transfer import LMSettings, RealSet, Scorers, cross_accuracy, finetuned_scorers, prepare_sets
from rm_theory.rm import judges as learned_judges
from rm_theory.rm import mixed_labels as models
from rm_theory.rm.bayes import gold_accuracy
from rm_theory.runs.log import RunLog
from rm_theory.world import judges
from rm_theory.world.synthetic import input_spec

log = logging.getLogger(__name__)

METRICS = (
    "gold_accuracy_reward",
    "gold_accuracy_cost",
    "harmless_bon",
    "helpful_bon",
    "harmless_safe_rlhf",
    "helpful_safe_rlhf",
)


# ---------------------------------------------------------------------------- one seed's world


def make_world(cfg: AILabelsSchema, seed: int) -> World:
    """A seed's world (`policy.label_sources.make_world`) as the config sets it."""
    pc = cfg.pipeline
    return label_world(
        make_space(cfg.space, seed),
        make_labels(cfg.labels),
        build(JudgeSetup, cfg.judge),
        pc.expert_beta,
        pc.expert_threshold,
        cfg.num_queries,
        seed,
    )


def make_pools(cfg: AILabelsSchema, world: World) -> Pools:
    c_h, c_ai = cfg.label_cost.human, cfg.label_cost.ai
    top = max(cfg.budgets)
    n = int(top / c_h) + int(top / c_ai) + cfg.learned.seed_pairs
    p, a, b = ref_pairs(world.gold, n, named_rng("pool", world.seed))
    human, _, _ = label(world, p, a, b, "human", named_rng("human", world.seed))
    ai, vb, vc = label(world, p, a, b, "ai", named_rng("ai", world.seed), cfg.learner_knows_judge)
    pools = Pools(human, ai, vb, vc)
    if "safer_instruct" in cfg.sources:
        calls_min = 1 + int(cfg.pipeline.quality_filter)
        n_sources = int(math.ceil(top / (c_ai * calls_min))) + 1
        pools.pipeline = run_pipeline(
            world.gold, world.judge, world.judge_c, pipeline_config(cfg), n_sources, world.seed
        )
    return pools


def pipeline_config(cfg: AILabelsSchema, **off) -> PipelineConfig:
    return build(PipelineConfig, cfg.pipeline, **off)


def downstream(cfg: AILabelsSchema) -> Downstream:
    return build(Downstream, cfg.downstream)


def source_data(cfg: AILabelsSchema, world: World, pools: Pools, source: str, budget: float) -> Labelled:
    c_h, c_ai = cfg.label_cost.human, cfg.label_cost.ai
    keep_ai = lambda lab, v: lab.take(np.flatnonzero(v.confident(cfg.judge.min_confidence)))
    if source == "human":
        return pools.human.take(np.arange(int(budget / c_h)))
    if source == "ai":
        n = int(budget / c_ai)
        vb = judges.Verdicts(pools.ai_verdicts.label_P[:n], pools.ai_verdicts.prob_P[:n])
        return keep_ai(pools.ai.take(np.arange(n)), vb)
    if source == "mixed":
        n_h, n_a = int((1 - cfg.ai_share) * budget / c_h), int(cfg.ai_share * budget / c_ai)
        idx = np.arange(n_h, n_h + n_a)
        vb = judges.Verdicts(pools.ai_verdicts.label_P[idx], pools.ai_verdicts.prob_P[idx])
        return Labelled.concat([pools.human.take(np.arange(n_h)), keep_ai(pools.ai.take(idx), vb)])
    if source == "safer_instruct":
        return pipeline_data(world, pools.pipeline, within_budget(pools.pipeline, budget, c_ai))
    if source == "ai_learned":
        n_seed = cfg.learned.seed_pairs
        if budget < n_seed * c_h:  # the seed set alone exhausts the budget: human labels only
            return pools.human.take(np.arange(int(budget / c_h)))
        n_a = int((budget - n_seed * c_h) / c_ai)
        idx = n_seed + np.arange(n_a)
        kept = idx[pools.learned_kept[idx]]
        return Labelled.concat([pools.human.take(np.arange(n_seed)), pools.learned.take(kept)])
    raise ValueError(f"unknown source {source!r}")


# ---------------------------------------------------------------------------- parts


def learn_judge_labels(cfg: AILabelsSchema, world: World, pools: Pools) -> dict:
    """Trains the learned judge on the pool's first `seed_pairs` human labels and labels the rest of
    the pool (`policy.label_sources.learned_labels`); returns what it reached beyond the seed set."""
    lc = cfg.learned
    mc = make_model(lc.model, family="mlp", **input_spec(world.space))
    tc = make_train(lc.train, ensemble_size=lc.ensemble_size)
    data = seed_set(world, pools.human, lc.seed_pairs)
    judge = learned_judges.learn_judge(world.space, data, mc, tc, jax.random.key(world.seed))
    return learned_labels(world, pools, judge, lc.seed_pairs, lc.margin)


def world_part(cfg: AILabelsSchema, world: World, pools: Pools) -> list[dict]:
    h = pools.human
    x, _, dg = world.gaps(h.prompt, h.a, h.b)
    worth = mixed.label_worth(world.judge.beta, world.human_beta, x, dg, world.judge.bias)
    rows = []
    for budget in sorted(cfg.budgets):
        for source in cfg.sources:
            t = time.perf_counter()
            data = source_data(cfg, world, pools, source, budget)
            row = {"part": "world", "seed": world.seed, "source": source, "budget": budget}
            row |= evaluate(downstream(cfg), world, data, predict=source in ("human", "ai", "mixed")) | {
                "label_worth": worth
            }
            rows.append(row | {"seconds": time.perf_counter() - t})
    g = world.gold
    # π_ref itself (the policy without data) and the policies of the gold reward and cost (the ceiling)
    ref = {"helpful": expected(g.ref_logp_XxY, g.r_XxY), "harmless": expected(g.ref_logp_XxY, world.safe_XxY)}
    rows.append(
        {"part": "world", "seed": world.seed, "source": "reference", "budget": 0.0}
        | {f"{m}_{pol}": v for m, v in ref.items() for pol in ("bon", "safe_rlhf")}
    )
    rows.append(
        {
            "part": "world",
            "seed": world.seed,
            "source": "gold",
            "budget": 0.0,
            **policy_metrics(downstream(cfg), world, g.r_XxY, g.c_XxY),
        }
    )
    return rows


def theory_part(cfg: AILabelsSchema, world: World, pools: Pools) -> list[dict]:
    """Predicted against measured reward-model error as the AI share and the bias vary (docs §4):
    the mixed IBN's R + B² and accuracy, the exact learner on the world's Bradley–Terry labels
    (`bt_`), and Gaussian readings of fields drawn from the prior through the same design (`gauss_`,
    where the prediction is exact in expectation: a check of the computation at scale)."""
    th, c_h, c_ai = cfg.theory, cfg.label_cost.human, cfg.label_cost.ai
    Q = th.num_queries
    sub = dataclasses.replace(world, q_prompt=world.q_prompt[:Q], q_a=world.q_a[:Q], q_b=world.q_b[:Q])
    qp, qa, qb = sub.q_prompt, sub.q_a, sub.q_b
    gap = world.gold.r_XxY[qp, qa] - world.gold.r_XxY[qp, qb]
    h = pools.human
    rows = []
    for k in th.bias_scales:
        for s in th.ai_shares:
            n_h, n_a = int((1 - s) * th.budget / c_h), int(s * th.budget / c_ai)
            idx = np.arange(n_h, n_h + n_a)
            ai, _, _ = label(
                world, h.prompt[idx], h.a[idx], h.b[idx], "ai", named_rng("theory", world.seed, k), True, k
            )
            data = Labelled.concat([h.take(np.arange(n_h)), ai])
            row = {"part": "theory", "seed": world.seed, "ai_share": s, "bias_scale": k, "n_human": n_h, "n_ai": n_a}
            if not len(data):
                rows.append(row)
                continue
            row |= predicted(sub, data)
            a, b = world.responses(data.prompt, data.a), world.responses(data.prompt, data.b)
            qa_r, qb_r = world.responses(qp, qa), world.responses(qp, qb)
            bt = models.fit_reward(world.space, a, b, data.better, data.beta)
            d_hat = bt.mean(qa_r) - bt.mean(qb_r)
            row |= {
                "bt_mse_reward": float(np.mean((d_hat - gap) ** 2)),
                "bt_accuracy_reward": gold_accuracy(d_hat, gap),
            }
            # the model the prediction is exact for: fields drawn from the prior, Gaussian readings
            mse_Q, acc_Q = models.prior_readings_error(
                world.space,
                a,
                b,
                data.var,
                data.bias,
                qa_r,
                qb_r,
                th.draws,
                named_rng("theory_prior", world.seed, k, s),
            )
            row |= {"gauss_mse_reward": float(mse_Q.mean()), "gauss_accuracy_reward": float(acc_Q.mean())}
            rows.append(row)
    return rows


ABLATION_OFF = {
    "induction": {"induction": "oracle"},
    "quality_filter": {"quality_filter": False},
    "expert": {"expert": "reference"},
    "rejected": {"rejected": "reference"},
    "preference_filter": {"preference_filter": False},
}


def ablation_part(cfg: AILabelsSchema, world: World) -> list[dict]:
    """The pipeline with one stage off ("none": all on), at one budget, same sources and draws."""
    budget, c_ai = cfg.ablations.budget, cfg.label_cost.ai
    n_sources = int(math.ceil(budget / c_ai)) + 1
    rows = []
    for stage in cfg.ablations.stages:
        pc = pipeline_config(cfg, **ABLATION_OFF.get(stage, {}))
        data = run_pipeline(world.gold, world.judge, world.judge_c, pc, n_sources, world.seed)
        idx = within_budget(data, budget, c_ai)
        used = data.source_P[idx]
        row = {"part": "ablations", "seed": world.seed, "stage": stage, "budget": budget}
        row |= {f"pipe_{k}": v for k, v in pipeline_stats(world.gold, data, idx).items()}
        row |= {
            "induction_accuracy": induction_accuracy(world.gold, data.prompt_N, data.leaf_N, pc.induction_temperature)
            if pc.induction == "reverse"
            else 1.0,
            "quality_keep": float(data.quality_N.mean()),
            "preference_keep": float(data.kept_P[data.quality_N[data.source_P]].mean()),
            "sources_used": int(len(np.unique(used))),
        }
        if len(idx):
            row |= evaluate(downstream(cfg), world, pipeline_data(world, data, idx))
        rows.append(row)
    return rows


def judges_part(cfg: AILabelsSchema, world: World, pools: Pools, learned: dict) -> list[dict]:
    """Agreement and bias of the calibrated judge on held-out pairs (`policy.label_sources.judge_agreements`),
    its calibration, and what the learned judge reached."""
    rng = named_rng("judges", world.seed)
    row = {"part": "judges", "seed": world.seed} | judge_agreements(world, cfg.judge.calibration_pairs, rng)
    return [row | learned]


# ---------------------------------------------------------------------------- summary


def _diff_units(df: pd.DataFrame, key: str, metric: str, base: str, other: str) -> np.ndarray:
    """Per-seed paired difference other − base of `metric` (the rows of one budget or stage)."""
    w = df.pivot_table(index="seed", columns=key, values=metric)
    if base not in w or other not in w:
        return np.zeros(0)
    return (w[other] - w[base]).dropna().to_numpy()


def _closed_form(cfg: AILabelsSchema, curves: pd.DataFrame) -> dict:
    """docs §3's closed form on the world part's seed means: R(n) = a·n^(−γ) fitted to the human
    data's predicted resistance against its labels n, the AI data's predicted bias² at the largest
    budget, the label worth w; the budget above which AI-only data loses to human-only data."""
    h, ai = curves.loc["human"], curves.loc["ai"]
    ok = h["pred_resistance"].notna() & (h["pairs"] > 0)
    if ok.sum() < 2 or "label_worth" not in ai:
        return {}
    slope, icept = np.polyfit(np.log(h["pairs"][ok]), np.log(h["pred_resistance"][ok]), 1)
    a, gamma = float(np.exp(icept)), float(-slope)
    bias2, worth = float(ai["pred_bias2"].iloc[-1]), float(ai["label_worth"].mean())
    c_h, c_ai = cfg.label_cost.human, cfg.label_cost.ai
    return {
        "closed_form_a": a,
        "closed_form_gamma": gamma,
        "closed_form_bias2": bias2,
        "label_worth": worth,
        "crossover_budget_closed_form": mixed.power_law_crossover(a, gamma, bias2, c_h, c_ai, worth),
        "best_ai_labels_beside_256_human": mixed.best_ai_count(a, gamma, bias2, 256.0, worth),
    }


def summarize(cfg: AILabelsSchema, df: pd.DataFrame) -> dict:
    synthetic = any(p != "real" for p in cfg.parts)
    out: dict = {"seeds": cfg.seeds, "heldout_pairs": cfg.num_queries} if synthetic else {}
    world = df[df["part"] == "world"] if "part" in df else pd.DataFrame()
    if len(world):
        top = max(cfg.budgets)
        out["max_budget"] = top
        at = world[world["budget"] == top]
        for src in cfg.sources:
            g = at[at["source"] == src]
            for m in (*METRICS, "pairs", "label_error_better", "label_error_safer", "cost_sign_accuracy"):
                if m in g and g[m].notna().any():
                    out[f"{m}_{src}"], out[f"{m}_{src}_ci"] = mean_ci(g[m].dropna().to_numpy())
        for src, col in (
            ("reference", "harmless_bon"),
            ("reference", "helpful_bon"),
            ("gold", "harmless_safe_rlhf"),
            ("gold", "helpful_safe_rlhf"),
            ("gold", "harmless_bon"),
        ):
            g = world[world["source"] == src]
            if len(g):
                out[f"{col}_{src}"], out[f"{col}_{src}_ci"] = mean_ci(g[col].to_numpy())
        if "human" in cfg.sources:
            for m in METRICS:
                units = {src: _diff_units(at, "source", m, "human", src) for src in cfg.sources if src != "human"}
                units = {k: v for k, v in units.items() if len(v)}
                if not units:
                    continue
                claims = holm_claims(units)
                for src, c in claims.items():
                    key = f"{m}_{src}_minus_human"
                    out[key], out[f"{key}_ci"] = mean_ci(units[src])
                    out[f"{key}_p"], out[f"{key}_p_holm"], out[f"{key}_holm"] = c.p, c.p_holm, c.verdict
        # predicted against measured crossover of human- and AI-only reward models, on seed means
        curves = world[world["source"].isin(["human", "ai"])].groupby(["source", "budget"]).mean(numeric_only=True)
        if {"human", "ai"} <= set(curves.index.get_level_values(0)) and "pred_mse_reward" in curves:
            b = np.array(sorted(cfg.budgets))
            for what, col in (("measured", "mse_reward"), ("predicted", "pred_mse_reward")):
                out[f"crossover_budget_{what}"] = mixed.crossover(
                    b, curves.loc["human"][col].reindex(b).to_numpy(), curves.loc["ai"][col].reindex(b).to_numpy()
                )
            pm = world.dropna(subset=["pred_mse_reward", "mse_reward"])
            if len(pm):
                out["pred_over_measured_mse_world"] = float(np.median(pm["pred_mse_reward"] / pm["mse_reward"]))
            out |= _closed_form(cfg, curves)
    th = df[df["part"] == "theory"] if "part" in df else pd.DataFrame()
    if len(th) and "pred_mse_reward" in th:
        th = th.dropna(subset=["pred_mse_reward"])
        for kind in ("gauss", "bt"):
            err_mse = (th[f"{kind}_mse_reward"] - th["pred_mse_reward"]) / th["pred_mse_reward"]
            err_acc = th[f"{kind}_accuracy_reward"] - th["pred_accuracy_reward"]
            per_seed_mse = err_mse.groupby(th["seed"]).mean().to_numpy()
            per_seed_acc = err_acc.groupby(th["seed"]).mean().to_numpy()
            out[f"theory_{kind}_mse_rel_error"], out[f"theory_{kind}_mse_rel_error_ci"] = mean_ci(per_seed_mse)
            out[f"theory_{kind}_accuracy_error"], out[f"theory_{kind}_accuracy_error_ci"] = mean_ci(per_seed_acc)
            out[f"theory_{kind}_accuracy_max_abs_error"] = float(err_acc.abs().max())
        out["theory_cells"] = int(len(th))
        # where more AI data stops helping: the share of least error per bias scale (seed means)
        cell = th.groupby(["bias_scale", "ai_share"])[["pred_mse_reward", "gauss_mse_reward", "bt_mse_reward"]].mean()
        for k, g in cell.groupby(level=0):
            for kind in ("pred", "gauss", "bt"):
                out[f"theory_best_share_{kind}_bias{k:g}"] = float(g[f"{kind}_mse_reward"].idxmin()[1])
    ab = df[df["part"] == "ablations"] if "part" in df else pd.DataFrame()
    if len(ab) and "none" in set(ab["stage"]):
        for m in (
            "harmless_bon",
            "harmless_safe_rlhf",
            "gold_accuracy_cost",
            "gold_accuracy_reward",
            "pipe_pairs",
            "pipe_safer_label_error",
        ):
            units = {st: _diff_units(ab, "stage", m, "none", st) for st in cfg.ablations.stages if st != "none"}
            units = {k: v for k, v in units.items() if len(v)}
            if not units:
                continue
            claims = holm_claims(units, direction="less")
            for st, c in claims.items():
                key = f"ablation_{st}_{m}_minus_full"
                out[key], out[f"{key}_ci"] = mean_ci(units[st])
                out[f"{key}_p_holm"] = c.p_holm
    jd = df[df["part"] == "judges"] if "part" in df else pd.DataFrame()
    if len(jd):
        for col in [c for c in jd.columns if c not in ("part", "seed") and pd.api.types.is_numeric_dtype(jd[c])]:
            if jd[col].notna().any():
                out[col], out[f"{col}_ci"] = mean_ci(jd[col].dropna().to_numpy())
        d = (jd["judge_agreement_better"] - jd["human_agreement_better"]).to_numpy()
        out["judge_minus_human_agreement"], out["judge_minus_human_agreement_ci"] = mean_ci(d)
        d = (jd["judge_agreement_unbiased_better"] - jd["human_agreement_better"]).to_numpy()
        out["judge_unbiased_minus_human_agreement"], out["judge_unbiased_minus_human_agreement_ci"] = mean_ci(d)
        if "learned_agreement" in jd:
            d = (jd["learned_agreement"] - jd["human_agreement_better"]).to_numpy()
            out["learned_minus_human_agreement"], out["learned_minus_human_agreement_ci"] = mean_ci(d)
    return out


# ---------------------------------------------------------------------------- real data


def real_scores(rc: RealSchema, train: RealSet, train_P: np.ndarray, key: jax.Array, lm: LMSettings) -> Scorers:
    """Reward (and cost) scorers trained on the pairs `train_P` of `train`: name → (data set →
    `s_KxN` of its items). "frozen": heads on frozen encoder features (`real.heads.train_heads`);
    "finetuned": score models fine-tuned end to end on the text pairs (`real.transfer.finetuned_scorers`),
    scoring a data set's texts instead of its features."""
    if rc.heads == "finetuned":
        return finetuned_scorers(lm, train, train_P, make_finetune(rc.finetune, "reward"), key)
    mc = feature_model(rc.model.hidden, train.x_NxD.shape[1])
    heads = train_heads(train.x_NxD, train.items, train_P, mc, make_train(rc.train), key, cost=True)
    return {name: (lambda ds, ens=ens: ens.score(ds.x_NxD)) for name, ens in heads.items()}


def _real_sets(cfg: AILabelsSchema, out_dir: Path) -> tuple[dict[str, RealSet], dict, LMSettings]:
    """Safer-Instruct's and PKU-SafeRLHF's pairs ready for training (`real.transfer.prepare_sets`), with
    the refusal counts of every Safer-Instruct row, and the score model to fine-tune (heads=finetuned).
    The paths are set and present (`AILabelsSchema.inputs`, checked before the run), or the fixture's."""
    rc = cfg.real
    paths = {k: v.path for k, v in rc.datasets.items()}
    encoder_dir, cache_dir, max_len = rc.features.encoder_dir or None, rc.features.cache_dir, rc.features.max_len
    if rc.fixture:
        fx = write_fixture(out_dir / "fixture", cfg.seed)
        paths = {
            "safer_instruct": str(si_data.write_fixture(out_dir / "fixture" / "safer_instruct", cfg.seed)),
            "pku": fx["pku"],
        }
        encoder_dir, cache_dir, max_len = fx["encoder_dir"], str(out_dir / "feature_cache"), 32
    specs = {
        k: DataSpec(k, rc.datasets[k].loader, paths[k], rc.datasets[k].max_pairs) for k in ("safer_instruct", "pku")
    }
    fc = FeatureConfig(rc.features.mode, rc.features.prompt_chars, rc.features.batch_size, cache_dir)
    sets, counts = prepare_sets(specs, load_encoder(encoder_dir, max_len), fc, rc.data_seed, rc.test_frac)
    folder = rc.lm.path or (fx["encoder_dir"] if rc.fixture else str(model_folder("")))
    m = rc.lm
    lm = LMSettings(str(folder), m.pooling, m.max_len, m.length_rule, m.prompt_chars)
    return sets, counts, lm


def real_part(cfg: AILabelsSchema, out_dir: Path) -> tuple[list[dict], dict]:
    """Heads trained on Safer-Instruct's train split (with and without canned refusals) and on
    PKU-SafeRLHF's, each evaluated on both test splits (`real.transfer.cross_accuracy`); paired
    differences against the test set's own heads on the same pairs; 95% percentile bootstrap intervals
    over held-out prompts."""
    rc = cfg.real
    sets, counts, lm = _real_sets(cfg, out_dir)
    si, pku = sets["safer_instruct"], sets["pku"]
    key = lambda tag: jax.random.fold_in(jax.random.key(cfg.seed), str_hash(tag) % 2**31)
    trained = {
        "safer_instruct": (si, ~si.test_P),
        "safer_instruct_norefusal": (si, ~si.test_P & ~si.refusal_P),
        "pku": (pku, ~pku.test_P),
    }
    scorers = {name: real_scores(rc, ds, m, key(name), lm) for name, (ds, m) in trained.items()}
    tests = {
        "safer_instruct": (si, si.test_P),
        "pku": (pku, pku.test_P),
        "safer_instruct_refusal": (si, si.test_P & si.refusal_P),
        "safer_instruct_other": (si, si.test_P & ~si.refusal_P),
    }
    own = {"pku": "pku", "safer_instruct": "safer_instruct"}
    rows, out = cross_accuracy(scorers, tests, own, cfg.seed, rc.n_boot)
    rows = [{"part": "real", "source": r["train_set"], **r} for r in rows]
    for topic, c in counts.items():
        t = topic.replace("-", "_")
        out[f"refusal_rows_{t}"], out[f"refusal_chosen_{t}"], out[f"refusal_substring_{t}"] = (
            c["rows"],
            c["refusal"],
            c["substring"],
        )
    out |= {f"real_pairs_{k}": len(v.records) for k, v in sets.items()}
    out |= {f"real_test_pairs_{k}": int(v.test_P.sum()) for k, v in sets.items()}
    out |= {f"real_test_prompts_{k}": int(len(np.unique(v.items.group_P[v.test_P]))) for k, v in sets.items()}
    out["real_refusal_pairs_selected"] = int(si.refusal_P.sum())
    out["real_heads"] = rc.heads
    return rows, out


# ---------------------------------------------------------------------------- the run


def _part(cfg: AILabelsSchema, part: str, world: World, pools: Pools, learned: dict) -> list[dict]:
    if part == "world":
        return world_part(cfg, world, pools)
    if part == "theory":
        return theory_part(cfg, world, pools)
    if part == "ablations":
        return ablation_part(cfg, world)
    return judges_part(cfg, world, pools, learned)


def run(cfg: AILabelsSchema, runlog: RunLog) -> dict:
    rows: list[dict] = []
    synthetic = [p for p in cfg.parts if p != "real"]
    # a unit is one part of one seed, logged whole: a rerun skips the units a killed run finished
    done = {(r["part"], r["seed"]): r["rows"] for r in runlog.rows() if r.get("kind") == "unit"}
    for seed in range(cfg.seed, cfg.seed + cfg.seeds) if synthetic else ():
        todo = [p for p in synthetic if (p, seed) not in done]
        if todo:
            t = time.perf_counter()
            world = make_world(cfg, seed)
            pools = make_pools(cfg, world)
            learned = {}
            if "ai_learned" in cfg.sources:
                learned = learn_judge_labels(cfg, world, pools)
            for p in todo:
                done[(p, seed)] = _part(cfg, p, world, pools, learned)
                runlog.metric({"kind": "unit", "part": p, "seed": seed, "rows": done[(p, seed)]})
            log.info("seed %d: %s in %.1f s", seed, ", ".join(todo), time.perf_counter() - t)
        for p in synthetic:
            rows += done[(p, seed)]
    real_summary = {}
    if "real" in cfg.parts:
        real_rows, real_summary = real_part(cfg, runlog.dir)
        rows += real_rows
    df = pd.DataFrame(rows)
    if not len(df):
        raise RuntimeError("the run computed nothing: no part produced a row")
    for col in ("part", "source", "budget"):  # the columns that name this table's kind (runs.aggregate)
        if col not in df:
            df[col] = np.nan
    df.to_csv(runlog.dir / "results.csv", index=False)
    if cfg.figures:
        save_figures(figs.figures(RunTables(df, config=cfg)), runlog.dir / "figures")
    return summarize(cfg, df) | real_summary
