"""Run outputs and their aggregation.

Every run writes into its own folder: `config.yaml`/`config.json` (the resolved config),
`fingerprint.json` (what determines the results: the config minus output paths, the package
version, and the size and SHA-256 of every input file the config names), `metrics.jsonl` (one JSON
object per logged step or finished unit of work), `summary.json` (final scalars and `"status"`:
"ok", "failed" or "running") and `run.lock` (the pid of the live process writing the folder). A
folder is resumed only by a run of the same fingerprint, and written by one process at a time; a
rerun first moves the earlier run's outputs aside into `.previous/<its fingerprint>/`, keeping only
what the study resumes from (its schema's `RESUME_STATE`), so no output of an earlier run is ever
left beside this run's. Aggregation globs run folders into one pandas table and tolerates failed or
missing runs.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from rm_theory.common.validate import ConfigError, validate

log = logging.getLogger(__name__)


def to_jsonable(x: Any) -> Any:
    """Plain JSON types from numpy/jax scalars and arrays, dataclasses and paths; NaN/inf as strings."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist") and not isinstance(x, str):
        return to_jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, np.generic):
        return to_jsonable(x.item())
    return x


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def from_jsonable(row: dict) -> dict:
    """A logged row's values as they were: the strings `to_jsonable` wrote for NaN and ±inf back to
    floats (a resumed table then equals an uninterrupted one)."""
    return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in row.items()}


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a killed run never leaves half a summary


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


class RunLog:
    """Appends metric rows to `metrics.jsonl` and writes `summary.json` in a run folder.

    Each row is one `os.write` of a whole line on an O_APPEND descriptor: a kill leaves at most a
    torn last line, never a line spliced into another. Reading drops a torn last line (with a
    warning); the first append of a process cuts it off so later rows start on a line of their own.
    """

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"
        self._tail_checked = False

    def _cut_torn_tail(self) -> None:
        self._tail_checked = True
        if not self.metrics_path.exists():
            return
        data = self.metrics_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: cutting off an incomplete last line (a run killed mid-write)", self.metrics_path)
            os.truncate(self.metrics_path, keep)

    def metric(self, row: dict) -> None:
        if not self._tail_checked:
            self._cut_torn_tail()
        # Insertion order, not sorted keys: resumed rows then rebuild tables with the columns of
        # an uninterrupted run.
        line = memoryview((json.dumps(to_jsonable(row)) + "\n").encode())
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            while line:
                line = line[os.write(fd, line) :]
        finally:
            os.close(fd)

    def rows(self) -> list[dict]:
        return read_metrics(self.metrics_path)

    def summary(self, values: dict, status: str = "ok") -> dict:
        out = {**values, "status": status}
        write_json(self.dir / "summary.json", out)
        return out


def read_metrics(path: Path) -> list[dict]:
    """The rows of a `metrics.jsonl`; an incomplete last line is dropped with a warning naming the
    file, a corrupt line elsewhere is an error naming file and line."""
    path = Path(path)
    if not path.exists():
        return []
    *lines, tail = path.read_bytes().split(b"\n")
    if tail.strip():
        log.warning("%s: dropping an incomplete last line (a run killed mid-write): %.60r", path, tail)
    out = []
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            out.append(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}, line {i}: not a JSON object ({err}); remove the line or start afresh") from err
    return out


class RunFolderError(RuntimeError):
    """A run folder that this run may not write: another config's results, or another live process."""


