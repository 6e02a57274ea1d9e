"""Aggregation of sweep folders: the tidy table, the run table with failed runs, the figures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from experiments.aggregate import main
from rm_theory.figures.aggregate import draw_figures, figure_specs
from rm_theory.ibn.scaling import AXES
from rm_theory.runs.aggregate import (
    KINDS,
    aggregate,
    find_runs,
    latest_run,
    read_results,
    table_kind,
    write_table,
)

POINT = {
    "geometry": "tree",
    "regime": "polynomial",
    "label_variance": "large",
    "budget": "comparisons",
    "shape": "root",
    "temperature": 1.0,
}


def scaling_table(seed: int) -> pd.DataFrame:
    """A scaling-study table whose tree distance is smaller by a known factor 1.5."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in (64, 128, 256):
        base = n**-0.5 * (1 + 0.05 * rng.random())
        for topo, f in (("chain", 1.5), ("tree", 1.0)):
            rows.append(
                {
                    "topology": topo,
                    "n": n,
                    "seed": seed,
                    **POINT,
                    "mean_d_res": f * base,
                    "mean_d_path": 2 * f * base,
                    "d_res_independent": f * base,
                    "d_res_depth0": 1.1 * f * base,
                }
            )
    return pd.DataFrame(rows)


def make_run(d: Path, overrides: list[str], summary: dict | None, table: pd.DataFrame | None) -> None:
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if summary is not None:
        (d / "summary.json").write_text(json.dumps(summary))
    if table is not None:
        table.to_csv(d / "results.csv", index=False)


@pytest.fixture
def sweep(tmp_path) -> Path:
    """A Hydra multirun folder: two ok runs, one failed, one that never wrote its summary."""
    root = tmp_path / "multirun"
    for s in (0, 1):
        make_run(root / f"{s}_seed={s}", [f"seed={s}"], {"status": "ok", "ratio_at_max_n": 1.5}, scaling_table(s))
    make_run(
        root / "2_seed=2",
        ["seed=2"],
        {"status": "failed", "error": "ValueError: boom", "traceback": "Traceback ..."},
        None,
    )
    make_run(root / "3_seed=3", ["seed=3"], None, None)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_table_and_failed_runs(sweep):
    agg = aggregate(sweep)
    assert sorted(agg.runs["run_dir"]) == ["0_seed=0", "1_seed=1", "2_seed=2", "3_seed=3"]
    status = dict(zip(agg.runs["run_dir"], agg.runs["status"], strict=True))
    assert status == {"0_seed=0": "ok", "1_seed=1": "ok", "2_seed=2": "failed", "3_seed=3": "missing"}
    failed = agg.failed.set_index("run_dir")
    assert list(failed.index) == ["2_seed=2", "3_seed=3"]
    assert failed.loc["2_seed=2", "error"] == "ValueError: boom"
    assert "traceback" not in agg.runs  # too long for a table

    t = agg.table
    assert len(t) == 2 * len(scaling_table(0))
    assert set(t["kind"]) == {"ibn_scaling"} and set(t["run_status"]) == {"ok"}
    for seed in (0, 1):
        mine = t[t["run_dir"] == f"{seed}_seed={seed}"]
        assert set(mine["override.seed"].astype(str)) == {str(seed)}
        # the rows are the run's own rows, unchanged
        pd.testing.assert_frame_equal(mine[scaling_table(seed).columns].reset_index(drop=True), scaling_table(seed))


def test_single_run_folder(sweep):
    agg = aggregate(sweep / "0_seed=0")
    assert list(agg.runs["run_dir"]) == ["."] and list(agg.runs["status"]) == ["ok"]
    assert set(agg.table["run_dir"]) == {"."} and len(agg.table) == len(scaling_table(0))


def test_command_writes_table_runs_and_figures(sweep, tmp_path, capsys):
    out = tmp_path / "agg" / "table.csv"
    assert main([str(sweep), "--out", str(out), "--figures"]) == 0
    table, runs = pd.read_csv(out), pd.read_csv(tmp_path / "agg" / "table_runs.csv")
    assert len(table) == 12 and len(runs) == 4
    assert set(runs.loc[runs["status"] != "ok", "run_dir"]) == {"2_seed=2", "3_seed=3"}
    err = capsys.readouterr().err
    assert "2_seed=2: failed (ValueError: boom)" in err and "3_seed=3: missing" in err
    assert "figure" not in err  # every scaling figure drew
    pngs = {p.stem for p in (tmp_path / "agg" / "figures").glob("*.png")}
    assert pngs == {
        "ibn_scaling_distance_vs_n",
        "ibn_scaling_ratio_vs_n",
        "ibn_scaling_ratio_heatmap",
        "ibn_scaling_ratio_heatmap_queries",
    }


