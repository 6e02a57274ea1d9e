"""Every loader error names its file and line (or JSON element) and field; empty sources are
errors; degenerate records are counted, never passed on silently."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from rm_theory.real.loaders import (
    load,
    load_llmbar,
    load_pandalm,
    load_pku_saferlhf,
    load_safer_instruct,
    load_ultrafeedback,
    split_by_prompt,
)
from rm_theory.world.records import EmptyDataError, RecordError, read_jsonl
from tests.helpers import run_smoke

HH = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}


def _jsonl(path, rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def test_non_utf8_bytes_name_file_line_and_byte(tmp_path):
    path = tmp_path / "hh.jsonl"
    bad = json.dumps(HH).encode().replace(b"hello", b"hel\xfflo")
    path.write_bytes(_jsonl(path, [HH, HH]) + bad + b"\n")
    with pytest.raises(RecordError, match=r"hh\.jsonl:3: field '<bytes>': not UTF-8 text \(byte \d+ of the line"):
        load("hh-rlhf", path)


def test_non_utf8_bytes_in_a_json_list_name_the_line(tmp_path):
    path = tmp_path / "pandalm.json"
    path.write_bytes(b'[\n{"instruction": "x"},\n{"instruction": "\xff"}\n]\n')
    with pytest.raises(RecordError, match=r"pandalm\.json:3: field '<bytes>'"):
        load_pandalm(path)


@pytest.mark.parametrize("damage", ["truncated", "not_gzip"])
def test_a_corrupt_or_truncated_gzip_names_the_file(tmp_path, damage):
    path = tmp_path / "hh.jsonl.gz"
    data = gzip.compress(_jsonl(path, [HH] * 200))
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"plain text, not gzip\n")
    with pytest.raises(RecordError, match=r"hh\.jsonl\.gz:\d+: field '<gzip>': corrupt or truncated gzip"):
        load("hh-rlhf", path)


def test_a_nested_field_of_the_wrong_type_names_element_and_field(tmp_path):
    path = tmp_path / "uf.json"
    row = {"prompt": "p", "chosen": "a", "rejected": "b", "metadata": {"score_chosen": 5}}
    path.write_text(json.dumps([row, row | {"metadata": "oops"}]))
    with pytest.raises(RecordError, match=r"uf\.json: JSON element 2 \(counting from 1\): field 'metadata'"):
        load_ultrafeedback(path)


@pytest.mark.parametrize(
    "name,filename,content",
    [
        ("hh-rlhf", "e.jsonl", b""),
        ("hh-rlhf", "e.jsonl.gz", gzip.compress(b"")),
        ("pandalm", "e.json", b"[]"),
        ("safer-instruct", "e.csv", b"instruction,rejected,chosen,label\n"),
        ("jsonl", "e.jsonl", b"\n\n"),
    ],
    ids=["jsonl", "jsonl.gz", "json-list", "header-only-csv", "blank-lines"],
)
def test_loading_nothing_is_an_error_naming_the_path(tmp_path, name, filename, content):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(EmptyDataError, match=f"{path}: no .* records.*allow_empty=True"):
        load(name, path)
    records, report = load(name, path, allow_empty=True)
    assert records == [] and report.n_records == 0


def test_a_folder_with_no_readable_files_is_an_error_listing_what_it_skipped(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EmptyDataError, match=r"files read \[\], skipped \['notes\.txt'\]"):
        load_llmbar(tmp_path)


def test_llmbar_folder_reads_json_in_any_case_and_lists_its_files(tmp_path):
    row = {"input": "q", "output_1": "a", "output_2": "b", "label": 1}
    (tmp_path / "Natural.json").write_text(json.dumps([row]))
    (tmp_path / "ADVERSARIAL.JSON").write_text(json.dumps([row | {"input": "q2"}]))
    (tmp_path / "README.md").write_text("about")
    records, report = load_llmbar(tmp_path)
    assert len(records) == 2
    assert report.files_read == ["ADVERSARIAL.JSON", "Natural.json"] and report.files_skipped == ["README.md"]
    assert "README.md" in report.summary()


def test_degenerate_records_are_counted_in_the_report(tmp_path):
    path = tmp_path / "pandalm.json"
    base = {"instruction": "i", "input": "", "annotator1": 1, "annotator2": 1, "annotator3": 2}
    rows = [
        base | {"response1": "fine", "response2": "worse"},
        base | {"instruction": "j", "response1": "", "response2": "text"},
        base | {"instruction": "k", "response1": "same", "response2": "same"},
        base | {"instruction": "l", "response1": False, "response2": "text"},
    ]
    path.write_text(json.dumps(rows))
    records, report = load_pandalm(path)
    assert len(records) == 4  # kept (the published numbers do not change), and counted
    assert report.degenerate == {"empty_response": 1, "identical_responses": 1}
    assert report.degenerate_rows == [1, 2]
    assert report.source_oddities == {"non_text_response_false": 1}
    assert "degenerate (kept)" in report.summary()


def test_extra_csv_fields_are_counted(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("instruction,rejected,chosen,label\nhow,bad,good,hate\nwhy,no,yes,hate,EXTRA\n")
    records, report = load_safer_instruct(path)
    assert len(records) == 2 and report.source_oddities == {"extra_csv_fields": 1}


def test_a_pku_subset_row_without_response_names_the_subsets_field(tmp_path):
    path = tmp_path / "pku.json"
    good = {"prompt": "p", "response": ["safe", "unsafe"]}
    path.write_text(json.dumps([good, {"prompt": "q"}]))
    with pytest.raises(RecordError, match=r"JSON element 2 \(counting from 1\): field 'response': missing"):
        load_pku_saferlhf(path)


def test_a_wrong_field_in_jsonl_still_names_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"prompt": "p"}\n')
    with pytest.raises(RecordError, match=r"r\.jsonl:1: field 'prompt_id': missing"):
        read_jsonl(path)


def test_an_empty_test_split_is_an_error_not_a_nan():
    from rm_theory.world.records import PreferenceRecord, prompt_hash

    recs = [PreferenceRecord(p, prompt_hash(p), "a", "b", better=0, source="tiny") for p in ("x", "y")]
    with pytest.raises(EmptyDataError, match=r"tiny: no prompt on the test side \(2 prompts, test_frac=0.1\)"):
        split_by_prompt(recs, 0.1, seed=0)
    assert split_by_prompt(recs, 0.0, seed=0) == (recs, [])


def test_a_real_data_run_with_an_empty_evaluation_set_fails_with_the_reason(tmp_path, caplog):
    from rm_theory.studies import real_data

    with caplog.at_level(logging.ERROR), pytest.raises(EmptyDataError):
        run_smoke("real_data", real_data.run, tmp_path, ["test_frac=0.001", "parts=[accuracy]"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "no prompt on the test side" in summary["error"]
