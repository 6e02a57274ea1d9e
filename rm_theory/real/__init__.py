"""Real preference data: loaders of the public data sets (multi-dimensional ones: `multi_loaders`),
selection and splits by prompt, frozen encoder features (the encoder is `lm`'s) and the heads trained on
them with bootstrap intervals, baselines, chain-like vs tree-like comparison choice (`topology`),
Safer-Instruct's canned refusals (`safer_instruct`), heads trained on one data set tested on another
(`transfer`, with heads on frozen features or fine-tuned score models), real items as a score model's token
inputs (`tokens`), the IBN of a trained score model and the predictors of its errors (`model_ibn`), pool-based
active labelling recipes (`active`), and the smoke runs' tiny data sets (`write_fixture`)."""

from rm_theory.real import active, model_ibn, safer_instruct, tokens, topology
from rm_theory.real.active import RECIPES, ActiveConfig, fit_heads, labels_to_reach, run_recipe
from rm_theory.real.baselines import BowModel, baseline_eval, fit_bow_logistic, prefer_longer_accuracy, record_accuracy
from rm_theory.real.evaluation import Estimate, bootstrap_mean, cost_eval, reward_eval
from rm_theory.real.features import FeatureConfig, Items, featurize, item_embeddings, items_of
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.heads import feature_model, train_heads
from rm_theory.real.loaders import (
    LOADERS,
    load,
    load_gsm8k_solutions,
    load_hh_rlhf,
    load_jsonl,
    load_llmbar,
    load_pandalm,
    load_pku_saferlhf,
    load_safer_instruct,
    load_ultrafeedback,
    randomize_sides,
    split_by_prompt,
    split_hh_transcript,
)
from rm_theory.real.model_ibn import (
    PREDICTORS,
    ModelIBNConfig,
    head_gradients,
    item_vectors,
    predictor_scores,
    predictors,
)
from rm_theory.real.multi_loaders import (
    load_helpsteer2,
    load_helpsteer2_ratings,
    load_pku_saferlhf_dual,
    load_pku_saferlhf_single,
    load_safesora,
)
from rm_theory.real.safer_instruct import is_canned_refusal, refusal_counts
from rm_theory.real.selection import DataSpec, data_rng, load_selection, test_mask
from rm_theory.real.transfer import LMSettings, RealSet, cross_accuracy, finetuned_scorers, prepare_sets

__all__ = [
    "LOADERS",
    "PREDICTORS",
    "RECIPES",
    "ActiveConfig",
    "BowModel",
    "DataSpec",
    "Estimate",
    "FeatureConfig",
    "Items",
    "LMSettings",
    "ModelIBNConfig",
    "RealSet",
    "active",
    "baseline_eval",
    "bootstrap_mean",
    "cost_eval",
    "cross_accuracy",
    "data_rng",
    "feature_model",
    "featurize",
    "finetuned_scorers",
    "fit_bow_logistic",
    "fit_heads",
    "head_gradients",
    "is_canned_refusal",
    "item_embeddings",
    "item_vectors",
    "items_of",
    "labels_to_reach",
    "load",
    "load_gsm8k_solutions",
    "load_helpsteer2",
    "load_helpsteer2_ratings",
    "load_hh_rlhf",
    "load_jsonl",
    "load_llmbar",
    "load_pandalm",
    "load_pku_saferlhf",
    "load_pku_saferlhf_dual",
    "load_pku_saferlhf_single",
    "load_safer_instruct",
    "load_safesora",
    "load_selection",
    "load_ultrafeedback",
    "model_ibn",
    "predictor_scores",
    "predictors",
    "prefer_longer_accuracy",
    "prepare_sets",
    "randomize_sides",
    "record_accuracy",
    "refusal_counts",
    "reward_eval",
    "run_recipe",
    "safer_instruct",
    "split_by_prompt",
    "split_hh_transcript",
    "test_mask",
    "tokens",
    "topology",
    "train_heads",
    "write_fixture",
]
