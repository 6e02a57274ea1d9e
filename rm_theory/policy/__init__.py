"""Policies judged by the gold reward: tabulated policies of the prefix-tree world (`tables`), exact
Best-of-N, win rates and the KL-regularised optimum (`exact`), PPO (`ppo`), DPO (`dpo`), Safe RLHF's
Lagrangian (`safe_rlhf`), and reward models as leaf tables."""

from rm_theory.policy import dpo, exact, ppo, safe_rlhf, tables
from rm_theory.policy.rewards import exact_reward_table, leaf_inputs, reward_table, score_table

__all__ = [
    "dpo",
    "exact",
    "exact_reward_table",
    "leaf_inputs",
    "ppo",
    "reward_table",
    "safe_rlhf",
    "score_table",
    "tables",
]
