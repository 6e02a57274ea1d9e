"""Smoke runs of the downstream entry points (in-process: compose + run_entry); presets."""

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from rm_theory.config import register
from rm_theory.runs import run_entry
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


def test_win_rate_bars_have_one_unit_per_seed():
    """Rows of several data sizes of one seed are one unit: the bar's interval is over seeds."""
    import numpy as np
    import pandas as pd

    from rm_theory.common.stats import mean_ci
    from rm_theory.figures.win_rates import win_rate_bars

    rates = {0: [0.2, 0.4], 1: [0.5, 0.7], 2: [0.6, 0.6]}
    wins = pd.DataFrame(
        [
            {"task": "hh", "a": "ppo_tree", "b": "ppo_chain", "seed": s, "n": n, "win_rate": r}
            for s, rs in rates.items()
            for n, r in zip([256, 1024], rs, strict=True)
        ]
    )
    fig = win_rate_bars(wins)
    from matplotlib.container import ErrorbarContainer

    (bars,) = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    (seg,) = bars.lines[2][0].get_segments()
    m, h = mean_ci([0.3, 0.6, 0.6])
    np.testing.assert_allclose(seg[:, 1], [m - h, m + h])