class RunLock:
    """`run.lock` in a run folder: an exclusive `flock` held while the run writes, the holder's pid inside.

    The kernel releases the lock when its holder exits or is killed, so a folder left by a dead
    process is taken over at once, and a live holder is never raced.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "run.lock"
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.path.read_text().strip() or "unknown"
            raise RunFolderError(
                f"{self.path.parent} is being written by another live process (pid {holder}, see {self.path}); "
                "wait for it to finish or stop it, or write this run to another folder (hydra.run.dir=...)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# Keys of every config that choose how a run is written, not what it computes.
NOT_FINGERPRINTED = ("resume",)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rm_theory")
    except PackageNotFoundError:
        return "unknown"


def _flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict) and x:
        return {k: v for key, val in x.items() for k, v in _flatten(val, f"{prefix}{key}.").items()}
    return {prefix[:-1]: x}


def file_digest(path: Path) -> dict:
    """{"size": bytes, "sha256": hex} of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def input_digest(path: str | Path) -> dict[str, dict]:
    """The content of an input: {"": digest} of a file; of a folder, {relative path: digest} of
    every file under it (hidden files and folders left out, as the loaders leave them out)."""
    p = Path(path)
    if not p.is_dir():
        return {"": file_digest(p)}
    return {
        f.relative_to(p).as_posix(): file_digest(f)
        for f in sorted(p.rglob("*"))
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
    }


def fingerprint(resolved: dict, skip: tuple[str, ...] = (), inputs: dict[str, str] | None = None) -> dict:
    """What determines a run's results: its resolved config without the keys in `skip` (dotted;
    output paths and write options), the package version, and the content of each input the
    config names (`inputs`: dotted key -> file or folder; `input_digest`); `sha256` hashes them."""
    skip = (*NOT_FINGERPRINTED, *skip)
    flat = {
        k: v
        for k, v in _flatten(to_jsonable(resolved)).items()
        if not any(k == s or k.startswith(s + ".") for s in skip)
    }
    body: dict[str, Any] = {"version": package_version(), "config": flat}
    if inputs:  # absent otherwise, so that runs reading no files keep the fingerprints they had
        body["inputs"] = {}
        for key, path in sorted(inputs.items()):
            try:
                body["inputs"][key] = input_digest(path)
            except OSError as err:
                raise ConfigError(f"invalid config:\n  {key} = {path!r}: cannot be read ({err})") from None
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "sha256": digest}


def _input_keys(fp: dict) -> dict[str, str]:
    """`inputs.<key>` (a file) or `inputs.<key>/<file>` (a folder's files) -> 'N bytes, sha256 ...'."""
    return {
        f"inputs.{key}" + (f"/{rel}" if rel else ""): f"{d['size']:,} bytes, sha256 {d['sha256'][:16]}"
        for key, files in (fp.get("inputs") or {}).items()
        for rel, d in files.items()
    }


