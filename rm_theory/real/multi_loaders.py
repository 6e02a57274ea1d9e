"""Loaders of multi-dimensional preference data into `world.multirecords` records, every label kept:
PKU-SafeRLHF's dual and single preferences, SafeSora's preferences with sub-preferences, and
HelpSteer2's attribute ratings (and, as one-dimensional `PreferenceRecord`s, its pairs by helpfulness:
the format `helpsteer2` of `real.loaders.LOADERS`). Files and folders are read as the other loaders
read them (`real.sources`); every error names the file, the line (or element) and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rm_theory.real.sources import JSON_ROWS, Loaded, _err, _field, _file_meta, _finish, _read_json_rows, _read_source
from rm_theory.world.multirecords import AttributeRating, MultiPreference
from rm_theory.world.records import (
    HARM_CATEGORIES,
    LoadReport,
    PreferenceRecord,
    audit,
    prompt_hash,
    require_records,
)

# SafeSora (Dai et al. 2024, arXiv 2406.14477): the 12 harm labels of a video and the four
# helpfulness sub-preferences, as named in the published records (`safe_sora/datasets/base.py`).
SAFESORA_HARM_LABELS = (
    "porn",
    "violence",
    "hate",
    "terrorism",
    "contraband",
    "controversial",
    "racism",
    "other_discrimination",
    "animal_abuse",
    "child_abuse",
    "crime",
    "other_harmful",
)
SAFESORA_SUB_PREFERENCES = ("instruction_following", "correctness", "information", "aesthetics")
HELPSTEER2_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def _harm_dict(d: Any, path, line: int, key: str, names: tuple[str, ...]) -> dict[str, bool]:
    """A harm dictionary category -> bool, every category one of `names` (absent: {})."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise _err(path, line, key, "expected an object of category -> bool")
    bad = [c for c in d if c not in names]
    if bad:
        raise _err(path, line, key, f"unknown harm category {bad[0]!r}")
    wrong = [c for c, v in d.items() if not isinstance(v, bool)]
    if wrong:
        raise _err(path, line, f"{key}.{wrong[0]}", f"expected a bool, got {d[wrong[0]]!r}")
    return dict(d)


def _response_id(row: dict, key: str, path, line: int) -> int:
    v = _field(row, key, int, path, line)
    if v not in (0, 1):
        raise _err(path, line, key, f"expected 0 or 1, got {v!r}")
    return v


def _optional(row: dict, key: str, types: type | tuple, path, line: int) -> Any:
    """A field that may be absent or null; present, it must have the type."""
    return None if row.get(key) is None else _field(row, key, types, path, line)


def _pku_items(row: dict, path, line: int, required: bool) -> dict:
    """The per-response meta-labels of a PKU-SafeRLHF row: safety, the 19-category dicts, severity."""
    out = {}
    for i, side in ((0, "a"), (1, "b")):
        k = f"is_response_{i}_safe"
        out[f"safe_{side}"] = _field(row, k, bool, path, line) if required else _optional(row, k, bool, path, line)
        k = f"response_{i}_harm_category"
        out[f"harm_{side}"] = _harm_dict(row.get(k), path, line, k, HARM_CATEGORIES)
        k = f"response_{i}_severity_level"
        v = row.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 3):
            raise _err(path, line, k, f"expected an int in 0..3, got {v!r}")
        out[f"severity_{side}"] = v
        out[f"id_{side}"] = _optional(row, f"response_{i}_sha256", str, path, line)
    return out


_PKU_META = ("prompt_source", "response_0_source", "response_1_source")


def _finish_multi(records: list, report: LoadReport, dim: str, allow_empty: bool) -> tuple[list, LoadReport]:
    """The report of multi-dimensional records: the counts of `records.audit` on their `dim` view."""
    require_records(records, report, allow_empty)
    return records, audit([r.as_record(dim) for r in records], report)


def _pku_pair(
    row: dict, f: Path, line: int, rel: str | None, prefs: dict, protocol: str, source: str, required: bool
) -> MultiPreference:
    """One PKU-SafeRLHF row (dual or single protocol) with its labels `prefs`, meta and per-response
    meta-labels (`required`: every response's safety must be given)."""
    prompt = _field(row, "prompt", str, f, line)
    a, b = (_field(row, f"response_{i}", str, f, line) for i in (0, 1))
    meta = {k: row[k] for k in _PKU_META if k in row} | {"row": int(line)} | _file_meta(rel)
    items = _pku_items(row, f, line, required=required)
    return MultiPreference(prompt, prompt_hash(prompt), a, b, prefs, protocol, source=source, meta=meta, **items)


