"""Typed Hydra schemas: every entry point's config is a dataclass registered in the ConfigStore.

A misspelt key or a value of the wrong type then fails at composition, naming the key. Each
experiment module owns its schema; `register_all()` stores them under `<entry>_schema`.
"""

from __future__ import annotations

import importlib

from hydra.core.config_store import ConfigStore

# entry point name -> "module:Class" of its schema
SCHEMAS = {
    "ibn_scaling": "rm_theory.config.scaling:ScalingConfig",
}


def register_all() -> None:
    cs = ConfigStore.instance()
    for name, target in SCHEMAS.items():
        module, cls = target.split(":")
        cs.store(name=f"{name}_schema", node=getattr(importlib.import_module(module), cls))
