"""Typed Hydra schemas: every entry point's config is a dataclass registered in the ConfigStore.

A misspelt key or a value of the wrong type then fails at composition, naming the key. Each
experiment's schema lives in its own module here and is named by its entry in the registry of
studies (`rm_theory.registry.STUDIES`); `register(name)` stores it as `<name>_schema`, which the
primary config `conf/<name>.yaml` lists first in its defaults.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rm_theory.registry import STUDIES, resolve

__all__ = ["SCHEMAS", "register", "schema"]

# entry point (experiments/<name>.py, conf/<name>.yaml) -> "module:Class" of its schema
SCHEMAS = {name: study.schema for name, study in STUDIES.items()}


def schema(name: str) -> type:
    return resolve(SCHEMAS[name])


def register(name: str) -> None:
    ConfigStore.instance().store(name=f"{name}_schema", node=schema(name))
