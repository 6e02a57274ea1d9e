"""Schema of the AI-label study (`python -m experiments.ai_labels`): preference data built without
annotators (the Safer-Instruct pipeline, AI judges) against human data at equal cost.

The real-data part's paths have no default here: `conf/ai_labels.yaml` points them at
`${data_root}/...` like `conf/real_data.yaml`; `real.fixture=true` writes tiny files in the two
formats (and a tiny random encoder) into the run folder instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from rm_theory.common.validate import spec
from rm_theory.config.common import LabelSchema, ModelSchema, SeededRunSchema, SpaceSchema, TrainSchema
from rm_theory.config.finetune_rm import FinetuneSchema, LMSchema, model_problems
from rm_theory.config.real_data import DataSetSchema, FeatureSchema, _head_train
from rm_theory.policy.safer_instruct import EXPERTS, INDUCTION, PREFERENCE_LABELS, REJECTED
from rm_theory.world.judges import BIAS_FEATURES

PARTS = ("world", "theory", "ablations", "judges", "real")
SOURCES = ("human", "ai", "mixed", "safer_instruct", "ai_learned")
# stages of the pipeline an ablation switches off ("none": the whole pipeline)
STAGES = ("none", "induction", "quality_filter", "expert", "rejected", "preference_filter")


@dataclasses.dataclass
class LabelCostSchema:
    """What one label costs, in any unit (budgets are in the same unit): a human's, an AI call's."""

    human: float = spec(1.0, gt=0)
    ai: float = spec(0.1, gt=0)


@dataclasses.dataclass
class JudgeSchema:
    """The AI judge (`world.judges`), calibrated to MT-Bench's figures or set by hand."""

    calibrate: bool = True  # solve β_H, β_J and λ from the targets below (else labels.beta, beta, bias)
    human_agreement: float = spec(0.81, gt=0.5, lt=1)
    judge_agreement: float = spec(0.85, gt=0.5, lt=1)
    bias_gap: float = spec(0.10, gt=-0.5, lt=0.5)  # how much more its bias makes it prefer the favoured side
    feature: str = spec("length", choices=BIAS_FEATURES)
    length_rho: float = spec(0.0, ge=-1, le=1)  # correlation of the verbosity field with the gold reward
    beta: float = spec(10.0, gt=0)  # without calibration
    bias: float = spec(0.0, unbounded="a bias of either sign, in logits per unit of the feature")
    sample: bool = True
    min_confidence: float = spec(0.0, ge=0, lt=0.5)  # keep AI labels at least 1/2 + this sure (0: all)
    calibration_pairs: int = spec(4096, ge=16)


@dataclasses.dataclass
class PipelineSchema:
    """`policy.safer_instruct.PipelineConfig` and the expert's constrained problem."""

    induction: str = spec("reverse", choices=INDUCTION)
    induction_temperature: float = spec(1.0, ge=0)
    quality_filter: bool = True
    quality_threshold: float = spec(0.0, unbounded="a level of the gold cost")
    expert: str = spec("constrained", choices=EXPERTS)
    expert_beta: float = spec(0.5, gt=0)  # the expert's KL coefficient
    expert_threshold: float = spec(-1.0, unbounded="a level of the gold cost")  # its budget E[c*] ≤ d
    responses_per_source: int = spec(1, ge=1)
    rejected: str = spec("source", choices=REJECTED)
    preference_filter: bool = True
    preference_margin: float = spec(0.1, ge=0, lt=0.5)
    preference_label: str = spec("safer", choices=PREFERENCE_LABELS)
    source_tilt: float = spec(0.0, ge=0)


@dataclasses.dataclass
class DownstreamSchema:
    """The policies judged by the gold world: Best-of-N on r̂ − w·ĉ, and Safe RLHF's exact optimum."""

    bon_n: int = spec(16, ge=1)
    bon_cost_weight: float = spec(1.0, ge=0)
    kl_beta: float = spec(0.5, gt=0)
    cost_threshold: float = spec(-1.0, unbounded="a level of the cost model")


