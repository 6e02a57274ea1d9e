"""Schema of the IBN report for a user's own preference data (`python -m experiments.analyse_data`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import RunSchema
from rm_theory.config.real_data import FeatureSchema
from rm_theory.real.loaders import LOADERS


@dataclasses.dataclass
class DataFileSchema:
    path: str = ""  # a file (or a folder of such files) in one of the loaders' formats
    format: str = spec("jsonl", choices=tuple(LOADERS))  # a loader's name (jsonl = the project's own format)
    max_pairs: int = spec(2000, ge=0)  # cap by whole prompts (0 = all); the encoder is the slow part


@dataclasses.dataclass
class ReportIBNSchema:
    """`ibn.real.IBNConfig`, the F(M) measurement and the design of the next comparisons."""

    k: int = spec(10, ge=1)
    c: float = spec(1.0, gt=0)
    gamma: float = spec(1.0, gt=0)
    xi2: float = spec(1.0, gt=0)
    mst: bool = True
    M_values: list[int] = spec(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128, 256], ge=1)
    f_pairs: int = spec(256, ge=2)
    least_determined: int = spec(20, ge=0)  # held-out pairs with the largest inference distance, listed
    next_batch: int = spec(50, ge=1)  # comparisons the design asks for next
    max_candidates: int = spec(20000, ge=0)  # candidate pairs (same prompt, not yet compared), sampled if more
    targets_dim: int = spec(0, ge=0)  # 0: exact design gains; k: a k-dimensional projection of the targets


@dataclasses.dataclass
class AnalyseDataSchema(RunSchema):
    data: DataFileSchema = dataclasses.field(default_factory=DataFileSchema)
    features: FeatureSchema = dataclasses.field(default_factory=FeatureSchema)
    ibn: ReportIBNSchema = dataclasses.field(default_factory=ReportIBNSchema)
    test_frac: float = spec(0.2, gt=0, le=0.9)  # held-out prompts: the pairs whose inference distance is reported
    fixture: bool = False  # write and analyse a tiny data set with a random encoder (smoke runs)
    figures: bool = True
    # A trained score model's folder (Hugging Face layout, e.g. a finetune_rm run's models/<set>/ or
    # any reward model): the IB edges come from its pooled hidden states of each (prompt, response),
    # the vector its head reads, instead of the frozen encoder's embeddings (`features`).
    score_model: str = ""

    def inputs(self) -> dict[str, str]:
        # the fixture replaces the encoder, and the data only when data.path names none; without the
        # fixture data.path must name the file (or folder) to analyse
        out = {"data.path": self.data.path} if self.data.path or not self.fixture else {}
        if self.features.encoder_dir and not self.fixture:
            out["features.encoder_dir"] = self.features.encoder_dir
        if self.score_model:
            out["score_model"] = self.score_model
        return out

    SMOKE: ClassVar[dict[str, Any]] = {
        "fixture": True,
        "data.max_pairs": 200,
        "ibn.k": 3,
        "ibn.M_values": [2, 4, 8],
        "ibn.f_pairs": 32,
        "ibn.next_batch": 5,
        "ibn.least_determined": 5,
    }
