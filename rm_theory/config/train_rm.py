"""Schema of the reward/cost-model study (`python -m experiments.train_rm`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import (
    REGIMES,
    TOPOLOGIES,
    LabelSchema,
    LabelVarianceSchema,
    ModelSchema,
    SeededRunSchema,
    SpaceSchema,
    TrainSchema,
    TreeSchema,
)
from rm_theory.rm.sharding import DistributedConfig


@dataclasses.dataclass
class TrainRMSchema(SeededRunSchema):
    # sweep inside one run: every n × topology × regime × seed is one trained ensemble (or two with cost)
    n_values: list[int] = spec(default_factory=lambda: [256, 1024, 4096, 16384], ge=1, nonempty=True)
    topologies: list[str] = spec(default_factory=lambda: ["chain", "tree"], choices=TOPOLOGIES, nonempty=True)
    regimes: list[str] = spec(default_factory=lambda: ["polynomial"], choices=REGIMES, nonempty=True)
    budget: str = spec("comparisons", choices=("comparisons", "tokens"))
    tree_loss: str = spec(
        "pairs", choices=("pairs", "plackett_luce")
    )  # pairs (BT on tree pairs) | plackett_luce (rank each tree's items)
    cost: bool = False  # also train a Safe RLHF cost model (harm head on the 19 categories)
    num_queries: int = spec(1024, ge=1)
    space: SpaceSchema = dataclasses.field(default_factory=lambda: SpaceSchema(num_prompts=16, V=4, L=8))
    tree: TreeSchema = dataclasses.field(default_factory=lambda: TreeSchema(B=2, D=3))
    labels: LabelSchema = dataclasses.field(default_factory=LabelSchema)
    model: ModelSchema = dataclasses.field(default_factory=ModelSchema)
    train: TrainSchema = dataclasses.field(default_factory=TrainSchema)
    # The IBN's preference edges; "fisher" matches the BT labels the models see (conf/train_rm.yaml
    # ties ibn.beta to labels.beta).
    ibn: LabelVarianceSchema = dataclasses.field(default_factory=lambda: LabelVarianceSchema("fisher", 4.0))
    # devices=0 shards every ensemble over all devices (all hosts with initialize=true)
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)
    # Checkpoint each unit's training under <run>/checkpoints/ (every train.checkpoint_every steps),
    # so a killed run resumes inside the unit it was training; a finished unit's folder is removed.
    checkpoint: bool = True
    export_jsonl: bool = False  # write each data set of the largest n as data/<topology>_...jsonl.gz

    # finished points (metrics.jsonl), the unit in training (checkpoints/) and exported data sets
    RESUME_STATE: ClassVar[tuple[str, ...]] = ("metrics.jsonl", "checkpoints", "data")
    # how a run is checkpointed, not what it computes: a folder resumes under other settings
    NOT_FINGERPRINTED: ClassVar[tuple[str, ...]] = ("checkpoint", "train.checkpoint_every")
    SMOKE: ClassVar[dict[str, Any]] = {
        "checkpoint": False,
        "seeds": 2,
        "n_values": [64],
        "num_queries": 64,
        "space.num_prompts": 4,
        "space.L": 5,
        "train.ensemble_size": 2,
        "train.steps": 20,
        "train.log_every": 10,
        "train.warmup_steps": 2,
        "train.batch_size": 16,
        "model.d_model": 8,
        "model.mlp_dim": 16,
        "model.layers": 1,
        "model.hidden": [16],
        "export_jsonl": True,
    }
