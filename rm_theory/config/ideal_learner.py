"""Schema of the ideal-learner study (`python -m experiments.ideal_learner`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import (
    TOPOLOGIES,
    LabelSchema,
    ModelSchema,
    SeededRunSchema,
    SpaceSchema,
    TrainSchema,
    TreeSchema,
)

FAMILIES = ("mlp", "transformer", "prefix", "anchored")


@dataclasses.dataclass
class IdealLearnerSchema(SeededRunSchema):
    # The exact learner on chain vs tree data: every n × topology × budget × seed is one Laplace fit.
    n_values: list[int] = spec(default_factory=lambda: [256, 1024, 4096, 16384], ge=1, nonempty=True)
    topologies: list[str] = spec(default_factory=lambda: ["chain", "tree"], choices=TOPOLOGIES, nonempty=True)
    budgets: list[str] = spec(
        default_factory=lambda: ["comparisons", "tokens"], choices=("comparisons", "tokens"), nonempty=True
    )
    num_queries: int = spec(1024, ge=1)
    # Query distributions besides "independent" (world.queries kinds; the depth strata are not included).
    query_kinds: list[str] = spec(
        default_factory=lambda: ["low_temp", "in_tree"], choices=("depth", "low_temp", "best_of_n", "in_tree")
    )
    # The Laplace posterior against the resistance of the IBN with Fisher-at-the-MAP edges, up to this n.
    identity_max_n: int = spec(4096, ge=0)
    space: SpaceSchema = dataclasses.field(default_factory=lambda: SpaceSchema(num_prompts=16, V=4, L=8))
    tree: TreeSchema = dataclasses.field(default_factory=lambda: TreeSchema(B=2, D=3))
    labels: LabelSchema = dataclasses.field(default_factory=LabelSchema)
    # Neural families trained on the same data (equal comparisons) at these n; "prefix" is the
    # prefix-embedding model at the exact MAP's objective, "anchored" its randomised-prior ensemble.
    neural_n: list[int] = spec(default_factory=lambda: [1024], ge=1)
    families: list[str] = spec(default_factory=lambda: list(FAMILIES), choices=FAMILIES)
    model: ModelSchema = dataclasses.field(default_factory=ModelSchema)
    train: TrainSchema = dataclasses.field(default_factory=lambda: TrainSchema(steps=600))
    prefix_table_size: int = spec(16384, ge=1)
    prefix_steps: int = spec(1500, ge=1)
    prefix_batch_size: int = spec(256, ge=1)
    prefix_lr: float = spec(0.05, gt=0)
    # Randomised-prior ensembles in the exact model class, against the exact posterior, at n = neural_n[0]
    # (at least 2 members: their variance has ddof = 1).
    ensemble_sizes: list[int] = spec(default_factory=lambda: [4, 8, 16, 32, 64], ge=2, nonempty=True)
    # Gaussian-observation noise of that check (4/β², the BT label's inverse Fisher information at a tie)
    xi2: float = spec(4.0, gt=0)
    # Best-of-N with the exact posterior mean, and on the lower bound μ − κσ, at n = neural_n[0].
    bon_prompts: int = spec(32, ge=1)
    bon_max_n: int = spec(128, ge=1)
    kappas: list[float] = spec(default_factory=lambda: [0.0, 1.0, 2.0], ge=0)
    # Metric geometry: the exact GP posterior (the field's covariance) against the IBN's k-NN prior, on
    # `gp_n` chain comparisons with Gaussian observations of variance xi2 in 4 prompts (0: skip).
    gp_n: int = spec(512, ge=0)

    def cross_checks(self) -> list[str]:
        if self.space.geometry != "tree":
            return [
                f"space.geometry = {self.space.geometry!r}: the exact prefix-node learner needs the prefix-tree "
                "geometry (tree); the metric one's exact learner is rm.gp"
            ]
        return []

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 2,
        "n_values": [64, 128],
        "budgets": ["comparisons"],
        "num_queries": 64,
        "space.num_prompts": 4,
        "space.L": 5,
        "neural_n": [64],
        "families": ["mlp", "prefix", "anchored"],
        "train.ensemble_size": 2,
        "train.steps": 20,
        "train.log_every": 20,
        "train.warmup_steps": 2,
        "train.batch_size": 16,
        "model.hidden": [16],
        "prefix_table_size": 1024,
        "prefix_steps": 40,
        "prefix_batch_size": 32,
        "ensemble_sizes": [4, 8],
        "bon_prompts": 4,
        "bon_max_n": 8,
        "gp_n": 32,
    }
