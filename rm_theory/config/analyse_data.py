"""Schema of the IBN report for a user's own preference data (`python -m experiments.analyse_data`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.config.common import RunSchema
from rm_theory.config.real_data import FeatureSchema


@dataclasses.dataclass
class DataFileSchema:
    path: str = ""  # a file (or a folder, for llmbar) in one of the loaders' formats
    format: str = "jsonl"  # a key of rm_theory.real.LOADERS (jsonl = the project's own format)
    max_pairs: int = 2000  # cap by whole prompts (0 = all); the encoder is the slow part


@dataclasses.dataclass
class ReportIBNSchema:
    """`ibn.real.IBNConfig`, the F(M) measurement and the design of the next comparisons."""

    k: int = 10
    c: float = 1.0
    gamma: float = 1.0
    xi2: float = 1.0
    mst: bool = True
    M_values: list[int] = dataclasses.field(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128, 256])
    f_pairs: int = 256
    least_determined: int = 20  # held-out pairs with the largest inference distance, listed
    next_batch: int = 50  # comparisons the design asks for next
    max_candidates: int = 20000  # candidate pairs (same prompt, not yet compared), sampled if more
    targets_dim: int = 0  # 0: exact design gains; k: a k-dimensional projection of the targets


@dataclasses.dataclass
class AnalyseDataSchema(RunSchema):
    data: DataFileSchema = dataclasses.field(default_factory=DataFileSchema)
    features: FeatureSchema = dataclasses.field(default_factory=FeatureSchema)
    ibn: ReportIBNSchema = dataclasses.field(default_factory=ReportIBNSchema)
    test_frac: float = 0.2  # held-out prompts: the pairs whose inference distance is reported
    fixture: bool = False  # write and analyse a tiny data set with a random encoder (smoke runs)
    figures: bool = True

    SMOKE: ClassVar[dict[str, Any]] = {
        "fixture": True,
        "data.max_pairs": 200,
        "ibn.k": 3,
        "ibn.M_values": [2, 4, 8],
        "ibn.f_pairs": 32,
        "ibn.next_batch": 5,
        "ibn.least_determined": 5,
    }
