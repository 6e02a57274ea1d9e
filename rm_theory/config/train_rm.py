"""Schema of the reward/cost-model study (`python -m experiments.train_rm`)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.config.common import SpaceConfig, TreeConfig
from rm_theory.rm.sharding import DistributedConfig


@dataclasses.dataclass
class ModelFields:
    """`models.ModelConfig` fields a user picks; input kind, vocabulary and widths follow from the space."""

    family: str = "transformer"  # transformer | mlp (the metric geometry always uses the MLP)
    d_model: int = 32
    heads: int = 2
    layers: int = 2
    mlp_dim: int = 64
    embed_dim: int = 8
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])


@dataclasses.dataclass
class TrainFields:
    """`train.TrainConfig` fields (the objective is set per model)."""

    ensemble_size: int = 4
    steps: int = 1000
    batch_size: int = 64
    group_batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 50
    end_lr_frac: float = 0.1
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    bootstrap: bool = True
    # A Gaussian prior on scores: without it, small noisy data sets drive BT scores apart (ensemble
    # variance ~80 at n = 512 against ~3 with it; held-out gold accuracy is about the same).
    l2_coef: float = 0.05
    centre_coef: float = 1e-3
    harm_coef: float = 1.0
    log_every: int = 250


@dataclasses.dataclass
class LabelFields:
    """`labels.LabelConfig` (THEORY.md §2 "Labels")."""

    beta: float = 1.0
    cost_beta: float = 1.0
    rho: float = 0.0
    num_categories: int = 19
    cost_offset: float = 0.5
    flip_rate: float = 0.0
    severity_cuts: list[float] = dataclasses.field(default_factory=lambda: [0.5, 1.0])
    category_threshold: float = 1.0


@dataclasses.dataclass
class IBNFields:
    """Label variance of the IBN's preference edges; "fisher" matches the BT labels the models see."""

    model: str = "fisher"  # constant | fisher
    xi2: float = 4.0


@dataclasses.dataclass
class TrainRMConfig:
    seed: int = 0
    smoke: bool = False
    seeds: int = 3
    # sweep inside one run: every n × topology × regime × seed is one trained ensemble (or two with cost)
    n_values: list[int] = dataclasses.field(default_factory=lambda: [256, 1024, 4096, 16384])
    topologies: list[str] = dataclasses.field(default_factory=lambda: ["chain", "tree"])
    regimes: list[str] = dataclasses.field(default_factory=lambda: ["polynomial"])
    budget: str = "comparisons"  # comparisons | tokens
    tree_loss: str = "pairs"  # pairs (BT on tree pairs) | plackett_luce (rank each tree's items)
    cost: bool = False  # also train a Safe RLHF cost model (harm head on the 19 categories)
    num_queries: int = 1024
    space: SpaceConfig = dataclasses.field(default_factory=lambda: SpaceConfig(num_prompts=16, V=4, L=8))
    tree: TreeConfig = dataclasses.field(default_factory=lambda: TreeConfig(B=2, D=3))
    labels: LabelFields = dataclasses.field(default_factory=LabelFields)
    model: ModelFields = dataclasses.field(default_factory=ModelFields)
    train: TrainFields = dataclasses.field(default_factory=TrainFields)
    ibn: IBNFields = dataclasses.field(default_factory=IBNFields)
    # devices=0 shards every ensemble over all devices (all hosts with initialize=true)
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)
    export_jsonl: bool = False  # write each data set of the largest n as data/<topology>_...jsonl.gz

    SMOKE: ClassVar[dict[str, Any]] = {
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
