"""The run folder and the contract of every entry point (`run_entry`).

Every run writes into its own folder: `config.yaml`/`config.json` (the resolved config),
`fingerprint.json` (what determines the results: `runs.fingerprint`), `metrics.jsonl` and
`summary.json` (`runs.log`: one JSON object per logged step or finished unit of work; final scalars
and `"status"`: "ok", "failed" or "running") and `run.lock` (`runs.lock`: the pid of the live process
writing the folder). A folder is resumed only by a run of the same fingerprint, and written by one
process at a time; a rerun first moves the earlier run's outputs aside into
`.previous/<its fingerprint>/`, keeping only what the study resumes from (its schema's
`RESUME_STATE`), so no output of an earlier run is ever left beside this run's.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from rm_theory.common.validate import ConfigError, validate
from rm_theory.runs.compile_cache import enable_compilation_cache
from rm_theory.runs.fingerprint import check_fingerprint, fingerprint, read_fingerprint
from rm_theory.runs.jsonio import write_json
from rm_theory.runs.lock import RunFolderError, RunLock
from rm_theory.runs.log import RunLog
from rm_theory.runs.process import die_with_parent, process_dir
from rm_theory.runs.smoke import apply_smoke, override_keys

log = logging.getLogger(__name__)

_HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def _hydra_record(out_dir: Path) -> dict[str, str]:
    """Hydra's own record of the run (`.hydra/*.yaml`), kept in fingerprint.json."""
    hydra = out_dir / ".hydra"
    return {name: (hydra / name).read_text() for name in _HYDRA_FILES if (hydra / name).exists()}


def _restore_hydra_record(out_dir: Path) -> None:
    """Hydra rewrites `.hydra/` before a run starts: a refused run puts back the record of the
    run the folder holds, so `.hydra/overrides.yaml` never describes a run that did not happen."""
    try:
        old = read_fingerprint(out_dir)
    except RunFolderError:  # nothing to put back; the error that refused the run names the file
        return
    for name, text in ((old or {}).get("hydra_files") or {}).items():
        (out_dir / ".hydra" / name).write_text(text)


# What `run_entry` itself writes into every run folder.
RUN_FILES = ("fingerprint.json", "config.yaml", "config.json", "metrics.jsonl", "summary.json", "run.lock")


PREVIOUS = ".previous"  # hidden: aggregation and comparison skip it


def _entries(run_dir: Path) -> list[str]:
    """Top-level names of a folder that a run may own: not hidden (`.hydra/`, `.previous/`, a
    multi-host `.process_<i>/`) and not the lock, which the live run holds."""
    return sorted(e.name for e in run_dir.iterdir() if not e.name.startswith(".") and e.name != "run.lock")


def not_outputs(run_dir: Path, earlier: dict | None) -> list[str]:
    """The entries of a run folder that no run made: those that were there before its first run
    (recorded in each fingerprint.json and carried on), e.g. `reproduce`'s `stdout.log`, or a
    user's files when the folder is an existing one (`hydra.run.dir=.`)."""
    if earlier is None:  # the first run into this folder: what is here now is not ours
        return [e for e in _entries(run_dir) if e not in RUN_FILES]
    return sorted(set(earlier.get("not_outputs") or []) & set(_entries(run_dir)))


def set_aside(run_dir: Path, keep: tuple[str, ...], slot: str) -> list[str]:
    """Moves every top-level entry of `run_dir` but `keep` (and hidden ones and the lock) into
    `.previous/<slot>/`, replacing what an earlier run of the same slot left there; returns the
    names moved. A rerun thereby starts from a folder holding only what it resumes from."""
    moved = [e for e in _entries(run_dir) if e not in keep]
    if not moved:
        return []
    aside = run_dir / PREVIOUS / slot
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir(parents=True)
    for name in moved:
        (run_dir / name).rename(aside / name)
    return moved


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_inputs(run_dir: Path, inputs: dict[str, str]) -> None:
    """Refuses an input inside the run folder (the run's outputs may overwrite it, and a rerun
    moves an earlier run's files aside) and an input folder that holds the run folder (the run's
    outputs would become its data)."""
    # Both as written and with links resolved: a link inside the folder is written through.
    folders = {Path(os.path.abspath(run_dir)), Path(run_dir).resolve()}
    for key, path in inputs.items():
        paths = {Path(os.path.abspath(path)), Path(path).resolve()}
        inside = [(p, f) for p in paths for f in folders if _within(p, f)]
        if inside:
            p, f = inside[0]
            raise RunFolderError(
                f"{key} = {path!r} is inside the run folder {run_dir}, where the run writes its outputs "
                f"({p.relative_to(f).as_posix() or '.'} would be overwritten or moved aside): keep inputs "
                "outside it, or write the run to another folder (hydra.run.dir=...)"
            )
        if any(p.is_dir() and _within(f, p) for p in paths for f in folders):
            raise RunFolderError(
                f"{key} = {path!r} is a folder that holds the run folder {run_dir}: the run's outputs would be "
                "read as data by the next run. Write the run outside it (hydra.run.dir=...)"
            )


