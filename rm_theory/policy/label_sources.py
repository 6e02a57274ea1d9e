"""The AI-label study's computations in the tabulated gold world (`studies.ai_labels`,
docs/ai_labels_theory.md): a seed's world with its annotators, its AI judge and its held-out query
pairs (`World`); comparisons labelled by either, each label with the edge it makes in the mixed-label
IBN (`Labelled`, `label`); the pools of pairs every budget and source of a seed takes prefixes of
(`Pools`); the Safer-Instruct pipeline's pairs as labelled data (`pipeline_data`); and what labelled
data gives, judged by the gold world: the exact learner's reward and cost tables (`rm.mixed_labels`),
their gold accuracy, the policies they lead to (Best-of-N on r̂ − w·ĉ and Safe RLHF's exact
constrained optimum, `policy.constrained`) and the mixed IBN's prediction of their error
(`ibn.mixed_labels`).

Legend: X prompts, Y responses (leaves of a prompt), P comparisons, Pf favoured pairs (calibration pairs, the
side the judge's feature favours first), Q query pairs, K ensemble members (of a learned judge).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rm_theory.common.rng import rng as named_rng
from rm_theory.ibn import mixed_labels as mixed
from rm_theory.policy.constrained import expected, lagrangian_policy, sample_leaves
from rm_theory.policy.exact import best_of_n
from rm_theory.policy.safer_instruct import GoldWorld, Sources
from rm_theory.policy.tables import tabulate
from rm_theory.rm import judges as learned_judges
from rm_theory.rm import mixed_labels as models
from rm_theory.rm.bayes import gold_accuracy
from rm_theory.world import judges
from rm_theory.world.inputs import PrefData
from rm_theory.world.labels import LabelConfig, gold_cost
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.topology import Comparisons

HUMAN, AI = 0, 1  # `Labelled.kind`: who gave the label


# ---------------------------------------------------------------------------- one seed's world


@dataclasses.dataclass
class World:
    """A seed's tabulated world, its labellers and its held-out query pairs (leaf indices)."""

    seed: int
    space: PrefixTreeSpace
    leaves_Y: np.ndarray
    gold: GoldWorld
    safe_XxY: np.ndarray
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
            g.r_XxY[prompt, a] - g.r_XxY[prompt, b],
            g.c_XxY[prompt, b] - g.c_XxY[prompt, a],
            g.g_XxY[prompt, a] - g.g_XxY[prompt, b],
        )


