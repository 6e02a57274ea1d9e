"""Run outputs and their aggregation.

Every run writes into its own folder: `config.yaml`/`config.json` (the resolved config),
`fingerprint.json` (what determines the results: the config minus output paths, and the package
version), `metrics.jsonl` (one JSON object per logged step or finished unit of work),
`summary.json` (final scalars and `"status"`: "ok", "failed" or "running") and `run.lock` (the pid
of the live process writing the folder). A folder is resumed only by a run of the same
fingerprint, and written by one process at a time. Aggregation globs run folders into one pandas
table and tolerates failed or missing runs.
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


def fingerprint(resolved: dict, skip: tuple[str, ...] = ()) -> dict:
    """What determines a run's results: its resolved config without the keys in `skip` (dotted;
    output paths and write options), and the package version; `sha256` hashes both."""
    skip = (*NOT_FINGERPRINTED, *skip)
    flat = {
        k: v
        for k, v in _flatten(to_jsonable(resolved)).items()
        if not any(k == s or k.startswith(s + ".") for s in skip)
    }
    body = {"version": package_version(), "config": flat}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "sha256": digest}


def fingerprint_diff(old: dict, new: dict, limit: int = 12) -> list[str]:
    """'key: old -> new' for each key whose value differs (the version as key `version`)."""
    a = {**old.get("config", {}), "version": old.get("version")}
    b = {**new.get("config", {}), "version": new.get("version")}
    missing = object()
    out = [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k, missing) != b.get(k, missing)
    ]
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def check_fingerprint(run_dir: Path, fp: dict, resume: str = "auto") -> None:
    """Refuses a folder that holds results of another fingerprint (`resume=force` resumes anyway)."""
    path = Path(run_dir) / "fingerprint.json"
    if path.exists():
        old = read_json(path)
        if old.get("sha256") == fp["sha256"]:
            return
        what = "; ".join(fingerprint_diff(old, fp))
    elif (Path(run_dir) / "metrics.jsonl").exists() or (Path(run_dir) / "results.csv").exists():
        what = "the folder holds results without a fingerprint.json (written before fingerprints)"
    else:
        return
    if resume == "force":
        log.warning("resume=force: resuming %s although its results were made with: %s", run_dir, what)
        return
    raise RunFolderError(
        f"{run_dir} holds results of a different run ({what}). Rows already there would be reused as "
        "if they were this run's. Start afresh in another folder (hydra.run.dir=...) or delete this one; "
        "or pass resume=force to resume it anyway."
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
    path = out_dir / "fingerprint.json"
    if not path.exists():
        return
    for name, text in (read_json(path).get("hydra_files") or {}).items():
        (out_dir / ".hydra" / name).write_text(text)


def run_entry(
    cfg: DictConfig,
    main: Callable[[Any, RunLog], dict],
    out_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """The contract of every entry point: resolved config in, `summary.json` with a status out.

    `main(config_object, runlog)` returns the headline scalars. Before any work the config is
    validated (every field's allowed values), the folder is locked for this process and checked to
    hold nothing but this run's own results (its fingerprint). A failure is recorded in
    `summary.json` (status "failed", the error) before it is re-raised. `overrides` are the
    command-line overrides (read from Hydra when it runs the entry point): they win over
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
    except ConfigError as err:
        # A new folder records why it stayed empty; an earlier run's summary is left as it is.
        if not (out_dir / "summary.json").exists():
            RunLog(out_dir).summary({"error": f"{type(err).__name__}: {err}"}, status="failed")
        _restore_hydra_record(out_dir)
        raise
    enable_compilation_cache()
    run_dir = _process_dir(out_dir, obj)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    fp = fingerprint(resolved, tuple(getattr(schema, "NOT_FINGERPRINTED", ())))
    try:
        lock.acquire()
        check_fingerprint(run_dir, fp, resolved.get("resume", "auto"))
    except RunFolderError:
        lock.release()
        _restore_hydra_record(out_dir)
        raise
    with lock:
        runlog = RunLog(run_dir)
        write_json(runlog.dir / "fingerprint.json", {**fp, "hydra_files": _hydra_record(out_dir)})
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