def load_pku_saferlhf_dual(
    path: str | os.PathLike, source: str = "pku-saferlhf", allow_empty: bool = False
) -> tuple[list[MultiPreference], LoadReport]:
    """PKU-SafeRLHF's full schema as dual preferences (arXiv 2406.15513 §3): `prefs` holds
    helpfulness (`better_response_id`) and harmlessness (`safer_response_id`), both required; each
    response's safety, its full 19-category harm dict and severity level (0..3) are kept, with the
    responses' sha256 as ids and the sources in meta. (`load_pku_saferlhf`, for the callers that
    read one preference, is unchanged.)"""
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[MultiPreference]:
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            prefs = {
                "helpfulness": _response_id(row, "better_response_id", f, line),
                "harmlessness": _response_id(row, "safer_response_id", f, line),
            }
            out.append(_pku_pair(row, f, line, rel, prefs, "dual", source, required=True))
        return out

    return _finish_multi(_read_source(path, JSON_ROWS, read, report), report, "helpfulness", allow_empty)


def load_pku_saferlhf_single(
    path: str | os.PathLike, source: str = "pku-saferlhf-single", allow_empty: bool = False
) -> tuple[list[MultiPreference], LoadReport]:
    """PKU-SafeRLHF's single-preference rows (the `PKU-SafeRLHF-single-dimension` release): one
    label trading helpfulness against harmlessness, `better_response_id`, kept as prefs["single"];
    the safety meta-labels are kept where given. A row that also carries `safer_response_id` keeps
    it in meta and is counted (`dual_field_in_single_row`): a single preference has no such label."""
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[MultiPreference]:
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            prefs = {"single": _response_id(row, "better_response_id", f, line)}
            rec = _pku_pair(row, f, line, rel, prefs, "single", source, required=False)
            if "safer_response_id" in row:
                report.odd("dual_field_in_single_row")
                rec.meta["safer_response_id"] = row["safer_response_id"]
            out.append(rec)
        return out

    return _finish_multi(_read_source(path, JSON_ROWS, read, report), report, "single", allow_empty)


def _video_choice(v: Any, path, line: int, key: str) -> int | None:
    """SafeSora's choice of a pair's video ("video_0" / "video_1"; null: no preference)."""
    if v is None:
        return None
    if v not in ("video_0", "video_1"):
        raise _err(path, line, key, f"expected 'video_0', 'video_1' or null, got {v!r}")
    return int(v[-1])


def _video(row: dict, key: str, path, line: int) -> dict:
    """One video of a SafeSora pair: id, caption, path, safety and harm labels (fields named
    `video_0.video_id` etc. in errors)."""
    v = _field(row, key, dict, path, line)
    for k in ("video_id", "video_text"):
        if not isinstance(v.get(k), str):
            raise _err(path, line, f"{key}.{k}", "missing" if k not in v else f"unexpected type {type(v[k]).__name__}")
    for k, t in (("video_path", str), ("is_safe", bool)):
        if v.get(k) is not None and not isinstance(v[k], t):
            raise _err(path, line, f"{key}.{k}", f"unexpected type {type(v[k]).__name__}")
    harm = _harm_dict(v.get("video_labels"), path, line, f"{key}.video_labels", SAFESORA_HARM_LABELS)
    return {
        "id": v["video_id"],
        "text": v["video_text"],
        "path": v.get("video_path"),
        "safe": v.get("is_safe"),
        "harm": harm,
    }


def load_safesora(
    path: str | os.PathLike, source: str = "safesora", allow_empty: bool = False
) -> tuple[list[MultiPreference], LoadReport]:
    """SafeSora's preference records (Dai et al. 2024, arXiv 2406.14477; JSON list or JSONL, gz or
    not): `prompt_text`, the two videos `video_0`/`video_1` (`video_id`, the caption `video_text`
    as the response's text, `video_path`, `is_safe`, the 12 `video_labels`), the preferences
    `helpfulness` and `harmlessness` and the four `sub_preferences` (instruction_following,
    correctness, information, aesthetics), each "video_0", "video_1" or null. Ids and paths are kept;
    `pair_id`, the source's `prompt_id` and `prompt_type` go to meta."""
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[MultiPreference]:
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            prompt = _field(row, "prompt_text", str, f, line)
            v0, v1 = _video(row, "video_0", f, line), _video(row, "video_1", f, line)
            prefs = {k: _video_choice(row.get(k), f, line, k) for k in ("helpfulness", "harmlessness")}
            sub = row.get("sub_preferences")
            if sub is not None:
                if not isinstance(sub, dict):
                    raise _err(f, line, "sub_preferences", "expected an object")
                bad = [k for k in sub if k not in SAFESORA_SUB_PREFERENCES]
                if bad:
                    raise _err(
                        f,
                        line,
                        f"sub_preferences.{bad[0]}",
                        f"unknown sub-preference (known: {SAFESORA_SUB_PREFERENCES})",
                    )
                prefs |= {
                    k: _video_choice(sub.get(k), f, line, f"sub_preferences.{k}") for k in SAFESORA_SUB_PREFERENCES
                }
            meta = {k: row[k] for k in ("pair_id", "prompt_id", "prompt_type") if k in row} | {"row": int(line)}
            out.append(
                MultiPreference(
                    prompt,
                    prompt_hash(prompt),
                    v0["text"],
                    v1["text"],
                    prefs,
                    "sub" if sub is not None else "dual",
                    safe_a=v0["safe"],
                    safe_b=v1["safe"],
                    harm_a=v0["harm"],
                    harm_b=v1["harm"],
                    id_a=v0["id"],
                    id_b=v1["id"],
                    path_a=v0["path"],
                    path_b=v1["path"],
                    source=source,
                    meta=meta | _file_meta(rel),
                )
            )
        return out

    return _finish_multi(_read_source(path, JSON_ROWS, read, report), report, "helpfulness", allow_empty)


