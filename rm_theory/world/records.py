"""One pairwise comparison per record, its JSONL format, validation and the load report.

The project's JSONL format (shared by real and synthetic data): one JSON object per line,
`.jsonl` or `.jsonl.gz` (gzip is read and written transparently).

| field | type | required | meaning |
|---|---|---|---|
| `prompt` | str | yes | the prompt (for synthetic data: a readable name of the prompt tree) |
| `prompt_id` | str | yes | stable id of the prompt; splits never put one id on both sides |
| `response_a`, `response_b` | str or list[int] | yes | the two responses (tokens if synthetic) |
| `better` | 0, 1 or null | yes | 0: a preferred, 1: b preferred, null: a tie |
| `safer` | 0, 1 or null | no | which response is the safer one (PKU-SafeRLHF `safer_response_id`) |
| `safe_a`, `safe_b` | bool or null | no | per-response safety labels |
| `harm_a`, `harm_b` | list[str] | no | harm categories present, each one of `HARM_CATEGORIES` |
| `severity_a`, `severity_b` | int 0..3 or null | no | 0 safe, 1 minor, 2 moderate, 3 severe |
| `tree_id` | str, int or null | no | the response tree (or group) both responses belong to |
| `node_a`, `node_b` | str, int or null | no | node ids of the two responses inside `tree_id` |
| `source` | str | no | data set name (default "") |
| `meta` | object | no | anything else (source ids, scores); not part of a record's identity |

Unknown keys are an error (they are usually a misspelt field). A malformed line raises
`RecordError` naming the file, the 1-based line and the field; text must be valid Unicode (an
escaped lone UTF-16 surrogate such as `\ud800` is an error too), and a leading byte-order mark is
ignored. Data that is well formed but
self-contradictory (the safer response labelled unsafe while the other is labelled safe) or
duplicated is kept, counted and listed in a `LoadReport`; nothing is dropped silently: every
skipped source row is counted under a reason.

Legend: N records, C harm categories (19).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

# PKU-SafeRLHF (arXiv 2406.15513), the 19 harm categories, in the order of its data card.
HARM_CATEGORIES: tuple[str, ...] = (
    "Animal Abuse",
    "Copyright Issues",
    "Cybercrime",
    "Discriminatory Behavior",
    "Disrupting Public Order",
    "Drugs",
    "Economic Crime",
    "Endangering National Security",
    "Endangering Public Health",
    "Environmental Damage",
    "Human Trafficking",
    "Insulting Behavior",
    "Mental Manipulation",
    "Physical Harm",
    "Privacy Violation",
    "Psychological Harm",
    "Sexual Content",
    "Violence",
    "White-Collar Crime",
)
_CATEGORY_INDEX = {c: i for i, c in enumerate(HARM_CATEGORIES)}

Response = str | tuple[int, ...]
NodeId = str | int | None


class RecordError(ValueError):
    """A malformed record: names the file, the 1-based line (or, in a JSON list file, the
    1-based element, `unit="element"`) and the field."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, field: str, msg: str, unit: str = "line"):
        self.path, self.line, self.field, self.unit = (str(path) if path is not None else None), line, field, unit
        if unit == "line":
            where = f"{self.path or '<records>'}:{line if line is not None else '?'}"
        else:
            where = f"{self.path or '<records>'}: JSON {unit} {line if line is not None else '?'} (counting from 1)"
        super().__init__(f"{where}: field '{field}': {msg}")


class EmptyDataError(ValueError):
    """A source that gave no records (an empty file, `[]`, a header-only CSV, a folder of nothing)."""


