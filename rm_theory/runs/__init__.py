"""Run folders and what reads them: the entry-point contract (`run_entry`: config checks,
fingerprint, lock, summary), metrics.jsonl and summary.json, aggregation of folders of runs into
tables, and the key-by-key comparison of two folders' summaries."""

from rm_theory.runs.aggregate import (
    KINDS,
    Aggregate,
    aggregate,
    collect_runs,
    find_runs,
    latest_run,
    load_run,
    read_results,
    table_kind,
    write_table,
)
from rm_theory.runs.compare import Difference, compare_summaries, summaries
from rm_theory.runs.compile_cache import enable_compilation_cache
from rm_theory.runs.folder import run_entry
from rm_theory.runs.jsonio import from_jsonable, read_json, to_jsonable, write_json
from rm_theory.runs.lock import RunFolderError, RunLock
from rm_theory.runs.log import RunLog, read_metrics
from rm_theory.runs.process import die_with_parent
from rm_theory.runs.smoke import apply_smoke, override_keys

__all__ = [
    "KINDS",
    "Aggregate",
    "Difference",
    "RunFolderError",
    "RunLock",
    "RunLog",
    "aggregate",
    "apply_smoke",
    "collect_runs",
    "compare_summaries",
    "die_with_parent",
    "enable_compilation_cache",
    "find_runs",
    "from_jsonable",
    "latest_run",
    "load_run",
    "override_keys",
    "read_json",
    "read_metrics",
    "read_results",
    "run_entry",
    "summaries",
    "table_kind",
    "to_jsonable",
    "write_json",
    "write_table",
]
