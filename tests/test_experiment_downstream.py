"""Smoke runs of the downstream entry points (in-process: compose + run_entry); presets."""

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from rm_theory.config import register
from rm_theory.runs.folder import run_entry
from rm_theory.studies import best_of_n, safe_rlhf, win_rates

CONF = Path(__file__).resolve().parents[1] / "conf"
ENTRIES = {
    "best_of_n": best_of_n.run,
    "win_rates": win_rates.run,
    "safe_rlhf": safe_rlhf.run,
}
HEADLINES = {
    "best_of_n": ["gold_reward_N1_gold", "gold_reward_N8_tree", "gold_reward_N8_chain"],
    "win_rates": [
        "win_rate_tree_vs_chain",
        "win_rate_tree_vs_ref",
        "win_rate_chain_vs_ref",
        "win_rate_bayes_tree_vs_chain",
    ],
    "safe_rlhf": ["final_reward", "final_cost", "threshold", "final_lambda"],
}


def _compose(name: str, overrides: list[str]):
    register(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("name", list(ENTRIES))
def test_smoke_run_writes_an_ok_summary(name, tmp_path):
    cfg = _compose(name, ["debug=smoke"])
    summary = run_entry(cfg, ENTRIES[name], out_dir=tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "ok"
    for key in HEADLINES[name]:
        assert key in summary and summary[key] == summary[key], key  # present and not NaN
    assert (tmp_path / "results.csv").exists()
    assert list((tmp_path / "figures").glob("*.png"))


@pytest.mark.slow
def test_best_of_n_smoke_is_deterministic(tmp_path):
    cfg = _compose("best_of_n", ["debug=smoke"])
    run_entry(cfg, ENTRIES["best_of_n"], out_dir=tmp_path / "a")
    run_entry(_compose("best_of_n", ["debug=smoke"]), ENTRIES["best_of_n"], out_dir=tmp_path / "b")
    read = lambda d: {k: v for k, v in json.loads((d / "summary.json").read_text()).items() if k != "wall_time_s"}
    assert read(tmp_path / "a") == read(tmp_path / "b")
    assert (tmp_path / "a" / "results.csv").read_text() == (tmp_path / "b" / "results.csv").read_text()


def _presets():
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        m = re.search(r"python -m experiments\.(\w+)", path.read_text())
        if m and m.group(1) in ENTRIES:
            yield m.group(1), path.stem


@pytest.mark.parametrize("name,preset", list(_presets()))
def test_presets_compose(name, preset):
    cfg = _compose(name, [f"experiment={preset}"])
    assert cfg.seeds >= 1
