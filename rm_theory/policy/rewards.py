"""Reward models as tables over a tabulated space's leaves: what PPO, DPO, Best-of-N and Safe RLHF
optimise against (paper §5). A trained ensemble's mean score of every leaf is the reward table.

Legend: X prompts, Y responses (leaves of a prompt), N items, P comparisons, C harm categories, K
ensemble members.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from rm_theory.rm import bayes
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import Ensemble, TrainConfig, train_ensemble
from rm_theory.world import synthetic
from rm_theory.world.inputs import PrefData
from rm_theory.world.labels import Labels, model_tokens
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.topology import Comparisons


def to_pref_data(space: PrefixTreeSpace, comps: Comparisons, labels: Labels) -> PrefData:
    """The trainer's arrays; downstream cost models learn safety without the harm-category head."""
    return dataclasses.replace(synthetic.to_pref_data(space, comps, labels).data, harm_NxC=None)


def leaf_inputs(space: PrefixTreeSpace) -> np.ndarray:
    """Model tokens of every leaf of every prompt, prompt-major (P·Y rows)."""
    leaves = space.enumerate(0).data
    Y = len(leaves)
    return np.concatenate([model_tokens(space, Responses(np.full(Y, p), leaves)) for p in range(space.num_prompts)])


def score_table(ens: Ensemble, space: PrefixTreeSpace, x_all: np.ndarray) -> np.ndarray:
    """Mean ensemble score of every leaf, `s_XxY`."""
    return ens.score(x_all).mean(0).reshape(space.num_prompts, -1)


def reward_table(
    space: PrefixTreeSpace,
    comps: Comparisons,
    labels: Labels,
    mc: ModelConfig,
    tc: TrainConfig,
    key: jax.Array,
    x_all: np.ndarray,
) -> tuple[np.ndarray, float]:
    """The reward table of an ensemble trained on one data set, and its last training accuracy."""
    ens, hist = train_ensemble(mc, tc, to_pref_data(space, comps, labels), key, progress=False)
    return score_table(ens, space, x_all), float(hist[-1].get("acc", np.nan))


def exact_reward_table(space: PrefixTreeSpace, comps: Comparisons, labels: Labels, beta: float) -> np.ndarray:
    """The exact Bayesian learner's posterior mean of every leaf, `mu_XxY` (`rm.bayes`: the gold
    prior of THEORY.md §2 with a Laplace fit of the Bradley–Terry labels): the reward model the IBN
    describes, with no training noise."""
    leaves = space.enumerate(0).data
    Y = len(leaves)
    items = Responses.concat([Responses(np.full(Y, p), leaves) for p in range(space.num_prompts)])
    fit = bayes.fit(space, comps.a, comps.b, labels.better_P, queries=items, beta=beta)
    return fit.posterior.item_mean(fit.query_index(np.arange(len(items)))).reshape(space.num_prompts, Y)