def load_helpsteer2_ratings(
    path: str | os.PathLike, source: str = "helpsteer2", allow_empty: bool = False
) -> tuple[list[AttributeRating], LoadReport]:
    """HelpSteer2-style attribute ratings (Wang et al. 2024, arXiv 2406.08673; JSON list or JSONL,
    gz or not): `prompt`, `response` and the five attributes `helpfulness`, `correctness`,
    `coherence`, `complexity`, `verbosity`, each a number in 0..4. An empty response and a
    (prompt, response) rated twice are kept and counted in `degenerate`."""
    report = LoadReport(source, str(path))

    def read(f: Path, rel: str | None) -> list[AttributeRating]:
        out = []
        for line, row in _read_json_rows(f):
            report.n_read += 1
            prompt = _field(row, "prompt", str, f, line)
            response = _field(row, "response", str, f, line)
            ratings = {}
            for k in HELPSTEER2_ATTRIBUTES:
                v = _field(row, k, (int, float), f, line)
                if not 0 <= v <= 4:
                    raise _err(f, line, k, f"expected a rating in 0..4, got {v!r}")
                ratings[k] = float(v)
            meta = {"line": int(line)} | _file_meta(rel)
            out.append(AttributeRating(prompt, prompt_hash(prompt), response, ratings, source=source, meta=meta))
        return out

    records = _read_source(path, JSON_ROWS, read, report)
    require_records(records, report, allow_empty)
    report.n_records = len(records)
    seen: set = set()
    for i, r in enumerate(records):
        kinds = ["empty_response"] * (not r.response.strip()) + ["rated_twice"] * ((r.prompt, r.response) in seen)
        seen.add((r.prompt, r.response))
        for k in kinds:
            report.degenerate[k] = report.degenerate.get(k, 0) + 1
        if kinds:
            report.degenerate_rows.append(i)
    return records, report


def load_helpsteer2(path: str | os.PathLike, source: str = "helpsteer2", allow_empty: bool = False) -> Loaded:
    """HelpSteer2 as comparisons (format `helpsteer2`): every pair of distinct responses to one
    prompt (in file order), `better` by the helpfulness rating (equal ratings: a tie); each record
    carries both responses' ratings in meta (`ratings_a`, `ratings_b`) and the prompt as its group
    (`tree_id`, the responses' rows as `node_*`). A prompt with one response gives no pair
    (counted as `single_response`)."""
    ratings, report = load_helpsteer2_ratings(path, source, allow_empty=True)
    by_prompt: dict[str, list[AttributeRating]] = {}
    for r in ratings:
        by_prompt.setdefault(r.prompt_id, []).append(r)
    records = []
    for pid, group in by_prompt.items():
        distinct = list({r.response: r for r in group}.values())
        if len(distinct) < 2:
            report.skip("single_response", len(group))
            continue
        for i, x in enumerate(distinct):
            for y in distinct[i + 1 :]:
                hx, hy = x.ratings["helpfulness"], y.ratings["helpfulness"]
                where = lambda r: r.meta["line"] if "file" not in r.meta else f"{r.meta['file']}:{r.meta['line']}"
                records.append(
                    PreferenceRecord(
                        x.prompt,
                        pid,
                        x.response,
                        y.response,
                        better=None if hx == hy else int(hy > hx),
                        tree_id=pid,
                        node_a=where(x),
                        node_b=where(y),
                        source=source,
                        meta={"ratings_a": x.ratings, "ratings_b": y.ratings},
                    )
                )
    report.degenerate, report.degenerate_rows = {}, []  # recounted on the pairs by `audit`
    return _finish(records, report, allow_empty)