@dataclasses.dataclass
class LearnedJudgeSchema:
    """A judge learned from a human-labelled seed set (`rm.judges`): used by the `ai_learned` source
    and measured in the `judges` part."""

    seed_pairs: int = spec(64, ge=2)
    ensemble_size: int = spec(4, ge=1)
    margin: float = spec(0.1, ge=0, lt=0.5)
    model: ModelSchema = dataclasses.field(default_factory=lambda: ModelSchema(family="mlp", hidden=[64, 64]))
    train: TrainSchema = dataclasses.field(
        default_factory=lambda: TrainSchema(ensemble_size=4, steps=400, batch_size=64, log_every=200, warmup_steps=20)
    )


@dataclasses.dataclass
class TheorySchema:
    """Predicted (mixed-label IBN) against measured, as the AI share and the bias vary at one budget."""

    budget: float = spec(64.0, gt=0)
    ai_shares: list[float] = spec(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], ge=0, le=1, nonempty=True)
    bias_scales: list[float] = spec(
        default_factory=lambda: [0.0, 1.0, 4.0, 16.0], ge=0, nonempty=True
    )  # × calibrated λ
    num_queries: int = spec(512, ge=2)
    draws: int = spec(64, ge=1)  # prior fields drawn per cell for the Gaussian check


@dataclasses.dataclass
class AblationSchema:
    budget: float = spec(64.0, gt=0)
    stages: list[str] = spec(default_factory=lambda: list(STAGES), choices=STAGES, nonempty=True)


def _real_datasets() -> dict[str, DataSetSchema]:
    return {
        "safer_instruct": DataSetSchema("safer-instruct", max_pairs=1500),
        "pku": DataSetSchema("pku-saferlhf", max_pairs=1500),
    }


@dataclasses.dataclass
class RealSchema:
    """Reward and cost models trained on Safer-Instruct's automatic pairs and PKU-SafeRLHF's human
    pairs, each evaluated on both held-out splits (split by prompt)."""

    # frozen: heads on frozen MiniLM features (`real.heads`, `model`, `train`); finetuned: score models
    # fine-tuned end to end (`real.transfer.finetuned_scorers`, `lm`, `finetune`)
    heads: str = spec("frozen", choices=("frozen", "finetuned"))
    fixture: bool = False
    data_seed: int = spec(0, ge=0)
    test_frac: float = spec(0.2, gt=0, lt=1)
    n_boot: int = spec(1000, ge=10)
    datasets: dict[str, DataSetSchema] = dataclasses.field(default_factory=_real_datasets)
    features: FeatureSchema = dataclasses.field(default_factory=FeatureSchema)
    model: ModelSchema = dataclasses.field(default_factory=lambda: ModelSchema(family="mlp", hidden=[128]))
    train: TrainSchema = dataclasses.field(default_factory=_head_train)
    lm: LMSchema = dataclasses.field(default_factory=lambda: LMSchema(max_len=128))
    finetune: FinetuneSchema = dataclasses.field(
        default_factory=lambda: FinetuneSchema(
            mode="top_k", top_layers=2, ensemble_size=4, bootstrap=True, lr=2e-4, batch_size=8
        )
    )

    def cross_checks(self) -> list[str]:
        out = []
        if self.heads == "finetuned" and not (self.fixture and not self.lm.path):
            out += model_problems("lm.path", self.lm.path)
        missing = {"safer_instruct", "pku"} - set(self.datasets)
        if missing:
            out.append(f"datasets: needs entries {sorted(missing)}")
        return out


