"""AI labellers of the synthetic preference world: a judge with a stated noise level, a systematic bias
tied to a feature of the response, and a confidence output; agreement rates in closed form; a judge
calibrated to published agreement figures.

The judge (RLAIF, Lee et al. 2023, arXiv 2309.00267; Constitutional AI, Bai et al. 2022, arXiv
2212.08073). For a comparison (a, b) whose gold gap is x = r*(a) − r*(b) (x = c*(b) − c*(a) for the
"safer" question) the judge states

    p_J = P_J(a ≻ b) = σ(β_J·x + λ·(g(a) − g(b))),

reports its confidence max(p_J, 1 − p_J), and labels by drawing from p_J (`sample=True`: a judge
whose verdict on a pair varies, as an annotator's does) or by its argmax (`sample=False`, a greedy
judge). β_J is its noise level (larger is sharper), g a feature of the response that the judge
rewards and the gold does not, λ the bias. A human annotator is the same law with β_H and λ = 0
(`world.labels`). Features g (`bias_feature`):

* "length": a verbosity field standing for length (every complete response of the prefix-tree world
  has L tokens, so length itself is constant): a branching field on a stream of its own, defined
  lazily like the gold reward, standardised, mixed with the standardised gold reward at correlation
  ρ_ℓ (`length_rho`; longer answers are somewhat better in real data);
* "self": g(y) = log π_J(y | prompt), the log-likelihood under the judge's own policy (self-preference:
  Zheng et al. 2023 §3.3; Panickssery et al. 2024, arXiv 2404.13076): the caller passes it, computed
  from a tabulated policy (`policy.constrained`).

Agreement in closed form. The pairs fixed, labels independent given the pair: two labellers who
prefer a with probabilities p and q agree with probability p·q + (1 − p)(1 − q), so

    human–human:   A_HH = E[p_H² + (1 − p_H)²],               p_H = σ(β_H x),
    judge–human:   A_JH = E[p_J p_H + (1 − p_J)(1 − p_H)],    (a greedy judge: p_J → 1{p_J > 1/2}),

E the mean over the comparisons. The bias shows on pairs (y_f, y) ordered so that the judge's
feature favours the first (the more verbose of two; the likelier under its own policy): against humans as the
preference gap δ = E[p_J(y_f ≻ y)] − E[p_H(y_f ≻ y)], and against the same judge without its bias as
δ_λ = E[p_J(y_f ≻ y)] − E[p_J|λ=0 (y_f ≻ y)].

Calibration (`calibrate_judge`) to MT-Bench (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench
and Chatbot Arena", NeurIPS Datasets and Benchmarks, §4.2, agreement without ties: GPT-4 with humans
85%, humans with each other 81%; §3.3, self-enhancement: GPT-4 favours its own answers by about 10%
in win rate), one target after another on calibration pairs no evaluation sees: β_H solves A_HH = 0.81
on the world's own comparisons, β_J solves A_JH = 0.85 for the judge without bias (its noise level),
and λ solves δ_λ = 0.10 (why δ_λ and not δ: `calibrate_judge`). MT-Bench measured self-preference on
the judge's own answers against others'; here it is read as a preference for what the judge's feature
favours on any pair (a sample of the judge's own strong policy is better by the gold too, and a judge
sharper than the annotators already prefers it more than they do, leaving no room for a further 10%).
The published figures are for overall preference; a study applies the same targets to the "safer"
question, and says so.

Legend: P comparisons, Pf favoured pairs (comparisons ordered so that the judge's feature favours the first
side), N responses.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special

from rm_theory.world.spaces import PrefixTreeSpace, Responses

# A stream of the space's counter-based hashes no other field uses (`world.spaces`: 1–4 and 3000 + c).
STREAM_VERBOSITY = 5
BIAS_FEATURES = ("none", "length", "self")
# MT-Bench (Zheng et al. 2023, §4.2 without ties; §3.3 self-enhancement)
HUMAN_AGREEMENT, JUDGE_AGREEMENT, SELF_PREFERENCE = 0.81, 0.85, 0.10


@dataclasses.dataclass(frozen=True)
class Judge:
    """P_J(a ≻ b) = σ(β·x + λ·Δg) (module docstring); `sample` draws the label, else argmax."""

    beta: float
    bias: float = 0.0
    sample: bool = True

    def __post_init__(self):
        if not (np.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"a judge's slope beta must be finite and positive, got {self.beta}")
        if not np.isfinite(self.bias):
            raise ValueError(f"a judge's bias must be finite, got {self.bias}")

    def prob(self, x_P: np.ndarray, dg_P: np.ndarray | float = 0.0) -> np.ndarray:
        """The judge's stated P(a ≻ b) for gold gaps `x_P` and feature gaps g(a) − g(b)."""
        return special.expit(self.beta * np.asarray(x_P, np.float64) + self.bias * np.asarray(dg_P, np.float64))

    def judge(self, x_P: np.ndarray, dg_P: np.ndarray | float, rng: np.random.Generator) -> Verdicts:
        p_P = np.broadcast_to(self.prob(x_P, dg_P), np.shape(x_P))
        label_P = rng.random(p_P.shape) < p_P if self.sample else p_P > 0.5
        return Verdicts(label_P.astype(np.float32), np.asarray(p_P, np.float64))

    def reading(self, x_P: np.ndarray, dg_P: np.ndarray | float = 0.0) -> np.ndarray:
        """The gap a learner that knows β reads from the judge: its logit over β, x + (λ/β)·Δg (the
        bias in reward units, `ibn.mixed_labels`)."""
        return np.asarray(x_P, np.float64) + (self.bias / self.beta) * np.asarray(dg_P, np.float64)


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """A judge's labels (1.0 when a is preferred) and its stated probabilities."""

    label_P: np.ndarray
    prob_P: np.ndarray

    @property
    def confidence_P(self) -> np.ndarray:
        """max(p, 1 − p): how sure the judge says it is."""
        return np.maximum(self.prob_P, 1.0 - self.prob_P)

    def confident(self, margin: float) -> np.ndarray:
        """The verdicts stated with confidence at least 1/2 + `margin`."""
        return self.confidence_P >= 0.5 + margin


