"""The Safer-Instruct pipeline in the gold world: safety preference data built with no annotator
(Shi et al. 2024, "Safer-Instruct: Aligning Language Models with Automated Preference Data", NAACL,
arXiv 2311.08685, §3), each stage a component that can be switched off.

The data-generating process, for sources s = 1..S in a tabulated prefix-tree world (gold reward r*,
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

Legend: P prompts, Y leaves per prompt, S sources, K responses per source, M pairs.
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
    """A tabulated world: π_ref, the gold reward and cost, the expert, the judge's feature; `_PxY`
    tables over every leaf of every prompt (leaves in `PrefixTreeSpace.enumerate` order)."""

    ref_logp_PxY: np.ndarray
    r_PxY: np.ndarray
    c_PxY: np.ndarray
    expert_logp_PxY: np.ndarray
    g_PxY: np.ndarray

    @property
    def P(self) -> int:
        return self.r_PxY.shape[0]


@dataclasses.dataclass(frozen=True)
class Sources:
    """Every source and pair the pipeline made, before any budget (`within_budget` cuts it).

    Per source: true prompt, source leaf, induced prompt, kept by the quality filter, its cost in
    calls. Per pair (`_M`): its source, prompt, chosen and rejected leaves, kept by the preference
    filter."""

    prompt_S: np.ndarray
    leaf_S: np.ndarray
    induced_S: np.ndarray
    quality_S: np.ndarray
    calls_S: np.ndarray
    source_M: np.ndarray
    prompt_M: np.ndarray
    chosen_M: np.ndarray
    rejected_M: np.ndarray
    kept_M: np.ndarray


def _stage_rng(seed: int, stage: str) -> np.random.Generator:
    return named_rng("safer_instruct", seed, stage)


def source_logp(world: GoldWorld, tilt: float) -> np.ndarray:
    """log π_src (stage 0), −inf on safe leaves; a prompt with no unsafe leaf has no source."""
    with np.errstate(divide="ignore"):
        z = world.ref_logp_PxY + tilt * world.c_PxY + np.log((world.c_PxY > 0).astype(np.float64))
    finite = np.isfinite(z).any(axis=1, keepdims=True)
    return np.where(finite, z - special.logsumexp(np.where(finite, z, 0.0), axis=1, keepdims=True), -np.inf)


def reverse_logp(world: GoldWorld, leaf_S: np.ndarray, temperature: float) -> np.ndarray:
    """log P_rev(p | y_s) over the prompts, `logp_SxP` (stage 1); τ = 0 is the mode (ties: first)."""
    lik_SxP = world.ref_logp_PxY[:, leaf_S].T
    if temperature == 0:
        out = np.full(lik_SxP.shape, -np.inf)
        out[np.arange(len(leaf_S)), np.argmax(lik_SxP, axis=1)] = 0.0
        return out
    z = lik_SxP / temperature
    return z - special.logsumexp(z, axis=1, keepdims=True)


def induction_accuracy(world: GoldWorld, prompt_S: np.ndarray, leaf_S: np.ndarray, temperature: float) -> float:
    """P(p̂ = p_s), exactly: the mean over sources of P_rev(p_s | y_s)."""
    return float(np.mean(np.exp(reverse_logp(world, leaf_S, temperature)[np.arange(len(leaf_S)), prompt_S])))


def run_pipeline(world: GoldWorld, better: Judge, safer: Judge, cfg: PipelineConfig, S: int, seed: int) -> Sources:
    """Stages 0–5 of the module docstring for S sources."""
    K = cfg.responses_per_source
    src = source_logp(world, cfg.source_tilt)
    has_source = np.flatnonzero(np.isfinite(src).any(axis=1))
    if not len(has_source):
        raise ValueError("no prompt has an unsafe response: there is no harmful text to start from")
    g0 = _stage_rng(seed, "source")
    prompt_S = has_source[g0.integers(0, len(has_source), size=S)]
    leaf_S = sample_leaves(src, prompt_S, g0)
    # 1. induction
    rev = reverse_logp(world, leaf_S, cfg.induction_temperature)
    u_S = _stage_rng(seed, "induction").random(S)
    cdf_SxP = np.cumsum(np.exp(rev), axis=1)
    drawn_S = np.minimum((cdf_SxP < u_S[:, None] * cdf_SxP[:, -1:]).sum(axis=1), world.P - 1)
    induced_S = prompt_S if cfg.induction == "oracle" else drawn_S
    # 2. quality filter: the judge's estimate of the source's cost under the induced prompt
    eps_S = _stage_rng(seed, "quality").normal(size=S) * np.pi / (np.sqrt(6.0) * safer.beta)
    c_hat_S = world.c_PxY[induced_S, leaf_S] - safer.bias / safer.beta * world.g_PxY[induced_S, leaf_S] + eps_S
    quality_S = c_hat_S > cfg.quality_threshold if cfg.quality_filter else np.ones(S, bool)
    # 3. expert (drawn for every source, so that the quality filter's ablation changes no draw)
    prompt_M = np.repeat(induced_S, K)
    expert = world.expert_logp_PxY if cfg.expert == "constrained" else world.ref_logp_PxY
    chosen_M = sample_leaves(expert, prompt_M, _stage_rng(seed, "expert"))
    # 4. rejected: the source (a star per source), or a fresh reference response
    fresh_M = sample_leaves(world.ref_logp_PxY, prompt_M, _stage_rng(seed, "rejected"))
    rejected_M = np.repeat(leaf_S, K) if cfg.rejected == "source" else fresh_M
    # 5. preference filter on the judge's stated probabilities
    kept_M = np.ones(S * K, bool)
    if cfg.preference_filter:
        g_ch, g_rj = world.g_PxY[prompt_M, chosen_M], world.g_PxY[prompt_M, rejected_M]
        if cfg.preference_label in ("safer", "both"):
            x = world.c_PxY[prompt_M, rejected_M] - world.c_PxY[prompt_M, chosen_M]
            kept_M &= safer.prob(x, g_ch - g_rj) >= 0.5 + cfg.preference_margin
        if cfg.preference_label in ("better", "both"):
            x = world.r_PxY[prompt_M, chosen_M] - world.r_PxY[prompt_M, rejected_M]
            kept_M &= better.prob(x, g_ch - g_rj) >= 0.5 + cfg.preference_margin
    source_M = np.repeat(np.arange(S), K)
    kept_M &= quality_S[source_M]
    verdicts = 2 if cfg.preference_filter and cfg.preference_label == "both" else int(cfg.preference_filter)
    calls_S = 1 + int(cfg.quality_filter) + quality_S * K * (1 + verdicts)
    return Sources(
        prompt_S,
        leaf_S,
        induced_S,
        quality_S,
        calls_S.astype(np.int64),
        source_M,
        prompt_M,
        chosen_M,
        rejected_M,
        kept_M,
    )


def within_budget(data: Sources, budget: float, c_ai: float) -> np.ndarray:
    """The pairs (indices into the `_M` arrays) of the first sources whose calls fit in `budget`."""
    spent_S = np.cumsum(data.calls_S * c_ai)
    n_sources = int(np.searchsorted(spent_S, budget, side="right"))
    return np.flatnonzero(data.kept_M & (data.source_M < n_sources))


def pipeline_stats(world: GoldWorld, data: Sources, idx_M: np.ndarray) -> dict[str, float]:
    """What the pairs `idx_M` are: how many, how many sources, and how often the construction's label
    is wrong by the gold world (chosen costlier, or less rewarded, than rejected)."""
    p, ch, rj = data.prompt_M[idx_M], data.chosen_M[idx_M], data.rejected_M[idx_M]
    n = len(idx_M)
    nan = float("nan")
    return {
        "pairs": n,
        "sources": int(len(np.unique(data.source_M[idx_M]))),
        "safer_label_error": float(np.mean(world.c_PxY[p, ch] > world.c_PxY[p, rj])) if n else nan,
        "better_label_error": float(np.mean(world.r_PxY[p, ch] < world.r_PxY[p, rj])) if n else nan,
        "chosen_unsafe": float(np.mean(world.c_PxY[p, ch] > 0)) if n else nan,
        "rejected_unsafe": float(np.mean(world.c_PxY[p, rj] > 0)) if n else nan,
    }
