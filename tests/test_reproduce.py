"""The reproduction: steps run, a report is written, and a second invocation skips finished steps."""

import threading
import time
from pathlib import Path

from rm_theory.registry import steps
from rm_theory.studies import reproduce
from tests.helpers import compose_config, run_smoke


def test_reproduce_smoke_runs_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "rep"
    summary = run_smoke("reproduce", reproduce.run, out, ["only=[ibn_scaling]"])
    assert summary["status"] == "ok" and summary["failed"] == []
    report = (out / "report.md").read_text()
    assert "ibn_scaling" in report and "figures/ibn_scaling__ratio_vs_n.png" in report
    assert (out / "figures" / "ibn_scaling__ratio_vs_n.pdf").exists()
    assert (out / "configs" / "ibn_scaling.yaml").exists()
    # Second invocation: nothing is rerun.
    calls = []
    monkeypatch.setattr(reproduce.subprocess, "Popen", lambda *a, **k: calls.append(a))
    run_smoke("reproduce", reproduce.run, out, ["only=[ibn_scaling]"])
    assert calls == []

    def row(text: str) -> str:
        return next(line for line in text.splitlines() if line.startswith("| [ibn_scaling]"))

    # The skipped step keeps the wall time of the run that did it.
    assert row((out / "report.md").read_text()) == row(report)


def test_a_failed_step_is_listed_not_fatal(tmp_path):
    out = tmp_path / "rep"
    summary = run_smoke(
        "reproduce", reproduce.run, out, ["only=[ibn_scaling]", "steps.ibn_scaling.quick=['no_such_key=1']"]
    )
    assert summary["failed"] == ["ibn_scaling"]
    assert "Failed or skipped steps: `ibn_scaling`" in (out / "report.md").read_text()
    assert Path(out / "runs" / "ibn_scaling" / "stdout.log").read_text()


def test_steps_run_two_at_a_time_and_the_real_data_steps_one_after_another(tmp_path, monkeypatch):
    DATA_STEPS = [name for name, (_, step) in steps().items() if step.needs_data]  # noqa: N806
    assert {"real_accuracy", "finetune_rm", "real_theory", "real_design"} <= set(DATA_STEPS)
    lock, running, peak, started = threading.Lock(), set(), [0], []

    def fake_step(name, cmd, run_dir, timeout_s, fingerprint="", env=None):
        assert env == {v: "1" for v in reproduce.BLAS_THREAD_VARS}  # two steps share the two cores
        with lock:
            running.add(name)
            started.append(name)
            peak[0] = max(peak[0], len(running))
            real = [n for n in running if n in DATA_STEPS]
        assert len(real) <= 1, f"real-data steps overlap: {real}"
        time.sleep(0.2)
        with lock:
            running.discard(name)
        return "ok", 0.2

    monkeypatch.setattr(reproduce, "run_step", fake_step)
    monkeypatch.setattr(reproduce.os, "sched_getaffinity", lambda pid: {0, 1})
    for var in reproduce.BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "rep"
    summary = run_smoke("reproduce", reproduce.run, out, ["jobs=2"])
    assert summary["steps_ok"] == summary["steps"] == len(started) and peak[0] == 2
    assert [n for n in started if n in DATA_STEPS] == DATA_STEPS
    cfg = compose_config("reproduce", ["debug=smoke"])
    table = [line.split("]")[0][3:] for line in (out / "report.md").read_text().splitlines() if line.startswith("| [")]
    assert table == list(cfg.steps)  # the config's order


def test_the_real_data_lane_then_the_long_steps_start_first(tmp_path, monkeypatch):
    # One step at a time, so the order the steps start in is the order they were queued in (with two
    # workers, two lanes taken at once may start in either order).
    started = []
    monkeypatch.setattr(reproduce, "run_step", lambda name, *a, **k: started.append(name) or ("ok", 0.0))
    run_smoke("reproduce", reproduce.run, tmp_path / "rep", ["jobs=1"])
    cfg = compose_config("reproduce", ["debug=smoke"])
    real = [n for n in cfg.steps if cfg.steps[n].needs_data]
    assert started == real + list(cfg.start_order) + [n for n in cfg.steps if n not in real + cfg.start_order]


def test_blas_threads_are_shared_between_steps_and_a_user_setting_is_kept(monkeypatch):
    monkeypatch.setattr(reproduce.os, "sched_getaffinity", lambda pid: set(range(8)))
    for var in reproduce.BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    assert reproduce.blas_env(1) == {}
    assert reproduce.blas_env(3) == {v: "2" for v in reproduce.BLAS_THREAD_VARS}
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert "OMP_NUM_THREADS" not in reproduce.blas_env(2)


