"""Schemas of the downstream experiments (paper §5): Best-of-N, win rates (PPO, DPO), Safe RLHF.

Each task is a small prefix-tree `SpaceSchema` (V^L leaves per prompt are enumerated); the reward
and cost models are a `ModelSchema` trained by a `TrainSchema`, as in `train_rm`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import (
    TOPOLOGIES,
    LabelSchema,
    ModelSchema,
    SeededRunSchema,
    SpaceSchema,
    TrainSchema,
    TreeSchema,
    build,
    make_model,
    make_train,
)
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.step import TrainConfig
from rm_theory.world.labels import vocab_size
from rm_theory.world.spaces import PrefixTreeSpace


@dataclasses.dataclass
class PPOSchema:
    """`policy.ppo.PPOConfig`."""

    beta: float = spec(0.1, ge=0)
    steps: int = spec(200, ge=1)
    batch: int = spec(32, ge=1)
    epochs: int = spec(2, ge=1)
    clip: float = spec(0.2, gt=0)
    lr: float = spec(0.05, gt=0)
    baseline: str = spec("loo", choices=("exact", "learned", "loo"))
    log_every: int = spec(10, ge=1)

    def cross_checks(self) -> list[str]:
        # PPO runs in chunks of log_every steps (policy.ppo, policy.safe_rlhf)
        if self.steps % self.log_every:
            return [f"steps = {self.steps}: must be a multiple of log_every ({self.log_every})"]
        return []


@dataclasses.dataclass
class DPOSchema:
    """`policy.dpo.DPOConfig`."""

    beta: float = spec(0.1, gt=0)
    steps: int = spec(200, ge=1)
    lr: float = spec(0.05, gt=0)


def _task(**fields) -> SpaceSchema:
    return SpaceSchema(**{"V": 4, "L": 5, **fields})


def _tasks() -> dict[str, SpaceSchema]:
    # Stand-ins for HH-RLHF, GSM-8K and DialogSum, from most to least diverse (structural regime).
    return {
        "hh": _task(V=4, L=5, regime="polynomial"),
        "gsm": _task(V=3, L=6, regime="logarithmic"),
        "dialogsum": _task(V=2, L=9, regime="sublogarithmic"),
    }


def _model() -> ModelSchema:
    return ModelSchema(family="mlp", layers=1)


def _train() -> TrainSchema:
    # Small tabulated worlds: no score prior, one chunk, a fifth of the steps to warm up.
    return TrainSchema(
        ensemble_size=2,
        steps=400,
        lr=3e-3,
        weight_decay=1e-2,
        group_batch_size=16,
        l2_coef=0.0,
        warmup_steps=None,
        log_every=None,
    )


@dataclasses.dataclass
class DownstreamSchema(SeededRunSchema):
    """What the three downstream studies share: the data's labels and tree shape, the reward model."""

    labels: LabelSchema = dataclasses.field(default_factory=lambda: LabelSchema(beta=4.0))
    tree: TreeSchema = dataclasses.field(default_factory=TreeSchema)
    model: ModelSchema = dataclasses.field(default_factory=_model)
    train: TrainSchema = dataclasses.field(default_factory=_train)


@dataclasses.dataclass
class BestOfNSchema(DownstreamSchema):
    task: SpaceSchema = dataclasses.field(default_factory=lambda: _task(V=4, L=6))
    n: int = spec(1024, ge=1)  # comparisons per data set (chain and tree alike)
    log2_n_max: int = spec(9, ge=0)

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "n": 64,
        "train.steps": 20,
        "task.L": 3,
        "task.num_prompts": 2,
        "log2_n_max": 3,
    }


@dataclasses.dataclass
class WinRatesSchema(DownstreamSchema):
    tasks: dict[str, SpaceSchema] = dataclasses.field(default_factory=_tasks)
    run_tasks: list[str] = spec(default_factory=list, keys_of="tasks")  # which of `tasks` to run; empty = all
    n_values: list[int] = spec(default_factory=lambda: [1024], ge=1, nonempty=True)  # data-size axis
    incomplete_fracs: list[float] = spec(default_factory=lambda: [0.0], ge=0, le=1, nonempty=True)  # ablation
    ppo: PPOSchema = dataclasses.field(default_factory=PPOSchema)
    dpo: DPOSchema = dataclasses.field(default_factory=DPOSchema)
    run_dpo: bool = True
    # the KL-regularised optimum against the exact Bayesian learner's posterior mean (rm.bayes) of each data set
    exact_rm: bool = True
    judge_samples: int = spec(0, ge=0)  # 0: exact win probabilities; > 0: that many sample pairs per prompt

    RESUME_STATE: ClassVar[tuple[str, ...]] = ("metrics.jsonl",)  # the finished (task, n, fraction) points
    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "n_values": [64],
        "train.steps": 20,
        "ppo.steps": 10,
        "ppo.log_every": 5,
        "dpo.steps": 10,
        "run_tasks": ["hh"],
        "tasks.hh.V": 4,
        "tasks.hh.L": 3,
        "tasks.hh.num_prompts": 2,
    }


@dataclasses.dataclass
class SafeRLHFSchema(DownstreamSchema):
    seeds: int = spec(2, ge=1)
    # cost_beta = beta; rho: correlation of gold cost with gold reward (helpful responses are riskier)
    labels: LabelSchema = dataclasses.field(
        default_factory=lambda: LabelSchema(beta=4.0, cost_beta=4.0, rho=0.5, cost_offset=0.5)
    )
    task: SpaceSchema = dataclasses.field(default_factory=lambda: _task(V=4, L=5))
    topology: str = spec("tree", choices=TOPOLOGIES)  # the data the reward and cost models learn from
    n: int = spec(1024, ge=1)
    ppo: PPOSchema = dataclasses.field(default_factory=lambda: PPOSchema(steps=600))
    cost_source: str = spec("model", choices=("model", "gold"))  # model: a trained cost model; gold: the gold cost
    # In cost-model units; unconstrained PPO ends near −0.1 (violates it), λ = 0.5 near −6: it binds.
    threshold: float = spec(-1.0, unbounded="a cost level, in cost-model units")
    # λ moves in log space (so it starts above 0); it starts low: λ rises while the cost exceeds d, then settles
    lambda_init: float = spec(0.01, gt=0)
    lambda_lr: float = spec(0.1, gt=0)
    lambda_max: float | None = spec(None, gt=0)
    lambda_min: float | None = spec(None, gt=0)  # a floor (e.g. 0.05) keeps λ from collapsing early
    lambda_delay: int = spec(0, ge=0)
    dual: str = spec("log", choices=("log", "safe_rlhf"))  # policy.safe_rlhf: the two dual updates
    # dense enough below the Lagrangian's λ (~0.1) to draw the reward–cost frontier it should lie on
    fixed_lambdas: list[float] = spec(
        default_factory=lambda: [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0], ge=0
    )

    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 1,
        "n": 64,
        "train.steps": 20,
        "ppo.steps": 10,
        "ppo.log_every": 5,
        "task.L": 3,
        "task.num_prompts": 2,
        "fixed_lambdas": [0.0],
    }


def task_space(t: SpaceSchema, field_seed: int) -> PrefixTreeSpace:
    """A task's prefix-tree world; downstream studies draw one world per seed."""
    return build(PrefixTreeSpace, t, seed=field_seed)


def model_configs(space: PrefixTreeSpace, cfg: DownstreamSchema) -> tuple[ModelConfig, TrainConfig]:
    """The reward model on a task's tokens and its trainer."""
    mc = make_model(cfg.model, vocab=vocab_size(space), max_len=space.L + 1)
    return mc, make_train(cfg.train)