def ref_pairs(gold: GoldWorld, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n independent π_ref pairs of a random prompt each (the chain design), as leaf indices."""
    prompt = rng.integers(0, gold.P, size=n)
    return prompt, sample_leaves(gold.ref_logp_XxY, prompt, rng), sample_leaves(gold.ref_logp_XxY, prompt, rng)


@dataclasses.dataclass(frozen=True)
class JudgeSetup:
    """How a seed's judge is made: calibrated (`world.judges.calibrate_judge`: annotators agreeing
    `human_agreement`, the unbiased judge `judge_agreement` with them, its bias raising its preference for
    what `feature` favours by `bias_gap`; MT-Bench's figures) on `calibration_pairs` π_ref pairs, or set by
    hand (`beta`, `bias`; annotators at the labels' slopes); `sample`: it draws its labels."""

    calibrate: bool = True
    human_agreement: float = judges.HUMAN_AGREEMENT
    judge_agreement: float = judges.JUDGE_AGREEMENT
    bias_gap: float = judges.SELF_PREFERENCE
    feature: str = "length"  # judges.BIAS_FEATURES
    length_rho: float = 0.0
    beta: float = 10.0
    bias: float = 0.0
    sample: bool = True
    calibration_pairs: int = 4096


def make_world(
    space: PrefixTreeSpace,
    labels: LabelConfig,
    judge_setup: JudgeSetup,
    expert_beta: float,
    expert_threshold: float,
    num_queries: int,
    seed: int,
) -> World:
    """A seed's world: the tabulated space, its gold cost (`labels`), Safer-Instruct's expert (the
    KL-optimal policy of coefficient `expert_beta` under E[c*] ≤ `expert_threshold`), the judge's bias
    feature, annotators and judge for each question ("better", "safer") calibrated on pairs no evaluation
    sees (or set by hand), and `num_queries` held-out π_ref query pairs; each draw from a generator named
    by `seed`."""
    tt = tabulate(space)
    leaves = space.enumerate(0).data
    X, Y = space.num_prompts, len(leaves)
    items = Responses(np.repeat(np.arange(X), Y), np.tile(leaves, (X, 1)))
    c = gold_cost(space, items, labels).cost_N.reshape(X, Y)
    ref = tt.ref_logp()
    expert = lagrangian_policy(ref, tt.gold_XxY, c, expert_beta, expert_threshold)
    if not expert.feasible:
        raise ValueError(f"the expert's threshold {expert_threshold}: no policy meets it in world {seed}")
    jc = judge_setup
    if jc.feature == "self":
        g = expert.logp_XxY  # the judge's own policy is the expert
    elif jc.feature == "length":
        g = judges.length_feature(space, items, jc.length_rho).reshape(X, Y)
    else:
        g = np.zeros((X, Y))
    gold = GoldWorld(ref, tt.gold_XxY, c, expert.logp_XxY, g)
    # calibration pairs, and the same pairs favoured side first (the more verbose; the likelier under
    # the judge's own policy), where the bias gap is measured
    cp, ca, cb = ref_pairs(gold, jc.calibration_pairs, named_rng("calibration", seed))
    flip = g[cp, ca] < g[cp, cb]
    fp, fa, fb = cp, np.where(flip, cb, ca), np.where(flip, ca, cb)
    x = {
        "better": (gold.r_XxY[cp, ca] - gold.r_XxY[cp, cb], gold.r_XxY[fp, fa] - gold.r_XxY[fp, fb]),
        "safer": (gold.c_XxY[cp, cb] - gold.c_XxY[cp, ca], gold.c_XxY[fp, fb] - gold.c_XxY[fp, fa]),
    }
    dg_P, dg_Pf = g[cp, ca] - g[cp, cb], g[fp, fa] - g[fp, fb]
    cal, fitted = {}, {}
    for question, (x_P, x_Pf) in x.items():
        if jc.calibrate:
            c_ = judges.calibrate_judge(
                x_P,
                dg_P,
                x_Pf,
                dg_Pf,
                human_target=jc.human_agreement,
                judge_target=jc.judge_agreement,
                gap_target=jc.bias_gap if jc.feature != "none" else 0.0,
            )
            beta_h, judge = c_.beta_h, dataclasses.replace(c_.judge, sample=jc.sample)
        else:
            beta_h = labels.beta if question == "better" else labels.cost_beta
            judge = judges.Judge(jc.beta, jc.bias, jc.sample)
        fitted[question] = (beta_h, judge)
        cal |= {
            f"beta_human_{question}": beta_h,
            f"beta_judge_{question}": judge.beta,
            f"bias_judge_{question}": judge.bias,
            f"calibration_human_agreement_{question}": judges.human_agreement(beta_h, x_P),
            f"calibration_judge_agreement_{question}": judges.judge_agreement(judge, beta_h, x_P, dg_P),
        }
    qp, qa, qb = ref_pairs(gold, num_queries, named_rng("queries", seed))
    return World(
        seed,
        space,
        leaves,
        gold,
        (c <= 0).astype(np.float64),
        labels.cost_offset,
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
    pipeline: Sources | None = None
    learned: Labelled | None = None
    learned_kept: np.ndarray | None = None


def pipeline_data(world: World, data: Sources, idx_P: np.ndarray) -> Labelled:
    """The pipeline's pairs as labelled data: chosen (a) better and safer than rejected (b), read with
    the human slopes (their labels come from the construction, not from a labeller's law)."""
    p, ch, rj = data.prompt_P[idx_P], data.chosen_P[idx_P], data.rejected_P[idx_P]
    n = len(idx_P)
    x = world.gold.r_XxY[p, ch] - world.gold.r_XxY[p, rj]
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


# ---------------------------------------------------------------------------- models and policies


def fit_models(world: World, data: Labelled) -> tuple[np.ndarray, np.ndarray]:
    """Reward and cost tables `_XxY` of the exact learner on `data`."""
    a, b = world.responses(data.prompt, data.a), world.responses(data.prompt, data.b)
    reward = models.fit_reward(world.space, a, b, data.better, data.beta)
    cost = models.fit_cost(world.space, a, b, data.safer, data.beta_c, world.offset)
    return reward.table(world.leaves_Y), cost.table(world.leaves_Y)


@dataclasses.dataclass(frozen=True)
class Downstream:
    """The policies data leads to: Best-of-N (`bon_n` draws of π_ref) on r̂ − w·ĉ (w = `bon_cost_weight`),
    and Safe RLHF's exact optimum of KL coefficient `kl_beta` under E[ĉ] ≤ `cost_threshold`."""

    bon_n: int = 16
    bon_cost_weight: float = 1.0
    kl_beta: float = 0.5
    cost_threshold: float = -1.0


def policy_metrics(d: Downstream, world: World, r_XxY: np.ndarray, c_XxY: np.ndarray) -> dict:
    """Best-of-N on r − w·c and the exact constrained optimum of (r, c), judged by the gold world."""
    g = world.gold
    score = r_XxY - d.bon_cost_weight * c_XxY
    out = {
        "helpful_bon": float(best_of_n(g.ref_logp_XxY, score, g.r_XxY, d.bon_n).mean()),
        "harmless_bon": float(best_of_n(g.ref_logp_XxY, score, world.safe_XxY, d.bon_n).mean()),
    }
    cp = lagrangian_policy(g.ref_logp_XxY, r_XxY, c_XxY, d.kl_beta, d.cost_threshold)
    return out | {
        "helpful_safe_rlhf": expected(cp.logp_XxY, g.r_XxY),
        "harmless_safe_rlhf": expected(cp.logp_XxY, world.safe_XxY),
        "lambda_safe_rlhf": cp.lam,
        "feasible_safe_rlhf": cp.feasible,
    }


def model_metrics(world: World, r_XxY: np.ndarray, c_XxY: np.ndarray) -> dict:
    """Gold accuracy of the reward and cost tables on the world's held-out query pairs, the cost's sign
    accuracy on their responses, and the reward's mean squared error on their gaps."""
    g, p, a, b = world.gold, world.q_prompt, world.q_a, world.q_b
    gap, gap_hat = g.r_XxY[p, a] - g.r_XxY[p, b], r_XxY[p, a] - r_XxY[p, b]
    safer, safer_hat = g.c_XxY[p, b] - g.c_XxY[p, a], c_XxY[p, b] - c_XxY[p, a]
    sign = np.concatenate([(c_XxY[p, a] <= 0) == (g.c_XxY[p, a] <= 0), (c_XxY[p, b] <= 0) == (g.c_XxY[p, b] <= 0)])
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


def evaluate(d: Downstream, world: World, data: Labelled, predict: bool = False) -> dict:
    """The exact learner's models of `data`, judged (`label_metrics`, `model_metrics`, `policy_metrics`),
    and with `predict` the mixed IBN's prediction of their error beside them."""
    r_hat, c_hat = fit_models(world, data)
    out = label_metrics(world, data) | model_metrics(world, r_hat, c_hat) | policy_metrics(d, world, r_hat, c_hat)
    return out | (predicted(world, data) if predict else {})


# ---------------------------------------------------------------------------- judges


def judge_agreements(world: World, n_pairs: int, rng: np.random.Generator) -> dict:
    """Agreement and bias of the world's judge on `n_pairs` held-out π_ref pairs, per question: closed
    form (the pairs fixed, the labels' expectation) and drawn (one label of each labeller per pair);
    gold accuracy of each labeller's drawn labels; the worth of a judge's label (Fisher); and the world's
    calibration."""
    p, a, b = ref_pairs(world.gold, n_pairs, rng)
    row = {}
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
    return row | {k: v for k, v in world.calibration.items()}


def seed_set(world: World, human: Labelled, n_seed: int) -> PrefData:
    """The first `n_seed` human-labelled pairs as a learned judge's training data (`rm.judges.seed_data`:
    better and safer labels, and each response's gold safety)."""
    h = human
    a, b = world.responses(h.prompt, h.a), world.responses(h.prompt, h.b)
    seed = np.arange(n_seed)
    c = world.gold.c_XxY
    return learned_judges.seed_data(
        world.space,
        a.take(seed),
        b.take(seed),
        h.better[seed],
        h.safer[seed],
        c[h.prompt[seed], h.a[seed]] <= 0,
        c[h.prompt[seed], h.b[seed]] <= 0,
    )


def learned_labels(world: World, pools: Pools, judge: learned_judges.LearnedJudge, n_seed: int, margin: float) -> dict:
    """The learned judge's labels of the whole human pool (greedy, members' mean) into `pools.learned`, and
    which it keeps (unanimous and at least 1/2 + `margin` sure on both questions) into `pools.learned_kept`;
    returns what it reached on the pool beyond the seed set: agreement with an annotator and gold accuracy
    (its member 0 alone too: the plain reward-model judge), coverage, accuracy of what it keeps."""
    h = pools.human
    a, b = world.responses(h.prompt, h.a), world.responses(h.prompt, h.b)
    vb, vc = judge.judge(a, b, "better"), judge.judge(a, b, "safer")
    n = len(h)
    pools.learned = dataclasses.replace(
        h, better=vb.label_P, safer=vc.label_P, kind=np.full(n, AI), bias=np.full(n, np.nan), var=np.full(n, np.nan)
    )
    pools.learned_kept = vb.kept(margin) & vc.kept(margin)
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
