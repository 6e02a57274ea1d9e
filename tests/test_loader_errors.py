"""Every loader error names its file and line (or JSON element) and field; empty sources are
errors; degenerate records are counted, never passed on silently."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

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
from rm_theory.world.records import EmptyDataError, PreferenceRecord, RecordError, read_jsonl
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


# --- text that is not valid Unicode, byte-order marks, line breaks, headers -------------------


@pytest.mark.parametrize(
    "name,filename,rows,where",
    [
        ("jsonl", "x.jsonl", None, r"x\.jsonl:2: field 'response_a'"),
        ("hh-rlhf", "hh.jsonl", [HH, HH | {"chosen": HH["chosen"] + "\ud800"}], r"hh\.jsonl:2: field 'chosen'"),
        (
            "pandalm",
            "p.json",
            [{"instruction": "i", "response1": "a", "response2": "b\udc00"}],
            r"p\.json: JSON element 1 \(counting from 1\): field 'response2'",
        ),
        (
            "ultrafeedback",
            "u.jsonl",
            [{"prompt": "p", "chosen": "a", "rejected": "b", "metadata": {"n\ud800": 1}}],
            "metadata",
        ),
    ],
)
def test_an_escaped_lone_surrogate_names_file_line_and_field(tmp_path, name, filename, rows, where):
    """`\\ud800` is valid JSON but no text: it used to pass validation and crash the feature cache
    (sha256 of its UTF-8 bytes) with a UnicodeEncodeError naming nothing."""
    if rows is None:
        rec = {"prompt": "p", "prompt_id": "p", "response_a": "ok", "response_b": "b", "better": 0}
        rows = [rec, rec | {"response_a": "half \ud800 a pair"}]
    path = tmp_path / filename
    text = json.dumps(rows) if filename.endswith(".json") else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text)  # json.dumps escapes the surrogate as \ud800: the file itself is plain ASCII
    with pytest.raises(RecordError, match=where + r".*not valid Unicode text: a lone UTF-16 surrogate '\\ud8|\\udc"):
        load(name, path)


def test_a_valid_surrogate_pair_is_text_and_a_record_built_in_code_is_checked_too(tmp_path):
    rec = {"prompt": "p", "prompt_id": "p", "response_a": "\ud83d\ude00", "response_b": "b", "better": 0}
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(rec) + "\n")  # "\\ud83d\\ude00": one character, an emoji
    assert read_jsonl(path)[0][0].response_a == "\U0001f600"
    with pytest.raises(RecordError, match="field 'response_b': not valid Unicode"):
        PreferenceRecord("p", "p", "a", "\udfff", better=0)


def test_a_byte_order_mark_is_ignored_in_csv_json_and_jsonl(tmp_path):
    """A CSV saved by a spreadsheet starts with a BOM: its first column used to read as
    '\\ufeffinstruction' and be reported missing."""
    bom = "\ufeff".encode()
    (tmp_path / "s.csv").write_bytes(bom + b"instruction,rejected,chosen,label\nq,bad,good,hate\n")
    records, _ = load("safer-instruct", tmp_path / "s.csv")
    assert (records[0].prompt, records[0].response_a) == ("q", "good")
    (tmp_path / "hh.jsonl").write_bytes(bom + json.dumps(HH).encode() + b"\n")
    assert len(load("hh-rlhf", tmp_path / "hh.jsonl")[0]) == 1
    row = {"instruction": "i", "input": "", "response1": "a", "response2": "b"}
    row |= {"annotator1": 1, "annotator2": 1, "annotator3": 2}
    (tmp_path / "p.json").write_bytes(bom + json.dumps([row]).encode())
    assert len(load_pandalm(tmp_path / "p.json")[0]) == 1


def test_hh_rlhf_transcripts_with_windows_line_breaks_are_read_and_counted(tmp_path):
    crlf = {k: v.replace("\n", "\r\n") for k, v in HH.items()}
    path = tmp_path / "hh.jsonl"
    path.write_bytes(_jsonl(path, [crlf, HH]))
    records, report = load("hh-rlhf", path)
    assert report.skipped == {} and len(records) == 2
    assert records[0].prompt == records[1].prompt == "\n\nHuman: hi\n\nAssistant:"
    assert records[0].response_b == "go away" and report.source_oddities == {"carriage_return_line_breaks": 1}


def test_a_csv_header_naming_a_column_twice_is_an_error_naming_file_and_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("instruction,rejected,chosen,chosen,label\nq,bad,good,other,hate\n")
    with pytest.raises(
        RecordError, match=r"s\.csv:1: field 'chosen': column named twice in the header \(columns \[3, 4\]\)"
    ):
        load_safer_instruct(path)


PANDA = {"idx": 0, "instruction": "Fix it.", "response1": "a", "response2": "b"}
PANDA |= {"annotator1": 1, "annotator2": 1, "annotator3": 0}


@pytest.mark.parametrize("value", [{"text": "x", "n": 0}, 0, ["x"]], ids=["object", "zero", "list"])
def test_a_pandalm_input_that_is_not_text_is_an_error(tmp_path, value):
    """The published file's `input` is always text; an object used to be turned into its Python
    repr and a 0 into no input at all."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps([PANDA | {"input": "x"}, PANDA | {"input": value}]))
    with pytest.raises(RecordError, match=r"JSON element 2 \(counting from 1\): field 'input': unexpected type"):
        load_pandalm(path)


