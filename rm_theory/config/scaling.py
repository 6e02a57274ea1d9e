"""Schema of the chain-vs-tree scaling study (`python -m experiments.ibn_scaling`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.config.common import LabelVarianceSchema, SeededRunSchema, SpaceSchema, TreeSchema


@dataclasses.dataclass
class QuerySchema:
    num_pairs: int = 256
    kinds: list[str] = dataclasses.field(
        default_factory=lambda: ["independent", "depth", "low_temp", "best_of_n", "in_tree"]
    )
    depths: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 3, 6])
    low_temperature: float = 0.3
    bon_candidates: int = 16


@dataclasses.dataclass
class SweepSchema:
    """Values of each study axis; every combination is a study point, run for every n."""

    n_values: list[int] = dataclasses.field(default_factory=lambda: [2**k for k in range(6, 17)])
    geometry: list[str] = dataclasses.field(default_factory=lambda: ["tree"])
    regime: list[str] = dataclasses.field(default_factory=lambda: ["polynomial"])
    label_variance: list[str] = dataclasses.field(default_factory=lambda: ["large"])
    budget: list[str] = dataclasses.field(default_factory=lambda: ["comparisons"])
    shape: list[str] = dataclasses.field(default_factory=lambda: ["root"])
    temperature: list[float] = dataclasses.field(default_factory=lambda: [1.0])


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
    methods: list[str] = dataclasses.field(default_factory=lambda: ["path", "resistance"])
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
