"""The scaling study: determinism, resumption, the ratio fit and the entry-point contract."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rm_theory.ibn.scaling import fit_log_ratio
from rm_theory.runs.folder import RunLog
from rm_theory.studies import ibn_scaling as scaling_study
from tests.helpers import compose_config, run_smoke


def test_same_seed_gives_identical_csv(tmp_path):
    s1 = run_smoke("ibn_scaling", scaling_study.run, tmp_path / "a")
    run_smoke("ibn_scaling", scaling_study.run, tmp_path / "b", ["figures=false"])
    assert s1["status"] == "ok"
    a, b = (tmp_path / "a" / "results.csv").read_text(), (tmp_path / "b" / "results.csv").read_text()
    strip = lambda text: pd.read_csv(pd.io.common.StringIO(text)).drop(columns="seconds")
    pd.testing.assert_frame_equal(strip(a), strip(b))
    df = strip(a)
    for col in ("topology", "n", "seed", "regime", "xi2", "mean_d_path", "mean_d_res"):
        assert col in df
    assert (df["mean_d_res"] <= df["mean_d_path"] + 1e-12).all()
    for key in ("ratio_fit_c", "ratio_fit_r2"):
        assert np.isfinite(s1[key])
    assert (tmp_path / "a" / "figures" / "ratio_heatmap.png").exists()


def test_a_killed_study_resumes_without_recomputing(tmp_path, monkeypatch):
    run_smoke("ibn_scaling", scaling_study.run, tmp_path / "full", ["figures=false"])
    rows = RunLog(tmp_path / "full").rows()
    # Pretend the run died after half of its rows.
    part = tmp_path / "part"
    log = RunLog(part)
    for row in rows[: len(rows) // 2]:
        log.metric(row)
    # a killed run's folder holds its fingerprint (written before any work)
    (part / "fingerprint.json").write_bytes((tmp_path / "full" / "fingerprint.json").read_bytes())
    calls = []
    import rm_theory.ibn.scaling as scaling

    real = scaling.run_cell
    monkeypatch.setattr(scaling_study, "run_cell", lambda *a, **k: calls.append(1) or real(*a, **k))
    run_smoke("ibn_scaling", scaling_study.run, part, ["figures=false"])
    full = pd.read_csv(tmp_path / "full" / "results.csv").drop(columns="seconds")
    resumed = pd.read_csv(part / "results.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(full, resumed)
    assert 0 < len(calls) < len(rows) // 2  # a cell is two rows


def test_ratio_fit_recovers_the_constant():
    n = 2.0 ** np.arange(6, 17)
    c, r2 = fit_log_ratio(n, 0.7 * np.log(n) / np.log(np.log(n)))
    assert c == pytest.approx(0.7) and r2 == pytest.approx(1.0)
    c, r2 = fit_log_ratio(n, 3.0 / np.log(n))  # a falling ratio is not that curve
    assert r2 < 0


def test_smoke_entry_point_contract(tmp_path, project_root):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.ibn_scaling", "debug=smoke", f"hydra.run.dir={tmp_path}"],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    from rm_theory.runs.folder import read_json

    assert read_json(tmp_path / "summary.json")["status"] == "ok"
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    assert (tmp_path / "metrics.jsonl").exists()


def test_compose_sees_the_smoke_switch():
    assert compose_config("ibn_scaling", ["debug=smoke"]).smoke is True


def test_every_cell_pairs_chain_and_tree_on_its_own_queries(tmp_path):
    """Chain rows are measured per cell: on that cell's query pairs (its own trees' in-tree pairs)
    and with that cell's columns, never copied from another shape's cell."""
    run_smoke("ibn_scaling", scaling_study.run, tmp_path, ["figures=false"])
    df = pd.read_csv(tmp_path / "results.csv")
    cfg = compose_config("ibn_scaling", ["debug=smoke"])
    shapes = {name: (s.B, s.D) for name, s in cfg.shapes.items()}
    for _, row in df.iterrows():
        assert (row["B"], row["D"]) == shapes[row["shape"]]
    on_map = df[df["n"] == cfg.map.n_values[0]]
    keys = ["n", "seed", "geometry", "regime", "label_variance", "budget", "shape", "temperature"]
    for _, g in on_map.groupby(keys):
        chain, tree = g[g.topology == "chain"].iloc[0], g[g.topology == "tree"].iloc[0]
        for q in ("independent", "in_tree"):
            assert chain[f"pairs_res_{q}"] == tree[f"pairs_res_{q}"]  # the same (reachable) pairs
        assert tree["paired_ratio_res_independent"] == pytest.approx(chain["mean_d_res"] / tree["mean_d_res"])
    # the chain network is the same across shapes, but each shape's in-tree pairs are its own
    chain = on_map[(on_map.topology == "chain") & (on_map.budget == "comparisons")]
    per_shape = chain.groupby(["seed", "geometry", "label_variance"])["d_res_in_tree"].nunique()
    assert (per_shape > 1).all()


def test_paired_ratio_uses_common_pairs_and_has_a_delta_method_error():
    from rm_theory.ibn.scaling import _paired

    c = np.array([1.0, 2.0, np.inf, 4.0, 3.0])
    t = np.array([2.0, 2.0, 1.0, np.inf, 3.0])
    pr = _paired(c, t)
    assert pr["pairs"] == 3 and pr["ratio"] == pytest.approx(6.0 / 7.0)
    rng = np.random.default_rng(0)
    draws = [_paired(rng.exponential(1.0, 400) * 0.8, rng.exponential(1.0, 400)) for _ in range(400)]
    # the delta-method error matches the spread of the ratio over repeated draws of the pairs
    assert np.std([d["ratio"] for d in draws]) == pytest.approx(np.mean([d["se"] for d in draws]), rel=0.1)
