"""One-command reproduction: run every step (figure/table) as its own entry-point run, then write
`report.md` with the tables, the figures (PNG and PDF) and the exact configs.

Each step runs in a subprocess into `<out>/runs/<step>/`. A step whose `summary.json` says "ok" and
whose command and config files (primary config, preset) are unchanged is skipped, so a second
invocation after an interruption completes only what is missing; failed steps are listed in the
report instead of stopping the others.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from rm_theory.common.stats import LEVEL, holm, p_from_interval, verdict
from rm_theory.config import schema
from rm_theory.config.reproduce import ReproduceSchema, StepSchema
from rm_theory.runs.jsonio import read_json, write_json
from rm_theory.runs.lock import RunFolderError, RunLock
from rm_theory.runs.log import RunLog
from rm_theory.runs.smoke import override_keys

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
# Steps running now (several with jobs > 1): an interrupt of the main thread ends them all.
_RUNNING: set[subprocess.Popen] = set()


def step_command(name: str, step: StepSchema, scale: str, run_dir: Path, smoke: bool, seed: int) -> list[str]:
    cmd = [sys.executable, "-m", f"experiments.{step.entry}"]
    if step.experiment:
        cmd.append(f"experiment={step.experiment}")
    sized = list(step.quick if scale == "quick" else step.paper)
    if smoke:
        # Command-line overrides win over debug=smoke: leave out the sizes smoke shrinks.
        shrunk = getattr(schema(step.entry), "SMOKE", {})
        sized = [o for o in sized if not any(k in shrunk for k in override_keys([o]))] + ["debug=smoke"]
    cmd += sized
    cmd += [f"seed={seed}", f"hydra.run.dir={run_dir}"]
    return cmd


def step_fingerprint(step: StepSchema, cmd: list[str]) -> str:
    """What decides a step's results besides the code: its command and the config files it reads."""
    h = hashlib.sha256(json.dumps(cmd[1:]).encode())
    files = [ROOT / "conf" / f"{step.entry}.yaml"]
    if step.experiment:
        files.append(ROOT / "conf" / "experiment" / f"{step.experiment}.yaml")
    for path in files:
        h.update(path.name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"<absent>"))
    return h.hexdigest()


def _status(run_dir: Path) -> str:
    try:
        return read_json(run_dir / "summary.json").get("status", "unknown")
    except (FileNotFoundError, json.JSONDecodeError):
        return "missing"