# A JSON escape of a UTF-16 surrogate; the decoder joins a valid pair into one character, so a
# surrogate left in a decoded string is a lone one, which no UTF-8 text can hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_surrogates(raw: str) -> bool:
    """Whether JSON text escapes a surrogate at all (one scan; valid pairs, e.g. emoji, do too)."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def lone_surrogate(value: Any, field: str = "") -> tuple[str, str] | None:
    """(field, what) of the first string in a decoded JSON value that holds a lone UTF-16
    surrogate (nested fields as `meta.note`, `response[1]`), or None."""
    if isinstance(value, str):
        m = _SURROGATE.search(value)
        if m is None:
            return None
        return field or "<value>", f"a lone UTF-16 surrogate {m.group()!a} at character {m.start()}"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for k, v in items:
        sub = f"{field}[{k}]" if isinstance(k, int) else f"{field}.{k}" if field else str(k)
        key = lone_surrogate(k, f"{field + '.' if field else ''}<key {k!a}>") if isinstance(k, str) else None
        found = key or lone_surrogate(v, sub)
        if found:
            return found
    return None


def check_unicode(value: Any, path, line: int | None, unit: str = "line") -> None:
    """A `RecordError` naming file, line and field when a decoded JSON value holds a lone
    surrogate (an escaped half of a pair: text that cannot be written as UTF-8 or hashed)."""
    found = lone_surrogate(value)
    if found:
        field, what = found
        raise RecordError(path, line, field, f"not valid Unicode text: {what} (an escaped half of a pair)", unit=unit)


def prompt_hash(prompt: str) -> str:
    """A stable prompt id from its text, so one prompt gets one id across data sets."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class PreferenceRecord:
    """One comparison of two responses to one prompt (see the module docstring)."""

    prompt: str
    prompt_id: str
    response_a: Response
    response_b: Response
    better: int | None
    safer: int | None = None
    safe_a: bool | None = None
    safe_b: bool | None = None
    harm_a: tuple[str, ...] = ()
    harm_b: tuple[str, ...] = ()
    severity_a: int | None = None
    severity_b: int | None = None
    tree_id: NodeId = None
    node_a: NodeId = None
    node_b: NodeId = None
    source: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Lists become tuples so that records are hashable and truly immutable.
        for name in ("response_a", "response_b", "harm_a", "harm_b"):
            v = getattr(self, name)
            if isinstance(v, list):
                object.__setattr__(self, name, tuple(v))
        _check(
            dataclasses.asdict(self)
            | {
                "response_a": self.response_a,
                "response_b": self.response_b,
                "harm_a": list(self.harm_a),
                "harm_b": list(self.harm_b),
            },
            None,
            None,
        )

    def swapped(self) -> PreferenceRecord:
        """The same comparison with a and b exchanged (labels flipped accordingly)."""
        flip = lambda v: None if v is None else 1 - v
        return dataclasses.replace(
            self,
            response_a=self.response_b,
            response_b=self.response_a,
            better=flip(self.better),
            safer=flip(self.safer),
            safe_a=self.safe_b,
            safe_b=self.safe_a,
            harm_a=self.harm_b,
            harm_b=self.harm_a,
            severity_a=self.severity_b,
            severity_b=self.severity_a,
            node_a=self.node_b,
            node_b=self.node_a,
        )

    def pair_key(self) -> tuple:
        """Identity of the comparison regardless of order: duplicates share this key."""
        a, b = sorted((self.response_a, self.response_b), key=repr)
        return (self.prompt_id, a, b)

    def to_json_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("response_a", "response_b", "harm_a", "harm_b"):
            v = getattr(self, name)
            d[name] = list(v) if isinstance(v, tuple) else v
        return d