@dataclasses.dataclass
class AILabelsSchema(SeededRunSchema):
    parts: list[str] = spec(
        default_factory=lambda: ["world", "theory", "ablations", "judges"], choices=PARTS, nonempty=True
    )
    sources: list[str] = spec(
        default_factory=lambda: ["human", "ai", "mixed", "safer_instruct", "ai_learned"], choices=SOURCES, nonempty=True
    )
    budgets: list[float] = spec(default_factory=lambda: [16.0, 64.0, 256.0, 1024.0], gt=0, nonempty=True)
    ai_share: float = spec(0.5, gt=0, lt=1)  # the mixed source's share of the budget spent on AI labels
    num_queries: int = spec(1024, ge=2)
    label_cost: LabelCostSchema = dataclasses.field(default_factory=LabelCostSchema)
    space: SpaceSchema = dataclasses.field(default_factory=lambda: SpaceSchema(num_prompts=16, V=4, L=6))
    labels: LabelSchema = dataclasses.field(default_factory=lambda: LabelSchema(rho=0.5))
    judge: JudgeSchema = dataclasses.field(default_factory=JudgeSchema)
    # the learner reads each AI label with the judge's slope (the mixed IBN's learner); false: with the human's
    learner_knows_judge: bool = True
    pipeline: PipelineSchema = dataclasses.field(default_factory=PipelineSchema)
    downstream: DownstreamSchema = dataclasses.field(default_factory=DownstreamSchema)
    learned: LearnedJudgeSchema = dataclasses.field(default_factory=LearnedJudgeSchema)
    theory: TheorySchema = dataclasses.field(default_factory=TheorySchema)
    ablations: AblationSchema = dataclasses.field(default_factory=AblationSchema)
    real: RealSchema = dataclasses.field(default_factory=RealSchema)
    data_root: str = ""
    figures: bool = True

    def cross_checks(self) -> list[str]:
        out = []
        if self.space.geometry != "tree":
            out.append(f"space.geometry = {self.space.geometry!r}: the study enumerates policies, it needs 'tree'")
        if self.space.V**self.space.L > 200_000:
            out.append(
                f"space.V^space.L = {self.space.V**self.space.L}: too many leaves per prompt to tabulate (200,000)"
            )
        return out

    def inputs(self) -> dict[str, str]:
        """The two real data sets and the encoder folder, when the real part runs on real files."""
        if "real" not in self.parts or self.real.fixture:
            return {}
        out = {f"real.datasets.{k}.path": v.path for k, v in sorted(self.real.datasets.items()) if v.path}
        if self.real.features.encoder_dir:
            out["real.features.encoder_dir"] = self.real.features.encoder_dir
        return out

    RESUME_STATE: ClassVar[tuple[str, ...]] = ("metrics.jsonl",)  # finished (part, seed) units
    # where features are cached, not what they are
    NOT_FINGERPRINTED: ClassVar[tuple[str, ...]] = ("real.features.cache_dir",)
    SMOKE: ClassVar[dict[str, Any]] = {
        "seeds": 2,
        "budgets": [8.0, 16.0],
        "num_queries": 64,
        "space.num_prompts": 4,
        "space.L": 4,
        "judge.calibration_pairs": 256,
        "learned.seed_pairs": 6,
        "learned.ensemble_size": 2,
        "learned.train.steps": 20,
        "learned.train.log_every": 10,
        "learned.train.warmup_steps": 2,
        "learned.train.batch_size": 16,
        "learned.model.hidden": [8],
        "theory.budget": 8.0,
        "theory.ai_shares": [0.0, 1.0],
        "theory.bias_scales": [0.0, 1.0],
        "theory.num_queries": 32,
        "theory.draws": 8,
        "ablations.budget": 8.0,
        "real.fixture": True,
        "real.n_boot": 20,
        "real.train.ensemble_size": 2,
        "real.train.steps": 20,
        "real.train.log_every": 20,
        "real.train.warmup_steps": 2,
        "real.train.batch_size": 16,
        "real.model.hidden": [8],
        "real.lm.max_len": 48,
        "real.finetune.top_layers": 1,
        "real.finetune.ensemble_size": 2,
        "real.finetune.lr": 1e-3,
    }
