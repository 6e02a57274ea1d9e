"""PreferenceRecord, the project's JSONL format, validation, and the load report."""

import dataclasses
import gzip
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rm_theory.world import (
    HARM_CATEGORIES,
    PreferenceRecord,
    PreferenceTable,
    RecordError,
    prompt_hash,
    read_jsonl,
    write_jsonl,
)


def rec(**kw) -> PreferenceRecord:
    base = dict(prompt="p", prompt_id="p0", response_a="x", response_b="y", better=0)
    return PreferenceRecord(**(base | kw))


def full_record() -> PreferenceRecord:
    return rec(
        safer=1,
        safe_a=False,
        safe_b=True,
        harm_a=("Violence", "Drugs"),
        harm_b=(),
        severity_a=2,
        severity_b=0,
        tree_id=3,
        node_a="n1",
        node_b=7,
        source="toy",
        meta={"score": [1, 2], "note": "ü"},
    )


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz"])
def test_roundtrip_keeps_every_field(tmp_path, name):
    recs = [
        full_record(),
        rec(response_a=[1, 2, 3], response_b=[1, 4], better=None),
        rec(prompt="q", prompt_id=prompt_hash("q"), better=1),
    ]
    path = tmp_path / name
    assert write_jsonl(path, recs) == 3
    back, report = read_jsonl(path)
    assert back == recs
    assert [r.meta for r in back] == [r.meta for r in recs]
    assert back[1].response_a == (1, 2, 3)  # token lists come back as tuples
    assert report.n_read == report.n_records == 3 and report.n_ties == 1
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == name.endswith(".gz")


texts = st.text(max_size=20)
tokens = st.lists(st.integers(0, 50), max_size=6)
records_st = st.builds(
    lambda p, ab, better, safer, harm, sev: rec(
        prompt=p,
        prompt_id=prompt_hash(p),
        response_a=ab[0],
        response_b=ab[1],
        better=better,
        safer=safer,
        harm_a=tuple(harm),
        severity_b=sev,
    ),
    texts,
    st.one_of(st.tuples(texts, texts), st.tuples(tokens, tokens)),
    st.sampled_from([0, 1, None]),
    st.sampled_from([0, 1, None]),
    st.lists(st.sampled_from(HARM_CATEGORIES), max_size=3),
    st.sampled_from([None, 0, 1, 2, 3]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(records_st, max_size=8))
def test_roundtrip_property(tmp_path_factory, recs):
    path = tmp_path_factory.mktemp("rt") / "r.jsonl.gz"
    write_jsonl(path, recs)
    assert read_jsonl(path, allow_empty=True)[0] == recs  # an empty list of records is asked for explicitly


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")


GOOD = json.dumps(dict(prompt="p", prompt_id="p0", response_a="x", response_b="y", better=0))


@pytest.mark.parametrize(
    "bad, field",
    [
        ("{not json", "<json>"),
        (json.dumps({"prompt": "p", "prompt_id": "p0", "response_a": "x", "better": 0}), "response_b"),
        (GOOD.replace('"better": 0', '"better": 2'), "better"),
        (GOOD.replace('"better": 0', '"better": "0"'), "better"),
        (GOOD.replace('"better": 0', '"better": true'), "better"),
        (GOOD.replace('"better": 0', '"better": 0, "harm_a": ["Violence", "Rudeness"]'), "harm_a"),
        (GOOD.replace('"better": 0', '"better": 0, "severity_b": 4'), "severity_b"),
        (GOOD.replace('"better": 0', '"better": 0, "safe_a": 1'), "safe_a"),
        (GOOD.replace('"better": 0', '"better": 0, "beter": 1'), "beter"),
        (GOOD.replace('"response_b": "y"', '"response_b": [1, 2]'), "response_b"),
        (GOOD.replace('"response_b": "y"', '"response_b": [1, "a"]'), "response_b"),
        ("[1, 2]", "<record>"),
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path, bad, field):
    path = tmp_path / "bad.jsonl"
    write_lines(path, [GOOD, GOOD.replace('"x"', '"z"'), bad])
    with pytest.raises(RecordError) as e:
        read_jsonl(path)
    assert (e.value.line, e.value.field) == (3, field)
    assert str(path) in str(e.value) and ":3:" in str(e.value) and field in str(e.value)


def test_gz_error_reports_line(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(GOOD + "\n\n" + "{oops\n")  # the blank line still counts as a line
    with pytest.raises(RecordError) as e:
        read_jsonl(path)
    assert e.value.line == 3


def test_inconsistent_duplicates_and_ties_are_counted_not_dropped(tmp_path):
    recs = [
        rec(safer=0, safe_a=False, safe_b=True),  # the safer one labelled unsafe: inconsistent
        rec(safer=0, safe_a=True, safe_b=False),  # consistent
        rec(safer=1, safe_a=True, safe_b=False),  # inconsistent (b safer, b unsafe, a safe)
        rec(safe_a=True, severity_a=2),  # a safe response with a severity: inconsistent
        rec().swapped(),  # duplicate of record 0's pair, reversed, label flipped: same claim
        rec(response_a="y", response_b="x", better=0),  # duplicate, opposite claim
        rec(response_a="u", response_b="v", better=None),  # a tie
    ]
    path = tmp_path / "r.jsonl"
    write_jsonl(path, recs)
    back, report = read_jsonl(path)
    assert len(back) == 7
    assert report.n_inconsistent == 3 and report.inconsistent_rows == [0, 2, 3]
    assert report.inconsistent == {"safer_is_unsafe_other_safe": 2, "safe_but_harmful": 1}
    assert report.n_duplicates == 5 and report.duplicate_rows == [1, 2, 3, 4, 5]
    # records 1..4 repeat record 0's pair (x over y); record 5 claims y over x
    assert report.n_conflicts == 1
    assert report.n_ties == 1
    assert "inconsistent 3" in report.summary()


def test_swapped_is_an_involution_that_flips_labels():
    r = full_record()
    s = r.swapped()
    assert s.swapped() == r
    assert (s.response_a, s.better, s.safer, s.safe_a, s.harm_b, s.severity_a, s.node_a) == (
        r.response_b,
        1,
        0,
        r.safe_b,
        r.harm_a,
        r.severity_b,
        r.node_b,
    )
    assert s.pair_key() == r.pair_key()
    assert rec(better=None).swapped().better is None


def test_record_is_frozen_and_hashable_and_validates():
    r = rec(response_a=[1, 2], response_b=[3])
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.better = 1
    assert hash(r) == hash(rec(response_a=(1, 2), response_b=(3,)))
    with pytest.raises(RecordError, match="better"):
        rec(better=3)
    with pytest.raises(RecordError, match="harm_b"):
        rec(harm_b=("Nope",))


def test_table_columns():
    recs = [full_record(), rec(better=None), rec(response_a="a", better=1)]
    t = PreferenceTable.from_records(recs)
    assert len(t) == 3
    np.testing.assert_array_equal(t.better_N, [0, -1, 1])
    np.testing.assert_array_equal(t.safer_N, [1, -1, -1])
    np.testing.assert_array_equal(t.safe_a_N, [0, -1, -1])
    np.testing.assert_array_equal(t.severity_a_N, [2, -1, -1])
    assert t.harm_a_NxC.shape == (3, 19) and t.harm_a_NxC.sum() == 2
    assert t.harm_a_NxC[0, HARM_CATEGORIES.index("Violence")]
    df = t.to_pandas()
    assert list(df["harm_a"][0]) == ["Drugs", "Violence"] and len(df) == 3
