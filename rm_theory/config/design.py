"""Schema of the comparison-design study (`python -m experiments.design`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import LabelSchema, ModelSchema, SeededRunSchema, SpaceSchema, TrainSchema, TreeSchema


@dataclasses.dataclass
class DesignSchema(SeededRunSchema):
    # a tabulable world (Best-of-N is exact over all V^L leaves per prompt)
    space: SpaceSchema = dataclasses.field(default_factory=lambda: SpaceSchema(V=4, L=5, num_prompts=16))
    tree: TreeSchema = dataclasses.field(default_factory=lambda: TreeSchema(B=2, D=3))
    labels: LabelSchema = dataclasses.field(default_factory=lambda: LabelSchema(beta=4.0))
    budgets: list[int] = spec(default_factory=lambda: [64, 128, 256], ge=1, nonempty=True)
    recipes: list[str] = spec(
        default_factory=lambda: ["designed", "chain", "tree", "disagreement", "random"],
        choices=("designed", "chain", "tree", "disagreement", "random"),
        nonempty=True,
    )
    # tree: leaves of response trees (pairs within a tree) | chain: policy samples per prompt
    pool: str = spec("tree", choices=("tree", "chain"))
    pool_trees_per_prompt: int = spec(4, ge=1)
    pool_per_prompt: int = spec(32, ge=2)  # chain pool: responses per prompt
    targets: int = spec(256, ge=1)  # independent reference-policy pairs whose uncertainty the design minimises
    batch: int = spec(32, ge=1)  # comparisons per round (designed and disagreement)
    xi2: float | None = spec(None, gt=0)  # the design's edge variance; None: 4/β², the Fisher information at p = 1/2
    best_of_n: int = spec(16, ge=1)
    model: ModelSchema = dataclasses.field(default_factory=lambda: ModelSchema(family="mlp", layers=1))
    train: TrainSchema = dataclasses.field(
        default_factory=lambda: TrainSchema(
            ensemble_size=4,
            steps=300,
            lr=3e-3,
            weight_decay=1e-2,
            group_batch_size=16,
            l2_coef=0.0,
            warmup_steps=None,
            log_every=None,
        )
    )

    def cross_checks(self) -> list[str]:
        if self.space.geometry != "tree":
            return [f"space.geometry = {self.space.geometry!r}: the design study needs the prefix-tree geometry (tree)"]
        return []

    RESUME_STATE: ClassVar[tuple[str, ...]] = ("metrics.jsonl",)  # the finished (seed, recipe, budget) units
    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "budgets": [16, 32],
        "batch": 8,
        "targets": 32,
        "space.num_prompts": 3,
        "space.L": 4,
        "pool_trees_per_prompt": 2,
        "pool_per_prompt": 8,
        "train.steps": 20,
        "train.ensemble_size": 2,
        "best_of_n": 4,
    }
