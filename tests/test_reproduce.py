"""The reproduction: steps run, a report is written, and a second invocation skips finished steps."""

from pathlib import Path

from rm_theory.studies import reproduce
from tests.helpers import run_smoke


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
