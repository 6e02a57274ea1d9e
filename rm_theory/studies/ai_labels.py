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
held-out prompts (`real.features.bootstrap_mean`).

Legend: P prompts, Y leaves per prompt, Q query pairs, M comparisons.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from rm_theory.common.rng import rng as named_rng
from rm_theory.common.stats import holm_claims, mean_ci
from rm_theory.config.ai_labels import AILabelsSchema
from rm_theory.config.common import build, make_labels, make_model, make_space, make_train
from rm_theory.figures import ai_labels as figs
from rm_theory.figures.common import save
from rm_theory.ibn import mixed_labels as mixed
from rm_theory.policy.constrained import expected, lagrangian_policy, sample_leaves
from rm_theory.policy.exact import best_of_n
from rm_theory.policy.safer_instruct import (
    GoldWorld,
    PipelineConfig,
    induction_accuracy,
    pipeline_stats,
    run_pipeline,
    within_budget,
)
from rm_theory.policy.tables import tabulate
from rm_theory.rm import judges as learned_judges
from rm_theory.rm import mixed_labels as models
from rm_theory.rm.bayes import gold_accuracy
from rm_theory.rm.metrics import pair_hits
from rm_theory.runs.folder import RunLog
from rm_theory.world import judges
from rm_theory.world.labels import gold_cost
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.synthetic import input_spec
from rm_theory.world.topology import Comparisons

log = logging.getLogger(__name__)

HUMAN, AI = 0, 1
METRICS = (
    "gold_accuracy_reward",
    "gold_accuracy_cost",
    "harmless_bon",
    "helpful_bon",
    "harmless_safe_rlhf",
    "helpful_safe_rlhf",
)


# ---------------------------------------------------------------------------- one seed's world


