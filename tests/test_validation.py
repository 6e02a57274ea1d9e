"""Overrides mean what they say: smoke sets defaults, explicit values win, and every value is
checked once at config time against what its field allows, naming the key."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rm_theory.common.validate import ConfigError, problems
from rm_theory.config import SCHEMAS, schema
from rm_theory.runs import read_json, run_entry
from rm_theory.studies import ibn_scaling
from tests.helpers import CONF, compose_config, run_smoke

ROOT = Path(__file__).resolve().parents[1]


def _never(cfg, runlog):
    raise AssertionError("main ran on an invalid config")


def _run(name: str, overrides: list[str], out: Path, main=_never):
    overrides = ["debug=smoke", *overrides]
    return run_entry(compose_config(name, overrides), main, out_dir=out, overrides=overrides)


CASES = [
    ("safe_rlhf", "cost_source=foo", "cost_source = 'foo': must be one of 'model', 'gold'"),
    ("safe_rlhf", "topology=forest", "topology = 'forest': must be one of 'chain', 'tree'"),
    ("ibn_scaling", "space.regime=bar", "space.regime = 'bar': must be one of 'polynomial'"),
    ("ibn_scaling", "map.regime=[bar]", "map.regime[0] = 'bar': must be one of"),
    ("ibn_scaling", "curve.label_variance=[nope]", "curve.label_variance[0] = 'nope': must be one of 'large'"),
    ("ibn_scaling", "seeds=0", "seeds = 0: must be >= 1"),
    ("ibn_scaling", "seeds=-2", "seeds = -2: must be >= 1"),
    ("ibn_scaling", "queries.num_pairs=-5", "queries.num_pairs = -5: must be >= 1"),
    ("ibn_scaling", "curve.n_values=[64,0]", "curve.n_values[1] = 0: must be >= 1"),
    ("train_rm", "train.steps=-5", "train.steps = -5: must be >= 1"),
    ("train_rm", "train.ensemble_size=0", "train.ensemble_size = 0: must be >= 1"),
    ("train_rm", "n_values=[-5]", "n_values[0] = -5: must be >= 1"),
    ("train_rm", "n_values=[]", "n_values = []: must not be empty"),
    ("train_rm", "seeds=0", "seeds = 0: must be >= 1"),
    ("train_rm", "budget=words", "budget = 'words': must be one of 'comparisons', 'tokens'"),
    ("best_of_n", "n=-5", "n = -5: must be >= 1"),
    ("best_of_n", "n=0", "n = 0: must be >= 1"),
    ("win_rates", "run_tasks=[foo]", "run_tasks[0] = 'foo': must be one of 'hh', 'gsm', 'dialogsum'"),
    ("win_rates", "ppo.baseline=mean", "ppo.baseline = 'mean': must be one of 'exact', 'learned', 'loo'"),
    ("reproduce", "scale=huge", "scale = 'huge': must be one of 'quick', 'paper'"),
    ("reproduce", "only=[nope]", "only[0] = 'nope': must be one of"),
    ("real_data", "test_frac=0", "test_frac = 0.0: must be > 0"),
    ("real_data", "parts=[accuracy,fun]", "parts[1] = 'fun': must be one of 'accuracy', 'ibn', 'topology'"),
    ("real_data", "accuracy.in_domain=[nope]", "accuracy.in_domain[0] = 'nope': must be one of 'hh'"),
    ("real_data", "datasets.hh.loader=csv", "datasets.hh.loader = 'csv': must be one of 'hh-rlhf'"),
    ("ibn_scaling", "resume=maybe", "resume = 'maybe': must be one of 'auto', 'force'"),
    # sizes that failed late (a cold feature cache, figure code after the work) or never (characters dropped)
    ("real_data", "features.max_len=0", "features.max_len = 0: must be >= 2"),
    ("analyse_data", "features.batch_size=0", "features.batch_size = 0: must be >= 1"),
    ("analyse_data", "features.prompt_chars=-5", "features.prompt_chars = -5: must be >= 0"),
    ("analyse_data", "data.format=csv", "data.format = 'csv': must be one of 'hh-rlhf'"),
    ("ideal_learner", "n_values=[-64]", "n_values[0] = -64: must be >= 1"),
    ("ideal_learner", "num_queries=0", "num_queries = 0: must be >= 1"),
    ("ideal_learner", "ensemble_sizes=[0]", "ensemble_sizes[0] = 0: must be >= 2"),
    ("ideal_learner", "xi2=-1", "xi2 = -1.0: must be > 0"),
    ("ideal_learner", "topologies=[forest]", "topologies[0] = 'forest': must be one of 'chain', 'tree'"),
    ("ibn_scaling", "space.alpha=nan", "space.alpha = nan: must be a finite number"),
    ("safe_rlhf", "seeds=0", "seeds = 0: must be >= 1"),
    ("safe_rlhf", "lambda_max=0", "lambda_max = 0.0: must be > 0"),
    *[(name, "seed=-1", "seed = -1: must be >= 0") for name in SCHEMAS],
    ("real_data", "parts=[]", "parts = []: must not be empty"),  # used to end ok over nothing
    # used to fail after the reward models were trained, naming no key
    ("safe_rlhf", "ppo.steps=12", "ppo.steps = 12: must be a multiple of log_every (5)"),
    ("win_rates", "ppo.steps=12", "ppo.steps = 12: must be a multiple of log_every (5)"),
]


@pytest.mark.parametrize("name,override,message", CASES, ids=[f"{n}:{o}" for n, o, _ in CASES])
def test_an_invalid_value_fails_at_config_time_naming_key_and_range(name, override, message, tmp_path):
    with pytest.raises(ConfigError) as err:
        _run(name, [override], tmp_path)
    assert message in str(err.value)
    summary = read_json(tmp_path / "summary.json")  # a new folder says why it stayed empty
    assert summary["status"] == "failed" and message in summary["error"]


# checks that sat in the studies' bodies, run after the folder was locked and fingerprinted
BODY_CHECKS = [
    ("train_rm", ["topologies=[forest]"], "topologies[0] = 'forest': must be one of 'chain', 'tree'"),
    ("train_rm", ["tree_loss=listwise"], "tree_loss = 'listwise': must be one of 'pairs', 'plackett_luce'"),
    ("analyse_data", ["fixture=false"], "data.path = '': data.path is not set"),
    ("design", ["space.geometry=metric"], "space.geometry = 'metric': the design study needs the prefix-tree"),
    ("ideal_learner", ["space.geometry=metric"], "space.geometry = 'metric': the exact prefix-node learner needs"),
    ("real_data", ["fixture=false", "datasets.pku.path=''"], "datasets.pku.path = '': datasets.pku.path is not"),
    ("ibn_scaling", ["map.shape=[nope]"], "map.shape[0] = 'nope': must be one of"),
    ("win_rates", ["run_tasks=[nope]"], "run_tasks[0] = 'nope': must be one of"),
    ("reproduce", ["only=[nope]"], "only[0] = 'nope': must be one of"),
]


@pytest.mark.parametrize("name,overrides,message", BODY_CHECKS, ids=[f"{n}:{o[-1]}" for n, o, _ in BODY_CHECKS])
def test_a_refusal_comes_before_the_run_folder_is_touched(name, overrides, message, tmp_path):
    """Each field's check lives in its schema: the run is refused before the study runs, and the new
    folder holds only the summary saying why (no lock, fingerprint or config of a run)."""
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=re.escape(message)):
        _run(name, overrides, out)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_an_earlier_runs_summary_is_not_overwritten_by_an_invalid_rerun(tmp_path):
    (tmp_path / "summary.json").write_text('{"status": "ok"}')
    with pytest.raises(ConfigError):
        _run("train_rm", ["train.steps=-5"], tmp_path)
    assert read_json(tmp_path / "summary.json") == {"status": "ok"}


def _presets() -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = [(name, None) for name in SCHEMAS]
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        m = re.search(r"python -m experiments\.(\w+)", path.read_text())
        if m:
            out.append((m.group(1), path.stem))
    return out


@pytest.mark.parametrize("name,preset", _presets())
@pytest.mark.parametrize("smoke", [False, True])
def test_every_shipped_config_is_valid(name, preset, smoke):
    overrides = ([f"experiment={preset}"] if preset else []) + (["debug=smoke"] if smoke else [])
    cfg = compose_config(name, overrides)
    assert problems(OmegaConf.to_object(cfg)) == []


def test_explicit_overrides_win_over_smoke(tmp_path):
    seen = {}

    def main(cfg, runlog):
        seen.update(n_values=cfg.n_values, seeds=cfg.seeds, steps=cfg.train.steps)
        return {}

    _run("train_rm", ["n_values=[32]", "seeds=1"], tmp_path, main)
    assert seen == {"n_values": [32], "seeds": 1, "steps": 20}  # smoke still shrinks the rest
    written = read_json(tmp_path / "config.json")
    assert written["n_values"] == [32] and written["seeds"] == 1


def test_smoke_no_longer_hides_an_invalid_value_from_the_command_line():
    """Through Hydra itself: the overrides are read from the Hydra config of the run."""
    out = subprocess.run(
        [sys.executable, "-m", "experiments.best_of_n", "debug=smoke", "n=-5", "hydra.run.dir=/tmp/never_written"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "n = -5: must be >= 1" in out.stderr


def test_ibn_scaling_curve_only_skips_the_heat_map(tmp_path):
    summary = run_smoke("ibn_scaling", ibn_scaling.run, tmp_path, ["map.n_values=[]"])
    assert summary["status"] == "ok" and summary["map_n"] is None
    figs = sorted(p.stem for p in (tmp_path / "figures").glob("*.png"))
    assert figs == ["distance_vs_n", "ratio_vs_n"]
    assert (tmp_path / "results.csv").exists()


def _numeric_fields(cls: type, prefix: str, seen: set) -> list[tuple[str, dict]]:
    """(schema.field, metadata) of every int or float field, in lists, dicts and Optionals too,
    of `cls` and of every schema nested in it."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kinds, todo = set(), [hints[f.name]]
        while todo:
            t = todo.pop()
            args = typing.get_args(t)
            if typing.get_origin(t) is dict:
                todo.append(args[1])
            elif args:
                todo += [a for a in args if a is not type(None)]
            else:
                kinds.add(t)
        for t in kinds:
            if dataclasses.is_dataclass(t) and t not in seen:
                seen.add(t)
                out += _numeric_fields(t, f"{t.__name__}.", seen)
        if kinds & {int, float}:
            out.append((prefix + f.name, dict(f.metadata)))
    return out


