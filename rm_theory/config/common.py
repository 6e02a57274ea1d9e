"""Schemas shared by several entry points, and the builders that turn them into library objects.

One schema per concept, used wherever it is needed: a run's own fields (`RunSchema`), a response
space (`SpaceSchema`), tree data (`TreeSchema`), labels (`LabelSchema`), the IBN's label variance
(`LabelVarianceSchema`), a reward model (`ModelSchema`) and its trainer (`TrainSchema`). Hydra-side
classes end in `Schema`; the library's dataclasses they build end in `Config`.
"""

from __future__ import annotations

import dataclasses

from rm_theory.common.validate import spec
from rm_theory.ibn.network import LabelVariance
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.step import TrainConfig
from rm_theory.world.labels import LabelConfig
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, ResponseSpace, TreeShape
from rm_theory.world.topology import TreeSampling

GEOMETRIES = ("tree", "metric")
REGIMES = ("polynomial", "logarithmic", "sublogarithmic")
TOPOLOGIES = ("chain", "tree")


@dataclasses.dataclass
class RunSchema:
    """The fields every entry point has: the root seed, the smoke switch (`debug=smoke`), and
    whether a run folder of another fingerprint may be resumed (`force`; README "Outputs")."""

    seed: int = 0
    smoke: bool = False
    resume: str = spec("auto", choices=("auto", "force"))


@dataclasses.dataclass
class SeededRunSchema(RunSchema):
    """A run repeated over `seeds` consecutive seeds from `seed` (intervals are over them)."""

    seeds: int = spec(3, ge=1)


@dataclasses.dataclass
class SpaceSchema:
    """A response space (THEORY.md §2). `geometry` picks which of the two sets of fields applies."""

    geometry: str = spec("tree", choices=GEOMETRIES)
    num_prompts: int = spec(16, ge=1)
    temperature: float = spec(1.0, gt=0)
    field_seed: int = 0
    # Each seed of a study draws its own world (gold field and reference policy: field_seed + seed),
    # so intervals over seeds are over worlds; false shares one world across seeds.
    field_per_seed: bool = True
    # prefix-tree geometry
    V: int = spec(4, ge=2)
    L: int = spec(10, ge=1)
    regime: str = spec("polynomial", choices=REGIMES)
    I: float = 1.0
    alpha: float = 0.5
    policy_scale: float = 1.0
    # metric geometry
    K: int = spec(2, ge=1)
    gamma: float = 1.0
    c: float = 1.0
    knn: int = spec(8, ge=1)


@dataclasses.dataclass
class TreeSchema:
    """Tree data: B children at D branch depths; which leaf pairs are compared; incomplete items."""

    B: int = spec(2, ge=2)
    D: int = spec(3, ge=1)
    branch_depths: list[int] | None = None
    root_branching: bool = True
    pairs: str = spec("all", choices=("all", "sampled"))
    pairs_per_tree: int = spec(8, ge=1)
    incomplete_frac: float = spec(0.0, ge=0, le=1)


@dataclasses.dataclass
class LabelSchema:
    """`world.labels.LabelConfig` (THEORY.md §2 "Labels")."""

    beta: float = 1.0
    cost_beta: float = 1.0
    rho: float = 0.0
    num_categories: int = spec(19, ge=1)
    cost_offset: float = 0.5
    flip_rate: float = spec(0.0, ge=0, le=1)
    severity_cuts: list[float] = dataclasses.field(default_factory=lambda: [0.5, 1.0])
    category_threshold: float = 1.0


@dataclasses.dataclass
class LabelVarianceSchema:
    """`ibn.network.LabelVariance`: variance of the IBN's preference edges (constant ξ² or Fisher)."""

    model: str = spec("constant", choices=("constant", "fisher"))
    xi2: float = spec(4.0, gt=0)
    beta: float = 1.0


