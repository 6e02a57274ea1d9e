"""The registry of studies is the one list: every study it names is whole (entry point, primary config,
schema, run, figures, presets, aggregation), and every other list of studies is derived from it."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from rm_theory.registry import STUDIES, resolve, steps
from tests.helpers import CONF

ROOT = CONF.parent
UTILITIES = {"__init__", "aggregate", "compare_runs"}  # experiments/ that are not studies' entry points


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_a_registered_study_is_whole(name):
    study = STUDIES[name]
    entry = (ROOT / "experiments" / f"{name}.py").read_text()
    assert f'register("{name}")' in entry and f"from rm_theory.studies import {name} as study" in entry
    primary = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert primary["defaults"][0] == f"{name}_schema", f"conf/{name}.yaml must list its schema first"
    assert dataclasses.is_dataclass(resolve(study.schema))
    assert resolve(study.run).__module__ == f"rm_theory.studies.{name}"
    writes_results = "results.csv" in (ROOT / "rm_theory" / "studies" / f"{name}.py").read_text()
    assert (study.columns is not None) == writes_results, "a study that writes results.csv is aggregated"
    assert (study.figures is not None) == writes_results
    if study.figures is not None:
        assert callable(resolve(study.figures))
    for preset in study.presets:
        head = (CONF / "experiment" / f"{preset}.yaml").read_text().splitlines()[:3]
        assert any(f"python -m experiments.{name}" in line for line in head), f"{preset}.yaml is not {name}'s"
    for step in study.steps:
        assert step.preset is None or step.preset in study.presets, f"{step.name}: preset of another study"


def test_every_study_module_entry_point_and_preset_is_registered():
    modules = {p.stem for p in (ROOT / "rm_theory" / "studies").glob("*.py")} - {"__init__"}
    entries = {p.stem for p in (ROOT / "experiments").glob("*.py")} - UTILITIES
    assert modules == entries == set(STUDIES)
    presets = sorted(p for s in STUDIES.values() for p in s.presets)
    assert presets == sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")), "each preset has one study"


def test_the_lists_of_studies_are_derived_from_the_registry():
    from rm_theory.config import SCHEMAS
    from rm_theory.config.reproduce import ReproduceSchema
    from rm_theory.runs.aggregate import KINDS, table_kind

    assert SCHEMAS == {n: s.schema for n, s in STUDIES.items()}
    assert KINDS == {n: s.columns for n, s in STUDIES.items() if s.columns is not None}
    for kind, columns in KINDS.items():
        assert table_kind([*columns, "seed"]) == kind, f"{kind}'s table is taken for another kind"
    cfg = ReproduceSchema()
    assert list(cfg.steps) == list(steps())
    for name, (study, step) in steps().items():
        assert cfg.steps[name].entry == study.name and cfg.steps[name].experiment == step.preset
    reproduce = yaml.safe_load((CONF / "reproduce.yaml").read_text())
    assert "steps" not in reproduce, "the steps are the registry's"
    assert set(reproduce["start_order"]) <= set(steps())


def test_studies_draw_figures_only_through_their_list():
    """A study's figure files come from its one list (`figures.<study>.figures`), which aggregation
    draws too: no study saves a figure of its own."""
    for path in sorted((ROOT / "rm_theory" / "studies").glob("*.py")):
        assert not re.search(r"\bsave\(", path.read_text()), f"{path.name} saves a figure outside its list"
