"""The run log: `metrics.jsonl` (one JSON object per logged step or finished unit of work, appended
whole) and `summary.json` (the headline scalars and the run's status)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rm_theory.runs.jsonio import to_jsonable, write_json

log = logging.getLogger(__name__)


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
