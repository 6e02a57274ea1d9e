"""`fingerprint.json`: what determines a run's results (its resolved config without output paths and
write options, the package version, and the size and SHA-256 of every input file it names), and the
check that a folder is resumed only by a run of the same fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from rm_theory.common.validate import ConfigError
from rm_theory.runs.jsonio import read_json, to_jsonable
from rm_theory.runs.lock import RunFolderError

log = logging.getLogger(__name__)

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