def fingerprint_diff(old: dict, new: dict, limit: int = 12) -> list[str]:
    """'key: old -> new' for each key whose value differs (the version as key `version`, an input
    file as `inputs.<key>`, a folder's file as `inputs.<key>/<file>`)."""
    a = {**old.get("config", {}), **_input_keys(old), "version": old.get("version")}
    b = {**new.get("config", {}), **_input_keys(new), "version": new.get("version")}
    missing = object()
    out = [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k, missing) != b.get(k, missing)
    ]
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def read_fingerprint(run_dir: Path) -> dict | None:
    """The `fingerprint.json` of a run folder (None if there is none); one that cannot be read is
    a `RunFolderError` naming it (`check_fingerprint` says how to go on)."""
    path = Path(run_dir) / "fingerprint.json"
    if not path.exists():
        return None
    try:
        old = read_json(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{path} is not readable JSON ({type(err).__name__}: {err})") from None
    if not isinstance(old, dict) or not isinstance(old.get("sha256"), str):
        raise RunFolderError(f"{path} is not a fingerprint (a JSON object with a sha256)")
    return old


def check_fingerprint(run_dir: Path, fp: dict, resume: str = "auto") -> None:
    """Refuses a folder that holds results of another fingerprint, or whose fingerprint.json
    cannot be read (`resume=force` resumes it anyway, and the new fingerprint is recorded)."""
    run_dir = Path(run_dir)
    try:
        old = read_fingerprint(run_dir)
    except RunFolderError as err:
        what = f"{err}, so which config made the results in {run_dir} cannot be told"
    else:
        if old is not None and old["sha256"] == fp["sha256"]:
            return
        if old is not None:
            what = f"{run_dir} holds results of a different run ({'; '.join(fingerprint_diff(old, fp))})"
        elif (run_dir / "metrics.jsonl").exists() or (run_dir / "results.csv").exists():
            what = f"{run_dir} holds results without a fingerprint.json (written before fingerprints)"
        else:
            return
    if resume == "force":
        log.warning("resume=force: resuming anyway although %s", what)
        return
    raise RunFolderError(
        f"{what}. Rows already there would be reused as if they were this run's. Start afresh in another "
        "folder (hydra.run.dir=...) or delete this one; or pass resume=force to resume it anyway."
    )


def arm_parent_death_signal() -> bool:
    """SIGKILL this process when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`; kept across exec).
    Returns False where the call is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """A run started by `reproduce` dies with it, never running on as an orphan that a rerun would
    race. `experiments/__init__.py` calls it before the entry point's heavy imports, so a kill of the
    parent during them counts too; a parent that died before the signal was armed is caught here.
    `RM_THEORY_PARENT_PID` names the parent."""
    parent = os.environ.get("RM_THEORY_PARENT_PID")
    if not parent:
        return
    if not arm_parent_death_signal():  # not Linux: the parent still kills our process group on exit
        return
    os.environ.pop("RM_THEORY_PARENT_PID")  # for this process only, not for what it starts
    if os.getppid() != int(parent):  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


def override_keys(overrides: list[str]) -> list[str]:
    """Config keys set on the command line (`key=value`, `+key=`, `++key=`, `~key`); not groups."""
    keys = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key and key not in ("debug", "experiment") and not key.startswith("hydra."):
            keys.append(key)
    return keys


def apply_smoke(cfg: DictConfig, schema: type, explicit: list[str] = ()) -> DictConfig:
    """Shrinks a config to a run of seconds: the schema's `SMOKE` dotted-key overrides, as defaults.

    A key given on the command line (`explicit`, or a key above or below it) keeps the user's value.
    """

    def overridden(key: str) -> bool:
        return any(key == o or key.startswith(o + ".") or o.startswith(key + ".") for o in explicit)

    for key, value in getattr(schema, "SMOKE", {}).items():
        if not overridden(key):
            OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def enable_compilation_cache(path: str | Path | None = None) -> None:
    """Persists XLA compilations across runs (sweeps recompile the same programs otherwise).

    Off when RM_THEORY_COMPILE_CACHE=0; the folder defaults to ~/.cache/rm_theory/jax.
    """
    import os

    if os.environ.get("RM_THEORY_COMPILE_CACHE", "1") == "0":
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    path = path or os.environ.get("RM_THEORY_COMPILE_CACHE_DIR", Path.home() / ".cache" / "rm_theory" / "jax")
    Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _process_dir(out_dir: Path, obj: Any) -> Path:
    """The folder this process writes. Multi-host runs (`distributed.initialize`) join the job
    first; every process then runs the same program, process 0 writes the run folder and the
    others their own hidden `.process_<i>/` inside it, so no file is written twice."""
    dist_cfg = getattr(obj, "distributed", None)
    if dist_cfg is None or not dist_cfg.initialize:
        return out_dir
    import jax

    from rm_theory.rm import sharding as distributed

    distributed.maybe_initialize(dist_cfg)
    i = jax.process_index()
    return out_dir if i == 0 else out_dir / f".process_{i}"


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
    """The files and folders a config reads (the schema's `inputs()`); a missing one is a
    `ConfigError` naming its key."""
    inputs = obj.inputs() if hasattr(obj, "inputs") else {}
    missing = [
        f"{key} = {path!r}: does not exist (relative paths are read from {Path.cwd()})"
        for key, path in inputs.items()
        if not Path(path).exists()
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
    run_dir = _process_dir(out_dir, obj)
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
