"""A multi-dimensional gold world: helpfulness sub-dimensions and harm categories with severities, the
annotators of PKU-SafeRLHF, SafeSora and HelpSteer2, and what their labels cost
(`docs/multi_dim_theory.md` §1).

**Gold vector.** Each response carries F = D + C gold fields: D helpfulness sub-dimensions (SafeSora's
four: instruction following, correctness, information, aesthetics; Dai et al. 2024, arXiv 2406.14477)
and C harm categories (PKU-SafeRLHF's 19, arXiv 2406.15513). They are v(y) = L z(y), with z(y) F
independent fields of the space, each standardised to unit prior variance (the space's own
`gold_cost_components` streams: a branching field in the prefix tree, a Fourier field in the metric
space), and L the Cholesky factor of the stated correlation matrix R:

    R[d, d'] = rho_help  (two helpfulness sub-dimensions),  R[c, c'] = rho_harm  (two categories),
    R[d, c]  = rho_cross (a sub-dimension and a category; > 0: helpful responses tend to be harmful,
               the tension Safe RLHF resolves).

So Cov(v_i(y), v_j(y')) = R_ij·k(y, y') with k the space's own kernel: the dimensions are correlated
by R at every response and share one geometry (a separable prior, the theory's assumption).
Derived dimensions are unit-variance projections aᵀv: helpfulness (the mean sub-dimension),
harmlessness (minus the mean category level), and the annotators' utility (below).

**Harm.** Category c is present on y iff v_c(y) > `harm_threshold`; its severity is 1, 2 or 3
(minor, moderate, severe) by `severity_cuts` above the threshold, 0 when absent; a response's
severity is the largest over its categories, and it is safe iff no category is present.

**Annotators and protocols.** One Bradley–Terry label per labelled dimension, P(a ≻ b) =
σ(β_d (g_d(a) − g_d(b))), each dimension with its own β (`AnnotatorConfig`):

* `dual` (PKU-SafeRLHF's decoupled labels): `better` on helpfulness and `safer` on harmlessness;
* `single` (PKU-SafeRLHF's single preference): one label on the annotator's own trade-off
  λ_j·helpfulness + (1 − λ_j)·harmlessness; each of `annotators` annotators draws λ_j ~ Beta(a, b)
  once per world and labels the pairs assigned to them at random;
* `sub` (SafeSora): one label per helpfulness sub-dimension, and harmlessness;
* `ratings` (HelpSteer2): the single label, and a Likert rating 0..4 of every attribute (the
  sub-dimensions and harmlessness) of both responses: round(2 + s·g + noise), clipped;
* every protocol: per-response safety meta-labels (safe, categories, severity), with flip noise.

Costs are counted per label (`ProtocolCosts`): a pair of a protocol costs its reading, its
preference labels and its items' meta-labels and ratings.

Legend: N responses, P pairs, C harm categories, F features (the gold vector's D + C fields), J annotators,
G groups of labels (one per labelled dimension: the heads of `heads`), Fa rated attributes (the D
sub-dimensions and harmlessness).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import integrate, special, stats

from rm_theory.world.records import HARM_CATEGORIES
from rm_theory.world.spaces import Responses, ResponseSpace

SAFESORA_SUB_DIMENSIONS = ("instruction_following", "correctness", "information", "aesthetics")
PROTOCOLS = ("dual", "single", "sub", "ratings")
SEVERITY_LEVELS = 4  # 0 safe, 1 minor, 2 moderate, 3 severe


@dataclasses.dataclass(frozen=True)
class MultiDimConfig:
    """The gold vector of a world (module docstring)."""

    num_help: int = 4
    num_categories: int = 19
    rho_help: float = 0.3
    rho_harm: float = 0.2
    rho_cross: float = 0.1
    harm_threshold: float = 2.0
    severity_cuts: tuple[float, float] = (2.4, 2.8)

    def __post_init__(self):
        if self.num_help < 1 or not 1 <= self.num_categories <= len(HARM_CATEGORIES):
            raise ValueError(
                f"need num_help >= 1 and 1 <= num_categories <= {len(HARM_CATEGORIES)}, "
                f"got {self.num_help}, {self.num_categories}"
            )
        lo, hi = self.severity_cuts
        if not self.harm_threshold <= lo <= hi:
            raise ValueError(
                "need harm_threshold <= severity_cuts[0] <= severity_cuts[1], "
                f"got {self.harm_threshold}, {self.severity_cuts}"
            )

    @property
    def help_names(self) -> tuple[str, ...]:
        if self.num_help == len(SAFESORA_SUB_DIMENSIONS):
            return SAFESORA_SUB_DIMENSIONS
        return tuple(f"help_{d}" for d in range(self.num_help))

    @property
    def categories(self) -> tuple[str, ...]:
        return HARM_CATEGORIES[: self.num_categories]

    @property
    def F(self) -> int:
        return self.num_help + self.num_categories


def correlation_matrix(cfg: MultiDimConfig) -> np.ndarray:
    """R_FxF of the gold fields (sub-dimensions first, then categories); a ValueError names the
    correlations when they are not a correlation matrix (not positive definite)."""
    D, C = cfg.num_help, cfg.num_categories
    R = np.empty((cfg.F, cfg.F))
    R[:D, :D], R[D:, D:], R[:D, D:], R[D:, :D] = cfg.rho_help, cfg.rho_harm, cfg.rho_cross, cfg.rho_cross
    np.fill_diagonal(R, 1.0)
    if np.linalg.eigvalsh(R).min() <= 1e-9:
        raise ValueError(
            f"rho_help = {cfg.rho_help}, rho_harm = {cfg.rho_harm}, rho_cross = {cfg.rho_cross} with "
            f"{D} sub-dimensions and {C} categories is not a correlation matrix (not positive definite): "
            "lower |rho_cross| or raise rho_help, rho_harm"
        )
    return R


def unit(a_F: np.ndarray, R_FxF: np.ndarray) -> np.ndarray:
    """a scaled so that aᵀv has unit prior variance (aᵀRa = 1)."""
    return a_F / math.sqrt(float(a_F @ R_FxF @ a_F))


@dataclasses.dataclass(frozen=True)
class GoldVector:
    """Gold values of N responses: fields, derived dimensions, harm, severity, safety."""

    v_NxF: np.ndarray
    dims: dict[str, np.ndarray]  # every named dimension (`MultiDimWorld.directions`), N values each
    present_NxC: np.ndarray
    severity_NxC: np.ndarray

    @property
    def severity_N(self) -> np.ndarray:
        return self.severity_NxC.max(axis=1)

    def take(self, idx) -> GoldVector:
        return GoldVector(
            self.v_NxF[idx], {k: v[idx] for k, v in self.dims.items()}, self.present_NxC[idx], self.severity_NxC[idx]
        )

    @property
    def safe_N(self) -> np.ndarray:
        return ~self.present_NxC.any(axis=1)


@dataclasses.dataclass(frozen=True)
class MultiDimWorld:
    """A response space with a gold vector (module docstring). `utility_weight` is λ̄, the weight
    on helpfulness of the annotators' mean trade-off (the mean of their Beta law)."""

    space: ResponseSpace
    cfg: MultiDimConfig
    utility_weight: float = 0.5

    @property
    def R(self) -> np.ndarray:
        return correlation_matrix(self.cfg)

    @property
    def L(self) -> np.ndarray:
        return np.linalg.cholesky(self.R)

    def fields(self, resp: Responses) -> np.ndarray:
        """z_NxF: F independent unit-variance fields of the space."""
        return self.space.gold_cost_components(resp, self.cfg.F) / math.sqrt(self.space.field_variance)

    def directions(self) -> dict[str, np.ndarray]:
        """a_F of every named dimension g = aᵀv (unit prior variance): the sub-dimensions, helpfulness,
        harmlessness and utility (λ̄·helpfulness + (1 − λ̄)·harmlessness, not rescaled)."""
        D, F, R = self.cfg.num_help, self.cfg.F, self.R
        out = {name: np.eye(F)[d] for d, name in enumerate(self.cfg.help_names)}
        out["helpfulness"] = unit(np.r_[np.ones(D), np.zeros(F - D)], R)
        out["harmlessness"] = unit(-np.r_[np.zeros(D), np.ones(F - D)], R)
        out["utility"] = trade_off(out, self.utility_weight)
        return out

    def vector(self, resp: Responses) -> GoldVector:
        v_NxF = self.fields(resp) @ self.L.T
        dims = {name: v_NxF @ a for name, a in self.directions().items()}
        harm_NxC = v_NxF[:, self.cfg.num_help :]
        present = harm_NxC > self.cfg.harm_threshold
        lo, hi = self.cfg.severity_cuts
        severity = np.where(present, 1 + (harm_NxC > lo) + (harm_NxC > hi), 0).astype(np.int64)
        return GoldVector(v_NxF, dims, present, severity)