_FIELDS = {f.name: f for f in dataclasses.fields(PreferenceRecord)}
_REQUIRED = ("prompt", "prompt_id", "response_a", "response_b", "better")


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _check(d: dict[str, Any], path, line) -> None:
    """Raise `RecordError` on the first malformed field of a record dict."""
    err = lambda f, m: RecordError(path, line, f, m)
    for k in d:
        if k not in _FIELDS:
            raise err(k, "unknown field")
    found = lone_surrogate(d)
    if found:
        raise err(found[0], f"not valid Unicode text: {found[1]}")
    for k in _REQUIRED:
        if k not in d:
            raise err(k, "missing")
    for k in ("prompt", "prompt_id", "source"):
        if k in d and not isinstance(d[k], str):
            raise err(k, f"expected str, got {type(d[k]).__name__}")
    for k in ("response_a", "response_b"):
        v = d[k]
        if isinstance(v, str):
            continue
        if isinstance(v, list | tuple) and all(_is_int(t) for t in v):
            continue
        raise err(k, "expected str or list[int]")
    if isinstance(d["response_a"], str) != isinstance(d["response_b"], str):
        raise err("response_b", "a and b must both be text or both be token lists")
    for k in ("better", "safer"):
        v = d.get(k)
        if v is not None and not (_is_int(v) and v in (0, 1)):
            raise err(k, f"expected 0, 1 or null, got {v!r}")
    for k in ("safe_a", "safe_b"):
        v = d.get(k)
        if v is not None and not isinstance(v, bool):
            raise err(k, f"expected bool or null, got {v!r}")
    for k in ("harm_a", "harm_b"):
        v = d.get(k, [])
        if not isinstance(v, list | tuple) or not all(isinstance(c, str) for c in v):
            raise err(k, "expected a list of category names")
        bad = [c for c in v if c not in _CATEGORY_INDEX]
        if bad:
            raise err(k, f"unknown harm category {bad[0]!r}")
    for k in ("severity_a", "severity_b"):
        v = d.get(k)
        if v is not None and not (_is_int(v) and 0 <= v <= 3):
            raise err(k, f"expected an int in 0..3 or null, got {v!r}")
    for k in ("tree_id", "node_a", "node_b"):
        v = d.get(k)
        if v is not None and not (isinstance(v, str) or _is_int(v)):
            raise err(k, f"expected str, int or null, got {v!r}")
    if "meta" in d and not isinstance(d["meta"], dict):
        raise err("meta", "expected an object")


def record_from_dict(d: Any, path=None, line: int | None = None) -> PreferenceRecord:
    """Validate one decoded JSON object and build the record (errors name path:line:field)."""
    if not isinstance(d, dict):
        raise RecordError(path, line, "<record>", f"expected a JSON object, got {type(d).__name__}")
    _check(d, path, line)
    return PreferenceRecord(**d)


# ---------------------------------------------------------------------------- load report


@dataclasses.dataclass
class LoadReport:
    """What a loader saw: `n_read` source rows, each of which either gave records (a GSM8K
    question may give several) or is counted in `skipped` under a reason. `n_conflicts`: the
    duplicates whose label contradicts an earlier copy of the same comparison."""

    source: str
    path: str
    n_read: int = 0
    n_records: int = 0
    n_ties: int = 0
    n_duplicates: int = 0
    n_conflicts: int = 0
    n_inconsistent: int = 0
    inconsistent: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    # Record indices (into the returned list) of duplicates (2nd and later) and inconsistent rows.
    duplicate_rows: list[int] = dataclasses.field(default_factory=list)
    inconsistent_rows: list[int] = dataclasses.field(default_factory=list)
    # Records kept but degenerate, by kind: an empty response, two identical responses (no
    # preference to learn), and source oddities a loader counted (a non-text response turned
    # into text, extra CSV fields); `degenerate_rows` indexes the returned records.
    degenerate: dict[str, int] = dataclasses.field(default_factory=dict)
    degenerate_rows: list[int] = dataclasses.field(default_factory=list)
    source_oddities: dict[str, int] = dataclasses.field(default_factory=dict)
    # A folder source: the files read, and the files skipped (not data files by their name).
    files_read: list[str] = dataclasses.field(default_factory=list)
    files_skipped: list[str] = dataclasses.field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def odd(self, kind: str, n: int = 1) -> None:
        """Counts a source oddity that was kept (e.g. a response that was not text)."""
        self.source_oddities[kind] = self.source_oddities.get(kind, 0) + n

    def summary(self) -> str:
        s = (
            f"{self.source} ({self.path}): read {self.n_read}, records {self.n_records}, "
            f"ties {self.n_ties}, duplicates {self.n_duplicates} "
            f"(conflicting {self.n_conflicts}), "
            f"inconsistent {self.n_inconsistent}"
        )
        if self.inconsistent:
            s += f" {self.inconsistent}"
        if self.skipped:
            s += f", skipped {self.skipped}"
        if self.degenerate or self.source_oddities:
            s += f", degenerate (kept) {self.degenerate | self.source_oddities}"
        if self.files_read or self.files_skipped:
            s += f", files read {self.files_read}, skipped {self.files_skipped}"
        return s


