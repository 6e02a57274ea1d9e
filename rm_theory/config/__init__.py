"""Typed Hydra schemas: every entry point's config is a dataclass registered in the ConfigStore.

A misspelt key or a value of the wrong type then fails at composition, naming the key. Each
experiment's schema lives in its own module here; `register(name)` stores it as `<name>_schema`,
which the primary config `conf/<name>.yaml` lists first in its defaults.
"""

from __future__ import annotations

import importlib

from hydra.core.config_store import ConfigStore

# entry point (experiments/<name>.py, conf/<name>.yaml) -> "module:Class" of its schema
SCHEMAS = {
    "ibn_scaling": "rm_theory.config.scaling:IBNScalingSchema",
    "train_rm": "rm_theory.config.train_rm:TrainRMSchema",
    "real_data": "rm_theory.config.real_data:RealDataSchema",
    "best_of_n": "rm_theory.config.downstream:BestOfNSchema",
    "win_rates": "rm_theory.config.downstream:WinRatesSchema",
    "safe_rlhf": "rm_theory.config.downstream:SafeRLHFSchema",
    "reproduce": "rm_theory.config.reproduce:ReproduceSchema",
    "analyse_data": "rm_theory.config.analyse_data:AnalyseDataSchema",
    "ideal_learner": "rm_theory.config.ideal_learner:IdealLearnerSchema",
    "design": "rm_theory.config.design:DesignSchema",
    "multi_dim": "rm_theory.config.multi_dim:MultiDimSchema",
}


def schema(name: str) -> type:
    module, cls = SCHEMAS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def register(name: str) -> None:
    ConfigStore.instance().store(name=f"{name}_schema", node=schema(name))
