"""Schemas of the theory on fine-tuned reward models: `python -m experiments.real_theory` (the trained
model's IBN against its errors and its ensemble's variance) and `python -m experiments.real_design`
(which real pairs to label).

Both are the fine-tuning study's runs (`config.finetune_rm`: the model folder, the data sets and their
prompt splits, the fine-tuning settings) repeated over `replicates` independent replicates: replicate
i draws its own selection and split (`data_seed + i`) and its own training randomness (`seed + i`),
so intervals over replicates are over independent units. Cost models and transfer sets are not part
of these studies (`cost`, `transfer_from` must stay empty).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.finetune_rm import FinetuneRMSchema, FinetuneSchema
from rm_theory.real.active import RECIPES, ActiveConfig
from rm_theory.real.model_ibn import VARIANTS, ModelIBNConfig


@dataclasses.dataclass
class ModelIBNSchema:
    """`real.model_ibn.ModelIBNConfig`: the IBNs of the trained model (scales fitted on training items)."""

    k: int = spec(10, ge=1)
    gamma: float = spec(1.0, gt=0)
    xi2: float = spec(4.0, gt=0)  # HP edge variance: 1/σ'(0), one Bradley–Terry label at even odds
    mst: bool = True
    grad_dim: int = spec(512, ge=1)
    fisher_prior: float = spec(1.0, gt=0)
    quantiles: int = spec(5, ge=2)


def make_ibn(cfg: ModelIBNSchema) -> ModelIBNConfig:
    return ModelIBNConfig(**dataclasses.asdict(cfg))


def _ensemble_train() -> FinetuneSchema:
    # K heads on one fine-tuned backbone, each on its own Poisson(1) weights: the ensemble's variance
    return FinetuneSchema(mode="top_k", top_layers=2, ensemble_size=4, bootstrap=True, lr=2e-4, batch_size=8)


@dataclasses.dataclass
class _Replicated(FinetuneRMSchema):
    replicates: int = spec(3, ge=2)  # independent splits and training seeds (the units of every interval)
    in_domain: list[str] = spec(default_factory=lambda: ["pku", "hh", "safer_instruct"], keys_of="datasets")
    cost: list[str] = spec(default_factory=list, keys_of="datasets")
    transfer_from: list[str] = spec(default_factory=list, keys_of="datasets")
    transfer_to: list[str] = spec(default_factory=list, keys_of="datasets")
    val_frac: float = spec(0.0, ge=0, le=0.9)
    train: FinetuneSchema = dataclasses.field(default_factory=_ensemble_train)

    SMOKE: ClassVar[dict[str, Any]] = {
        "fixture": True,
        "replicates": 2,
        "test_frac": 0.3,
        "in_domain": ["pku"],
        "model.max_len": 48,
        "train.batch_size": 8,
        "train.lr": 1e-3,
        "train.chunk_steps": 4,
        "train.buckets": 1,
        "train.top_layers": 1,
        "train.ensemble_size": 3,
        "baselines.features.max_len": 32,
        "ibn.k": 4,
        "ibn.grad_dim": 8,
    }

    def cross_checks(self) -> list[str]:
        out = list(getattr(super(), "cross_checks", list)())
        for key in ("cost", "transfer_from"):
            if getattr(self, key):
                out.append(
                    f"{key} = {getattr(self, key)}: must be empty (this study trains reward models on in_domain sets)"
                )
        return out


@dataclasses.dataclass
class RealTheorySchema(_Replicated):
    """Per set and replicate: an ensemble fine-tuned on the training prompts' pairs, then on the
    held-out prompts' pairs each predictor (the three IBNs' distances, the last-layer Laplace variance,
    the ensemble's variance) against the ensemble's variance and its errors."""

    ibn: ModelIBNSchema = dataclasses.field(default_factory=ModelIBNSchema)


@dataclasses.dataclass
class ActiveSchema:
    """`real.active.ActiveConfig`: the recipes, the rounds and the refitted heads."""

    recipes: list[str] = spec(default_factory=lambda: list(RECIPES), choices=RECIPES)
    init_pairs: int = spec(64, ge=2)  # the random seed set: the backbone is fine-tuned on it
    batch: int = spec(64, ge=1)
    budget: int = spec(512, ge=2)
    members: int = spec(8, ge=2)
    C: float = spec(1.0, gt=0)
    targets: int = spec(512, ge=1)
    targets_dim: int = spec(64, ge=1)
    design_rep: str = spec("hidden", choices=VARIANTS)  # the IBN the "ibn" recipe designs on

    def cross_checks(self) -> list[str]:
        if self.budget <= self.init_pairs:
            return [f"budget = {self.budget}: must exceed init_pairs = {self.init_pairs}"]
        return []


def make_active(cfg: ActiveSchema, ibn: ModelIBNSchema) -> ActiveConfig:
    kw = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "design_rep"}
    return ActiveConfig(**(kw | {"recipes": tuple(cfg.recipes), "ibn": make_ibn(ibn)}))


@dataclasses.dataclass
class RealDesignSchema(_Replicated):
    """Per set and replicate: the backbone fine-tuned on a random seed set of the pool (the training
    prompts' pairs), then each recipe's rounds of labels with the heads refitted, held-out accuracy
    after each round."""

    active: ActiveSchema = dataclasses.field(default_factory=ActiveSchema)
    ibn: ModelIBNSchema = dataclasses.field(default_factory=ModelIBNSchema)

    SMOKE: ClassVar[dict[str, Any]] = _Replicated.SMOKE | {
        "active.init_pairs": 8,
        "active.batch": 8,
        "active.budget": 24,
        "active.members": 3,
        "active.targets_dim": 8,
    }