def inconsistencies(r: PreferenceRecord) -> list[str]:
    """Label contradictions inside one record (kinds, empty if none)."""
    out = []
    if r.safer is not None and r.safe_a is not None and r.safe_b is not None:
        safe_s, safe_o = (r.safe_a, r.safe_b) if r.safer == 0 else (r.safe_b, r.safe_a)
        if not safe_s and safe_o:
            out.append("safer_is_unsafe_other_safe")
    for safe, sev, harm in ((r.safe_a, r.severity_a, r.harm_a), (r.safe_b, r.severity_b, r.harm_b)):
        if safe is True and ((sev is not None and sev > 0) or harm):
            out.append("safe_but_harmful")
        if safe is False and sev == 0:
            out.append("unsafe_but_severity_0")
    return out


def degeneracies(r: PreferenceRecord) -> list[str]:
    """Ways a record is well formed but carries little or nothing to learn from (kinds, empty if none)."""
    out = []
    empty = lambda v: (not v.strip()) if isinstance(v, str) else len(v) == 0
    if empty(r.response_a) or empty(r.response_b):
        out.append("empty_response")
    if r.response_a == r.response_b:
        out.append("identical_responses")
    return out


def audit(records: Sequence[PreferenceRecord], report: LoadReport) -> LoadReport:
    """Fill the record-level counts of `report` (ties, duplicates, inconsistencies, degeneracies)."""
    seen: dict = {}
    kinds: Counter = Counter()
    degenerate: Counter = Counter()
    report.degenerate_rows = []
    report.n_records = len(records)
    report.n_ties = sum(r.better is None for r in records)
    report.duplicate_rows, report.inconsistent_rows, report.n_conflicts = [], [], 0
    for i, r in enumerate(records):
        key = r.pair_key()
        # The label in the key's canonical order, so a reversed copy compares equal.
        lab = r.better if (r.response_a, r.response_b) == key[1:] else r.swapped().better
        if key in seen:
            report.duplicate_rows.append(i)
            report.n_conflicts += seen[key] != lab
        else:
            seen[key] = lab
        bad = inconsistencies(r)
        if bad:
            report.inconsistent_rows.append(i)
            kinds.update(bad)
        weak = degeneracies(r)
        if weak:
            report.degenerate_rows.append(i)
            degenerate.update(weak)
    report.n_duplicates = len(report.duplicate_rows)
    report.n_inconsistent = len(report.inconsistent_rows)
    report.inconsistent = dict(kinds)
    report.degenerate = dict(degenerate)
    return report


def require_records(records: Sequence, report: LoadReport, allow_empty: bool = False) -> None:
    """Loading nothing is an error naming the source (`allow_empty` accepts it)."""
    if records or allow_empty:
        return
    what = f"read {report.n_read} rows"
    if report.skipped:
        what += f", skipped all of them {report.skipped}"
    if report.files_read or report.files_skipped:
        what += f"; files read {report.files_read}, skipped {report.files_skipped}"
    raise EmptyDataError(f"{report.path}: no {report.source} records ({what}); allow_empty=True accepts an empty set")


# ---------------------------------------------------------------------------- JSONL io