def human(beta: float) -> Judge:
    """A human annotator: the Bradley–Terry labeller of `world.labels`, unbiased."""
    return Judge(beta, 0.0, True)


# --------------------------------------------------------------------------------------------
# Bias features
# --------------------------------------------------------------------------------------------


def length_feature(space: PrefixTreeSpace, resp: Responses, rho: float = 0.0) -> np.ndarray:
    """g_N = ρ·r̃*(y) + √(1 − ρ²)·ṽ(y): the verbosity field ṽ (standardised), mixed with the
    standardised gold reward r̃* at correlation ρ (module docstring)."""
    if not isinstance(space, PrefixTreeSpace):
        raise TypeError(f"the verbosity field is defined on the prefix-tree geometry, got {type(space).__name__}")
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"length_rho is a correlation in [-1, 1], got {rho}")
    scale = np.sqrt(space.field_variance)
    v_N = space.increments(resp, stream=STREAM_VERBOSITY).sum(axis=1) / scale
    return rho * space.gold_reward(resp) / scale + np.sqrt(1.0 - rho**2) * v_N


# --------------------------------------------------------------------------------------------
# Agreement and preference gaps (closed forms over given pairs)
# --------------------------------------------------------------------------------------------


def agreement(p_P: np.ndarray, q_P: np.ndarray) -> float:
    """E[p·q + (1 − p)(1 − q)]: how often two labellers, independent given the pair, agree."""
    p_P, q_P = np.asarray(p_P, np.float64), np.asarray(q_P, np.float64)
    return float(np.mean(p_P * q_P + (1.0 - p_P) * (1.0 - q_P)))


def stated(judge: Judge, x_P: np.ndarray, dg_P: np.ndarray | float = 0.0) -> np.ndarray:
    """The probability with which `judge` labels a ≻ b: p_J, or 1{p_J > 1/2} for a greedy judge."""
    p_P = judge.prob(x_P, dg_P)
    return p_P if judge.sample else (p_P > 0.5).astype(np.float64)


def human_agreement(beta_h: float, x_P: np.ndarray) -> float:
    """A_HH: two annotators of slope β_H on the pairs of gold gaps `x_P`."""
    p_P = human(beta_h).prob(x_P)
    return agreement(p_P, p_P)


def judge_agreement(judge: Judge, beta_h: float, x_P: np.ndarray, dg_P: np.ndarray | float = 0.0) -> float:
    """A_JH: the judge against one annotator of slope β_H."""
    return agreement(stated(judge, x_P, dg_P), human(beta_h).prob(x_P))


