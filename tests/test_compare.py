"""Comparing two run folders' summaries key by key (`experiments.compare_runs`)."""

import json

from experiments.compare_runs import main
from rm_theory.runs.compare import compare_summaries


def _write(root, rel, summary):
    path = root / rel / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary))


def test_equal_folders_differ_only_in_timing(tmp_path):
    for name, wall in (("a", 1.0), ("b", 9.0)):
        _write(tmp_path / name, "runs/x", {"acc": 0.5, "nested": {"c": 1}, "wall_time_s": wall, "status": "ok"})
    assert compare_summaries(tmp_path / "a", tmp_path / "b") == []
    assert [d.key for d in compare_summaries(tmp_path / "a", tmp_path / "b", timing=True)] == ["wall_time_s"]
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def test_a_changed_number_a_missing_key_and_a_missing_run_are_reported(tmp_path):
    _write(tmp_path / "a", "runs/x", {"acc": 0.5, "only_a": 1, "nan": "nan"})
    _write(tmp_path / "b", "runs/x", {"acc": 0.5000001, "nan": "nan"})
    _write(tmp_path / "a", "runs/y", {"acc": 1.0})
    diffs = {(d.run, d.key) for d in compare_summaries(tmp_path / "a", tmp_path / "b")}
    x, y = "runs/x/summary.json", "runs/y/summary.json"
    assert diffs == {(x, "acc"), (x, "only_a"), (y, "<run>")}
    # within a relative tolerance the number agrees
    assert ("runs/x/summary.json", "acc") not in {
        (d.run, d.key) for d in compare_summaries(tmp_path / "a", tmp_path / "b", rtol=1e-5)
    }
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1


def test_paths_inside_each_folder_compare_relative_to_it(tmp_path):
    for name in ("a", "b"):
        _write(tmp_path / name, ".", {"report": str((tmp_path / name).resolve() / "report.md")})
    assert compare_summaries(tmp_path / "a", tmp_path / "b") == []


def test_an_unreadable_summary_is_a_difference_naming_the_file(tmp_path, capsys):
    """It used to end the comparison with a bare JSONDecodeError."""
    _write(tmp_path / "a", "runs/x", {"acc": 0.5})
    _write(tmp_path / "b", "runs/x", {"acc": 0.5})
    _write(tmp_path / "a", "runs/y", {"acc": 1.0})
    _write(tmp_path / "b", "runs/y", {"acc": 1.0})
    (tmp_path / "b" / "runs/x/summary.json").write_text('{"acc": 0.5, "status": "o')  # killed mid-write
    (tmp_path / "a" / "runs/y/summary.json").write_text("[1, 2]")
    diffs = compare_summaries(tmp_path / "a", tmp_path / "b")
    assert [(d.run, d.key) for d in diffs] == [
        ("runs/x/summary.json", "<unreadable>"),
        ("runs/y/summary.json", "<unreadable>"),
    ]
    assert diffs[0].a == "ok" and str(tmp_path / "b" / "runs/x/summary.json") in diffs[0].b
    assert "JSONDecodeError" in diffs[0].b and "rerun that run" in diffs[0].b
    assert "a JSON list, not an object" in diffs[1].a
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "<unreadable>" in capsys.readouterr().out


def test_outputs_set_aside_in_hidden_folders_are_not_runs(tmp_path):
    _write(tmp_path / "a", ".", {"acc": 0.5})
    _write(tmp_path / "b", ".", {"acc": 0.5})
    _write(tmp_path / "a", ".previous/0123456789abcdef", {"acc": 0.1})
    assert compare_summaries(tmp_path / "a", tmp_path / "b") == []


def test_a_summary_that_is_a_folder_is_a_difference_too(tmp_path):
    _write(tmp_path / "a", ".", {"acc": 0.5})
    (tmp_path / "b" / "summary.json").mkdir(parents=True)
    (diff,) = compare_summaries(tmp_path / "a", tmp_path / "b")
    assert diff.key == "<unreadable>" and "IsADirectoryError" in diff.b