def test_every_numeric_field_of_every_schema_declares_its_range():
    """README "Overrides and validation": every field's allowed values are declared in its schema;
    a number that may be any real says why (`spec(unbounded=...)`)."""
    seen: set = set()
    fields = [fm for name in SCHEMAS for fm in _numeric_fields(schema(name), f"{name}.", seen)]
    assert len(fields) > 100  # the walk reached the nested schemas
    undeclared = [k for k, m in fields if not ({"ge", "gt", "le", "lt", "choices", "unbounded"} & m.keys())]
    assert undeclared == []


def test_sweeps_that_together_select_nothing_are_named(tmp_path):
    """Each empty axis is allowed (it skips its figure); both sweeps empty used to end in a KeyError."""
    with pytest.raises(ConfigError, match=r"curve\.n_values, map\.n_values = \[\]: curve and map would both select"):
        _run("ibn_scaling", ["curve.n_values=[]", "map.n_values=[]"], tmp_path)


@pytest.mark.parametrize("name", ["real_data", "analyse_data"])
def test_a_feature_cache_path_that_is_a_file_is_named(tmp_path, name):
    """It used to fail with a bare FileExistsError once the data was loaded."""
    (tmp_path / "cache").write_text("x")
    with pytest.raises(ConfigError, match=r"features\.cache_dir = '.*cache': is a file"):
        _run(name, [f"features.cache_dir={tmp_path / 'cache'}"], tmp_path / "run")
