"""Reading a data set's source, shared by the loaders (`real.loaders`, `real.multi_loaders`): a file
or a folder of files (`_read_source`: every file whose name ends in one of a loader's suffixes, any
case, in name order, hidden ones skipped and listed), the rows of a JSON list or a JSONL(.gz) file
(`_read_json_rows`), typed fields (`_field`), and errors that name the file, the line (or, in a JSON
list file, the element) and the field (`_err`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rm_theory.world.records import (
    LoadReport,
    PreferenceRecord,
    RecordError,
    audit,
    check_unicode,
    iter_jsonl,
    may_hold_surrogates,
    read_text,
    require_records,
)

Loaded = tuple[list[PreferenceRecord], LoadReport]


class Row(int):
    """Where a source row sits: its 1-based number (an int, as in `meta`), and whether it counts
    lines of a JSONL file or elements of a JSON list (so that errors say which)."""

    unit = "line"


class Element(Row):
    unit = "element"


def _err(path, line: int | None, field: str, msg: str) -> RecordError:
    return RecordError(path, line, field, msg, unit=getattr(line, "unit", "line"))


def _read_json_rows(path: str | os.PathLike) -> list[tuple[int, Any]]:
    """Rows of a JSON list file, or of a JSONL(.gz) file, as (1-based line or element, object)."""
    name = str(path)
    if name.lower().endswith((".jsonl", ".jsonl.gz")):
        return [(Row(i), row) for i, row in iter_jsonl(path)]
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(path, e.lineno, "<json>", f"invalid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise RecordError(path, None, "<json>", "expected a JSON list of objects")
    rows = [(Element(i), row) for i, row in enumerate(data, start=1)]
    if may_hold_surrogates(text):
        for i, row in rows:
            check_unicode(row, path, i, unit=i.unit)
    return rows


def _field(row: Any, key: str, types: type | tuple, path, line: int) -> Any:
    if not isinstance(row, dict):
        raise _err(path, line, "<record>", "expected a JSON object")
    if key not in row:
        raise _err(path, line, key, "missing")
    v, types = row[key], types if isinstance(types, tuple) else (types,)
    # bool is an int subclass in Python; accept it only where asked for.
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
        raise _err(path, line, key, f"unexpected type {type(v).__name__}")
    return v


def _finish(records: list[PreferenceRecord], report: LoadReport, allow_empty: bool = False) -> Loaded:
    require_records(records, report, allow_empty)
    return records, audit(records, report)


JSON_ROWS = (".json", ".json.gz", ".jsonl", ".jsonl.gz")  # what `_read_json_rows` reads
JSONL = (".jsonl", ".jsonl.gz")
CSV = (".csv", ".csv.gz")


def _read_source(
    path: str | os.PathLike,
    suffixes: tuple[str, ...],
    read_file: Callable[[Path, str | None], list[PreferenceRecord]],
    report: LoadReport,
) -> list[PreferenceRecord]:
    """`read_file(file, None)` of a file; of a folder, `read_file(file, name)` of every file under
    it whose name ends in one of `suffixes` (any case), `name` its path relative to the folder.
    The report lists the files read and skipped (other names; hidden files and folders)."""
    p = Path(path)
    if not p.is_dir():
        return read_file(p, None)
    files, skipped = [], []
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p).as_posix()
        hidden = any(part.startswith(".") for part in f.relative_to(p).parts)
        if f.is_dir():
            continue
        (files if f.name.lower().endswith(suffixes) and not hidden else skipped).append(rel)
    report.files_read, report.files_skipped = files, skipped
    return [r for rel in files for r in read_file(p / rel, rel)]


def _file_meta(rel: str | None) -> dict[str, str]:
    return {} if rel is None else {"file": rel}
