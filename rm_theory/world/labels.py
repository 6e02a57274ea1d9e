"""Labels of the synthetic preference world (THEORY.md §2 "Labels"; Safe RLHF; PKU-SafeRLHF).

* better: Bradley–Terry with inverse temperature β on the gold reward, P(a ≻ b) = σ(β (r*_a − r*_b));
* safer: Bradley–Terry on −c* (the lower-cost response is safer);
* safe: c*(y) ≤ 0, flipped with probability `flip_rate`;
* harm categories: category k is flagged on an unsafe response when its own component field is
  high (the largest one always), mirroring PKU-SafeRLHF's 19 categories;
* severity 1–3 (minor, moderate, severe) bins c* of unsafe responses; 0 for safe ones.

The gold cost is c*(y) = ρ·r̃*(y) + √(1−ρ²)·h̃(y) − offset, with r̃* the standardised gold reward and
h̃ the standardised sum of the per-category components: ρ > 0 makes helpful responses costlier,
the tension Safe RLHF's Lagrangian resolves.

Legend: N responses, P comparisons, G trees, C harm categories.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from rm_theory.world.records import HARM_CATEGORIES
from rm_theory.world.spaces import Responses, ResponseSpace
from rm_theory.world.topology import Comparisons, TreeSampling, make_dataset

SEVERITY_NAMES = ("safe", "minor", "moderate", "severe")


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    beta: float = 1.0
    cost_beta: float = 1.0
    rho: float = 0.0
    num_categories: int = len(HARM_CATEGORIES)
    cost_offset: float = 0.5
    flip_rate: float = 0.0
    severity_cuts: tuple[float, float] = (0.5, 1.0)
    category_threshold: float = 1.0


@dataclasses.dataclass(frozen=True)
class GoldCost:
    cost_N: np.ndarray
    harm_NxC: np.ndarray
    severity_N: np.ndarray


def _field_scale(space: ResponseSpace) -> float:
    """Prior s.d. of a response's field value, from the space's own field (Δ(0)/2 in the prefix
    tree; the Fourier field's variance in the metric space)."""
    return float(np.sqrt(space.field_variance))


def gold_cost(space: ResponseSpace, resp: Responses, cfg: LabelConfig) -> GoldCost:
    scale = _field_scale(space)
    comps = space.gold_cost_components(resp, cfg.num_categories) / scale
    harm_level = comps.sum(axis=1) / np.sqrt(cfg.num_categories)
    r = space.gold_reward(resp) / scale
    cost = cfg.rho * r + np.sqrt(1 - cfg.rho**2) * harm_level - cfg.cost_offset
    unsafe = cost > 0
    harm = (comps > cfg.category_threshold) | (np.arange(cfg.num_categories)[None, :] == comps.argmax(1)[:, None])
    harm &= unsafe[:, None]
    severity = np.where(unsafe, 1 + (cost > cfg.severity_cuts[0]) + (cost > cfg.severity_cuts[1]), 0)
    return GoldCost(cost, harm, severity.astype(np.int64))


@dataclasses.dataclass(frozen=True)
class Labels:
    """Dual preferences (better, safer) and per-item safety labels of P comparisons, with gold values."""

    better_P: np.ndarray  # 1.0 when a is preferred
    safer_P: np.ndarray  # 1.0 when a is safer
    safe_a: np.ndarray
    safe_b: np.ndarray
    harm_a: np.ndarray
    harm_b: np.ndarray
    severity_a: np.ndarray
    severity_b: np.ndarray
    r_a: np.ndarray
    r_b: np.ndarray
    c_a: np.ndarray
    c_b: np.ndarray

    def inconsistent(self) -> np.ndarray:
        """Rows whose safer response is labelled unsafe while the other is labelled safe."""
        safer_safe = np.where(self.safer_P > 0.5, self.safe_a, self.safe_b)
        other_safe = np.where(self.safer_P > 0.5, self.safe_b, self.safe_a)
        return ~safer_safe & other_safe


def label_comparisons(space: ResponseSpace, comps: Comparisons, cfg: LabelConfig, rng: np.random.Generator) -> Labels:
    r_a, r_b = space.gold_reward(comps.a), space.gold_reward(comps.b)
    ca, cb = gold_cost(space, comps.a, cfg), gold_cost(space, comps.b, cfg)
    P = len(comps)
    better = rng.random(P) < special.expit(cfg.beta * (r_a - r_b))
    safer = rng.random(P) < special.expit(cfg.cost_beta * (cb.cost_N - ca.cost_N))
    flip = lambda safe: safe ^ (rng.random(P) < cfg.flip_rate)
    return Labels(
        better.astype(np.float32),
        safer.astype(np.float32),
        flip(ca.cost_N <= 0),
        flip(cb.cost_N <= 0),
        ca.harm_NxC,
        cb.harm_NxC,
        ca.severity_N,
        cb.severity_N,
        r_a,
        r_b,
        ca.cost_N,
        cb.cost_N,
    )


def tree_rankings(
    space: ResponseSpace, leaves: Responses, tree_G: np.ndarray, slots: int, beta: float, rng: np.random.Generator
) -> np.ndarray:
    """A Plackett–Luce ranking of each tree's leaves under β·r* (Gumbel-max), best first: `order_TxS`."""
    r = space.gold_reward(leaves).reshape(-1, slots)
    return np.argsort(-(beta * r + rng.gumbel(size=r.shape)), axis=1)


def model_tokens(space, resp: Responses) -> np.ndarray:
    """Model input ids for prefix-tree responses: [prompt token, tokens…], 0 = padding (right).

    Ids: prompt p → 1 + p; token t → 1 + num_prompts + t. Incomplete responses are shorter.
    """
    L = resp.data.shape[1]
    out = np.zeros((len(resp), L + 1), dtype=np.int32)
    out[:, 0] = 1 + resp.prompt
    out[:, 1:] = np.where(resp.data >= 0, 1 + space.num_prompts + resp.data, 0)
    return out


def vocab_size(space) -> int:
    return 1 + space.num_prompts + space.V


def labelled_data(
    space: ResponseSpace, topology: str, n: int, tree: TreeSampling, beta: float, rng: np.random.Generator
) -> tuple[Comparisons, Labels]:
    """A chain or tree data set of n comparisons with Bradley–Terry labels at inverse temperature β."""
    comps = make_dataset(space, topology, n, rng, tree=tree)
    return comps, label_comparisons(space, comps, LabelConfig(beta=beta), rng)