def preference_gap(judge: Judge, beta_h: float, x_Pf: np.ndarray, dg_Pf: np.ndarray) -> float:
    """δ = E[P_J(y_f ≻ y)] − E[P_H(y_f ≻ y)] on pairs whose first response is the favoured one."""
    return float(np.mean(stated(judge, x_Pf, dg_Pf)) - np.mean(human(beta_h).prob(x_Pf)))


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Calibration:
    """β_H, the judge, and what they reach on the calibration pairs: the three targets, and the
    judge's agreement and preference gap against humans with its bias in place."""

    beta_h: float
    judge: Judge
    human_agreement: float
    judge_agreement_unbiased: float
    bias_gap: float
    judge_agreement: float
    preference_gap: float


def _root(f, lo: float, hi: float, what: str) -> float:
    """The root of f on [lo, hi] (brentq), or ValueError naming the target when f does not change
    sign there: the target is out of this world's reach."""
    f_lo, f_hi = f(lo), f(hi)
    if np.sign(f_lo) == np.sign(f_hi):
        raise ValueError(f"{what}: not reachable on these pairs (f({lo:g}) = {f_lo:.4g}, f({hi:g}) = {f_hi:.4g})")
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))


def solve_human_beta(x_P: np.ndarray, target: float = HUMAN_AGREEMENT) -> float:
    """β_H with A_HH(β_H) = `target` on pairs of gold gaps `x_P` (A_HH grows with β_H from 1/2)."""
    return _root(lambda b: human_agreement(b, x_P) - target, 1e-3, 1e3, f"human agreement {target}")


def bias_gap(judge: Judge, x_Pf: np.ndarray, dg_Pf: np.ndarray) -> float:
    """E[P_J(y_f ≻ y)] − E[P_J0(y_f ≻ y)]: how much more the judge prefers the favoured responses than
    the same judge without its bias (λ = 0) does."""
    unbiased = dataclasses.replace(judge, bias=0.0)
    return float(np.mean(stated(judge, x_Pf, dg_Pf)) - np.mean(stated(unbiased, x_Pf)))


def calibrate_judge(
    x_P: np.ndarray,
    dg_P: np.ndarray,
    x_Pf: np.ndarray,
    dg_Pf: np.ndarray,
    *,
    human_target: float = HUMAN_AGREEMENT,
    judge_target: float = JUDGE_AGREEMENT,
    gap_target: float = SELF_PREFERENCE,
    beta_h: float | None = None,
) -> Calibration:
    """β_H (unless given), β_J and λ from three targets, one after another, on calibration pairs:

    1. β_H: two annotators agree `human_target` on the pairs (gold gaps `x_P`);
    2. β_J: the judge without bias agrees `judge_target` with an annotator there (its noise level);
    3. λ: on favoured pairs (`x_Pf`, feature gaps `dg_Pf` ≥ 0) its bias raises its preference for the
       favoured side by `gap_target` over the same judge at λ = 0 (`bias_gap`).

    Why not all three against humans on the same pairs: an unbiased oracle judge (β_J → ∞) agrees with
    an annotator of 81% human agreement at most E[σ(β_H|x|)], 0.865 for Gaussian gaps, so 85% leaves
    almost no room for a bias that acts on every pair; and a judge sharper than the annotators prefers
    the better side of any pair more than they do, bias or not. So the bias is measured against the
    judge's own unbiased verdicts, and the agreement the biased judge reaches is reported beside the
    target, not forced. The judge calibrated samples its labels (a greedy judge's verdicts do not
    depend on β_J at λ = 0, so no β_J reaches a target)."""
    if beta_h is None:
        beta_h = solve_human_beta(x_P, human_target)
    beta_j = _root(
        lambda b: judge_agreement(Judge(b), beta_h, x_P) - judge_target, 1e-3, 1e3, f"judge agreement {judge_target}"
    )
    lam = 0.0
    if gap_target != 0:
        lam = _root(lambda lm: bias_gap(Judge(beta_j, lm), x_Pf, dg_Pf) - gap_target, -1e2, 1e2, f"bias {gap_target}")
    judge = Judge(beta_j, lam)
    return Calibration(
        beta_h,
        judge,
        human_agreement(beta_h, x_P),
        judge_agreement(Judge(beta_j), beta_h, x_P),
        bias_gap(judge, x_Pf, dg_Pf),
        judge_agreement(judge, beta_h, x_P, dg_P),
        preference_gap(judge, beta_h, x_Pf, dg_Pf),
    )