def _inputs(obj: Any) -> dict[str, str]:
    """The files and folders a config reads (the schema's `inputs()`); one that is not set or does not
    exist is a `ConfigError` naming its key."""
    inputs = obj.inputs() if hasattr(obj, "inputs") else {}
    missing = [
        f"{key} = '': {key} is not set"
        if not path
        else f"{key} = {path!r}: does not exist (relative paths are read from {Path.cwd()})"
        for key, path in inputs.items()
        if not path or not Path(path).exists()
    ]
    if missing:
        raise ConfigError("invalid config:\n  " + "\n  ".join(missing))
    return inputs


def run_entry(
    cfg: DictConfig,
    main: Callable[[Any, RunLog], dict],
    out_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """The contract of every entry point: resolved config in, `summary.json` with a status out.

    `main(config_object, runlog)` returns the headline scalars. Before any work the config is
    validated (every field's allowed values, and that the inputs it names exist and lie outside
    the run folder), the folder is locked for this process and checked to hold nothing but this
    run's own results (its fingerprint, which includes the inputs' content). An earlier run's
    outputs are then moved aside (`set_aside`), but for the study's `RESUME_STATE`. A failure is
    recorded in `summary.json` (status "failed", the error) before it is re-raised. `overrides`
    are the command-line overrides (read from Hydra when it runs the entry point): they win over
    `debug=smoke`.
    """
    from hydra.core.hydra_config import HydraConfig

    if out_dir is None:
        out_dir = HydraConfig.get().runtime.output_dir
    if overrides is None and HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    die_with_parent()
    schema = OmegaConf.get_type(cfg)
    if cfg.get("smoke", False):
        cfg = apply_smoke(cfg, schema, override_keys(overrides or []))
    obj = OmegaConf.to_object(cfg)
    out_dir = Path(out_dir)
    try:
        validate(obj)
        inputs = _inputs(obj)
    except ConfigError as err:
        # A new folder records why it stayed empty; an earlier run's summary is left as it is.
        if not (out_dir / "summary.json").exists():
            RunLog(out_dir).summary({"error": f"{type(err).__name__}: {err}"}, status="failed")
        _restore_hydra_record(out_dir)
        raise
    enable_compilation_cache()
    run_dir = process_dir(out_dir, obj)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    lock = RunLock(run_dir)
    try:
        check_inputs(run_dir, inputs)  # before anything is written: an input may be named like an output
        fp = fingerprint(resolved, tuple(getattr(schema, "NOT_FINGERPRINTED", ())), inputs)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        check_fingerprint(run_dir, fp, resolved.get("resume", "auto"))
        try:
            earlier = read_fingerprint(run_dir)
        except RunFolderError:  # unreadable, and resume=force: what the folder holds was a run's
            earlier = {"sha256": "unreadable"}
        if earlier is None and any((run_dir / name).exists() for name in ("metrics.jsonl", "results.csv")):
            earlier = {"sha256": "unfingerprinted"}  # results from before fingerprints, and resume=force
    except (RunFolderError, ConfigError):  # a refused run leaves the folder as it was
        lock.release()
        _restore_hydra_record(out_dir)
        raise
    with lock:
        keep = not_outputs(run_dir, earlier)
        if earlier is not None:
            state = tuple(getattr(schema, "RESUME_STATE", ()))
            moved = set_aside(run_dir, (*keep, *state), earlier["sha256"][:16])
            if moved:
                log.info("%s: the earlier run's %s moved to %s/", run_dir, ", ".join(moved), PREVIOUS)
        runlog = RunLog(run_dir)
        write_json(runlog.dir / "fingerprint.json", {**fp, "hydra_files": _hydra_record(out_dir), "not_outputs": keep})
        (runlog.dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        write_json(runlog.dir / "config.json", resolved)
        start = time.time()
        runlog.summary({}, status="running")
        try:
            values = main(obj, runlog)
        except BaseException as err:
            runlog.summary(
                {
                    "error": f"{type(err).__name__}: {err}",
                    "traceback": traceback.format_exc(),
                    "wall_time_s": time.time() - start,
                },
                status="failed",
            )
            raise
        summary = runlog.summary({**values, "wall_time_s": time.time() - start}, status="ok")
    log.info("summary: %s", {k: v for k, v in summary.items() if not isinstance(v, dict | list)})
    return summary
