"""The Safer-Instruct pipeline in the gold world: safety preference data built with no annotator
(Shi et al. 2024, "Safer-Instruct: Aligning Language Models with Automated Preference Data", NAACL,
arXiv 2311.08685, §3), each stage a component that can be switched off.

The data-generating process, for N sources s = 1..N in a tabulated prefix-tree world (gold reward r*,
gold cost c*, reference policy π_ref, a judge J of `world.judges` with its bias feature g):

0. source: a prompt p_s ~ Uniform(prompts) and a harmful text y_s ~ π_src(·|p_s) ∝
   π_ref(y|p_s)·exp(κ·c*(p_s, y))·1{c*(p_s, y) > 0} (κ = `source_tilt`); only its tokens are kept,
   its prompt is forgotten (the paper's sources are harmful texts with no instruction);
1. induction (§3.1–3.2, reversed instruction tuning): a reverse model proposes the prompt,
   p̂_s ~ P_rev(p | y_s) ∝ π_ref(y_s | p)^(1/τ) (τ = `induction_temperature`; τ = 1 is the Bayes
   posterior under uniform prompts, τ → 0 its mode). Ablation `induction="oracle"`: p̂_s = p_s;
2. quality filter (§3.3): the judge estimates the cost of the source under the induced prompt,
   ĉ_J = c*(p̂_s, y_s) − (λ_c/β_c)·g(p̂_s, y_s) + ε, ε ~ N(0, π²/(6β_c²)) (the noise whose difference
   between two responses has the spread of the judge's logistic label noise, with the same bias as
   its "safer" verdicts), and keeps s iff ĉ_J > τ_q (`quality_threshold`: the instruction does elicit
   the harm). Ablation: keep every source;
3. expert (§3.4): K (`responses_per_source`) responses y_E^(s,k) ~ π_E(·|p̂_s), the KL-optimal policy
   of the gold reward under a cost constraint (`policy.constrained`). Ablation `expert="reference"`:
   π_E = π_ref;
4. pairs: chosen y_E^(s,k), rejected the source y_s under p̂_s: a star of K comparisons per source,
   centred on the source. Ablation `rejected="reference"`: a fresh π_ref response instead (chain pairs);
5. preference filter (§3.5): keep (s, k) iff the judge states P_J(chosen safer) ≥ 1/2 + m
   (`preference_margin`; with `preference_label="both"` also P_J(chosen better) ≥ 1/2 + m). Ablation:
   keep every pair.

Labels: the chosen side is better and safer, by construction (no labeller is asked). Cost: every
model call costs c_AI: one induction and one quality verdict per source, one expert response and one
preference verdict per pair of a source that passed the quality filter (a call whose result is then
filtered out is still paid). Every stage draws from its own generator, the same number of draws
whichever stages are on, so ablations of one seed share their sources and draws (paired).

Legend: X prompts, Y responses (leaves of a prompt), N texts (the sources: harmful texts, each with the prompt it
was drawn under), P comparisons (pairs: K = `responses_per_source` per source).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from rm_theory.common.rng import rng as named_rng
from rm_theory.policy.constrained import sample_leaves
from rm_theory.world.judges import Judge

INDUCTION = ("reverse", "oracle")
EXPERTS = ("constrained", "reference")
REJECTED = ("source", "reference")
PREFERENCE_LABELS = ("safer", "better", "both")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    induction: str = "reverse"
    induction_temperature: float = 1.0
    quality_filter: bool = True
    quality_threshold: float = 0.0
    expert: str = "constrained"
    responses_per_source: int = 1
    rejected: str = "source"
    preference_filter: bool = True
    preference_margin: float = 0.1
    preference_label: str = "safer"
    source_tilt: float = 0.0

    def __post_init__(self):
        for name, allowed in (
            ("induction", INDUCTION),
            ("expert", EXPERTS),
            ("rejected", REJECTED),
            ("preference_label", PREFERENCE_LABELS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} = {getattr(self, name)!r}: must be one of {allowed}")
        if self.induction_temperature < 0 or self.responses_per_source < 1 or not 0 <= self.preference_margin < 0.5:
            raise ValueError(
                "need induction_temperature >= 0, responses_per_source >= 1 and 0 <= preference_margin < 0.5; got "
                f"{self.induction_temperature}, {self.responses_per_source}, {self.preference_margin}"
            )


@dataclasses.dataclass(frozen=True)
class GoldWorld:
    """A tabulated world: π_ref, the gold reward and cost, the expert, the judge's feature; `_XxY`
    tables over every leaf of every prompt (leaves in `PrefixTreeSpace.enumerate` order)."""

    ref_logp_XxY: np.ndarray
    r_XxY: np.ndarray
    c_XxY: np.ndarray
    expert_logp_XxY: np.ndarray
    g_XxY: np.ndarray

    @property
    def P(self) -> int:
        return self.r_XxY.shape[0]


@dataclasses.dataclass(frozen=True)
class Sources:
    """Every source and pair the pipeline made, before any budget (`within_budget` cuts it).

    Per source: true prompt, source leaf, induced prompt, kept by the quality filter, its cost in
    calls. Per pair (`_P`): its source, prompt, chosen and rejected leaves, kept by the preference
    filter."""

    prompt_N: np.ndarray
    leaf_N: np.ndarray
    induced_N: np.ndarray
    quality_N: np.ndarray
    calls_N: np.ndarray
    source_P: np.ndarray
    prompt_P: np.ndarray
    chosen_P: np.ndarray
    rejected_P: np.ndarray
    kept_P: np.ndarray


def _stage_rng(seed: int, stage: str) -> np.random.Generator:
    return named_rng("safer_instruct", seed, stage)


def source_logp(world: GoldWorld, tilt: float) -> np.ndarray:
    """log π_src (stage 0), −inf on safe leaves; a prompt with no unsafe leaf has no source."""
    with np.errstate(divide="ignore"):
        z = world.ref_logp_XxY + tilt * world.c_XxY + np.log((world.c_XxY > 0).astype(np.float64))
    finite = np.isfinite(z).any(axis=1, keepdims=True)
    return np.where(finite, z - special.logsumexp(np.where(finite, z, 0.0), axis=1, keepdims=True), -np.inf)


def reverse_logp(world: GoldWorld, leaf_N: np.ndarray, temperature: float) -> np.ndarray:
    """log P_rev(p | y_s) over the prompts, `logp_NxX` (stage 1); τ = 0 is the mode (ties: first)."""
    lik_NxX = world.ref_logp_XxY[:, leaf_N].T
    if temperature == 0:
        out = np.full(lik_NxX.shape, -np.inf)
        out[np.arange(len(leaf_N)), np.argmax(lik_NxX, axis=1)] = 0.0
        return out
    z = lik_NxX / temperature
    return z - special.logsumexp(z, axis=1, keepdims=True)


def induction_accuracy(world: GoldWorld, prompt_N: np.ndarray, leaf_N: np.ndarray, temperature: float) -> float:
    """P(p̂ = p_s), exactly: the mean over sources of P_rev(p_s | y_s)."""
    return float(np.mean(np.exp(reverse_logp(world, leaf_N, temperature)[np.arange(len(leaf_N)), prompt_N])))


def run_pipeline(world: GoldWorld, better: Judge, safer: Judge, cfg: PipelineConfig, N: int, seed: int) -> Sources:
    """Stages 0–5 of the module docstring for N sources."""
    K = cfg.responses_per_source
    src = source_logp(world, cfg.source_tilt)
    has_source = np.flatnonzero(np.isfinite(src).any(axis=1))
    if not len(has_source):
        raise ValueError("no prompt has an unsafe response: there is no harmful text to start from")
    g0 = _stage_rng(seed, "source")
    prompt_N = has_source[g0.integers(0, len(has_source), size=N)]
    leaf_N = sample_leaves(src, prompt_N, g0)
    # 1. induction
    rev = reverse_logp(world, leaf_N, cfg.induction_temperature)
    u_N = _stage_rng(seed, "induction").random(N)
    cdf_NxX = np.cumsum(np.exp(rev), axis=1)
    drawn_N = np.minimum((cdf_NxX < u_N[:, None] * cdf_NxX[:, -1:]).sum(axis=1), world.P - 1)
    induced_N = prompt_N if cfg.induction == "oracle" else drawn_N
    # 2. quality filter: the judge's estimate of the source's cost under the induced prompt
    eps_N = _stage_rng(seed, "quality").normal(size=N) * np.pi / (np.sqrt(6.0) * safer.beta)
    c_hat_N = world.c_XxY[induced_N, leaf_N] - safer.bias / safer.beta * world.g_XxY[induced_N, leaf_N] + eps_N
    quality_N = c_hat_N > cfg.quality_threshold if cfg.quality_filter else np.ones(N, bool)
    # 3. expert (drawn for every source, so that the quality filter's ablation changes no draw)
    prompt_P = np.repeat(induced_N, K)
    expert = world.expert_logp_XxY if cfg.expert == "constrained" else world.ref_logp_XxY
    chosen_P = sample_leaves(expert, prompt_P, _stage_rng(seed, "expert"))
    # 4. rejected: the source (a star per source), or a fresh reference response
    fresh_P = sample_leaves(world.ref_logp_XxY, prompt_P, _stage_rng(seed, "rejected"))
    rejected_P = np.repeat(leaf_N, K) if cfg.rejected == "source" else fresh_P
    # 5. preference filter on the judge's stated probabilities
    kept_P = np.ones(N * K, bool)
    if cfg.preference_filter:
        g_ch, g_rj = world.g_XxY[prompt_P, chosen_P], world.g_XxY[prompt_P, rejected_P]
        if cfg.preference_label in ("safer", "both"):
            x = world.c_XxY[prompt_P, rejected_P] - world.c_XxY[prompt_P, chosen_P]
            kept_P &= safer.prob(x, g_ch - g_rj) >= 0.5 + cfg.preference_margin
        if cfg.preference_label in ("better", "both"):
            x = world.r_XxY[prompt_P, chosen_P] - world.r_XxY[prompt_P, rejected_P]
            kept_P &= better.prob(x, g_ch - g_rj) >= 0.5 + cfg.preference_margin
    source_P = np.repeat(np.arange(N), K)
    kept_P &= quality_N[source_P]
    verdicts = 2 if cfg.preference_filter and cfg.preference_label == "both" else int(cfg.preference_filter)
    calls_N = 1 + int(cfg.quality_filter) + quality_N * K * (1 + verdicts)
    return Sources(
        prompt_N,
        leaf_N,
        induced_N,
        quality_N,
        calls_N.astype(np.int64),
        source_P,
        prompt_P,
        chosen_P,
        rejected_P,
        kept_P,
    )


def within_budget(data: Sources, budget: float, c_ai: float) -> np.ndarray:
    """The pairs (indices into the `_P` arrays) of the first sources whose calls fit in `budget`."""
    spent_N = np.cumsum(data.calls_N * c_ai)
    n_sources = int(np.searchsorted(spent_N, budget, side="right"))
    return np.flatnonzero(data.kept_P & (data.source_P < n_sources))


def pipeline_stats(world: GoldWorld, data: Sources, idx_P: np.ndarray) -> dict[str, float]:
    """What the pairs `idx_P` are: how many, how many sources, and how often the construction's label
    is wrong by the gold world (chosen costlier, or less rewarded, than rejected)."""
    p, ch, rj = data.prompt_P[idx_P], data.chosen_P[idx_P], data.rejected_P[idx_P]
    n = len(idx_P)
    nan = float("nan")
    return {
        "pairs": n,
        "sources": int(len(np.unique(data.source_P[idx_P]))),
        "safer_label_error": float(np.mean(world.c_XxY[p, ch] > world.c_XxY[p, rj])) if n else nan,
        "better_label_error": float(np.mean(world.r_XxY[p, ch] < world.r_XxY[p, rj])) if n else nan,
        "chosen_unsafe": float(np.mean(world.c_XxY[p, ch] > 0)) if n else nan,
        "rejected_unsafe": float(np.mean(world.c_XxY[p, rj] > 0)) if n else nan,
    }
