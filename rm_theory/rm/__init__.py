"""Reward and cost models: Flax NNX models, losses, the fused vmap+scan ensemble trainer with Orbax resume
and device meshes, evaluation against the gold reward and the IBN, the exact Bayesian learner of the
prefix-tree world (`bayes`) and the metric geometry's Gaussian process (`gp`); the exact learner of
labels of several kinds (`mixed_labels`), judges learned from a human seed set (`judges`), and vector reward
models and an ArmoRM-style model (`multidim`)."""

from rm_theory.rm import bayes, checkpoint, gp, judges, losses, metrics, mixed_labels, multidim, sharding
from rm_theory.rm.evaluate import (
    QueryPairs,
    correlation,
    cost_metrics,
    ibn_resistance,
    query_pairs,
    reward_metrics,
    theory_practice,
)
from rm_theory.rm.judges import LearnedJudge, learn_judge
from rm_theory.rm.mixed_labels import ExactModel
from rm_theory.rm.models import ModelConfig, init_model, make_model
from rm_theory.rm.multidim import VectorConfig, fit_armorm, train_vector_ensemble
from rm_theory.rm.program import Ensemble, ensemble_scores, setup_ensemble, step_config
from rm_theory.rm.sharding import DistributedConfig, make_mesh
from rm_theory.rm.step import TrainConfig, loss_and_metrics, make_optimizer, make_schedule
from rm_theory.rm.train import train_ensemble, train_reward_and_cost

__all__ = [
    "DistributedConfig",
    "Ensemble",
    "ExactModel",
    "LearnedJudge",
    "ModelConfig",
    "QueryPairs",
    "TrainConfig",
    "VectorConfig",
    "bayes",
    "checkpoint",
    "correlation",
    "cost_metrics",
    "ensemble_scores",
    "fit_armorm",
    "gp",
    "ibn_resistance",
    "init_model",
    "judges",
    "learn_judge",
    "loss_and_metrics",
    "losses",
    "make_mesh",
    "make_model",
    "make_optimizer",
    "make_schedule",
    "metrics",
    "mixed_labels",
    "multidim",
    "query_pairs",
    "reward_metrics",
    "setup_ensemble",
    "sharding",
    "step_config",
    "theory_practice",
    "train_ensemble",
    "train_reward_and_cost",
    "train_vector_ensemble",
]