def test_a_pandalm_input_that_is_absent_or_null_is_no_input(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([PANDA, PANDA | {"input": None}, PANDA | {"input": "Text."}]))
    assert [r.prompt for r in load_pandalm(path)[0]] == ["Fix it.", "Fix it.", "Fix it.\n\nText."]


def test_llmbar_reads_sub_folders_and_lists_every_file(tmp_path):
    """The upstream Dataset/ nests its subsets (LLMBar/Natural/dataset.json, ...); sub-folders used
    to be ignored without a word."""
    row = {"input": "q", "output_1": "a", "output_2": "b", "label": 1}
    for sub in ("LLMBar/Natural", "LLMBar/Adversarial/GPTInst", ".cache"):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "dataset.json").write_text(json.dumps([row | {"input": sub}]))
    (tmp_path / "LLMBar" / "README.md").write_text("about")
    records, report = load_llmbar(tmp_path)
    assert report.files_read == ["LLMBar/Adversarial/GPTInst/dataset.json", "LLMBar/Natural/dataset.json"]
    assert report.files_skipped == [".cache/dataset.json", "LLMBar/README.md"]
    assert [r.source for r in records] == ["llmbar/LLMBar/Adversarial/GPTInst/dataset", "llmbar/LLMBar/Natural/dataset"]
    assert records[0].meta["file"] == "LLMBar/Adversarial/GPTInst/dataset.json"


@pytest.mark.parametrize("name", ["hh", "pku", "gsm8k", "pandalm", "ultrafeedback", "safer-instruct", "jsonl"])
def test_every_loader_reads_a_folder_of_its_files(tmp_path, name):
    """A folder is read file by file (a folder given to hh-rlhf used to die with a bare
    IsADirectoryError); two copies of a file give each record twice, counted as duplicates."""
    from rm_theory.real.fixtures import write_fixture
    from rm_theory.world.records import write_jsonl

    fx = write_fixture(tmp_path / "fx", prompts=4)
    loader = {"hh": "hh-rlhf", "pku": "pku-saferlhf"}.get(name, name)
    folder = tmp_path / "data"
    (folder / "more").mkdir(parents=True)
    if name == "safer-instruct":
        src = tmp_path / "s.csv.gz"
        with gzip.open(src, "wt", newline="") as f:
            f.write("instruction,rejected,chosen,label\nq,bad,good,hate\nq2,worse,fine,self-harm\n")
    elif name == "jsonl":
        src = tmp_path / "x.jsonl.gz"
        write_jsonl(src, load("pku-saferlhf", fx["pku"])[0])
    else:
        src = Path(fx[name])
    one, _ = load(loader, src)
    for copy in (folder / src.name, folder / "more" / src.name):
        shutil.copy(src, copy)
    (folder / "NOTES.txt").write_text("not data")
    records, report = load(loader, folder)
    assert len(records) == 2 * len(one) and report.n_duplicates >= len(one)
    assert report.files_read == sorted([src.name, f"more/{src.name}"]) and report.files_skipped == ["NOTES.txt"]
    keys = lambda rs: sorted(repr(r.pair_key()) for r in rs)
    assert keys(records) == keys(one + one)