def test_default_output_is_not_collected_again(sweep):
    assert main([str(sweep)]) == 0
    assert (sweep / "aggregate.csv").exists()
    # even an aggregate saved under the per-run tables' name is not read as a run's table
    write_table(aggregate(sweep).table, sweep / "agg" / "results.csv")
    assert len(read_results(sweep)) == 12


def test_unreadable_table_is_skipped(sweep):
    (sweep / "0_seed=0" / "results.csv").write_text("")
    t = read_results(sweep)
    assert set(t["run_dir"]) == {"1_seed=1"}


def test_table_kind():
    for kind, cols in KINDS.items():
        assert table_kind([*cols, "seed", "extra"]) == kind
    # the reward-model table has topology and n but not the scaling study's distances
    assert (
        table_kind(["regime", "n", "topology", "seed", "gold_accuracy", "ensemble_variance", "ibn_resistance"])
        == "train_rm"
    )
    assert table_kind(["topology", "n", "seed", *AXES, "mean_d_res", "mean_d_path"]) == "ibn_scaling"
    assert table_kind(["x", "y"]) is None


def test_table_formats(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    pd.testing.assert_frame_equal(pd.read_csv(write_table(df, tmp_path / "t.csv")), df)
    with pytest.raises(ValueError, match="unknown table format"):
        write_table(df, tmp_path / "t.xlsx")
    if importlib.util.find_spec("pyarrow") is None:
        with pytest.raises(RuntimeError, match="pyarrow"):
            write_table(df, tmp_path / "t.parquet")
    else:
        back = pd.read_parquet(write_table(df, tmp_path / "t.parquet"))
        assert back["a"].tolist() == [1, 2]


def test_find_runs_skips_failed_and_other_kinds(sweep):
    # a failed run that left a partial table, and a run of another kind
    make_run(sweep / "4_seed=4", ["seed=4"], {"status": "failed", "error": "KeyboardInterrupt: "}, scaling_table(4))
    bon = pd.DataFrame(
        {
            "seed": 0,
            "prompt": [0, 1] * 2,
            "rm": ["tree"] * 2 + ["gold"] * 2,
            "N": 1,
            "gold_reward": [0.1, 0.2, 0.3, 0.4],
        }
    )
    make_run(sweep / "bon", [], {"status": "ok"}, bon)
    assert [p.name for p in find_runs(sweep, "ibn_scaling")] == ["0_seed=0", "1_seed=1"]  # oldest first
    assert [p.name for p in find_runs(sweep, "best_of_n")] == ["bon"]
    assert find_runs(sweep, "safe_rlhf") == [] and latest_run(sweep, "safe_rlhf") is None
    run = latest_run(sweep, "best_of_n")
    assert run["summary"]["status"] == "ok"
    pd.testing.assert_frame_equal(run["results"], bon)
    with pytest.raises(ValueError, match="unknown kind"):
        find_runs(sweep, "nonsense")
    # the aggregate still shows the failed run's rows, marked as such
    t = aggregate(sweep).table
    assert set(t.loc[t["run_dir"] == "4_seed=4", "run_status"]) == {"failed"}
    assert set(t["kind"]) == {"ibn_scaling", "best_of_n"}
    assert set(figure_specs(aggregate(sweep))) >= {"best_of_n_best_of_n", "ibn_scaling_ratio_vs_n"}


def test_a_figure_that_fails_is_reported(tmp_path):
    only_chain = scaling_table(0)
    only_chain = only_chain[only_chain["topology"] == "chain"]
    make_run(tmp_path / "r", [], {"status": "ok"}, only_chain)
    written, errors = draw_figures(aggregate(tmp_path), tmp_path / "figs")
    assert "ibn_scaling_ratio_vs_n" in errors  # no tree rows: no ratio
    assert tmp_path / "figs" / "ibn_scaling_distance_vs_n.png" in written
