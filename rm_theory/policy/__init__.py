"""Policies judged by the gold reward: tabulated policies of the prefix-tree world (`tables`), exact
Best-of-N, win rates and the KL-regularised optimum (`exact`), PPO (`ppo`), DPO (`dpo`), Safe RLHF's
Lagrangian (`safe_rlhf`) and its exact optimum (`constrained`), reward models as leaf tables, the
Safer-Instruct pipeline (`safer_instruct`), the AI-label study's world of labellers
(`label_sources`), and Safe RLHF with one cost per harm category (`multi_cost`)."""

from rm_theory.policy import constrained, dpo, exact, label_sources, multi_cost, ppo, safe_rlhf, safer_instruct, tables
from rm_theory.policy.constrained import lagrangian_policy
from rm_theory.policy.multi_cost import solve_lagrangian
from rm_theory.policy.rewards import exact_reward_table, leaf_inputs, reward_table, score_table
from rm_theory.policy.safer_instruct import GoldWorld, PipelineConfig, run_pipeline

__all__ = [
    "GoldWorld",
    "PipelineConfig",
    "constrained",
    "dpo",
    "exact",
    "exact_reward_table",
    "label_sources",
    "lagrangian_policy",
    "leaf_inputs",
    "multi_cost",
    "ppo",
    "reward_table",
    "run_pipeline",
    "safe_rlhf",
    "safer_instruct",
    "score_table",
    "solve_lagrangian",
    "tables",
]