def trade_off(directions: dict[str, np.ndarray], weight) -> np.ndarray:
    """λ·a_helpfulness + (1 − λ)·a_harmlessness: the direction an annotator of weight λ labels
    (the `single` protocol). `weight` a number, or an array (one direction per row)."""
    w = np.asarray(weight, np.float64)[..., None]
    return w * directions["helpfulness"] + (1 - w) * directions["harmlessness"]


# --------------------------------------------------------------------------------------------
# Annotators
# --------------------------------------------------------------------------------------------


def readouts(world: MultiDimWorld, labelled: dict[str, float]) -> dict[str, dict[str, float]]:
    """dim -> {labelled dim: weight}: the prior's regression of each gold dimension on the labelled
    ones, E[g | labelled] = G_gℓ G_ℓℓ⁻¹ (labelled), with G the dimensions' prior covariance; each
    labelled head estimates β·g, so its weight is divided by its β (`labelled` maps it to β)."""
    dirs, R = world.directions(), world.R
    names = list(labelled)
    A = np.stack([dirs[n] for n in names])
    G = A @ R @ A.T
    out = {}
    for g, a in dirs.items():
        coef = np.linalg.solve(G, A @ R @ a)
        out[g] = {n: float(c / labelled[n]) for n, c in zip(names, coef, strict=True)}
    return out


