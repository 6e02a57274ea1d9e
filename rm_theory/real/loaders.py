"""Loaders of the real preference data sets into `PreferenceRecord`s (formats: data README).

Every loader takes a path and returns `(records, LoadReport)`. Responses keep the source's order
(the preferred one is usually `a`); use `randomize_sides` before training anything that could
learn the position. Source rows that cannot become a comparison are counted under a reason in
`report.skipped`, never dropped silently; degenerate records that are kept (an empty response, two
identical responses, a response that was not text, extra CSV fields) are counted in
`report.degenerate` / `report.source_oddities`. A source that gives no records at all is an error
naming its path unless `allow_empty=True`. Every error names the file, the line (or, in a JSON
list file, the element) and the field. `load(name, path)` dispatches by data-set name.

Every loader takes a file or a folder: a folder is read file by file, sub-folders included, every
file whose name ends in one of the loader's suffixes (any case; `SUFFIXES`), in name order; the
report lists the files read and those skipped (other names, and hidden files and folders), and
each record's `meta["file"]` says which file it came from. Reading files, rows and fields is
`real.sources`'s; multi-dimensional data, every label kept, has its loaders in `real.multi_loaders`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rm_theory.real.multi_loaders import load_helpsteer2
from rm_theory.real.sources import (
    CSV,
    JSON_ROWS,
    JSONL,
    Loaded,
    _err,
    _field,
    _file_meta,
    _finish,
    _read_json_rows,
    _read_source,
)
from rm_theory.world.records import (
    HARM_CATEGORIES,
    EmptyDataError,
    LoadReport,
    PreferenceRecord,
    RecordError,
    iter_jsonl,
    prompt_hash,
    read_jsonl,
    read_text,
)

_ASSISTANT = "\n\nAssistant:"


# ---------------------------------------------------------------------------- HH-RLHF


def split_hh_transcript(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """(prompt, chosen reply, rejected reply), or None if the two do not share the prompt.

    The prompt is everything up to and including the last "\\n\\nAssistant:" tag, which must sit
    at the same place with the same history in both transcripts.
    """
    pc, pr = chosen.rfind(_ASSISTANT), rejected.rfind(_ASSISTANT)
    if pc < 0 or pc != pr or chosen[:pc] != rejected[:pr]:
        return None
    cut = pc + len(_ASSISTANT)
    return chosen[:cut], chosen[cut:].lstrip(" "), rejected[cut:].lstrip(" ")


def _unix_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_hh_rlhf(path: str | os.PathLike, source: str = "hh-rlhf", allow_empty: bool = False) -> Loaded:
    """Anthropic HH-RLHF jsonl(.gz) `{chosen, rejected}`: a = chosen, better = 0.

    Transcripts with Windows (`\\r\\n`) or old Mac (`\\r`) line breaks are read with `\\n` ones
    (the turn tags are "\\n\\nHuman:" and "\\n\\nAssistant:"), counted in `source_oddities`."""
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        out = []
        for line, row in iter_jsonl(f):
            report.n_read += 1
            c = _field(row, "chosen", str, f, line)
            r = _field(row, "rejected", str, f, line)
            if "\r" in c or "\r" in r:
                c, r = _unix_newlines(c), _unix_newlines(r)
                report.odd("carriage_return_line_breaks")
            parts = split_hh_transcript(c, r)
            if parts is None:
                report.skip("no_shared_prefix")
                continue
            prompt, a, b = parts
            meta = {"line": int(line)} | _file_meta(rel)
            out.append(PreferenceRecord(prompt, prompt_hash(prompt), a, b, better=0, source=source, meta=meta))
        return out

    return _finish(_read_source(path, JSONL, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- PKU-SafeRLHF


def _harm_list(d: Any, path, line: int, key: str) -> list[str]:
    if not isinstance(d, dict):
        raise _err(path, line, key, "expected a dict of category -> bool")
    bad = [c for c in d if c not in HARM_CATEGORIES]
    if bad:
        raise _err(path, line, key, f"unknown harm category {bad[0]!r}")
    if not all(isinstance(v, bool) for v in d.values()):
        raise _err(path, line, key, "expected bool values")
    return [c for c in HARM_CATEGORIES if d.get(c, False)]


def _pku_full(row: dict, path, line: int, source: str) -> PreferenceRecord:
    prompt = _field(row, "prompt", str, path, line)
    resp = [_field(row, f"response_{i}", str, path, line) for i in (0, 1)]
    safe = [_field(row, f"is_response_{i}_safe", bool, path, line) for i in (0, 1)]
    ids = {}
    for k in ("better_response_id", "safer_response_id"):
        v = _field(row, k, int, path, line)
        if v not in (0, 1):
            raise _err(path, line, k, f"expected 0 or 1, got {v!r}")
        ids[k] = v
    harm = [
        _harm_list(row.get(f"response_{i}_harm_category", {}), path, line, f"response_{i}_harm_category")
        for i in (0, 1)
    ]
    sev = []
    for i in (0, 1):
        k = f"response_{i}_severity_level"
        v = row.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 3):
            raise _err(path, line, k, f"expected an int in 0..3, got {v!r}")
        sev.append(v)
    meta = {k: row[k] for k in ("response_0_sha256", "response_1_sha256", "prompt_source") if k in row}
    return PreferenceRecord(
        prompt,
        prompt_hash(prompt),
        resp[0],
        resp[1],
        better=ids["better_response_id"],
        safer=ids["safer_response_id"],
        safe_a=safe[0],
        safe_b=safe[1],
        harm_a=tuple(harm[0]),
        harm_b=tuple(harm[1]),
        severity_a=sev[0],
        severity_b=sev[1],
        source=source,
        meta=meta | {"row": int(line)},
    )


def _pku_pair(row: dict, path, line: int, source: str) -> PreferenceRecord:
    prompt = _field(row, "prompt", str, path, line)
    resp = _field(row, "response", list, path, line)
    if len(resp) != 2 or not all(isinstance(x, str) for x in resp):
        raise _err(path, line, "response", "expected [safer_and_safe, less_safe_and_unsafe]")
    # The pair-list form is a DPO set whose chosen response is the safer, safe one; its only
    # preference is safety, so `better` copies it (flagged in meta).
    return PreferenceRecord(
        prompt,
        prompt_hash(prompt),
        resp[0],
        resp[1],
        better=0,
        safer=0,
        safe_a=True,
        safe_b=False,
        source=source,
        meta={"row": int(line), "better_from": "safer"},
    )


def load_pku_saferlhf(path: str | os.PathLike, source: str = "pku-saferlhf", allow_empty: bool = False) -> Loaded:
    """PKU-SafeRLHF: the full published schema, or the pair-list subset `{prompt, response}`.

    Accepts a JSON list or JSONL(.gz). The form is the file's: the pair-list subset when its rows
    carry `response` and none carries `response_0`, so that a subset row missing a field is
    reported against the subset's fields.
    """
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        rows = _read_json_rows(f)
        dicts = [row for _, row in rows if isinstance(row, dict)]
        pair_form = any("response" in r for r in dicts) and not any("response_0" in r for r in dicts)
        report.n_read += len(rows)
        out = [(_pku_pair if pair_form else _pku_full)(row, f, line, source) for line, row in rows]
        return [dataclasses.replace(r, meta=r.meta | _file_meta(rel)) for r in out] if rel else out

    return _finish(_read_source(path, JSON_ROWS, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- GSM8K


def load_gsm8k_solutions(path: str | os.PathLike, source: str = "gsm8k", allow_empty: bool = False) -> Loaded:
    """GSM8K example_model_solutions: every correct-over-incorrect pair per question.

    A question's solutions form one group: `tree_id` = question line (`file:line` when read from
    a folder), `node_*` = model name. Questions whose solutions are all correct or all incorrect
    give no pair (counted).
    """
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        out = []
        for line, row in iter_jsonl(f):
            report.n_read += 1
            q = _field(row, "question", str, f, line)
            sols = {}
            for k, v in row.items():
                if k in ("question", "ground_truth"):
                    continue
                if not (
                    isinstance(v, dict) and isinstance(v.get("is_correct"), bool) and isinstance(v.get("solution"), str)
                ):
                    raise _err(f, line, k, "expected {is_correct: bool, solution: str}")
                sols[k] = v
            good = [k for k, v in sols.items() if v["is_correct"]]
            bad = [k for k, v in sols.items() if not v["is_correct"]]
            if not good or not bad:
                report.skip("all_correct" if not bad else "all_incorrect")
                continue
            pid, tree = prompt_hash(q), (line if rel is None else f"{rel}:{line}")
            for g in good:
                for b in bad:
                    out.append(
                        PreferenceRecord(
                            q,
                            pid,
                            sols[g]["solution"],
                            sols[b]["solution"],
                            better=0,
                            tree_id=tree,
                            node_a=g,
                            node_b=b,
                            source=source,
                            meta=_file_meta(rel),
                        )
                    )
        return out

    return _finish(_read_source(path, JSONL, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- PandaLM


def _panda_prompt(instruction: str, inp: str) -> str:
    return instruction if not inp else f"{instruction}\n\n{inp}"


def load_pandalm(path: str | os.PathLike, source: str = "pandalm", allow_empty: bool = False) -> Loaded:
    """PandaLM test set: the majority of three annotators (0 tie, 1, 2); ties stay ties.

    With no majority (three different votes) the label is a tie, counted in meta. `input` is text
    (all 999 rows of the published testset-v1.json; 167 of them empty) or absent/null (no input);
    any other value (an object, a number) is an error naming the row, since no one text of it
    would be what the annotators saw.
    """
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            instr = _field(row, "instruction", str, f, line)
            inp = _field(row, "input", str, f, line) if row.get("input") is not None else ""
            votes = []
            for k in ("annotator1", "annotator2", "annotator3"):
                v = _field(row, k, (int, str), f, line)
                # The published file stores the votes as ints; other copies as strings ("0", "1", "2").
                v = int(v) if str(v) in ("0", "1", "2") else v
                if v not in (0, 1, 2):
                    raise _err(f, line, k, f"expected 0, 1 or 2, got {v!r}")
                votes.append(v)
            top, n = Counter(votes).most_common(1)[0]
            better = None if (n < 2 or top == 0) else top - 1
            prompt = _panda_prompt(instr, inp)
            # A few published responses are the JSON literal true (the text "True" parsed away): kept
            # as that text, and counted.
            a, b = (_field(row, k, (str, bool), f, line) for k in ("response1", "response2"))
            for v in (a, b):
                if isinstance(v, bool):
                    report.odd(f"non_text_response_{str(v).lower()}")
            out.append(
                PreferenceRecord(
                    prompt,
                    prompt_hash(prompt),
                    str(a),
                    str(b),
                    better=better,
                    source=source,
                    meta={"idx": row.get("idx"), "votes": votes, "no_majority": n < 2} | _file_meta(rel),
                )
            )
        return out

    return _finish(_read_source(path, JSON_ROWS, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- LLMBar


def load_llmbar(path: str | os.PathLike, source: str = "llmbar", allow_empty: bool = False) -> Loaded:
    """LLMBar JSON `{input, output_1, output_2, label}`. Each file is a subset, named in the
    records' `source` (`llmbar/<file name without suffix>`, its path under the folder when read
    from a folder: the upstream `Dataset/` nests them as `LLMBar/Natural/dataset.json`, ...)."""
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        name = rel or f.name
        ends = [x for x in JSON_ROWS if name.lower().endswith(x)]
        subset = name[: len(name) - max(map(len, ends), default=0)]
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            prompt = _field(row, "input", str, f, line)
            lab = _field(row, "label", (str, int), f, line)
            if str(lab) not in ("1", "2"):
                raise _err(f, line, "label", f"expected '1' or '2', got {lab!r}")
            out.append(
                PreferenceRecord(
                    prompt,
                    prompt_hash(prompt),
                    _field(row, "output_1", str, f, line),
                    _field(row, "output_2", str, f, line),
                    better=int(lab) - 1,
                    source=f"{source}/{subset}",
                    meta={"row": int(line)} | _file_meta(rel),
                )
            )
        return out

    return _finish(_read_source(path, JSON_ROWS, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- UltraFeedback


def _last_assistant(v: Any, path, line: int, key: str) -> str:
    """A response given as text or as a message list (the last assistant message's content)."""
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        msgs = [m for m in v if isinstance(m, dict) and m.get("role") == "assistant"]
        if msgs and isinstance(msgs[-1].get("content"), str):
            return msgs[-1]["content"]
    raise _err(path, line, key, "expected text or a message list with an assistant turn")


def load_ultrafeedback(
    path: str | os.PathLike,
    source: str = "ultrafeedback",
    equal_scores_as_ties: bool = False,
    allow_empty: bool = False,
) -> Loaded:
    """UltraFeedback-binarized sample `{prompt, chosen, rejected, metadata}`: a = chosen.

    Pairs whose two scores (metadata score_chosen/score_rejected) are equal keep the published
    label (better = 0) unless `equal_scores_as_ties`.
    """
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            prompt = _field(row, "prompt", str, f, line)
            a = _last_assistant(row.get("chosen"), f, line, "chosen")
            b = _last_assistant(row.get("rejected"), f, line, "rejected")
            metadata = row.get("metadata")
            metadata = {} if metadata is None else metadata
            if not isinstance(metadata, dict):
                raise _err(f, line, "metadata", f"expected an object, got {type(metadata).__name__}")
            meta = dict(metadata) | {"source_index": row.get("source_index")} | _file_meta(rel)
            tie = equal_scores_as_ties and "score_chosen" in meta and meta["score_chosen"] == meta.get("score_rejected")
            out.append(
                PreferenceRecord(prompt, prompt_hash(prompt), a, b, better=None if tie else 0, source=source, meta=meta)
            )
        return out

    return _finish(_read_source(path, JSON_ROWS, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- Safer-Instruct


def load_safer_instruct(path: str | os.PathLike, source: str = "safer-instruct", allow_empty: bool = False) -> Loaded:
    """Safer-Instruct csv(.gz) `instruction, rejected, chosen, label`: a = chosen, safer = 0.

    `label` is the data set's own topic (hate, self-harm), not a PKU category: it goes to meta. A
    header that names a column twice is an error (which of the two is meant cannot be told).
    """
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        out = []
        with io.StringIO(read_text(f), newline="") as text:
            reader = csv.DictReader(text)
            names = reader.fieldnames or []
            twice = [c for c, k in Counter(names).items() if k > 1]
            if twice:
                cols = [i + 1 for i, c in enumerate(names) if c == twice[0]]
                raise RecordError(f, 1, twice[0], f"column named twice in the header (columns {cols})")
            missing = {"instruction", "rejected", "chosen"} - set(names)
            if missing:
                raise RecordError(f, 1, sorted(missing)[0], f"missing column (the header has {names})")
            for row in reader:
                report.n_read += 1
                line = reader.line_num
                prompt = row["instruction"]
                if row["chosen"] is None or row["rejected"] is None:
                    raise _err(f, line, "chosen", "short row")
                if None in row:  # more fields than the header names: kept, counted
                    report.odd("extra_csv_fields")
                out.append(
                    PreferenceRecord(
                        prompt,
                        prompt_hash(prompt),
                        row["chosen"],
                        row["rejected"],
                        better=0,
                        safer=0,
                        source=source,
                        meta={"topic": row.get("label"), "line": int(line)} | _file_meta(rel),
                    )
                )
        return out

    return _finish(_read_source(path, CSV, read, report), report, allow_empty)


# ---------------------------------------------------------------------------- registry


def load_jsonl(path: str | os.PathLike, allow_empty: bool = False) -> Loaded:
    """The project's own JSONL format (`records.read_jsonl`); a folder: its `.jsonl(.gz)` files."""
    if not Path(path).is_dir():
        return read_jsonl(path, allow_empty=allow_empty)
    report = LoadReport("jsonl", str(path))

    def read(f: Path, rel: str | None) -> list[PreferenceRecord]:
        records, part = read_jsonl(f, allow_empty=True)
        report.n_read += part.n_read
        return records

    return _finish(_read_source(path, JSONL, read, report), report, allow_empty)


LOADERS: dict[str, Callable[..., Loaded]] = {
    "hh-rlhf": load_hh_rlhf,
    "pku-saferlhf": load_pku_saferlhf,
    "gsm8k": load_gsm8k_solutions,
    "pandalm": load_pandalm,
    "llmbar": load_llmbar,
    "ultrafeedback": load_ultrafeedback,
    "safer-instruct": load_safer_instruct,
    "helpsteer2": load_helpsteer2,
    "jsonl": load_jsonl,
}


def load(name: str, path: str | os.PathLike, allow_empty: bool = False) -> Loaded:
    """Load data set `name` (a key of `LOADERS`) from `path`; no records is an error unless `allow_empty`."""
    if name not in LOADERS:
        raise KeyError(f"unknown data set {name!r}; known: {sorted(LOADERS)}")
    return LOADERS[name](path, allow_empty=allow_empty)


# ---------------------------------------------------------------------------- splits


def split_by_prompt(
    records: Sequence[PreferenceRecord], test_frac: float, seed: int
) -> tuple[list[PreferenceRecord], list[PreferenceRecord]]:
    """(train, test) with every prompt_id on one side only; about `test_frac` of the prompts
    go to test. Order inside each side follows `records`."""
    if not 0.0 <= test_frac <= 1.0:
        raise ValueError(f"test_frac must be in [0, 1], got {test_frac}")
    ids = sorted({r.prompt_id for r in records})
    rng = np.random.default_rng(seed)
    n_test = int(round(test_frac * len(ids)))
    test_ids = {ids[i] for i in rng.permutation(len(ids))[:n_test]}
    train = [r for r in records if r.prompt_id not in test_ids]
    test = [r for r in records if r.prompt_id in test_ids]
    if test_frac > 0 and not test:
        # An evaluation on nothing would report NaN accuracy as if it were a result.
        sources = sorted({r.source for r in records}) or ["<no records>"]
        raise EmptyDataError(
            f"{', '.join(sources)}: no prompt on the test side ({len(ids)} prompts, test_frac={test_frac}); "
            "load more pairs or raise test_frac"
        )
    return train, test


def randomize_sides(records: Sequence[PreferenceRecord], rng: np.random.Generator) -> list[PreferenceRecord]:
    """Swap a and b in a random half of the records (labels follow), so position carries
    no signal."""
    flips = rng.random(len(records)) < 0.5
    return [r.swapped() if f else r for r, f in zip(records, flips, strict=True)]
