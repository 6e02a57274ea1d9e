"""Evaluation of trained reward and cost ensembles on held-out query pairs, and theory against practice.

Query pairs are two independent responses from the reference policy for a random prompt (THEORY.md
§2 "Generalisation measure"), drawn apart from any training topology, so chain- and tree-trained
models are judged on the same pairs. Each pair is labelled like the training data
(`labels.label_comparisons`), and keeps its gold values.

Reward: pairwise accuracy against the labels and against the gold reward, Spearman correlation with
the gold reward (within prompt: a Bradley–Terry model leaves each prompt's offset free), ECE of
σ(r_a − r_b), and the ensemble variance of r(y1) − r(y2) per pair.
Cost (Safe RLHF, arXiv 2310.12773 §3.2: safe ⇔ c ≤ 0): sign accuracy against labels and gold, ECE
of σ(c) as P(unsafe), safer-pair accuracy, per-severity and per-harm-category accuracy.
Theory against practice: the IBN's effective resistance of each query pair on the same training data
(the posterior variance of r*(y1) − r*(y2) for an ideal Bayesian learner whose prior is the gold
field's, paper §4) beside the ensemble's variance. A neural ensemble is not that learner: its
spread reflects initialisation, bootstrap and optimisation, so only the ranking of the two is
expected to agree, not their values.

Legend: Q query pairs, N items (= 2Q: a's then b's), P comparisons, K ensemble members, C harm
categories.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from rm_theory.common.stats import round_significant
from rm_theory.ibn.network import LabelVariance, ibn_network
from rm_theory.rm import metrics
from rm_theory.world.labels import LabelConfig, Labels, label_comparisons
from rm_theory.world.records import HARM_CATEGORIES
from rm_theory.world.spaces import Responses, ResponseSpace
from rm_theory.world.synthetic import item_inputs
from rm_theory.world.topology import Comparisons


@dataclasses.dataclass(frozen=True)
class QueryPairs:
    """Q held-out pairs: items a_q = q and b_q = Q + q of `items`, their model inputs and labels."""

    items: Responses
    x: np.ndarray
    labels: Labels

    @property
    def Q(self) -> int:
        return len(self.items) // 2

    @property
    def a_Q(self) -> np.ndarray:
        return np.arange(self.Q)

    @property
    def b_Q(self) -> np.ndarray:
        return self.Q + np.arange(self.Q)

    @property
    def pairs_Qx2(self) -> np.ndarray:
        return np.stack([self.a_Q, self.b_Q], axis=1)


def query_pairs(
    space: ResponseSpace,
    num_pairs: int,
    rng: np.random.Generator,
    label_cfg: LabelConfig,
    temperature: float | None = None,
) -> QueryPairs:
    """Independent pairs from the reference policy, labelled like training data."""
    prompt_Q = rng.integers(0, space.num_prompts, size=num_pairs)
    a, b = space.sample(rng, prompt_Q, temperature), space.sample(rng, prompt_Q, temperature)
    labels = label_comparisons(space, Comparisons(a, b, np.full(num_pairs, -1)), label_cfg, rng)
    items = Responses.concat([a, b])
    return QueryPairs(items, item_inputs(space, items), labels)


def _gold_pref(g_a: np.ndarray, g_b: np.ndarray) -> np.ndarray:
    """1 where a is truly better, 0 where worse, 0.5 for gold ties (identical responses): left out."""
    return np.where(g_a > g_b, 1.0, np.where(g_a < g_b, 0.0, 0.5))


def within_prompt_spearman(r_N: np.ndarray, gold_N: np.ndarray, prompt_N: np.ndarray) -> float:
    """Mean over prompts (with ≥ 3 distinct gold values) of the Spearman correlation of r with r*."""
    rhos = []
    for p in np.unique(prompt_N):
        m = prompt_N == p
        if len(np.unique(gold_N[m])) >= 3 and len(np.unique(r_N[m])) >= 2:
            rhos.append(stats.spearmanr(r_N[m], gold_N[m]).statistic)
    return float(np.mean(rhos)) if rhos else float("nan")


def reward_metrics(s_KxN: np.ndarray, q: QueryPairs) -> tuple[dict, np.ndarray]:
    """Headline reward metrics of an ensemble (scored by its mean) and the per-pair variance `var_Q`."""
    s_KxN = np.asarray(s_KxN, np.float64)
    r_N = s_KxN.mean(axis=0)
    lab, a, b = q.labels, q.a_Q, q.b_Q
    gold_N = np.concatenate([lab.r_a, lab.r_b])
    gold = _gold_pref(lab.r_a, lab.r_b)
    var_mean, var_Q = metrics.ensemble_diff_variance(s_KxN, a, b)
    out = {
        "label_accuracy": metrics.pairwise_accuracy(r_N, a, b, lab.better_P),
        "gold_accuracy": metrics.pairwise_accuracy(r_N, a, b, gold),
        # The average single member: what one reward model (no ensembling) achieves.
        "gold_accuracy_member": float(np.mean([metrics.pairwise_accuracy(s, a, b, gold) for s in s_KxN])),
        # The ceiling: the gold reward itself against the noisy labels.
        "label_accuracy_gold": metrics.pairwise_accuracy(gold_N, a, b, lab.better_P),
        "spearman": within_prompt_spearman(r_N, gold_N, q.items.prompt),
        "ece": metrics.expected_calibration_error(metrics.pair_probabilities(r_N, a, b), lab.better_P),
        "ensemble_variance": var_mean,
    }
    return out, var_Q


def cost_metrics(c_KxN: np.ndarray, q: QueryPairs, harm_KxNxC: np.ndarray | None = None) -> tuple[dict, list[dict]]:
    """Cost-model metrics (sign convention: safe ⇔ c ≤ 0) and one row per harm category."""
    c_N = np.asarray(c_KxN, np.float64).mean(axis=0)
    lab, a, b = q.labels, q.a_Q, q.b_Q
    safe_N = np.concatenate([lab.safe_a, lab.safe_b]).astype(float)
    gold_c = np.concatenate([lab.c_a, lab.c_b])
    gold_safe = (gold_c <= 0).astype(float)
    severity_N = np.concatenate([lab.severity_a, lab.severity_b])
    harm_NxC = np.concatenate([lab.harm_a, lab.harm_b])
    out = {
        "cost_sign_accuracy": metrics.cost_sign_accuracy(c_N, safe_N),
        "cost_sign_accuracy_gold": metrics.cost_sign_accuracy(c_N, gold_safe),
        # The sign loss −log σ(s·c) models P(unsafe) = σ(c).
        "cost_ece": metrics.expected_calibration_error(1 / (1 + np.exp(-c_N)), 1 - safe_N),
        "safer_accuracy": metrics.pairwise_accuracy(-c_N, a, b, lab.safer_P),
        "safer_gold_accuracy": metrics.pairwise_accuracy(-c_N, a, b, _gold_pref(-lab.c_a, -lab.c_b)),
        "cost_spearman": float(stats.spearmanr(c_N, gold_c).statistic),
        "cost_ensemble_variance": metrics.ensemble_diff_variance(c_KxN, a, b)[0],
        "frac_unsafe": float(1 - gold_safe.mean()),
    }
    for s in range(4):  # 0 = safe, 1–3 = minor, moderate, severe
        m = severity_N == s
        out[f"sign_accuracy_severity{s}"] = (
            metrics.cost_sign_accuracy(c_N[m], gold_safe[m]) if m.any() else float("nan")
        )
    logits_NxC = None if harm_KxNxC is None else np.asarray(harm_KxNxC, np.float64).mean(axis=0)
    rows = []
    for k in range(harm_NxC.shape[1]):
        flagged = harm_NxC[:, k]
        row = {
            "category": HARM_CATEGORIES[k],
            "count": int(flagged.sum()),
            # Of the items harmful in category k, the fraction the cost model calls unsafe.
            "sign_recall": float((c_N[flagged] > 0).mean()) if flagged.any() else float("nan"),
        }
        if logits_NxC is not None:
            row["harm_accuracy"] = float(((logits_NxC[:, k] > 0) == flagged).mean())
        rows.append(row)
    recall = [r["sign_recall"] for r in rows if r["count"] > 0]
    out["category_sign_recall_mean"] = float(np.mean(recall)) if recall else float("nan")
    out["category_sign_recall_min"] = float(np.min(recall)) if recall else float("nan")
    if logits_NxC is not None:
        out["harm_accuracy_mean"] = float(np.mean([r["harm_accuracy"] for r in rows]))
    return out, rows


def ibn_resistance(
    space: ResponseSpace, comps: Comparisons, q: QueryPairs, label_variance: LabelVariance
) -> np.ndarray:
    """`d_Q`: effective resistance of each query pair in the IBN of the training data plus the queries."""
    ibn = ibn_network(space, comps, q.items, label_variance)
    return ibn.distance(ibn.node_q[q.pairs_Qx2], "resistance")


def theory_practice(var_Q: np.ndarray, d_Q: np.ndarray) -> dict:
    """Per-pair agreement of the ensemble's variance with the IBN's resistance (rank correlation)."""
    ok = np.isfinite(d_Q) & np.isfinite(var_Q)
    # Pairs with equal resistance (equivalent positions in the IBN) come out of a solver equal only
    # to rounding; at 9 significant digits they are the ties they are, so the rank correlation does
    # not depend on how one solver's rounding orders them (it moved 0.109 -> 0.108 when the direct
    # solver changed, the resistances agreeing to 1e-13).
    d = round_significant(d_Q[ok], 9)
    rho = stats.spearmanr(var_Q[ok], d).statistic if ok.sum() >= 3 else float("nan")
    return {
        "ibn_resistance": float(np.mean(d_Q[ok])) if ok.any() else float("inf"),
        "ibn_unreachable": float(1 - ok.mean()),
        "pair_spearman": float(rho),
    }


def correlation(x: np.ndarray, y: np.ndarray) -> dict:
    """Pearson correlation of log x with log y, and Spearman's ρ, over finite positive entries."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 3:
        return {"pearson_log": float("nan"), "spearman": float("nan"), "points": int(ok.sum())}
    return {
        "pearson_log": float(stats.pearsonr(np.log(x[ok]), np.log(y[ok])).statistic),
        "spearman": float(stats.spearmanr(x[ok], y[ok]).statistic),
        "points": int(ok.sum()),
    }