def apply_readout(weights: dict[str, float], heads_by_name: dict[str, np.ndarray]) -> np.ndarray:
    """A dimension's estimate from the labelled heads: Σ weight·head (`readouts`' weights)."""
    return sum(w * heads_by_name[n] for n, w in weights.items())


@dataclasses.dataclass(frozen=True)
class AnnotatorConfig:
    """Label noise of each protocol (module docstring). `beta_sub` has one β per sub-dimension."""

    beta_sub: tuple[float, ...] = (2.0, 1.5, 1.0, 0.5)
    beta_help: float = 1.5
    beta_harm: float = 1.5
    beta_single: float = 1.5
    weight_a: float = 4.0  # λ ~ Beta(a, b): the weight on helpfulness of a single-preference annotator
    weight_b: float = 4.0
    annotators: int = 20
    safe_flip: float = 0.05
    category_flip: float = 0.0
    severity_flip: float = 0.0  # probability of a severity label off by one level (within 1..3)
    rating_scale: float = 1.0
    rating_noise: float = 0.5

    @property
    def weight_mean(self) -> float:
        return self.weight_a / (self.weight_a + self.weight_b)

    @property
    def weight_var(self) -> float:
        a, b = self.weight_a, self.weight_b
        return a * b / ((a + b) ** 2 * (a + b + 1))


def heads(cfg: MultiDimConfig) -> tuple[str, ...]:
    """The label heads of every protocol: the sub-dimensions, helpfulness, harmlessness, utility."""
    return (*cfg.help_names, "helpfulness", "harmlessness", "utility")


def labelled_dims(protocol: str, cfg: MultiDimConfig) -> tuple[str, ...]:
    """The dimensions a protocol's preference labels are about (single: the annotators' trade-off)."""
    if protocol == "dual":
        return ("helpfulness", "harmlessness")
    if protocol in ("single", "ratings"):
        return ("utility",)
    if protocol == "sub":
        return (*cfg.help_names, "harmlessness")
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def label_betas(protocol: str, cfg: MultiDimConfig, acfg: AnnotatorConfig) -> dict[str, float]:
    """β of each labelled dimension of a protocol."""
    if len(acfg.beta_sub) != cfg.num_help:
        raise ValueError(f"beta_sub has {len(acfg.beta_sub)} values for {cfg.num_help} sub-dimensions")
    betas = {
        **dict(zip(cfg.help_names, acfg.beta_sub, strict=True)),
        "helpfulness": acfg.beta_help,
        "harmlessness": acfg.beta_harm,
        "utility": acfg.beta_single,
    }
    return {d: betas[d] for d in labelled_dims(protocol, cfg)}