def test_verdicts_read_the_interval_against_the_claimed_line():
    from rm_theory.common.stats import verdict

    assert verdict(1.1, 1.3, 1.0, "greater") == "agrees"
    assert verdict(0.7, 0.9, 1.0, "greater") == "contradicts"
    assert verdict(0.9, 1.1, 1.0, "greater") == "inconclusive"
    assert verdict(0.7, 0.9, 1.0, "less") == "agrees"
    assert verdict(float("nan"), float("nan"), 1.0, "greater") == "no interval"


def test_the_claims_table_quotes_number_interval_size_and_verdict(tmp_path):
    from rm_theory.config.reproduce import ClaimSchema, ReproduceSchema, StepSchema
    from rm_theory.runs import write_json
    from rm_theory.studies.reproduce import claims_table, interval

    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "b").mkdir(parents=True)
    write_json(tmp_path / "runs" / "a" / "summary.json", {"x": 0.4, "x_ci": 0.05, "seeds": 3, "status": "ok"})
    write_json(tmp_path / "runs" / "b" / "summary.json", {"y": 0.6, "y_ci": float("nan"), "seeds": 1, "status": "ok"})
    cfg = ReproduceSchema(
        steps={
            "a": StepSchema(claims=[ClaimSchema(key="x", paper="x above 0.5", line=0.5)]),
            "b": StepSchema(claims=[ClaimSchema(key="y", paper="y above 0.5", line=0.5)]),
        }
    )
    assert interval({"x": 0.4, "x_ci": [0.3, 0.5]}, "x") == (0.3, 0.5)
    rows = claims_table(cfg, tmp_path, {"a": "ok", "b": "ok"})
    x_row = "| x above 0.5 | `x` = 0.4 | [0.35, 0.45] | 3 seeds (worlds), t | seeds = 3 | contradicts |"
    assert any(r.startswith(x_row) for r in rows)
    assert any("1 seed, no interval" in r and "no interval | — |" in r for r in rows)


def test_the_claims_table_names_units_and_judges_the_claims_as_a_family_with_holm(tmp_path):
    """Each row says what its interval's units are and how it is drawn; the Holm column judges the
    table as one family, and the note says which verdicts it changes."""
    from rm_theory.config.reproduce import ClaimSchema, ReproduceSchema, StepSchema
    from rm_theory.runs import write_json
    from rm_theory.studies.reproduce import claims_table

    # x: t = 0.1·4.303/0.05 → p = 0.0132 (two-sided, 2 df): Holm's first step, 0.0132·3 = 0.04.
    # z: p = 0.033 and w: p = 0.043 agree alone; Holm's second step, 0.033·2 = 0.066 > 0.05, stops.
    summaries = {
        "a": {"x": 0.4, "x_ci": 0.05, "seeds": 3},
        "c": {"z": 0.6, "z_lo": 0.52, "z_hi": 0.68, "pairs_seeds": 3, "z_units": "seeds of 128 pairs"},
        "d": {"w": 0.2, "w_ci": 0.19, "seeds": 5},
    }
    claims = {
        "a": ClaimSchema(key="x", paper="x above 0.5", line=0.5),
        "c": ClaimSchema(key="z", paper="z above 0.5", line=0.5, size=["pairs_seeds"]),
        "d": ClaimSchema(key="w", paper="w above 0", line=0.0),
    }
    for name, s in summaries.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        write_json(tmp_path / "runs" / name / "summary.json", {**s, "status": "ok"})
    cfg = ReproduceSchema(steps={k: StepSchema(claims=[c]) for k, c in claims.items()})
    rows = claims_table(cfg, tmp_path, dict.fromkeys(summaries, "ok"))
    row = {c.key: next(r for r in rows if f"`{c.key}`" in r) for c in claims.values()}
    assert "3 seeds of 128 pairs, t" in row["z"]  # the summary's own description of its units wins
    assert row["x"].endswith("| contradicts | contradicts (p = 0.04) |")  # 0.0132 · 3
    assert "| agrees | inconclusive" in row["w"]
    assert any("uncorrected for the 3 claims" in r for r in rows)
    assert any("changes `z` (agrees → inconclusive), `w` (agrees → inconclusive)" in r for r in rows)
