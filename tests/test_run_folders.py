"""A run folder holds the results of its own config or refuses: fingerprints, the run lock,
whole-line metrics appends, resumed tables equal to uninterrupted ones, and reproduce's steps."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rm_theory.common.validate import ConfigError
from rm_theory.runs import RunFolderError, RunLock, RunLog, read_json, run_entry
from rm_theory.studies import ibn_scaling, reproduce, train_rm, win_rates
from tests.helpers import compose_config, run_smoke

ROOT = Path(__file__).resolve().parents[1]


def _numbers(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "wall_time_s"}


# --- fingerprints -----------------------------------------------------------------------------


def test_ibn_scaling_refuses_a_folder_of_another_config_and_names_the_keys(tmp_path):
    first = run_smoke("ibn_scaling", ibn_scaling.run, tmp_path / "run")
    changed = ["label_variances.large.xi2=100", "space.alpha=0.9"]
    with pytest.raises(RunFolderError) as err:
        run_smoke("ibn_scaling", ibn_scaling.run, tmp_path / "run", changed)
    msg = str(err.value)
    assert "label_variances.large.xi2: 4.0 -> 100.0" in msg and "space.alpha: 0.5 -> 0.9" in msg
    assert "resume=force" in msg and "hydra.run.dir" in msg
    # the folder still tells the truth about the run it holds
    assert read_json(tmp_path / "run" / "summary.json")["ratio_fit_c"] == first["ratio_fit_c"]
    assert read_json(tmp_path / "run" / "config.json")["space"]["alpha"] == 0.5
    fresh = run_smoke("ibn_scaling", ibn_scaling.run, tmp_path / "fresh", changed)
    assert fresh["ratio_fit_c"] != first["ratio_fit_c"]
    # the same config resumes; resume=force resumes another one, as asked
    again = run_smoke("ibn_scaling", ibn_scaling.run, tmp_path / "run")
    assert _numbers(again) == _numbers(first)
    forced = run_smoke("ibn_scaling", ibn_scaling.run, tmp_path / "run", [*changed, "resume=force"])
    assert forced["status"] == "ok"
    assert read_json(tmp_path / "run" / "fingerprint.json")["config"]["space.alpha"] == 0.9


@pytest.fixture(scope="module")
def train_rm_run(tmp_path_factory):
    """One uninterrupted train_rm smoke run with the cost model (one seed, token MLP: seconds)."""
    out = tmp_path_factory.mktemp("train_rm") / "full"
    summary = run_smoke("train_rm", train_rm.run, out, TRAIN_RM)
    return out, summary


TRAIN_RM = ["model.family=mlp", "seeds=1", "cost=true"]


def test_train_rm_refuses_a_folder_of_another_config(train_rm_run, tmp_path):
    out, _ = train_rm_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    with pytest.raises(RunFolderError, match=r"labels\.beta: 1\.0 -> 3\.0"):
        run_smoke("train_rm", train_rm.run, run, [*TRAIN_RM, "labels.beta=3.0"])
    assert read_json(run / "summary.json")["status"] == "ok"


def test_a_folder_of_results_without_fingerprint_is_refused(tmp_path):
    RunLog(tmp_path).metric({"n": 1})
    with pytest.raises(RunFolderError, match="without a fingerprint"):
        run_smoke("ibn_scaling", ibn_scaling.run, tmp_path)


# --- resumed tables ---------------------------------------------------------------------------


def test_resumed_train_rm_tables_equal_uninterrupted_ones(train_rm_run, tmp_path):
    """A kill after the first point: the resumed run's tables (columns, rows, categories) and
    numbers are those of the uninterrupted run."""
    out, summary = train_rm_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:-1]))  # the last point never finished
    for name in ("results.csv", "categories.csv", "summary.json"):
        (run / name).unlink()
    resumed = run_smoke("train_rm", train_rm.run, run, TRAIN_RM)
    assert _numbers(resumed) == _numbers(summary)
    for name in ("results.csv", "categories.csv"):
        assert (run / name).read_text() == (out / name).read_text(), name


# --- metrics.jsonl ----------------------------------------------------------------------------


def test_metrics_are_appended_as_whole_lines_in_insertion_order(tmp_path):
    log = RunLog(tmp_path)
    log.metric({"b": 1, "a": 2.5})
    log.metric({"z": "x"})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"b": 1, "a": 2.5}\n{"z": "x"}\n'
    assert [list(r) for r in log.rows()] == [["b", "a"], ["z"]]


def test_a_torn_last_line_is_dropped_with_a_warning_and_cut_before_the_next_append(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    with caplog.at_level(logging.WARNING):
        assert RunLog(tmp_path).rows() == [{"a": 1}, {"a": 2}]
    assert str(path) in caplog.text and "incomplete last line" in caplog.text
    log = RunLog(tmp_path)
    log.metric({"a": 4})
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 4}\n'


def test_a_corrupt_line_inside_the_file_names_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2"):
        RunLog(tmp_path).rows()


# --- the run lock -----------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from rm_theory.runs import RunLock
    RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def test_a_live_holder_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=f"pid {proc.pid}"):
            RunLock(tmp_path).acquire()
        with pytest.raises(RunFolderError, match=f"pid {proc.pid}"):
            run_smoke("ibn_scaling", ibn_scaling.run, tmp_path)
        assert not (tmp_path / "summary.json").exists()  # the refused run wrote nothing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with RunLock(tmp_path):
        assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
    assert (tmp_path / "run.lock").read_text() == ""  # released


def test_the_lock_is_released_when_a_run_ends_or_fails(tmp_path):
    run_smoke("ibn_scaling", ibn_scaling.run, tmp_path, ["curve.n_values=[64]", "map.n_values=[]"])
    RunLock(tmp_path).acquire().release()
    with pytest.raises(KeyError):
        run_smoke("ibn_scaling", lambda cfg, log: {}[0], tmp_path / "b")
    RunLock(tmp_path / "b").acquire().release()
    assert read_json(tmp_path / "b" / "summary.json")["status"] == "failed"


# --- reproduce --------------------------------------------------------------------------------

STEP = "import json, pathlib, sys; d = pathlib.Path(sys.argv[1]); d.mkdir(exist_ok=True); "
STEP += "(d / 'summary.json').write_text(json.dumps({'status': 'ok'})); "
STEP += "(d / 'runs.txt').open('a').write('x')"


def test_reproduce_reruns_a_step_whose_config_files_changed(tmp_path, monkeypatch):
    conf = tmp_path / "root" / "conf"
    shutil.copytree(ROOT / "conf", conf)
    monkeypatch.setattr(reproduce, "ROOT", tmp_path / "root")
    step = reproduce.StepSchema(entry="ibn_scaling", experiment="ibn_scaling")
    run_dir = tmp_path / "out" / "step"
    cmd = [sys.executable, "-c", STEP, str(run_dir)]
    fp = reproduce.step_fingerprint(step, cmd)
    assert reproduce.run_step("step", cmd, run_dir, 60, fp)[0] == "ok"
    assert reproduce.run_step("step", cmd, run_dir, 60, reproduce.step_fingerprint(step, cmd))[0] == "ok"
    assert (run_dir / "runs.txt").read_text() == "x"  # unchanged: skipped
    preset = conf / "experiment" / "ibn_scaling.yaml"
    preset.write_text(preset.read_text() + "\nspace:\n  alpha: 0.9\n")
    fp2 = reproduce.step_fingerprint(step, cmd)
    assert fp2 != fp
    assert reproduce.run_step("step", cmd, run_dir, 60, fp2)[0] == "ok"
    assert (run_dir / "runs.txt").read_text() == "x"  # run afresh in a clean folder
    assert (run_dir.with_name("step.previous") / "runs.txt").exists()  # the earlier run kept aside


def test_reproduce_refuses_a_step_that_is_still_running(tmp_path):
    run_dir = tmp_path / "step"
    run_dir.mkdir()
    cmd = [sys.executable, "-c", STEP, str(run_dir)]
    with RunLock(run_dir):
        status, _ = reproduce.run_step("step", cmd, run_dir, 60)
    assert status.startswith("refused") and f"pid {os.getpid()}" in status
    assert not (run_dir / "summary.json").exists()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_reproduce_kills_its_step(tmp_path):
    out = tmp_path / "rep"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments.reproduce",
            "only=[train_rm]",
            # a step far longer than the test: an orphan would still be running at its end
            "steps.train_rm.quick=['model.family=mlp','n_values=[64]','seeds=1','train.steps=1000000']",
            f"hydra.run.dir={out}",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not children:
            time.sleep(0.5)
            children = [c for c in _children(parent.pid) if _alive(c)]
        assert children, "the step never started"
        time.sleep(0.5)  # the step is still importing: the signal armed before exec must take it
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 5  # a parent-death signal is immediate; the step itself runs far longer
        while time.time() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not any(_alive(c) for c in children), "the step outlived reproduce"
    finally:
        parent.kill()
        for c in children:
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_reproduce_smoke_keeps_only_the_overrides_smoke_does_not_shrink():
    step = reproduce.StepSchema(entry="train_rm", quick=["model.family=mlp", "train.steps=600", "n_values=[512]"])
    cmd = reproduce.step_command("s", step, "quick", Path("/x"), smoke=True, seed=0)
    assert "model.family=mlp" in cmd and "debug=smoke" in cmd
    assert not any(c.startswith(("train.steps=", "n_values=")) for c in cmd)


def test_a_refused_rerun_leaves_hydras_record_of_the_run_the_folder_holds(tmp_path):
    """Through Hydra: it rewrites `.hydra/` before the task starts; the refused run puts it back."""
    out = tmp_path / "run"

    def cli(*overrides: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "experiments.ibn_scaling", "debug=smoke", "figures=false", *overrides]
        return subprocess.run([*cmd, f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert cli().returncode == 0
    before = (out / ".hydra" / "overrides.yaml").read_text()
    refused = cli("space.alpha=0.9")
    assert refused.returncode != 0 and "space.alpha: 0.5 -> 0.9" in refused.stderr
    assert (out / ".hydra" / "overrides.yaml").read_text() == before
    hydra_cfg = (out / ".hydra" / "config.yaml").read_text()
    assert "alpha: 0.5" in hydra_cfg and "alpha: 0.9" not in hydra_cfg
    assert read_json(out / "config.json")["space"]["alpha"] == 0.5


def test_reproduce_reruns_a_changed_step_instead_of_refusing_its_folder(tmp_path):
    out = tmp_path / "rep"
    steps = ["only=[ibn_scaling]", "steps.ibn_scaling.quick=['figures=false']"]
    first = run_smoke("reproduce", reproduce.run, out, steps)
    assert first["failed"] == []
    seconds = read_json(out / "runs" / "ibn_scaling" / "reproduce_step.json")["seconds"]
    # another step definition: the reproduction folder is still the same run; the step reruns
    changed = ["only=[ibn_scaling]", "steps.ibn_scaling.quick=['figures=false','space.alpha=0.9']"]
    second = run_smoke("reproduce", reproduce.run, out, changed)
    assert second["failed"] == []
    assert read_json(out / "runs" / "ibn_scaling" / "config.json")["space"]["alpha"] == 0.9
    assert read_json(out / "runs" / "ibn_scaling.previous" / "reproduce_step.json")["seconds"] == seconds


# --- inputs, earlier outputs, damaged files ---------------------------------------------------


def _analyse(data: Path, out: Path, *over: str, main=None) -> dict:
    """analyse_data's run-folder contract with a stand-in study: it writes `next_batch.jsonl` only
    when the data has more than one line (as the real one designs nothing on some data)."""

    def stand_in(cfg, runlog):
        path = Path(cfg.data.path)
        lines = path.read_text().splitlines() if path.is_file() else [f.name for f in path.iterdir()]
        if len(lines) > 1:
            (runlog.dir / "next_batch.jsonl").write_text(lines[0] + "\n")
        runlog.metric({"lines": len(lines)})
        return {"next_batch": int(len(lines) > 1)}

    overrides = [f"data.path={data}", *over]
    return run_entry(compose_config("analyse_data", overrides), main or stand_in, out_dir=out, overrides=overrides)


def test_the_fingerprint_holds_the_inputs_content_and_a_changed_file_is_refused_naming_it(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("a\nb\n")
    _analyse(data, tmp_path / "run")
    inputs = read_json(tmp_path / "run" / "fingerprint.json")["inputs"]
    assert inputs == {"data.path": {"": {"size": 4, "sha256": hashlib.sha256(b"a\nb\n").hexdigest()}}}
    _analyse(data, tmp_path / "run")  # the same file: the same run
    data.write_text("a\n")
    with pytest.raises(RunFolderError, match=r"inputs\.data\.path: '4 bytes, sha256 [0-9a-f]{16}' -> '2 bytes"):
        _analyse(data, tmp_path / "run")
    assert (tmp_path / "run" / "next_batch.jsonl").exists()  # a refused run touches nothing


def test_a_folder_inputs_files_are_fingerprinted_one_by_one(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.json").write_text("[]")
    (data / "sub" / "b.json").write_text("[]")
    (data / ".hidden").write_text("not read by the loaders")
    _analyse(data, tmp_path / "run", "data.format=llmbar")
    assert set(read_json(tmp_path / "run" / "fingerprint.json")["inputs"]["data.path"]) == {"a.json", "sub/b.json"}
    (data / "sub" / "b.json").write_text("[ ]")
    with pytest.raises(RunFolderError, match=r"inputs\.data\.path/sub/b\.json: '2 bytes"):
        _analyse(data, tmp_path / "run", "data.format=llmbar")


def test_a_rerun_leaves_no_output_of_the_earlier_run_in_the_folder(tmp_path):
    """The data changed and the rerun (resume=force) designs nothing: the earlier next_batch.jsonl
    used to stay beside a summary that said 0. Now it is moved aside, with the earlier metrics."""
    data, run = tmp_path / "pairs.jsonl", tmp_path / "run"
    data.write_text("a\nb\n")
    (run).mkdir()
    (run / "notes.txt").write_text("the user's, there before the first run")
    first = _analyse(data, run)
    old_sha = read_json(run / "fingerprint.json")["sha256"]
    data.write_text("a\n")
    second = _analyse(data, run, "resume=force")
    assert first["next_batch"] == 1 and second["next_batch"] == 0
    assert not (run / "next_batch.jsonl").exists()
    assert RunLog(run).rows() == [{"lines": 1}]  # analyse_data resumes nothing: no row of the earlier run
    aside = run / ".previous" / old_sha[:16]
    assert (aside / "next_batch.jsonl").read_text() == "a\n" and read_json(aside / "summary.json")["next_batch"] == 1
    assert (run / "notes.txt").exists() and not (aside / "notes.txt").exists()
    # the same run again: no duplicate rows either
    _analyse(data, run)
    assert RunLog(run).rows() == [{"lines": 1}]


def test_analyse_data_rerun_on_changed_data_keeps_no_stale_next_batch(tmp_path):
    """The study itself: data with one comparison per prompt gives no candidates, so no next batch."""
    from rm_theory.real.fixtures import write_fixture
    from rm_theory.studies import analyse_data

    rows = json.loads(Path(write_fixture(tmp_path / "fx", prompts=12)["pku"]).read_text())
    data, run = tmp_path / "pairs.json", tmp_path / "run"
    data.write_text(json.dumps(rows))
    first = run_smoke("analyse_data", analyse_data.run, run, [f"data.path={data}", "data.format=pku-saferlhf"])
    assert first["next_batch"] > 0 and (run / "next_batch.jsonl").exists()
    one_each = list({r["prompt"]: r for r in rows}.values())
    data.write_text(json.dumps(one_each))
    with pytest.raises(RunFolderError, match=r"inputs\.data\.path: "):
        run_smoke("analyse_data", analyse_data.run, run, [f"data.path={data}", "data.format=pku-saferlhf"])
    t0 = time.time_ns()
    again = run_smoke(
        "analyse_data", analyse_data.run, run, [f"data.path={data}", "data.format=pku-saferlhf", "resume=force"]
    )
    assert again["pairs"] == len(one_each)
    stale = [e.name for e in run.iterdir() if not e.name.startswith(".") and e.stat().st_mtime_ns < t0]
    assert stale == []
    if again.get("next_batch", 0) == 0:
        assert not (run / "next_batch.jsonl").exists()


@pytest.mark.parametrize("name", ["next_batch.jsonl", "summary.json", "sub/pairs.jsonl"])
def test_an_input_inside_the_run_folder_is_refused_naming_key_and_file(tmp_path, name):
    run = tmp_path / "run"
    data = run / name
    data.parent.mkdir(parents=True)
    data.write_text("mine\n")
    with pytest.raises(RunFolderError, match=rf"data\.path = '{re.escape(str(data))}' is inside the run folder"):
        _analyse(data, run)
    assert data.read_text() == "mine\n" and sorted(p.name for p in run.iterdir()) == [name.split("/")[0]]


def test_a_link_inside_the_run_folder_to_an_input_outside_is_refused(tmp_path):
    """The run would write its next_batch.jsonl through the link, into the user's file."""
    data = tmp_path / "pairs.jsonl"
    data.write_text("mine\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "next_batch.jsonl").symlink_to(data)
    with pytest.raises(RunFolderError, match=r"is inside the run folder .*next_batch\.jsonl would be overwritten"):
        _analyse(tmp_path / "run" / "next_batch.jsonl", tmp_path / "run")
    assert data.read_text() == "mine\n"


def test_an_input_that_cannot_be_read_is_a_config_error_naming_the_key(tmp_path, monkeypatch):
    from rm_theory.runs import fingerprint

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    data = tmp_path / "pairs.jsonl"
    data.write_text("a\n")
    monkeypatch.setattr(fingerprint, "file_digest", denied)
    with pytest.raises(ConfigError, match=r"data\.path = '.*pairs\.jsonl': cannot be read \(.*Permission denied"):
        _analyse(data, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_input_folder_holding_the_run_folder_is_refused(tmp_path):
    (tmp_path / "a.json").write_text("[]")
    with pytest.raises(RunFolderError, match="is a folder that holds the run folder"):
        _analyse(tmp_path, tmp_path / "report", "data.format=llmbar")


def test_a_missing_input_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.path = '.*nope\.jsonl': does not exist"):
        _analyse(tmp_path / "nope.jsonl", tmp_path / "run")


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "", "\xff", "a folder"])
def test_a_damaged_fingerprint_is_named_and_resume_force_gets_past_it(tmp_path, damage):
    data = tmp_path / "pairs.jsonl"
    data.write_text("a\nb\n")
    _analyse(data, tmp_path / "run")
    path = tmp_path / "run" / "fingerprint.json"
    if damage == "a folder":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(damage.encode("latin-1"))
    with pytest.raises(RunFolderError, match=r"fingerprint\.json is not .*resume=force"):
        _analyse(data, tmp_path / "run")
    assert _analyse(data, tmp_path / "run", "resume=force")["status"] == "ok"
    assert read_json(tmp_path / "run" / "fingerprint.json")["inputs"]
    assert RunLog(tmp_path / "run").rows() == [{"lines": 2}]


