"""Schema of the chain-vs-tree scaling study (`python -m experiments.ibn_scaling`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import (
    GEOMETRIES,
    REGIMES,
    LabelVarianceSchema,
    SeededRunSchema,
    SpaceSchema,
    TreeSchema,
)

QUERY_KINDS = ("independent", "depth", "low_temp", "best_of_n", "in_tree")


@dataclasses.dataclass
class QuerySchema:
    num_pairs: int = spec(256, ge=1)
    kinds: list[str] = spec(default_factory=lambda: list(QUERY_KINDS), choices=QUERY_KINDS)
    depths: list[int] = spec(default_factory=lambda: [0, 1, 3, 6], ge=0)
    low_temperature: float = spec(0.3, gt=0)
    bon_candidates: int = spec(16, ge=1)


@dataclasses.dataclass
class SweepSchema:
    """Values of each study axis; every combination is a study point, run for every n. An empty
    axis selects no point (its figure is skipped)."""

    n_values: list[int] = spec(default_factory=lambda: [2**k for k in range(6, 17)], ge=1)
    geometry: list[str] = spec(default_factory=lambda: ["tree"], choices=GEOMETRIES)
    regime: list[str] = spec(default_factory=lambda: ["polynomial"], choices=REGIMES)
    label_variance: list[str] = spec(default_factory=lambda: ["large"], keys_of="label_variances")
    budget: list[str] = spec(default_factory=lambda: ["comparisons"], choices=("comparisons", "tokens"))
    shape: list[str] = spec(default_factory=lambda: ["root"], keys_of="shapes")
    temperature: list[float] = spec(default_factory=lambda: [1.0], gt=0)


def _map_default() -> SweepSchema:
    return SweepSchema(
        n_values=[4096],
        geometry=["tree", "metric"],
        regime=["polynomial", "logarithmic", "sublogarithmic"],
        label_variance=["large", "small", "fisher"],
        budget=["comparisons", "tokens"],
        shape=["root", "deep", "root_sparse", "wide"],
        temperature=[1.0, 0.3],
    )


@dataclasses.dataclass
class IBNScalingSchema(SeededRunSchema):
    figures: bool = True
    methods: list[str] = spec(default_factory=lambda: ["path", "resistance"], choices=("path", "resistance"))
    space: SpaceSchema = dataclasses.field(default_factory=SpaceSchema)
    queries: QuerySchema = dataclasses.field(default_factory=QuerySchema)
    label_variances: dict[str, LabelVarianceSchema] = dataclasses.field(
        default_factory=lambda: {
            "large": LabelVarianceSchema("constant", 4.0),
            "small": LabelVarianceSchema("constant", 0.05),
            "fisher": LabelVarianceSchema("fisher", beta=1.0),
        }
    )
    shapes: dict[str, TreeSchema] = dataclasses.field(
        default_factory=lambda: {
            "root": TreeSchema(B=2, D=3, root_branching=True),
            "deep": TreeSchema(B=2, D=3, root_branching=False),
            # the same trees, but 4 sampled pairs of leaves per tree instead of all 28 (less redundancy)
            "root_sparse": TreeSchema(B=2, D=3, root_branching=True, pairs="sampled", pairs_per_tree=4),
            # wide and shallow: 16 leaves from 4 branches at the root and one more branch point
            "wide": TreeSchema(B=4, D=2, root_branching=True, pairs="sampled", pairs_per_tree=8),
        }
    )
    # the n sweep (first figure) and the heat map of chain/tree ratios over the main axes
    curve: SweepSchema = dataclasses.field(
        default_factory=lambda: SweepSchema(label_variance=["large", "fisher"], budget=["comparisons", "tokens"])
    )
    map: SweepSchema = dataclasses.field(default_factory=_map_default)

    def cross_checks(self) -> list[str]:
        axes = [f.name for f in dataclasses.fields(SweepSchema)]
        if any(all(getattr(getattr(self, s), a) for a in axes) for s in ("curve", "map")):
            return []
        empty = [f"{s}.{a}" for s in ("curve", "map") for a in axes if not getattr(getattr(self, s), a)]
        return [f"{', '.join(empty)} = []: curve and map would both select no point, so nothing would be computed"]

    RESUME_STATE: ClassVar[tuple[str, ...]] = ("metrics.jsonl",)  # the finished cells
    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "curve.n_values": [64, 256],
        "map.n_values": [128],
        "queries.num_pairs": 24,
        "queries.bon_candidates": 4,
        "map.regime": ["polynomial"],
        "map.temperature": [1.0],
        "map.label_variance": ["large", "fisher"],
        "space.L": 6,
        "space.num_prompts": 4,
    }