def annotator_weights(acfg: AnnotatorConfig, rng: np.random.Generator) -> np.ndarray:
    """λ_J: each annotator's weight on helpfulness, drawn once per world."""
    return rng.beta(acfg.weight_a, acfg.weight_b, size=acfg.annotators)


def single_probability(beta: float, help_gap, harm_gap, a: float, b: float) -> np.ndarray:
    """P(a ≻ b) of a single-preference label from an annotator of unknown weight λ ~ Beta(a, b):
    E_λ σ(β(λ·Δhelp + (1 − λ)·Δharmless)), by quadrature (the population's label law)."""
    h, s = np.broadcast_arrays(np.asarray(help_gap, np.float64), np.asarray(harm_gap, np.float64))
    law = stats.beta(a, b)
    f = lambda lam, x, y: special.expit(beta * (lam * x + (1 - lam) * y)) * law.pdf(lam)
    out = [integrate.quad(f, 0.0, 1.0, args=(x, y))[0] for x, y in zip(h.ravel(), s.ravel(), strict=True)]
    return np.asarray(out).reshape(h.shape)


def rating_probabilities(g_N: np.ndarray, scale: float, noise: float) -> np.ndarray:
    """P(rating = k), k = 0..4, of a Likert rating round(2 + s·g + ε), ε ~ N(0, noise²), clipped to
    0..4: `p_Nx5`."""
    edges = np.array([-np.inf, 0.5, 1.5, 2.5, 3.5, np.inf])
    z = (edges[None, :] - 2.0 - scale * np.asarray(g_N, np.float64)[:, None]) / noise
    return np.diff(special.ndtr(z), axis=1)


@dataclasses.dataclass(frozen=True)
class ItemLabels:
    """Per-response safety meta-labels (PKU-SafeRLHF's `is_response_*_safe`, harm categories and
    severity level) of N responses."""

    safe_N: np.ndarray
    present_NxC: np.ndarray
    severity_N: np.ndarray

    def take(self, idx) -> ItemLabels:
        return ItemLabels(self.safe_N[idx], self.present_NxC[idx], self.severity_N[idx])


def item_labels(gold: GoldVector, acfg: AnnotatorConfig, rng: np.random.Generator) -> ItemLabels:
    """Noisy meta-labels: safety flipped w.p. `safe_flip`; categories (each flipped w.p.
    `category_flip`) and a severity (off by one w.p. `severity_flip`) on responses labelled unsafe;
    a response labelled unsafe with no category flagged gets its largest gold category."""
    N, C = gold.present_NxC.shape
    safe = gold.safe_N ^ (rng.random(N) < acfg.safe_flip)
    present = gold.present_NxC ^ (rng.random((N, C)) < acfg.category_flip)
    top = np.argmax(gold.v_NxF[:, -C:], axis=1)
    none = ~present.any(axis=1)
    present[none, top[none]] = True
    present &= ~safe[:, None]
    sev = np.maximum(gold.severity_N, 1)
    step = np.where(rng.random(N) < acfg.severity_flip, rng.choice([-1, 1], size=N), 0)
    sev = np.where(safe, 0, np.clip(sev + step, 1, SEVERITY_LEVELS - 1))
    return ItemLabels(safe, present, sev.astype(np.int64))


@dataclasses.dataclass(frozen=True)
class PairLabels:
    """Preference labels of P pairs on the G heads (`heads`): y = 1 when a is preferred, with a mask
    of the heads each pair is labelled on; `annotator_P` / `weight_P` for single labels (−1 / NaN
    elsewhere)."""

    heads: tuple[str, ...]
    y_PxG: np.ndarray
    mask_PxG: np.ndarray
    annotator_P: np.ndarray
    weight_P: np.ndarray

    def take(self, idx) -> PairLabels:
        return PairLabels(self.heads, self.y_PxG[idx], self.mask_PxG[idx], self.annotator_P[idx], self.weight_P[idx])