def test_a_rerun_of_a_study_that_resumes_nothing_does_not_duplicate_its_rows(tmp_path):
    def twice(cfg, runlog):
        runlog.metric({"a": 1})
        runlog.metric({"a": 2})
        return {}

    for _ in range(2):
        run_entry(compose_config("best_of_n", ["debug=smoke"]), twice, out_dir=tmp_path, overrides=["debug=smoke"])
    assert RunLog(tmp_path).rows() == [{"a": 1}, {"a": 2}]


def test_resumed_win_rates_skip_finished_points_and_equal_an_uninterrupted_run(tmp_path, monkeypatch):
    """README: finished units are skipped. A resumed win_rates used to recompute every point and
    append its rows again."""
    over = ["n_values=[32,64]"]
    full = run_smoke("win_rates", win_rates.run, tmp_path / "full", over)
    run = tmp_path / "run"
    shutil.copytree(tmp_path / "full", run)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) == 2  # one line per point
    (run / "metrics.jsonl").write_text(lines[0])  # killed during the second point
    calls = []
    real = win_rates._win_point
    monkeypatch.setattr(win_rates, "_win_point", lambda *a: calls.append(a[3]) or real(*a))
    resumed = run_smoke("win_rates", win_rates.run, run, over)
    assert calls == [64] and _numbers(resumed) == _numbers(full)
    for name in ("results.csv", "policies.csv", "curves.csv", "annotation_cost.csv"):
        assert (run / name).read_text() == (tmp_path / "full" / name).read_text(), name
    assert (run / "metrics.jsonl").read_text() == "".join(
        (tmp_path / "full" / "metrics.jsonl").read_text().splitlines(keepends=True)
    )
    again = run_smoke("win_rates", win_rates.run, run, over)  # a finished run: nothing recomputed or appended
    assert calls == [64] and _numbers(again) == _numbers(full)
    assert len(RunLog(run).rows()) == 2
