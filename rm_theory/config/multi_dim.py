"""Schema of the multi-dimensional preference study (`python -m experiments.multi_dim`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from rm_theory.common.validate import spec
from rm_theory.config.common import (
    TOPOLOGIES,
    ModelSchema,
    SeededRunSchema,
    SpaceSchema,
    TrainSchema,
    TreeSchema,
    build,
)
from rm_theory.rm.multidim import ArmoConfig
from rm_theory.world.multidim import (
    PROTOCOLS,
    AnnotatorConfig,
    MultiDimConfig,
    ProtocolCosts,
    cost_per_pair,
    pairs_for_budget,
)
from rm_theory.world.records import HARM_CATEGORIES


@dataclasses.dataclass
class GoldVectorSchema:
    """`world.multidim.MultiDimConfig`: D helpfulness sub-dimensions, C harm categories, their
    correlations, and where harm and its severities begin (in units of a harm field's s.d.)."""

    num_help: int = spec(4, ge=1)
    num_categories: int = spec(19, ge=1, le=len(HARM_CATEGORIES))
    rho_help: float = spec(0.3, ge=-1, le=1)
    rho_harm: float = spec(0.2, ge=-1, le=1)
    rho_cross: float = spec(0.1, ge=-1, le=1)
    harm_threshold: float = spec(2.0, unbounded="a level of a unit-variance harm field")
    severity_cuts: list[float] = spec(default_factory=lambda: [2.4, 2.8], unbounded="levels of a harm field")

    def cross_checks(self) -> list[str]:
        out = []
        if len(self.severity_cuts) != 2 or not self.harm_threshold <= self.severity_cuts[0] <= self.severity_cuts[1]:
            out.append(f"severity_cuts = {self.severity_cuts}: must be two levels, harm_threshold <= first <= second")
        D, C = self.num_help, self.num_categories
        R = np.full((D + C, D + C), self.rho_cross)
        R[:D, :D], R[D:, D:] = self.rho_help, self.rho_harm
        np.fill_diagonal(R, 1.0)
        if np.linalg.eigvalsh(R).min() <= 1e-9:
            out.append(
                f"rho_cross = {self.rho_cross}: with rho_help = {self.rho_help}, rho_harm = {self.rho_harm}, "
                f"{D} sub-dimensions and {C} categories this is no correlation matrix (not positive definite)"
            )
        return out


@dataclasses.dataclass
class AnnotatorSchema:
    """`world.multidim.AnnotatorConfig`: each protocol's label noise, the single-preference
    annotators' Beta law of weights, the meta-labels' flips and the ratings' scale and noise."""

    beta_sub: list[float] = spec(default_factory=lambda: [2.0, 1.5, 1.0, 0.5], gt=0)
    beta_help: float = spec(1.5, gt=0)
    beta_harm: float = spec(1.5, gt=0)
    beta_single: float = spec(1.5, gt=0)
    weight_a: float = spec(4.0, gt=0)
    weight_b: float = spec(4.0, gt=0)
    annotators: int = spec(20, ge=1)
    safe_flip: float = spec(0.05, ge=0, le=1)
    category_flip: float = spec(0.0, ge=0, le=1)
    severity_flip: float = spec(0.0, ge=0, le=1)
    rating_scale: float = spec(1.0, gt=0)
    rating_noise: float = spec(0.5, gt=0)


@dataclasses.dataclass
class CostSchema:
    """`world.multidim.ProtocolCosts`: the cost of one label of each kind (the budget's unit)."""

    read_pair: float = spec(0.0, ge=0)
    help_label: float = spec(1.0, ge=0)
    harm_label: float = spec(1.0, ge=0)
    single_label: float = spec(1.0, ge=0)
    sub_label: float = spec(1.0, ge=0)
    item_label: float = spec(0.25, ge=0)
    rating: float = spec(0.25, ge=0)


@dataclasses.dataclass
class LossSchema:
    """Weights of the vector model's loss terms (`rm.multidim.LOSS_TERMS`; l2 and centring come from
    `train.l2_coef` and `train.centre_coef`)."""

    bt: float = spec(1.0, ge=0)
    sign: float = spec(1.0, ge=0)
    category: float = spec(1.0, ge=0)
    severity: float = spec(1.0, ge=0)


@dataclasses.dataclass
class ArmoSchema:
    """`rm.multidim.ArmoConfig` (the `ratings` protocol's ArmoRM-style model)."""

    ridge_alpha: float = spec(1.0, gt=0)
    embed_width: int = spec(2048, ge=8)
    gate_hidden: int = spec(32, ge=1)
    steps: int = spec(300, ge=1)
    lr: float = spec(0.05, gt=0)


@dataclasses.dataclass
class DownstreamSchema:
    """Policies on every response of each prompt (prefix tree) or `candidates` draws of π_ref
    (metric space), judged by the gold vector: Safe RLHF (pooled and per-category costs) at
    thresholds `factor` × the reference policy's rate of the cost model, over `factors` for the
    Pareto front; Best-of-N and the KL-optimal policy under the scalarisation λ·helpfulness +
    (1 − λ)·harmlessness for λ in `weights`."""

    kl_beta: float = spec(0.25, gt=0)
    factor: float = spec(0.5, gt=0)
    factors: list[float] = spec(default_factory=lambda: [0.25, 0.5, 0.75, 1.0, 1.5], gt=0)
    weights: list[float] = spec(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], ge=0, le=1)
    best_of_n: list[int] = spec(default_factory=lambda: [1, 4, 16, 64], ge=1)
    candidates: int = spec(512, ge=2)
    lambda_max: float = spec(1e4, gt=0)


