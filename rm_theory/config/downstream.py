"""Schemas of the downstream experiments: Best-of-N, win rates (PPO, DPO), Safe RLHF."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.config.common import TreeConfig, build
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import TrainConfig
from rm_theory.world.labels import vocab_size
from rm_theory.world.spaces import PrefixTreeSpace


@dataclasses.dataclass
class TaskConfig:
    """A synthetic task: a small prefix-tree space (V^L leaves per prompt are enumerated)."""

    V: int = 4
    L: int = 5
    num_prompts: int = 16
    regime: str = "polynomial"
    I: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    policy_scale: float = 1.0


@dataclasses.dataclass
class RMConfig:
    """Reward (and cost) model ensembles trained by `rm_theory.rm.train`; policies use the mean."""

    family: str = "mlp"
    embed_dim: int = 8
    hidden: list[int] = dataclasses.field(default_factory=lambda: [64, 64])
    d_model: int = 32
    layers: int = 1
    heads: int = 2
    ensemble_size: int = 2
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2


@dataclasses.dataclass
class PPOSchema:
    beta: float = 0.1
    steps: int = 200
    batch: int = 32
    epochs: int = 2
    clip: float = 0.2
    lr: float = 0.05
    baseline: str = "loo"  # exact | learned | loo
    log_every: int = 10


@dataclasses.dataclass
class DPOSchema:
    beta: float = 0.1
    steps: int = 200
    lr: float = 0.05


def _tasks() -> dict[str, TaskConfig]:
    # Stand-ins for HH-RLHF, GSM-8K and DialogSum, from most to least diverse (structural regime).
    return {
        "hh": TaskConfig(V=4, L=5, regime="polynomial"),
        "gsm": TaskConfig(V=3, L=6, regime="logarithmic"),
        "dialogsum": TaskConfig(V=2, L=9, regime="sublogarithmic"),
    }


@dataclasses.dataclass
class BestOfNConfig:
    seed: int = 0
    smoke: bool = False
    seeds: int = 3
    task: TaskConfig = dataclasses.field(default_factory=lambda: TaskConfig(V=4, L=6))
    n: int = 1024  # comparisons per data set (chain and tree alike)
    label_beta: float = 4.0
    tree: TreeConfig = dataclasses.field(default_factory=TreeConfig)
    rm: RMConfig = dataclasses.field(default_factory=RMConfig)
    log2_n_max: int = 9

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "n": 64,
        "rm.steps": 20,
        "task.L": 3,
        "task.num_prompts": 2,
        "log2_n_max": 3,
    }


@dataclasses.dataclass
class WinRatesConfig:
    seed: int = 0
    smoke: bool = False
    seeds: int = 3
    tasks: dict[str, TaskConfig] = dataclasses.field(default_factory=_tasks)
    run_tasks: list[str] = dataclasses.field(default_factory=list)  # which of `tasks` to run; empty = all
    n_values: list[int] = dataclasses.field(default_factory=lambda: [1024])  # data-size axis
    incomplete_fracs: list[float] = dataclasses.field(default_factory=lambda: [0.0])  # tree-data ablation
    label_beta: float = 4.0
    tree: TreeConfig = dataclasses.field(default_factory=TreeConfig)
    rm: RMConfig = dataclasses.field(default_factory=RMConfig)
    ppo: PPOSchema = dataclasses.field(default_factory=PPOSchema)
    dpo: DPOSchema = dataclasses.field(default_factory=DPOSchema)
    run_dpo: bool = True
    judge_samples: int = 0  # 0: exact win probabilities; > 0: that many sample pairs per prompt

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "n_values": [64],
        "rm.steps": 20,
        "ppo.steps": 10,
        "ppo.log_every": 5,
        "dpo.steps": 10,
        "run_tasks": ["hh"],
        "tasks.hh.V": 4,
        "tasks.hh.L": 3,
        "tasks.hh.num_prompts": 2,
    }


@dataclasses.dataclass
class SafeRLHFConfig:
    seed: int = 0
    smoke: bool = False
    seeds: int = 2
    task: TaskConfig = dataclasses.field(default_factory=lambda: TaskConfig(V=4, L=5))
    topology: str = "tree"  # chain | tree: the data the reward and cost models learn from
    n: int = 1024
    label_beta: float = 4.0
    rho: float = 0.5  # correlation of gold cost with gold reward (helpful responses are riskier)
    cost_offset: float = 0.5
    tree: TreeConfig = dataclasses.field(default_factory=TreeConfig)
    rm: RMConfig = dataclasses.field(default_factory=RMConfig)
    ppo: PPOSchema = dataclasses.field(default_factory=lambda: PPOSchema(steps=300))
    cost_source: str = "model"  # model: a trained cost model; gold: the gold cost itself
    threshold: float = -1.0  # in cost-model units: π_ref sits near −1.7, unconstrained PPO near −0.3
    lambda_init: float = 1.0
    lambda_lr: float = 0.05
    lambda_max: float | None = None
    lambda_min: float | None = 0.05  # floor: an exploited cost model drives λ to ~0 early
    lambda_delay: int = 0
    fixed_lambdas: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.5, 2.0, 8.0])

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "n": 64,
        "rm.steps": 20,
        "ppo.steps": 10,
        "ppo.log_every": 5,
        "task.L": 3,
        "task.num_prompts": 2,
        "fixed_lambdas": [0.0],
    }


def task_space(t: TaskConfig, field_seed: int) -> PrefixTreeSpace:
    return build(PrefixTreeSpace, t, seed=field_seed)


def model_configs(space: PrefixTreeSpace, rm: RMConfig) -> tuple[ModelConfig, TrainConfig]:
    """The reward model and trainer of a downstream study; warm-up is a fifth of the steps (≤ 50)."""
    mc = ModelConfig(
        family=rm.family,
        vocab=vocab_size(space),
        max_len=space.L + 1,
        embed_dim=rm.embed_dim,
        hidden=tuple(rm.hidden),
        d_model=rm.d_model,
        layers=rm.layers,
        heads=rm.heads,
    )
    tc = TrainConfig(
        ensemble_size=rm.ensemble_size,
        steps=rm.steps,
        batch_size=rm.batch_size,
        lr=rm.lr,
        weight_decay=rm.weight_decay,
        warmup_steps=min(50, rm.steps // 5),
        log_every=rm.steps,
    )
    return mc, tc
