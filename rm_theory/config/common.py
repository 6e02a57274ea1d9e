"""Schemas shared by several entry points, and the builders that turn them into library objects.

One schema per concept, used wherever it is needed: a run's own fields (`RunSchema`), a response
space (`SpaceSchema`), tree data (`TreeSchema`), labels (`LabelSchema`), the IBN's label variance
(`LabelVarianceSchema`), a reward model (`ModelSchema`) and its trainer (`TrainSchema`). Hydra-side
classes end in `Schema`; the library's dataclasses they build end in `Config`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

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
# Seeds seed numpy generators (non-negative) and enter `jax.random.fold_in` (uint32).
MAX_SEED = 2**31 - 1


@dataclasses.dataclass
class RunSchema:
    """The fields every entry point has: the root seed, the smoke switch (`debug=smoke`), and
    whether a run folder of another fingerprint may be resumed (`force`; README "Outputs").

    A schema says what its run resumes from in `RESUME_STATE` (top-level names in the run folder
    that a rerun keeps; every other output of an earlier run is moved aside first), and which
    files and folders it reads in `inputs()` (fingerprinted by their content)."""

    seed: int = spec(0, ge=0, le=MAX_SEED)
    smoke: bool = False
    resume: str = spec("auto", choices=("auto", "force"))

    RESUME_STATE: ClassVar[tuple[str, ...]] = ()

    def inputs(self) -> dict[str, str]:
        """Dotted config key -> the file or folder that key makes this run read."""
        return {}


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
    field_seed: int = spec(0, ge=0, le=MAX_SEED)
    # Each seed of a study draws its own world (gold field and reference policy: field_seed + seed),
    # so intervals over seeds are over worlds; false shares one world across seeds.
    field_per_seed: bool = True
    # prefix-tree geometry
    V: int = spec(4, ge=2)
    L: int = spec(10, ge=1)
    regime: str = spec("polynomial", choices=REGIMES)
    I: float = spec(1.0, gt=0)  # Δ(0), the variance scale of the gold field (THEORY.md §2)
    alpha: float = spec(0.5, gt=0)  # decay exponent of Δ(depth) in the chosen regime
    policy_scale: float = spec(1.0, ge=0)  # spread of the reference policy's logits (0: uniform)
    # metric geometry
    K: int = spec(2, ge=1)
    gamma: float = spec(1.0, gt=0, lt=2)  # variogram exponent: c·h^γ is a valid variogram for 0 < γ < 2
    c: float = spec(1.0, gt=0)
    knn: int = spec(8, ge=1)


@dataclasses.dataclass
class TreeSchema:
    """Tree data: B children at D branch depths; which leaf pairs are compared; incomplete items."""

    B: int = spec(2, ge=2)
    D: int = spec(3, ge=1)
    branch_depths: list[int] | None = spec(None, ge=0)
    root_branching: bool = True
    pairs: str = spec("all", choices=("all", "sampled"))
    pairs_per_tree: int = spec(8, ge=1)
    incomplete_frac: float = spec(0.0, ge=0, le=1)


@dataclasses.dataclass
class LabelSchema:
    """`world.labels.LabelConfig` (THEORY.md §2 "Labels")."""

    beta: float = spec(1.0, gt=0)  # Bradley–Terry inverse temperature (0 would be coin flips, <0 reversed)
    cost_beta: float = spec(1.0, gt=0)
    rho: float = spec(0.0, ge=-1, le=1)  # a correlation (the cost mixes in sqrt(1 − ρ²) of harm)
    num_categories: int = spec(19, ge=1)
    cost_offset: float = spec(0.5, unbounded="a shift of the gold cost, in its own units")
    flip_rate: float = spec(0.0, ge=0, le=1)
    severity_cuts: list[float] = spec(
        default_factory=lambda: [0.5, 1.0], unbounded="cost levels, in the gold cost's units"
    )
    category_threshold: float = spec(1.0, unbounded="a level of a standardised harm component")


@dataclasses.dataclass
class LabelVarianceSchema:
    """`ibn.network.LabelVariance`: variance of the IBN's preference edges (constant ξ² or Fisher)."""

    model: str = spec("constant", choices=("constant", "fisher"))
    xi2: float = spec(4.0, gt=0)
    beta: float = spec(1.0, gt=0)


@dataclasses.dataclass
class ModelSchema:
    """`rm.models.ModelConfig` fields a user picks; input kind, vocabulary and widths follow from the data."""

    family: str = spec(
        "transformer", choices=("transformer", "mlp")
    )  # (the metric geometry and real features use the MLP)
    d_model: int = spec(32, ge=1)
    heads: int = spec(2, ge=1)
    layers: int = spec(2, ge=0)  # transformer blocks (0: embeddings and the head only)
    mlp_dim: int = spec(64, ge=1)
    embed_dim: int = spec(8, ge=1)
    hidden: list[int] = spec(default_factory=lambda: [64, 64], ge=1)


@dataclasses.dataclass
class TrainSchema:
    """`rm.step.TrainConfig` fields a user picks (the objective is set per model)."""

    ensemble_size: int = spec(4, ge=1)
    steps: int = spec(1000, ge=1)
    batch_size: int = spec(64, ge=1)
    group_batch_size: int = spec(8, ge=1)
    lr: float = spec(3e-3, gt=0)
    warmup_steps: int | None = spec(50, ge=0)  # None: a fifth of the steps, at most 50
    end_lr_frac: float = spec(0.1, ge=0, le=1)
    weight_decay: float = spec(1e-4, ge=0)
    clip_norm: float = spec(1.0, gt=0)
    bootstrap: bool = True
    # A Gaussian prior on scores: without it, small noisy data sets drive BT scores apart (ensemble
    # variance ~80 at n = 512 against ~3 with it; held-out gold accuracy is about the same).
    l2_coef: float = spec(0.05, ge=0)
    centre_coef: float = spec(1e-3, ge=0)
    harm_coef: float = spec(1.0, ge=0)
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
