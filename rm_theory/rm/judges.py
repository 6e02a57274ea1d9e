"""Judges learned from a small human-labelled seed set: a reward model, then an ensemble with
confidence filtering (the labeller of RLAIF when no strong judge exists: the seed set's preferences
are distilled into a model that labels the rest; Lee et al. 2023, arXiv 2309.00267, §2; Bai et al.
2022, arXiv 2212.08073, §4).

The judge is a pair of K-member ensembles trained by `rm.train` on the seed comparisons, a reward
ensemble on the "better" labels and a Safe RLHF cost ensemble on the "safer" labels and the items'
safe labels (`rm.losses`). Member k states p_k = σ(s_k(a) − s_k(b)) for "a better" (σ(c_k(b) −
c_k(a)) for "a safer"): the trainer's Bradley–Terry scale, in which a score gap is a logit. The judge
labels greedily by the members' mean p̄ = mean_k p_k, states confidence max(p̄, 1 − p̄), and, with
confidence filtering, keeps a verdict only when every member takes the same side and the confidence
reaches 1/2 + margin. K = 1 is the plain reward-model judge (its filter is the margin alone).

Legend: N items, P comparisons, K ensemble members.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from scipy import special

from rm_theory.rm.models import ModelConfig
from rm_theory.rm.program import Ensemble
from rm_theory.rm.step import TrainConfig
from rm_theory.rm.train import train_reward_and_cost
from rm_theory.world.inputs import PrefData
from rm_theory.world.judges import Verdicts
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.synthetic import item_inputs


@dataclasses.dataclass(frozen=True)
class LearnedVerdicts(Verdicts):
    """Verdicts of a learned judge, with whether its members all took the same side and each member's
    stated probability (`prob_KxP`; member 0 alone is the plain reward-model judge)."""

    unanimous_P: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, bool))
    prob_KxP: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))

    def kept(self, margin: float) -> np.ndarray:
        """Confidence filtering: unanimous and at least 1/2 + `margin` sure."""
        return self.unanimous_P & self.confident(margin)


@dataclasses.dataclass
class LearnedJudge:
    """The reward and cost ensembles of a judge learned from a seed set."""

    space: PrefixTreeSpace
    reward: Ensemble
    cost: Ensemble

    def judge(self, a: Responses, b: Responses, question: str) -> LearnedVerdicts:
        """Verdicts on "a better" (`question="better"`) or "a safer" ("safer"); labels by p̄ > 1/2."""
        if question not in ("better", "safer"):
            raise ValueError(f"question must be 'better' or 'safer', got {question!r}")
        ens = self.reward if question == "better" else self.cost
        s_KxN = ens.score(item_inputs(self.space, Responses.concat([a, b])))
        P = len(a)
        gap_KxP = s_KxN[:, :P] - s_KxN[:, P:]
        p_KxP = special.expit(gap_KxP if question == "better" else -gap_KxP)
        p_P = p_KxP.mean(axis=0)
        side_KxP = p_KxP > 0.5
        unanimous = side_KxP.all(axis=0) | (~side_KxP).all(axis=0)
        return LearnedVerdicts((p_P > 0.5).astype(np.float32), p_P, unanimous, p_KxP)


def seed_data(space: PrefixTreeSpace, a: Responses, b: Responses, better_P, safer_P, safe_a, safe_b) -> PrefData:
    """The trainer's arrays for the human-labelled seed comparisons (items a then b)."""
    P = len(a)
    return PrefData(
        x=item_inputs(space, Responses.concat([a, b])),
        a_P=np.arange(P),
        b_P=P + np.arange(P),
        pref_P=np.asarray(better_P, np.float32),
        safer_P=np.asarray(safer_P, np.float32),
        safe_N=np.concatenate([safe_a, safe_b]).astype(np.float32),
    )


def learn_judge(
    space: PrefixTreeSpace, data: PrefData, mc: ModelConfig, tc: TrainConfig, key: jax.Array
) -> LearnedJudge:
    """Trains the judge's reward and cost ensembles on the seed data (`rm.train`)."""
    trained = train_reward_and_cost(mc, tc, data, key, progress=False)
    return LearnedJudge(space, trained["reward"][0], trained["cost"][0])