def label_pairs(
    world: MultiDimWorld,
    gold_a: GoldVector,
    gold_b: GoldVector,
    protocol: str,
    acfg: AnnotatorConfig,
    weights_J: np.ndarray,
    rng: np.random.Generator,
) -> PairLabels:
    """The preference labels of one protocol on P pairs (module docstring). Labels are drawn with
    one uniform per pair and head whatever the protocol, so two protocols labelling the same pairs
    with the same generator see the same noise on the heads they share."""
    names = heads(world.cfg)
    P, G = len(gold_a.v_NxF), len(names)
    u_PxG = rng.random((P, G))
    annotator = rng.integers(0, len(weights_J), size=P)
    dirs = world.directions()
    y, mask = np.zeros((P, G), np.float32), np.zeros((P, G), bool)
    weight = np.full(P, np.nan)
    for dim, beta in label_betas(protocol, world.cfg, acfg).items():
        h = names.index(dim)
        if dim == "utility":  # each pair by its annotator's own trade-off
            weight = weights_J[annotator]
            gap = np.einsum("pf,pf->p", gold_a.v_NxF - gold_b.v_NxF, trade_off(dirs, weight))
        else:
            gap = gold_a.dims[dim] - gold_b.dims[dim]
        y[:, h] = u_PxG[:, h] < special.expit(beta * gap)
        mask[:, h] = True
    single = "utility" in labelled_dims(protocol, world.cfg)
    return PairLabels(names, y, mask, np.where(single, annotator, -1), weight if single else np.full(P, np.nan))


def rating_attributes(cfg: MultiDimConfig) -> tuple[str, ...]:
    """The attributes a `ratings` annotator rates (HelpSteer2-style): the sub-dimensions and harmlessness."""
    return (*cfg.help_names, "harmlessness")


def ratings(gold: GoldVector, cfg: MultiDimConfig, acfg: AnnotatorConfig, rng: np.random.Generator) -> np.ndarray:
    """Likert ratings 0..4 of every attribute of N responses, `r_NxFa` (`rating_probabilities`'s law)."""
    g_NxFa = np.stack([gold.dims[a] for a in rating_attributes(cfg)], axis=1)
    noisy = 2.0 + acfg.rating_scale * g_NxFa + acfg.rating_noise * rng.normal(size=g_NxFa.shape)
    return np.clip(np.round(noisy), 0, 4).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Annotation cost
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProtocolCosts:
    """Cost of one label of each kind (any unit: the budget's); reading a pair is `read_pair`."""

    read_pair: float = 0.0
    help_label: float = 1.0  # dual `better`
    harm_label: float = 1.0  # dual `safer`, and the sub protocol's harmlessness label
    single_label: float = 1.0
    sub_label: float = 1.0  # one sub-dimension label (SafeSora)
    item_label: float = 0.25  # one response's safety meta-label (safe, categories, severity)
    rating: float = 0.25  # one attribute rating of one response


def labels_per_pair(protocol: str, cfg: MultiDimConfig, with_items: bool = True) -> dict[str, int]:
    """How many labels of each kind one pair of a protocol carries."""
    counts = {
        "dual": {"help_label": 1, "harm_label": 1},
        "single": {"single_label": 1},
        "sub": {"sub_label": cfg.num_help, "harm_label": 1},
        "ratings": {"single_label": 1, "rating": 2 * len(rating_attributes(cfg))},
    }
    if protocol not in counts:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return {"read_pair": 1, **counts[protocol], **({"item_label": 2} if with_items else {})}


def cost_per_pair(protocol: str, cfg: MultiDimConfig, costs: ProtocolCosts, with_items: bool = True) -> float:
    return float(sum(n * getattr(costs, kind) for kind, n in labels_per_pair(protocol, cfg, with_items).items()))


def pairs_for_budget(budget: float, protocol: str, cfg: MultiDimConfig, costs: ProtocolCosts, with_items=True) -> int:
    """The most pairs of a protocol that `budget` pays for (its labels counted one by one)."""
    per = cost_per_pair(protocol, cfg, costs, with_items)
    if per <= 0:
        raise ValueError(f"a {protocol} pair costs {per}: every protocol needs a positive cost per pair")
    return int(math.floor(budget / per + 1e-9))