@dataclasses.dataclass
class ModelSchema:
    """`rm.models.ModelConfig` fields a user picks; input kind, vocabulary and widths follow from the data."""

    family: str = spec(
        "transformer", choices=("transformer", "mlp")
    )  # (the metric geometry and real features use the MLP)
    d_model: int = 32
    heads: int = 2
    layers: int = 2
    mlp_dim: int = 64
    embed_dim: int = 8
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])


@dataclasses.dataclass
class TrainSchema:
    """`rm.step.TrainConfig` fields a user picks (the objective is set per model)."""

    ensemble_size: int = spec(4, ge=1)
    steps: int = spec(1000, ge=1)
    batch_size: int = spec(64, ge=1)
    group_batch_size: int = spec(8, ge=1)
    lr: float = spec(3e-3, gt=0)
    warmup_steps: int | None = spec(50, ge=0)  # None: a fifth of the steps, at most 50
    end_lr_frac: float = 0.1
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    bootstrap: bool = True
    # A Gaussian prior on scores: without it, small noisy data sets drive BT scores apart (ensemble
    # variance ~80 at n = 512 against ~3 with it; held-out gold accuracy is about the same).
    l2_coef: float = 0.05
    centre_coef: float = 1e-3
    harm_coef: float = 1.0
    log_every: int | None = spec(250, ge=1)  # None: one chunk of all the steps
    # Steps between training checkpoints where a study passes a checkpoint folder (rounded up to a
    # multiple of log_every; 0: only at the end). Saves are asynchronous: at 500 steps the overhead
    # is within noise (benchmarks/bench_checkpoint.py).
    checkpoint_every: int = spec(500, ge=0)


def build(cls: type, fields: object, **overrides):
    """A library dataclass from the same-named fields of a schema (lists become tuples).

    Schemas mirror library dataclasses so that Hydra can type-check them; this copies them across
    without listing every field twice.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in dataclasses.asdict(fields).items() if k in names}
    return cls(**{**values, **overrides})


def make_space(cfg: SpaceSchema, seed: int = 0) -> ResponseSpace:
    """The space of a study's `seed`: its own world when `field_per_seed`, else `field_seed`'s."""
    field_seed = cfg.field_seed + (seed if cfg.field_per_seed else 0)
    if cfg.geometry == "tree":
        return build(PrefixTreeSpace, cfg, seed=field_seed)
    if cfg.geometry == "metric":
        return build(MetricSpace, cfg, seed=field_seed)
    raise ValueError(f"space.geometry must be 'tree' or 'metric', got {cfg.geometry!r}")


def make_tree_sampling(cfg: TreeSchema) -> TreeSampling:
    depths = tuple(cfg.branch_depths) if cfg.branch_depths is not None else None
    shape = TreeShape(B=cfg.B, D=cfg.D, branch_depths=depths, root_branching=cfg.root_branching)
    return TreeSampling(
        shape=shape, pairs=cfg.pairs, pairs_per_tree=cfg.pairs_per_tree, incomplete_frac=cfg.incomplete_frac
    )


def make_labels(cfg: LabelSchema) -> LabelConfig:
    return build(LabelConfig, cfg)


def make_label_variance(cfg: LabelVarianceSchema) -> LabelVariance:
    return build(LabelVariance, cfg)


def make_model(cfg: ModelSchema, **inputs) -> ModelConfig:
    """The model config; `inputs` are what the data decides (input kind, vocabulary, widths, family)."""
    return build(ModelConfig, cfg, **inputs)


def make_train(cfg: TrainSchema, **overrides) -> TrainConfig:
    tc = build(TrainConfig, cfg, **overrides)
    warmup = min(50, tc.steps // 5) if cfg.warmup_steps is None else tc.warmup_steps
    log_every = tc.steps if cfg.log_every is None else tc.log_every
    every = -(-cfg.checkpoint_every // log_every) * log_every  # the trainer saves at chunk ends only
    return dataclasses.replace(tc, warmup_steps=warmup, log_every=log_every, checkpoint_every=every)
