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

    real = scaling.run_point
    monkeypatch.setattr(scaling_study, "run_point", lambda *a, **k: calls.append(1) or real(*a, **k))
    run_smoke("ibn_scaling", scaling_study.run, part, ["figures=false"])
    full = pd.read_csv(tmp_path / "full" / "results.csv").drop(columns="seconds")
    resumed = pd.read_csv(part / "results.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(full, resumed)
    assert 0 < len(calls) < len(rows)


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