@dataclasses.dataclass
class MultiDimSchema(SeededRunSchema):
    # the equal-cost comparison: every protocol gets each budget (in label-cost units)
    protocols: list[str] = spec(default_factory=lambda: ["dual", "single"], choices=PROTOCOLS, nonempty=True)
    budgets: list[float] = spec(default_factory=lambda: [256.0, 1024.0], gt=0, nonempty=True)
    topology: str = spec("chain", choices=TOPOLOGIES)
    item_labels: bool = True  # per-response safety meta-labels (and so the cost models)
    num_queries: int = spec(512, ge=1)  # held-out query pairs (the same for every protocol and budget)
    ibn_pairs: int = spec(256, ge=1)  # of which the IBN part solves exactly
    label_variance: str = spec("constant", choices=("constant", "fisher"))
    space: SpaceSchema = dataclasses.field(default_factory=lambda: SpaceSchema(num_prompts=8, V=4, L=5))
    tree: TreeSchema = dataclasses.field(default_factory=TreeSchema)
    world: GoldVectorSchema = dataclasses.field(default_factory=GoldVectorSchema)
    annotators: AnnotatorSchema = dataclasses.field(default_factory=AnnotatorSchema)
    costs: CostSchema = dataclasses.field(default_factory=CostSchema)
    model: ModelSchema = dataclasses.field(default_factory=lambda: ModelSchema(family="mlp"))
    train: TrainSchema = dataclasses.field(
        default_factory=lambda: TrainSchema(steps=400, warmup_steps=40, log_every=None, checkpoint_every=0)
    )
    losses: LossSchema = dataclasses.field(default_factory=LossSchema)
    armorm: ArmoSchema = dataclasses.field(default_factory=ArmoSchema)
    downstream: DownstreamSchema = dataclasses.field(default_factory=DownstreamSchema)

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 2,
        "budgets": [64.0, 128.0],
        "num_queries": 64,
        "ibn_pairs": 32,
        "space.num_prompts": 3,
        "space.L": 4,
        "world.num_categories": 4,
        "train.ensemble_size": 2,
        "train.steps": 30,
        "train.warmup_steps": 3,
        "train.batch_size": 16,
        "model.hidden": [16],
        "armorm.steps": 20,
        "armorm.embed_width": 64,
        "downstream.candidates": 32,
        "downstream.factors": [0.5, 1.0],
        "downstream.weights": [0.0, 0.5, 1.0],
        "downstream.best_of_n": [1, 4],
    }

    def cross_checks(self) -> list[str]:
        out = []
        if len(self.annotators.beta_sub) != self.world.num_help:
            out.append(
                f"annotators.beta_sub = {self.annotators.beta_sub}: needs one β per sub-dimension "
                f"(world.num_help = {self.world.num_help})"
            )
        if self.space.geometry == "tree" and self.space.V**self.space.L > 65536:
            out.append(
                f"space.L = {self.space.L}: downstream enumerates all V^L = {self.space.V**self.space.L} responses "
                "of each prompt; keep V^L <= 65536"
            )
        if self.ibn_pairs > self.num_queries:
            out.append(f"ibn_pairs = {self.ibn_pairs}: must be <= num_queries ({self.num_queries})")
        if len(set(self.protocols)) != len(self.protocols):
            out.append(f"protocols = {self.protocols}: each protocol once")
        world, costs = make_world(self.world), make_costs(self.costs)
        per = {p: cost_per_pair(p, world, costs, self.item_labels) for p in dict.fromkeys(self.protocols)}
        if any(c <= 0 for c in per.values()):
            out.append(f"costs: a pair of {[p for p, c in per.items() if c <= 0]} costs nothing; each needs a cost")
        elif all(pairs_for_budget(b, p, world, costs, self.item_labels) < 2 for b in self.budgets for p in per):
            out.append(f"budgets = {self.budgets}: no protocol buys two pairs (a pair costs {per})")
        return out


def make_world(cfg: GoldVectorSchema) -> MultiDimConfig:
    return build(MultiDimConfig, cfg)


def make_annotators(cfg: AnnotatorSchema) -> AnnotatorConfig:
    return build(AnnotatorConfig, cfg)


def make_costs(cfg: CostSchema) -> ProtocolCosts:
    return build(ProtocolCosts, cfg)


def make_armo(cfg: ArmoSchema) -> ArmoConfig:
    return build(ArmoConfig, cfg)