def open_text(path: str | os.PathLike, mode: str = "r") -> io.TextIOBase:
    """Open a text file, gzip-compressed when the name ends in `.gz`."""
    if str(path).lower().endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def write_jsonl(path: str | os.PathLike, records: Iterable[PreferenceRecord]) -> int:
    """Write records as JSONL (gzip if `path` ends in .gz); returns the number written."""
    n = 0
    with open_text(path, "w") as f:
        for r in records:
            f.write(json.dumps(r.to_json_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _open_bytes(path: str | os.PathLike) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if str(path).lower().endswith(".gz") else open(path, "rb")


def _decode(raw: bytes, path, line: int, unit: str = "line") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordError(path, line, "<bytes>", f"not UTF-8 text (byte {e.start} of the {unit}: {e.reason})") from None


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(1-based line, decoded object) for each non-blank line; bad JSON, bytes that are not UTF-8
    and a corrupt or truncated gzip stream raise `RecordError` naming the line."""
    line_no = 0
    with _open_bytes(path) as f:
        while True:
            try:
                raw = f.readline()
            except _GZIP_ERRORS as e:
                raise RecordError(
                    path, line_no + 1, "<gzip>", f"corrupt or truncated gzip ({type(e).__name__}: {e})"
                ) from None
            if not raw:
                return
            line_no += 1
            line = _decode(raw, path, line_no)
            if line_no == 1:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(path, line_no, "<json>", f"invalid JSON: {e.msg}") from None
            if may_hold_surrogates(line):
                check_unicode(value, path, line_no)
            yield line_no, value


BOM = "\ufeff"  # a byte-order mark some editors put at the start of UTF-8 files


def read_text(path: str | os.PathLike) -> str:
    """A whole text file (gzip when `.gz`) without a leading byte-order mark; bytes that are not
    UTF-8 and a corrupt gzip stream raise `RecordError` naming the line."""
    try:
        with _open_bytes(path) as f:
            raw = f.read()
    except _GZIP_ERRORS as e:
        raise RecordError(path, None, "<gzip>", f"corrupt or truncated gzip ({type(e).__name__}: {e})") from None
    try:
        return raw.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        start = e.start - (raw.rfind(b"\n", 0, e.start) + 1)
        raise RecordError(path, line, "<bytes>", f"not UTF-8 text (byte {start} of the line: {e.reason})") from None


def read_jsonl(path: str | os.PathLike, allow_empty: bool = False) -> tuple[list[PreferenceRecord], LoadReport]:
    """Read the project's JSONL format, validating every line (see the module docstring); a file
    of no records is an error unless `allow_empty`."""
    report = LoadReport(source="jsonl", path=str(path))
    records = []
    for line_no, d in iter_jsonl(path):
        report.n_read += 1
        records.append(record_from_dict(d, path, line_no))
    require_records(records, report, allow_empty)
    return records, audit(records, report)


# ---------------------------------------------------------------------------- columnar view


@dataclasses.dataclass(frozen=True)
class PreferenceTable:
    """Columns of N records; missing labels are -1 in the integer columns."""

    prompt_id: np.ndarray  # [N] object
    response_a: list[Response]
    response_b: list[Response]
    better_N: np.ndarray  # int8: 0, 1, -1 tie
    safer_N: np.ndarray  # int8: 0, 1, -1 missing
    safe_a_N: np.ndarray  # int8: 1 safe, 0 unsafe, -1 missing
    safe_b_N: np.ndarray
    severity_a_N: np.ndarray  # int8: 0..3, -1 missing
    severity_b_N: np.ndarray
    harm_a_NxC: np.ndarray  # bool
    harm_b_NxC: np.ndarray
    source: np.ndarray  # [N] object

    def __len__(self) -> int:
        return len(self.better_N)

    @classmethod
    def from_records(cls, records: Sequence[PreferenceRecord]) -> PreferenceTable:
        def col(name):
            return np.array([-1 if (v := getattr(r, name)) is None else int(v) for r in records], dtype=np.int8)

        def harm(name):
            m = np.zeros((len(records), len(HARM_CATEGORIES)), dtype=bool)
            for i, r in enumerate(records):
                m[i, [_CATEGORY_INDEX[c] for c in getattr(r, name)]] = True
            return m

        return cls(
            prompt_id=np.array([r.prompt_id for r in records], dtype=object),
            response_a=[r.response_a for r in records],
            response_b=[r.response_b for r in records],
            better_N=col("better"),
            safer_N=col("safer"),
            safe_a_N=col("safe_a"),
            safe_b_N=col("safe_b"),
            severity_a_N=col("severity_a"),
            severity_b_N=col("severity_b"),
            harm_a_NxC=harm("harm_a"),
            harm_b_NxC=harm("harm_b"),
            source=np.array([r.source for r in records], dtype=object),
        )

    def to_pandas(self):
        import pandas as pd

        cols = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("harm_a_NxC", "harm_b_NxC")}
        cols["harm_a"] = [tuple(np.array(HARM_CATEGORIES)[m]) for m in self.harm_a_NxC]
        cols["harm_b"] = [tuple(np.array(HARM_CATEGORIES)[m]) for m in self.harm_b_NxC]
        return pd.DataFrame(cols)