@dataclasses.dataclass
class World:
    """A seed's tabulated world, its labellers and its held-out query pairs (leaf indices)."""

    seed: int
    space: PrefixTreeSpace
    leaves_Y: np.ndarray
    gold: GoldWorld
    safe_PxY: np.ndarray
    offset: float
    human_beta: float
    human_beta_c: float
    judge: judges.Judge
    judge_c: judges.Judge
    calibration: dict
    q_prompt: np.ndarray
    q_a: np.ndarray
    q_b: np.ndarray

    def responses(self, prompt: np.ndarray, leaf: np.ndarray) -> Responses:
        return Responses(np.asarray(prompt, np.int64), self.leaves_Y[np.asarray(leaf, np.int64)])

    def gaps(self, prompt, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gold gaps of a better, a safer, and the judge's feature gap."""
        g = self.gold
        return (
            g.r_PxY[prompt, a] - g.r_PxY[prompt, b],
            g.c_PxY[prompt, b] - g.c_PxY[prompt, a],
            g.g_PxY[prompt, a] - g.g_PxY[prompt, b],
        )


def ref_pairs(gold: GoldWorld, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n independent π_ref pairs of a random prompt each (the chain design), as leaf indices."""
    prompt = rng.integers(0, gold.P, size=n)
    return prompt, sample_leaves(gold.ref_logp_PxY, prompt, rng), sample_leaves(gold.ref_logp_PxY, prompt, rng)


def make_world(cfg: AILabelsSchema, seed: int) -> World:
    space = make_space(cfg.space, seed)
    tt = tabulate(space)
    leaves = space.enumerate(0).data
    P, Y = space.num_prompts, len(leaves)
    lcfg = make_labels(cfg.labels)
    items = Responses(np.repeat(np.arange(P), Y), np.tile(leaves, (P, 1)))
    c = gold_cost(space, items, lcfg).cost_N.reshape(P, Y)
    ref = tt.ref_logp()
    pc = cfg.pipeline
    expert = lagrangian_policy(ref, tt.gold_PxY, c, pc.expert_beta, pc.expert_threshold)
    if not expert.feasible:
        raise ValueError(f"pipeline.expert_threshold = {pc.expert_threshold}: no policy meets it in world {seed}")
    jc = cfg.judge
    if jc.feature == "self":
        g = expert.logp_PxY  # the judge's own policy is the expert
    elif jc.feature == "length":
        g = judges.length_feature(space, items, jc.length_rho).reshape(P, Y)
    else:
        g = np.zeros((P, Y))
    gold = GoldWorld(ref, tt.gold_PxY, c, expert.logp_PxY, g)
    # calibration pairs, and the same pairs favoured side first (the more verbose; the likelier under
    # the judge's own policy), where the bias gap is measured
    cp, ca, cb = ref_pairs(gold, jc.calibration_pairs, named_rng("calibration", seed))
    flip = g[cp, ca] < g[cp, cb]
    fp, fa, fb = cp, np.where(flip, cb, ca), np.where(flip, ca, cb)
    x = {
        "better": (gold.r_PxY[cp, ca] - gold.r_PxY[cp, cb], gold.r_PxY[fp, fa] - gold.r_PxY[fp, fb]),
        "safer": (gold.c_PxY[cp, cb] - gold.c_PxY[cp, ca], gold.c_PxY[fp, fb] - gold.c_PxY[fp, fa]),
    }
    dg_P, dg_F = g[cp, ca] - g[cp, cb], g[fp, fa] - g[fp, fb]
    cal, fitted = {}, {}
    for question, (x_P, x_F) in x.items():
        if jc.calibrate:
            c_ = judges.calibrate_judge(
                x_P,
                dg_P,
                x_F,
                dg_F,
                human_target=jc.human_agreement,
                judge_target=jc.judge_agreement,
                gap_target=jc.bias_gap if jc.feature != "none" else 0.0,
            )
            beta_h, judge = c_.beta_h, dataclasses.replace(c_.judge, sample=jc.sample)
        else:
            beta_h = cfg.labels.beta if question == "better" else cfg.labels.cost_beta
            judge = judges.Judge(jc.beta, jc.bias, jc.sample)
        fitted[question] = (beta_h, judge)
        cal |= {
            f"beta_human_{question}": beta_h,
            f"beta_judge_{question}": judge.beta,
            f"bias_judge_{question}": judge.bias,
            f"calibration_human_agreement_{question}": judges.human_agreement(beta_h, x_P),
            f"calibration_judge_agreement_{question}": judges.judge_agreement(judge, beta_h, x_P, dg_P),
        }
    qp, qa, qb = ref_pairs(gold, cfg.num_queries, named_rng("queries", seed))
    return World(
        seed,
        space,
        leaves,
        gold,
        (c <= 0).astype(np.float64),
        cfg.labels.cost_offset,
        fitted["better"][0],
        fitted["safer"][0],
        fitted["better"][1],
        fitted["safer"][1],
        cal,
        qp,
        qa,
        qb,
    )


# ---------------------------------------------------------------------------- labelled data


@dataclasses.dataclass
class Labelled:
    """Comparisons (leaf indices) with their labels, the slope each is read with, and its labeller;
    `var_P`, `bias_P` are its edge in the mixed IBN (the reward question)."""

    prompt: np.ndarray
    a: np.ndarray
    b: np.ndarray
    better: np.ndarray
    safer: np.ndarray
    beta: np.ndarray
    beta_c: np.ndarray
    kind: np.ndarray
    var: np.ndarray
    bias: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)

    def take(self, idx) -> Labelled:
        return Labelled(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    @staticmethod
    def concat(parts: list[Labelled]) -> Labelled:
        return Labelled(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Labelled)}
        )


def label(world: World, prompt, a, b, who: str, rng: np.random.Generator, knows_judge: bool = True, bias_scale=1.0):
    """Labels of pairs by annotators (`who="human"`) or by the judge ("ai"; its bias × `bias_scale`),
    with the IBN edge each label makes (Fisher variance at its own probability; the bias its logit
    reads, in reward units)."""
    x, xc, dg = world.gaps(prompt, a, b)
    if who == "human":
        jb, jc = judges.human(world.human_beta), judges.human(world.human_beta_c)
        beta, beta_c = jb.beta, jc.beta
    else:
        jb = dataclasses.replace(world.judge, bias=world.judge.bias * bias_scale)
        jc = dataclasses.replace(world.judge_c, bias=world.judge_c.bias * bias_scale)
        beta, beta_c = (jb.beta, jc.beta) if knows_judge else (world.human_beta, world.human_beta_c)
    vb, vc = jb.judge(x, dg, rng), jc.judge(xc, dg, rng)
    n = len(prompt)
    return (
        Labelled(
            prompt,
            a,
            b,
            vb.label_P,
            vc.label_P,
            np.full(n, beta),
            np.full(n, beta_c),
            np.full(n, HUMAN if who == "human" else AI),
            mixed.fisher_variance(jb.beta, jb.beta * x + jb.bias * dg),
            jb.reading(x, dg) - x,
        ),
        vb,
        vc,
    )


@dataclasses.dataclass
class Pools:
    """A seed's pairs and labels, drawn once, that every budget and source takes prefixes of."""

    human: Labelled
    ai: Labelled
    ai_verdicts: judges.Verdicts
    ai_verdicts_c: judges.Verdicts
    pipeline: object | None = None
    learned: Labelled | None = None
    learned_kept: np.ndarray | None = None


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
        S = int(math.ceil(top / (c_ai * calls_min))) + 1
        pools.pipeline = run_pipeline(world.gold, world.judge, world.judge_c, pipeline_config(cfg), S, world.seed)
    return pools


def pipeline_config(cfg: AILabelsSchema, **off) -> PipelineConfig:
    return build(PipelineConfig, cfg.pipeline, **off)


def pipeline_data(world: World, data, idx_M: np.ndarray) -> Labelled:
    """The pipeline's pairs as labelled data: chosen (a) better and safer than rejected (b), read with
    the human slopes (their labels come from the construction, not from a labeller's law)."""
    p, ch, rj = data.prompt_M[idx_M], data.chosen_M[idx_M], data.rejected_M[idx_M]
    n = len(idx_M)
    x = world.gold.r_PxY[p, ch] - world.gold.r_PxY[p, rj]
    return Labelled(
        p,
        ch,
        rj,
        np.ones(n, np.float32),
        np.ones(n, np.float32),
        np.full(n, world.human_beta),
        np.full(n, world.human_beta_c),
        np.full(n, AI),
        mixed.fisher_variance(world.human_beta, world.human_beta * x),
        np.zeros(n),
    )


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


# ---------------------------------------------------------------------------- models and policies


def fit_models(world: World, data: Labelled) -> tuple[np.ndarray, np.ndarray]:
    """Reward and cost tables `_PxY` of the exact learner on `data`."""
    a, b = world.responses(data.prompt, data.a), world.responses(data.prompt, data.b)
    reward = models.fit_reward(world.space, a, b, data.better, data.beta)
    cost = models.fit_cost(world.space, a, b, data.safer, data.beta_c, world.offset)
    return reward.table(world.leaves_Y), cost.table(world.leaves_Y)


def policy_metrics(cfg: AILabelsSchema, world: World, r_PxY: np.ndarray, c_PxY: np.ndarray) -> dict:
    """Best-of-N on r − w·c and the exact constrained optimum of (r, c), judged by the gold world."""
    d, g = cfg.downstream, world.gold
    score = r_PxY - d.bon_cost_weight * c_PxY
    out = {
        "helpful_bon": float(best_of_n(g.ref_logp_PxY, score, g.r_PxY, d.bon_n).mean()),
        "harmless_bon": float(best_of_n(g.ref_logp_PxY, score, world.safe_PxY, d.bon_n).mean()),
    }
    cp = lagrangian_policy(g.ref_logp_PxY, r_PxY, c_PxY, d.kl_beta, d.cost_threshold)
    return out | {
        "helpful_safe_rlhf": expected(cp.logp_PxY, g.r_PxY),
        "harmless_safe_rlhf": expected(cp.logp_PxY, world.safe_PxY),
        "lambda_safe_rlhf": cp.lam,
        "feasible_safe_rlhf": cp.feasible,
    }


def model_metrics(cfg: AILabelsSchema, world: World, r_PxY: np.ndarray, c_PxY: np.ndarray) -> dict:
    g, p, a, b = world.gold, world.q_prompt, world.q_a, world.q_b
    gap, gap_hat = g.r_PxY[p, a] - g.r_PxY[p, b], r_PxY[p, a] - r_PxY[p, b]
    safer, safer_hat = g.c_PxY[p, b] - g.c_PxY[p, a], c_PxY[p, b] - c_PxY[p, a]
    sign = np.concatenate([(c_PxY[p, a] <= 0) == (g.c_PxY[p, a] <= 0), (c_PxY[p, b] <= 0) == (g.c_PxY[p, b] <= 0)])
    return {
        "gold_accuracy_reward": gold_accuracy(gap_hat, gap),
        "gold_accuracy_cost": gold_accuracy(safer_hat, safer),
        "cost_sign_accuracy": float(sign.mean()),
        "mse_reward": float(np.mean((gap_hat - gap) ** 2)),
    }


def label_metrics(world: World, data: Labelled) -> dict:
    if not len(data):
        return {"pairs": 0, "ai_pairs": 0, "label_error_better": np.nan, "label_error_safer": np.nan}
    x, xc, _ = world.gaps(data.prompt, data.a, data.b)
    return {
        "pairs": len(data),
        "ai_pairs": int((data.kind == AI).sum()),
        "label_error_better": float(np.mean((data.better > 0.5) != (x > 0))),
        "label_error_safer": float(np.mean((data.safer > 0.5) != (xc > 0))),
    }


def predicted(world: World, data: Labelled) -> dict:
    """The mixed-label IBN's prediction of the reward model's error on the query pairs."""
    if not len(data):
        return {}
    comps = Comparisons(
        world.responses(data.prompt, data.a), world.responses(data.prompt, data.b), np.full(len(data), -1)
    )
    q = Responses.concat([world.responses(world.q_prompt, world.q_a), world.responses(world.q_prompt, world.q_b)])
    mx = mixed.mixed_ibn(world.space, comps, data.var, data.bias, q)
    Q = len(world.q_a)
    pe = mixed.pair_error(mx, np.stack([mx.ibn.node_q[:Q], mx.ibn.node_q[Q:]], axis=1))
    return {
        "pred_mse_reward": float(pe.mse_Q.mean()),
        "pred_accuracy_reward": float(pe.accuracy_Q.mean()),
        "pred_resistance": float(pe.resistance_Q.mean()),
        "pred_bias2": float(np.mean(pe.bias_Q**2)),
    }


def evaluate(cfg: AILabelsSchema, world: World, data: Labelled, predict: bool = False) -> dict:
    r_hat, c_hat = fit_models(world, data)
    out = (
        label_metrics(world, data) | model_metrics(cfg, world, r_hat, c_hat) | policy_metrics(cfg, world, r_hat, c_hat)
    )
    return out | (predicted(world, data) if predict else {})


# ---------------------------------------------------------------------------- parts


def learn_judge_labels(cfg: AILabelsSchema, world: World, pools: Pools) -> dict:
    """Trains the learned judge on the pool's first `seed_pairs` human labels and labels the rest of
    the pool (greedy, members' mean); returns what it reached on the pool beyond the seed set."""
    lc = cfg.learned
    n_seed = lc.seed_pairs
    h = pools.human
    a, b = world.responses(h.prompt, h.a), world.responses(h.prompt, h.b)
    seed = np.arange(n_seed)
    c = world.gold.c_PxY
    data = learned_judges.seed_data(
        world.space,
        a.take(seed),
        b.take(seed),
        h.better[seed],
        h.safer[seed],
        c[h.prompt[seed], h.a[seed]] <= 0,
        c[h.prompt[seed], h.b[seed]] <= 0,
    )
    mc = make_model(lc.model, family="mlp", **input_spec(world.space))
    tc = make_train(lc.train, ensemble_size=lc.ensemble_size)
    judge = learned_judges.learn_judge(world.space, data, mc, tc, jax.random.key(world.seed))
    vb, vc = judge.judge(a, b, "better"), judge.judge(a, b, "safer")
    n = len(h)
    pools.learned = dataclasses.replace(
        h, better=vb.label_P, safer=vc.label_P, kind=np.full(n, AI), bias=np.full(n, np.nan), var=np.full(n, np.nan)
    )
    pools.learned_kept = vb.kept(lc.margin) & vc.kept(lc.margin)
    rest = np.arange(n_seed, n)
    x, xc, _ = world.gaps(h.prompt[rest], h.a[rest], h.b[rest])
    p_h = judges.human(world.human_beta).prob(x)
    kept = pools.learned_kept[rest]
    rm_label = (vb.prob_KxP[0, rest] > 0.5).astype(np.float64)  # member 0 alone: the plain reward-model judge
    return {
        "learned_rm_agreement": judges.agreement(rm_label, p_h),
        "learned_rm_gold_accuracy": float(np.mean((rm_label > 0.5) == (x > 0))),
        "learned_agreement": judges.agreement(vb.label_P[rest], p_h),
        "learned_gold_accuracy": float(np.mean((vb.label_P[rest] > 0.5) == (x > 0))),
        "learned_gold_accuracy_safer": float(np.mean((vc.label_P[rest] > 0.5) == (xc > 0))),
        "learned_coverage": float(kept.mean()),
        "learned_kept_gold_accuracy": float(np.mean((vb.label_P[rest][kept] > 0.5) == (x[kept] > 0)))
        if kept.any()
        else np.nan,
    }


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
            row |= evaluate(cfg, world, data, predict=source in ("human", "ai", "mixed")) | {"label_worth": worth}
            rows.append(row | {"seconds": time.perf_counter() - t})
    g = world.gold
    # π_ref itself (the policy without data) and the policies of the gold reward and cost (the ceiling)
    ref = {"helpful": expected(g.ref_logp_PxY, g.r_PxY), "harmless": expected(g.ref_logp_PxY, world.safe_PxY)}
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
            **policy_metrics(cfg, world, g.r_PxY, g.c_PxY),
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
    gap = world.gold.r_PxY[qp, qa] - world.gold.r_PxY[qp, qb]
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
    S = int(math.ceil(budget / c_ai)) + 1
    rows = []
    for stage in cfg.ablations.stages:
        pc = pipeline_config(cfg, **ABLATION_OFF.get(stage, {}))
        data = run_pipeline(world.gold, world.judge, world.judge_c, pc, S, world.seed)
        idx = within_budget(data, budget, c_ai)
        used = data.source_M[idx]
        row = {"part": "ablations", "seed": world.seed, "stage": stage, "budget": budget}
        row |= {f"pipe_{k}": v for k, v in pipeline_stats(world.gold, data, idx).items()}
        row |= {
            "induction_accuracy": induction_accuracy(world.gold, data.prompt_S, data.leaf_S, pc.induction_temperature)
            if pc.induction == "reverse"
            else 1.0,
            "quality_keep": float(data.quality_S.mean()),
            "preference_keep": float(data.kept_M[data.quality_S[data.source_M]].mean()),
            "sources_used": int(len(np.unique(used))),
        }
        if len(idx):
            row |= evaluate(cfg, world, pipeline_data(world, data, idx))
        rows.append(row)
    return rows


def judges_part(cfg: AILabelsSchema, world: World, pools: Pools, learned: dict) -> list[dict]:
    """Agreement and bias of the calibrated judge on held-out pairs: closed form (the pairs fixed, the
    labels' expectation) and drawn (one label of each labeller per pair)."""
    rng = named_rng("judges", world.seed)
    p, a, b = ref_pairs(world.gold, cfg.judge.calibration_pairs, rng)
    row = {"part": "judges", "seed": world.seed}
    for question, beta_h, judge in (
        ("better", world.human_beta, world.judge),
        ("safer", world.human_beta_c, world.judge_c),
    ):
        x, xc, dg = world.gaps(p, a, b)
        x = x if question == "better" else xc
        h1, h2 = judges.human(beta_h).judge(x, 0.0, rng), judges.human(beta_h).judge(x, 0.0, rng)
        j = judge.judge(x, dg, rng)
        row |= {
            f"human_agreement_{question}": judges.human_agreement(beta_h, x),
            f"judge_agreement_{question}": judges.judge_agreement(judge, beta_h, x, dg),
            f"judge_agreement_unbiased_{question}": judges.judge_agreement(
                dataclasses.replace(judge, bias=0.0), beta_h, x
            ),
            f"human_agreement_drawn_{question}": float(np.mean(h1.label_P == h2.label_P)),
            f"judge_agreement_drawn_{question}": float(np.mean(j.label_P == h1.label_P)),
            f"judge_gold_accuracy_{question}": float(np.mean((j.label_P > 0.5) == (x > 0))),
            f"human_gold_accuracy_{question}": float(np.mean((h1.label_P > 0.5) == (x > 0))),
            f"label_worth_{question}": mixed.label_worth(judge.beta, beta_h, x, dg, judge.bias),
        }
    row |= {k: v for k, v in world.calibration.items()}
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


@dataclasses.dataclass
class RealSet:
    """A real data set ready for training: records (sides randomised), items, features, split, and
    which records' chosen response is a canned refusal."""

    name: str
    records: list
    items: object
    x_NxD: np.ndarray
    test_P: np.ndarray
    refusal_P: np.ndarray


def real_scores(rc, train: RealSet, train_P: np.ndarray, key: jax.Array) -> dict[str, Callable[[RealSet], np.ndarray]]:
    """Reward (and cost) scorers trained on the pairs `train_P` of `train`: name → (data set →
    `s_KxN` of its items). The seam of `real.heads`: "frozen" trains heads on frozen encoder features
    (`real.features.train_heads`); fine-tuned score models (`rm_theory.lm.train`) plug in here, scoring
    a data set's texts instead of its features."""
    from rm_theory.real.features import feature_model, train_heads

    if rc.heads != "frozen":
        raise NotImplementedError(
            f"real.heads = {rc.heads!r}: fine-tuned score models are not wired in yet; use frozen"
        )
    mc = feature_model(rc.model.hidden, train.x_NxD.shape[1])
    heads = train_heads(train.x_NxD, train.items, train_P, mc, make_train(rc.train), key, cost=True)
    return {name: (lambda ds, ens=ens: ens.score(ds.x_NxD)) for name, ens in heads.items()}


def _real_sets(cfg: AILabelsSchema, out_dir: Path) -> tuple[dict[str, RealSet], dict]:
    from rm_theory.real import safer_instruct as si
    from rm_theory.real.encoders import load_encoder
    from rm_theory.real.features import (
        DataSpec,
        FeatureConfig,
        cap_by_prompt,
        data_rng,
        dedupe,
        featurize,
        items_of,
        load_selection,
        test_mask,
    )
    from rm_theory.real.fixtures import write_fixture
    from rm_theory.real.loaders import load, randomize_sides

    rc = cfg.real
    paths = {k: v.path for k, v in rc.datasets.items()}
    encoder_dir, cache_dir, max_len = rc.features.encoder_dir or None, rc.features.cache_dir, rc.features.max_len
    if rc.fixture:
        fx = write_fixture(out_dir / "fixture", cfg.seed)
        paths = {
            "safer_instruct": str(si.write_fixture(out_dir / "fixture" / "safer_instruct", cfg.seed)),
            "pku": fx["pku"],
        }
        encoder_dir, cache_dir, max_len = fx["encoder_dir"], str(out_dir / "feature_cache"), 32
    for name in ("safer_instruct", "pku"):
        if not paths[name] or not Path(paths[name]).exists():
            raise FileNotFoundError(
                f"real.datasets.{name}.path = {paths[name]!r} does not exist (set data_root, or real.fixture=true)"
            )
    everything, report = load("safer-instruct", paths["safer_instruct"])
    counts = si.refusal_counts(everything)
    log.info("%s; canned refusals chosen: %s", report.summary(), counts)
    encoder = load_encoder(encoder_dir, max_len)
    fc = FeatureConfig(rc.features.mode, rc.features.prompt_chars, rc.features.batch_size, cache_dir)
    sets = {}
    for name in ("safer_instruct", "pku"):
        ds = rc.datasets[name]
        if name == "safer_instruct":  # read once: the counts need every row, the models a selection
            records = cap_by_prompt(dedupe(everything), ds.max_pairs, data_rng(name, rc.data_seed))
        else:
            records, _ = load_selection(DataSpec(name, ds.loader, paths[name], ds.max_pairs), rc.data_seed)
        records = randomize_sides(records, data_rng(name, rc.data_seed + 1))
        it = items_of(records)
        sets[name] = RealSet(
            name,
            records,
            it,
            featurize(encoder, it, fc, progress=False),
            test_mask(records, rc.test_frac, rc.data_seed),
            si.refusal_mask(records),
        )
    return sets, counts


def real_part(cfg: AILabelsSchema, out_dir: Path) -> tuple[list[dict], dict]:
    """Heads trained on Safer-Instruct's train split (with and without canned refusals) and on
    PKU-SafeRLHF's, each evaluated on both test splits; paired differences against the test set's own
    heads on the same pairs; 95% percentile bootstrap intervals over held-out prompts."""
    from rm_theory.common.rng import str_hash
    from rm_theory.real import features as rf

    rc = cfg.real
    sets, counts = _real_sets(cfg, out_dir)
    si, pku = sets["safer_instruct"], sets["pku"]
    rng = lambda *tags: np.random.default_rng([cfg.seed, *(str_hash(t) for t in tags)])
    key = lambda tag: jax.random.fold_in(jax.random.key(cfg.seed), str_hash(tag) % 2**31)
    trained = {
        "safer_instruct": (si, ~si.test_P),
        "safer_instruct_norefusal": (si, ~si.test_P & ~si.refusal_P),
        "pku": (pku, ~pku.test_P),
    }
    scorers = {name: real_scores(rc, ds, m, key(name)) for name, (ds, m) in trained.items()}
    rows, out, hits = [], {}, {}

    def add(train: str, test: str, metric: str, est) -> None:
        rows.append(
            {
                "part": "real",
                "source": train,
                "train_set": train,
                "test_set": test,
                "metric": metric,
                "value": est.value,
                "lo": est.lo,
                "hi": est.hi,
                "n": est.n,
            }
        )
        key_ = f"real_{metric}_{train}_on_{test}"
        out[key_], out[f"{key_}_lo"], out[f"{key_}_hi"], out[f"{key_}_n"] = est.value, est.lo, est.hi, est.n

    tests = {
        "safer_instruct": (si, si.test_P),
        "pku": (pku, pku.test_P),
        "safer_instruct_refusal": (si, si.test_P & si.refusal_P),
        "safer_instruct_other": (si, si.test_P & ~si.refusal_P),
    }
    for train, sc in scorers.items():
        for test, (ds, m) in tests.items():
            if not m.any():
                continue
            it = ds.items
            r_N = sc["reward"](ds).mean(axis=0)
            hit = pair_hits(r_N[it.a_P[m]] - r_N[it.b_P[m]], it.pref_P[m])
            hits[(train, test)] = hit
            add(train, test, "accuracy", rf.bootstrap_mean(hit, it.group_P[m], rng(train, test), rc.n_boot))
            if "cost" in sc:
                c = rf.cost_eval(sc["cost"](ds), it, m, rng("cost", train, test), rc.n_boot)
                est = rf.Estimate(
                    c["cost_safer_accuracy"],
                    c["cost_safer_accuracy_lo"],
                    c["cost_safer_accuracy_hi"],
                    int(c["cost_safer_accuracy_n"]),
                )
                add(train, test, "cost_safer_accuracy", est)
    # paired: on each test split, another set's heads against the split's own, the same pairs
    for test, own in (("pku", "pku"), ("safer_instruct", "safer_instruct")):
        ds, m = tests[test]
        for train in scorers:
            if train != own and (train, test) in hits:
                d = hits[(train, test)] - hits[(own, test)]
                add(
                    f"{train}_minus_{own}",
                    test,
                    "accuracy_diff",
                    rf.bootstrap_mean(d, ds.items.group_P[m], rng("diff", train, test), rc.n_boot),
                )
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
        for name, draw in figs.figure_specs(df).items():
            save(draw(), runlog.dir / "figures" / name)
    return summarize(cfg, df) | real_summary
