"""Config pieces shared by several experiments, and the builders that turn them into objects."""

from __future__ import annotations

import dataclasses

from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, ResponseSpace, TreeShape
from rm_theory.world.topology import TreeSampling


@dataclasses.dataclass
class SpaceConfig:
    """A response space (THEORY.md §2). `geometry` picks which of the two sets of fields applies."""

    geometry: str = "tree"  # tree | metric
    num_prompts: int = 16
    temperature: float = 1.0
    field_seed: int = 0
    # prefix-tree geometry
    V: int = 4
    L: int = 10
    regime: str = "polynomial"  # polynomial | logarithmic | sublogarithmic
    I: float = 1.0
    alpha: float = 0.5
    policy_scale: float = 1.0
    # metric geometry
    K: int = 2
    gamma: float = 1.0
    c: float = 1.0
    knn: int = 8


@dataclasses.dataclass
class TreeConfig:
    """Tree data: B children at D branch depths; which leaf pairs are compared; incomplete items."""

    B: int = 2
    D: int = 3
    branch_depths: list[int] | None = None
    root_branching: bool = True
    pairs: str = "all"  # all | sampled
    pairs_per_tree: int = 8
    incomplete_frac: float = 0.0


def build(cls: type, fields: object, **overrides):
    """A library dataclass from the same-named fields of a config dataclass (lists become tuples).

    Config schemas mirror library dataclasses (`labels.LabelConfig`, `train.TrainConfig`, ...) so
    that Hydra can type-check them; this copies them across without listing every field twice.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in dataclasses.asdict(fields).items() if k in names}
    return cls(**{**values, **overrides})


def make_space(cfg: SpaceConfig) -> ResponseSpace:
    if cfg.geometry == "tree":
        return PrefixTreeSpace(
            V=cfg.V,
            L=cfg.L,
            num_prompts=cfg.num_prompts,
            regime=cfg.regime,
            I=cfg.I,
            alpha=cfg.alpha,
            temperature=cfg.temperature,
            policy_scale=cfg.policy_scale,
            seed=cfg.field_seed,
        )
    if cfg.geometry == "metric":
        return MetricSpace(
            K=cfg.K,
            num_prompts=cfg.num_prompts,
            gamma=cfg.gamma,
            c=cfg.c,
            knn=cfg.knn,
            temperature=cfg.temperature,
            seed=cfg.field_seed,
        )
    raise ValueError(f"space.geometry must be 'tree' or 'metric', got {cfg.geometry!r}")


def make_tree_sampling(cfg: TreeConfig) -> TreeSampling:
    depths = tuple(cfg.branch_depths) if cfg.branch_depths is not None else None
    shape = TreeShape(B=cfg.B, D=cfg.D, branch_depths=depths, root_branching=cfg.root_branching)
    return TreeSampling(
        shape=shape, pairs=cfg.pairs, pairs_per_tree=cfg.pairs_per_tree, incomplete_frac=cfg.incomplete_frac
    )
