"""Composing and running entry points inside the test process (no subprocess start-up cost)."""

from __future__ import annotations

import importlib
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from rm_theory.config import register
from rm_theory.runs import read_json, run_entry

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(name: str, overrides: list[str] | None = None):
    register(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [])


def run_smoke(name: str, module_run, out_dir: Path, overrides: list[str] | None = None) -> dict:
    """Runs an entry point's library `run` on its smoke config; returns summary.json."""
    overrides = ["debug=smoke", *(overrides or [])]
    cfg = compose_config(name, overrides)
    run_entry(cfg, module_run, out_dir=out_dir, overrides=overrides)  # as Hydra would: they win over smoke
    return read_json(out_dir / "summary.json")


def study_module(path: str):
    return importlib.import_module(path)