def _kill_group(proc: subprocess.Popen) -> None:
    """Ends a step and everything it started (its own process group), politely first."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # the leader is gone; its group may not be
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return


# Thread pools of the BLAS/LAPACK libraries (SciPy's OpenBLAS, and any OpenMP or MKL build). XLA's
# own thread pool is not among them.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_env(jobs: int) -> dict[str, str]:
    """Each step's share of the cores for its BLAS threads when `jobs` steps run side by side.

    Idle OpenBLAS threads spin: the quick scaling step (dense Cholesky factors) took 55 s wall with
    one or two BLAS threads on two cores, but 82 s of CPU with two against 55 s with one (2026-12-07),
    CPU the other step needed. A variable the user set is kept.
    """
    if jobs <= 1:
        return {}
    share = str(max(1, len(os.sched_getaffinity(0)) // jobs))
    return {v: share for v in BLAS_THREAD_VARS if v not in os.environ}


def run_step(
    name: str, cmd: list[str], run_dir: Path, timeout_s: int, fingerprint: str = "", env: dict[str, str] | None = None
) -> tuple[str, float]:
    """Runs one step unless it already finished with the same command and config files; returns
    its status and wall seconds (those of the earlier run when it is skipped). `env` is added to
    this process's environment for the step.

    The step runs in its own process group and dies with this process (a parent-death signal,
    and the group is killed when this process leaves the step early), so no orphan races a rerun.
    A folder left by a different command or preset is moved aside to `<step>.previous` first.
    """
    if run_dir.exists():
        try:  # a step still running (from another invocation) is refused, never raced
            RunLock(run_dir).acquire().release()
        except RunFolderError as err:
            log.error("step %s: %s", name, err)
            return f"refused: {err}", 0.0
    marker = run_dir / "reproduce_step.json"
    old = read_json(marker) if marker.exists() else None
    same = old is not None and old.get("cmd") == cmd[1:] and old.get("fingerprint", "") == fingerprint
    if same and _status(run_dir) == "ok":
        log.info("step %s: already done, skipped", name)
        return "ok", float(old.get("seconds", 0.0))
    if old is not None and not same and run_dir.exists():
        aside = run_dir.with_name(run_dir.name + ".previous")
        log.info("step %s: its command or config files changed; earlier run moved to %s", name, aside)
        shutil.rmtree(aside, ignore_errors=True)
        run_dir.rename(aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"cmd": cmd[1:], "fingerprint": fingerprint})
    start = time.time()
    log.info("step %s: %s", name, " ".join(cmd[1:]))
    with (run_dir / "stdout.log").open("w") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "RM_THEORY_PARENT_PID": str(os.getpid())},
            start_new_session=True,
        )
        _RUNNING.add(proc)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            code = "timeout"
        finally:
            _kill_group(proc)  # a timeout, Ctrl-C or an error here: the step must not outlive us
            _RUNNING.discard(proc)
    status = _status(run_dir) if code == 0 else "failed"
    if status != "ok":
        error = read_json(run_dir / "summary.json").get("error") if _status(run_dir) == "failed" else None
        RunLog(run_dir).summary({"error": f"exit {code}: {error or 'see stdout.log'}"}, status="failed")
    seconds = time.time() - start
    write_json(marker, {"cmd": cmd[1:], "fingerprint": fingerprint, "seconds": seconds})
    log.info("step %s: %s in %.0f s", name, status, seconds)
    return status, seconds


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def interval(summary: dict, key: str) -> tuple[float, float]:
    """[lo, hi] of a summary value: `<key>_lo`/`<key>_hi`, or `<key>_ci` as a half-width or a pair."""
    v = summary.get(key, float("nan"))
    if f"{key}_lo" in summary and f"{key}_hi" in summary:
        return float(summary[f"{key}_lo"]), float(summary[f"{key}_hi"])
    ci = summary.get(f"{key}_ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return float(ci[0]), float(ci[1])
    if isinstance(ci, int | float) and isinstance(v, int | float):
        return float(v) - float(ci), float(v) + float(ci)
    return float("nan"), float("nan")


def claims_table(cfg: ReproduceSchema, out: Path, statuses: dict[str, str]) -> list[str]:
    """The report's opening table: each claim of the paper, this reproduction's number with its
    95% interval, what the interval's units are and how it is drawn, its size, and a verdict at 95%.

    The claims are one family tested together: the verdict column judges each claim alone
    (uncorrected), and the Holm column the table as a family (`common.stats.holm` over the
    t-interval claims' p-values, recovered from each interval and its unit count); a note under
    the table says which verdicts the correction changes."""
    lines = [
        "| claim (paper) | this reproduction | 95% interval | units, method | over | verdict (uncorrected) | Holm |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []  # (line index, claim, value, p-value of the t test, uncorrected verdict)
    for name, step in cfg.steps.items():
        for c in step.claims:
            path = out / "runs" / name / "summary.json"
            summary = read_json(path) if statuses.get(name) == "ok" and path.exists() else {}
            if c.key not in summary:
                lines.append(f"| {c.paper} | ({name}: {statuses.get(name, 'not run')}) | | | | | |")
                continue
            lo, hi = interval(summary, c.key)
            n = summary.get(c.size[0]) if c.size else None
            units = summary.get(f"{c.key}_units", c.units)
            p = float("nan")
            if c.method == "t" and isinstance(n, int | float) and np.isfinite(lo):
                p = p_from_interval(float(summary[c.key]), (hi - lo) / 2, int(n), c.line)
            over = ", ".join(f"{k} = {summary.get(k, '?')}" for k in c.size)
            span = f"[{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else f"{summary.get('seeds', '?')} seed, no interval"
            what = f"`{c.key}` = {_fmt(summary[c.key])}"
            v = verdict(lo, hi, c.line, c.direction)
            rows.append((len(lines), c, float(summary[c.key]), p, v))
            lines.append(
                f"| {c.paper} | {what} | {span} | {n if n is not None else '?'} {units}, {c.method} | {over} | {v} |"
            )
    tested = [r for r in rows if np.isfinite(r[3])]
    p_holm = holm([r[3] for r in tested]) if tested else np.zeros(0)
    changed = []
    for (i, c, mean, _, v), ph in zip(tested, p_holm, strict=True):
        above = mean > c.line if c.direction == "greater" else mean < c.line
        hv = ("agrees" if above else "contradicts") if ph <= 1 - LEVEL else "inconclusive"
        lines[i] += f" {hv} (p = {ph:.2g}) |"
        if hv != v:
            changed.append(f"`{c.key}` ({v} → {hv})")
    for i, *_ in (r for r in rows if not np.isfinite(r[3])):
        lines[i] += " — |"
    m = len(tested)
    lines += [
        "",
        f"The verdict column judges each claim alone at 95%, uncorrected for the {len(rows)} claims of the table.",
        f"The Holm column judges the {m} claims with a t interval as one family (Holm–Bonferroni, family-wise"
        f" 95%; p adjusted): it changes {', '.join(changed) if changed else 'no verdict'}.",
    ]
    return lines


def write_report(cfg: ReproduceSchema, out: Path, statuses: dict[str, str], times: dict[str, float]) -> Path:
    figs, confs = out / "figures", out / "configs"
    figs.mkdir(exist_ok=True)
    confs.mkdir(exist_ok=True)
    lines = [
        f"# rm_theory reproduction — scale `{cfg.scale}`",
        "",
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by `python -m experiments.reproduce"
        f" scale={cfg.scale}`. Each step below is one run folder under `runs/`; its exact resolved config is"
        " copied to `configs/`.",
        "",
        "## The paper's claims against this reproduction",
        "",
        *claims_table(cfg, out, statuses),
        "",
        "Verdicts at 95%: *agrees* (the interval lies on the paper's side), *contradicts* (on the other",
        "side), *inconclusive* (it straddles the line). Each interval's units are independent replicates",
        "(a seed draws its own world; a seed's pairs, prompts or data sets are averaged within it first),",
        "named in the units column with the interval's method (t: Student t over the units).",
        "",
        "## Steps",
        "",
        "| step | status | minutes |",
        "|---|---|---|",
    ]
    body, appendix = [], ["## Appendix: every summary value", ""]
    for name, step in cfg.steps.items():
        if name not in statuses:
            continue
        run_dir = out / "runs" / name
        summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
        lines.append(f"| [{name}](#{name}) | {statuses[name]} | {times.get(name, 0) / 60:.1f} |")
        body += [f"## {name}", "", f"**{step.title}**" if step.title else "", ""]
        if step.claim:
            body += [f"Paper: {step.claim}", ""]
        if statuses[name] != "ok":
            body += [f"Status: **{statuses[name]}** — {summary.get('error', 'see runs/' + name + '/stdout.log')}", ""]
        if (run_dir / "config.yaml").exists():
            shutil.copy(run_dir / "config.yaml", confs / f"{name}.yaml")
            body += [f"Config: [configs/{name}.yaml](configs/{name}.yaml)", ""]
        scalars = {k: v for k, v in summary.items() if k not in ("traceback",)}
        if scalars:
            rows = [f"| {k} | {_fmt(v)} |" for k, v in sorted(scalars.items())]
            appendix += [f"### {name}", "", "| key | value |", "|---|---|", *rows, ""]
            body += [f"Every value: [appendix](#{name}-1) and `runs/{name}/summary.json`.", ""]
        for fig in sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").exists() else []:
            for ext in (".png", ".pdf"):
                src = fig.with_suffix(ext)
                if src.exists():
                    shutil.copy(src, figs / f"{name}__{src.name}")
            body += [f"![{name}: {fig.stem}](figures/{name}__{fig.name})", ""]
    failed = [n for n, s in statuses.items() if s != "ok"]
    listed = ", ".join(f"`{n}` ({statuses[n]})" for n in failed) if failed else "none"
    lines += ["", f"Failed or skipped steps: {listed}", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines + body + appendix) + "\n")
    return report


def run(cfg: ReproduceSchema, runlog: RunLog) -> dict:
    out = runlog.dir
    statuses, times = {}, {}
    data_ok = (ROOT / cfg.data_dir).exists() or Path(cfg.data_dir).exists()
    names = [n for n in cfg.steps if not cfg.only or n in cfg.only]
    if not data_ok and not cfg.smoke:
        for name in [n for n in names if cfg.steps[n].needs_data]:
            statuses[name] = f"skipped: no data at {cfg.data_dir}"
            log.info("step %s: %s", name, statuses[name])
    # Steps on real data share the feature cache: one lane runs them in order, so the first encodes
    # and the others read. It starts first, being the longest chain of dependent steps.
    data_lane = [n for n in names if cfg.steps[n].needs_data and n not in statuses]
    order = [n for n in cfg.start_order if n in names] + [n for n in names if n not in cfg.start_order]
    lanes = ([data_lane] if data_lane else []) + [[n] for n in order if not cfg.steps[n].needs_data]
    report_lock = threading.Lock()
    env = blas_env(cfg.jobs)

    def run_lane(lane: list[str]) -> None:
        for name in lane:
            step = cfg.steps[name]
            cmd = step_command(name, step, cfg.scale, out / "runs" / name, cfg.smoke, cfg.seed)
            log.info("[%d/%d] %s", names.index(name) + 1, len(names), name)
            result = run_step(name, cmd, out / "runs" / name, cfg.step_timeout_s, step_fingerprint(step, cmd), env)
            with report_lock:
                statuses[name], times[name] = result
                write_report(cfg, out, statuses, times)  # a partial report is readable while the rest runs

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=cfg.jobs)
    try:
        for future in [pool.submit(run_lane, lane) for lane in lanes]:
            future.result()
    except BaseException:
        # Ctrl-C reaches the main thread only: end the running steps, drop the queued ones.
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(_RUNNING):
            _kill_group(proc)
        raise
    pool.shutdown()
    statuses = {n: statuses[n] for n in names if n in statuses}  # the report keeps the config's order
    report = write_report(cfg, out, statuses, times)
    log.info("report: %s", report)
    return {
        "report": str(report),
        "steps": len(names),
        "steps_ok": sum(s == "ok" for s in statuses.values()),
        "failed": [n for n, s in statuses.items() if s != "ok"],
        "scale": cfg.scale,
    }
