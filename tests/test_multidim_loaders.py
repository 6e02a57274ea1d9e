"""Loaders of multi-dimensional preference data (PKU-SafeRLHF dual and single, SafeSora, HelpSteer2),
on fixtures written here in the published field layouts; every error names file, line and field."""

from __future__ import annotations

import gzip
import json

import pytest

from rm_theory.real.loaders import LOADERS, load, load_pku_saferlhf
from rm_theory.real.multi_loaders import (
    HELPSTEER2_ATTRIBUTES,
    SAFESORA_HARM_LABELS,
    load_helpsteer2_ratings,
    load_pku_saferlhf_dual,
    load_pku_saferlhf_single,
    load_safesora,
)
from rm_theory.world.records import HARM_CATEGORIES, EmptyDataError, RecordError


def pku_row(better=0, safer=1, safe=(False, True), harm0=("Cybercrime",), sev=(2, 0), **extra):
    cats = lambda on: {c: c in on for c in HARM_CATEGORIES}
    return {
        "prompt": "how do I get into my neighbour's wifi?",
        "response_0": "here is how to crack it",
        "response_1": "ask your neighbour",
        "prompt_source": "Alpaca3-70B",
        "response_0_source": "Alpaca-7B",
        "response_1_source": "Alpaca2-7B",
        "is_response_0_safe": safe[0],
        "is_response_1_safe": safe[1],
        "response_0_harm_category": cats(harm0),
        "response_1_harm_category": cats(()),
        "response_0_severity_level": sev[0],
        "response_1_severity_level": sev[1],
        "better_response_id": better,
        "safer_response_id": safer,
        "response_0_sha256": "h0",
        "response_1_sha256": "h1",
        **extra,
    }


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pku_dual_keeps_both_labels_the_full_harm_dicts_and_the_sources(tmp_path):
    path = _jsonl(
        tmp_path / "pku.jsonl", [pku_row(), pku_row(better=1, safer=0, safe=(True, True), harm0=(), sev=(0, 0))]
    )
    recs, rep = load_pku_saferlhf_dual(path)
    r = recs[0]
    assert r.protocol == "dual" and r.prefs == {"helpfulness": 0, "harmlessness": 1}
    assert (r.safe_a, r.safe_b, r.severity_a, r.severity_b) == (False, True, 2, 0)
    assert len(r.harm_a) == 19 and r.harm_a["Cybercrime"] and not r.harm_a["Violence"]
    assert (r.id_a, r.id_b) == ("h0", "h1") and r.meta["response_1_source"] == "Alpaca2-7B"
    assert recs[1].prefs == {"helpfulness": 1, "harmlessness": 0}
    # One-dimensional views for the rest of the project; the reduced loader is unchanged.
    one = r.as_record("harmlessness")
    assert (one.better, one.safer, one.harm_a) == (1, 1, ("Cybercrime",))
    old, _ = load_pku_saferlhf(path)
    assert (old[0].better, old[0].safer) == (0, 1)
    assert rep.n_records == 2 and rep.n_duplicates == 1


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda r: r.pop("safer_response_id"), "safer_response_id"),
        (lambda r: r.update(better_response_id=3), "better_response_id"),
        (lambda r: r["response_1_harm_category"].update({"Rudeness": True}), "response_1_harm_category"),
        (lambda r: r["response_0_harm_category"].update({"Violence": "yes"}), "response_0_harm_category.Violence"),
        (lambda r: r.update(response_0_severity_level=4), "response_0_severity_level"),
        (lambda r: r.update(is_response_0_safe=None), "is_response_0_safe"),
        (lambda r: r.update(response_1=7), "response_1"),
    ],
)
def test_pku_dual_errors_name_file_line_and_field(tmp_path, edit, field):
    bad = pku_row()
    edit(bad)
    path = _jsonl(tmp_path / "pku.jsonl", [pku_row(), pku_row(), bad])
    with pytest.raises(RecordError) as e:
        load_pku_saferlhf_dual(path)
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 3, field)
    assert f"pku.jsonl:3: field '{field}'" in str(e.value)


def test_pku_single_rows_keep_the_trade_off_label_and_count_a_dual_field(tmp_path):
    single = {k: v for k, v in pku_row().items() if k != "safer_response_id"}
    sparse = {k: single[k] for k in ("prompt", "response_0", "response_1", "better_response_id")}
    path = tmp_path / "single.json"
    path.write_text(json.dumps([single, sparse, pku_row(better=1)]))
    recs, rep = load_pku_saferlhf_single(path)
    assert [r.prefs for r in recs] == [{"single": 0}, {"single": 0}, {"single": 1}]
    assert recs[0].protocol == "single" and recs[0].safe_a is False and recs[1].safe_a is None
    assert recs[2].meta["safer_response_id"] == 1 and rep.source_oddities == {"dual_field_in_single_row": 1}
    bad = dict(sparse)
    bad.pop("better_response_id")
    path.write_text(json.dumps([sparse, bad]))
    with pytest.raises(
        RecordError, match=r"single\.json: JSON element 2 \(counting from 1\): field 'better_response_id': missing"
    ):
        load_pku_saferlhf_single(path)


def safesora_row(i=0, help_="video_0", harm="video_1", sub=None, labels0=None):
    video = lambda k: {
        "prompt_id": "p1",
        "prompt_text": "a cat playing piano",
        "video_id": f"v{i}{k}",
        "video_text": f"caption {k}: a cat at a piano",
        "video_path": f"videos/p1/v{i}{k}.mp4",
        "is_safe": k == 1,
        "video_labels": labels0
        if (k == 0 and labels0 is not None)
        else {h: (k == 0 and h == "violence") for h in SAFESORA_HARM_LABELS},
        "generated_from": "model-x",
    }
    sub = (
        {"instruction_following": "video_0", "correctness": "video_1", "information": None, "aesthetics": "video_0"}
        if sub is None
        else sub
    )
    return {
        "pair_id": f"pair{i}",
        "prompt_id": "p1",
        "prompt_text": "a cat playing piano",
        "prompt_type": "safety_neutral",
        "video_0": video(0),
        "video_1": video(1),
        "helpfulness": help_,
        "harmlessness": harm,
        "sub_preferences": sub,
    }


def test_safesora_keeps_ids_captions_paths_preferences_sub_preferences_and_harm_labels(tmp_path):
    path = tmp_path / "config-train.json.gz"
    path.write_bytes(gzip.compress(json.dumps([safesora_row(0), safesora_row(1, help_=None)]).encode()))
    recs, rep = load_safesora(path)
    r = recs[0]
    assert r.protocol == "sub" and r.prompt == "a cat playing piano"
    assert (r.response_a, r.id_a, r.path_b) == ("caption 0: a cat at a piano", "v00", "videos/p1/v01.mp4")
    assert r.prefs == {
        "helpfulness": 0,
        "harmlessness": 1,
        "instruction_following": 0,
        "correctness": 1,
        "information": None,
        "aesthetics": 0,
    }
    assert r.harm_a["violence"] and not r.harm_b["violence"] and (r.safe_a, r.safe_b) == (False, True)
    assert r.meta["pair_id"] == "pair0" and r.meta["prompt_type"] == "safety_neutral"
    assert recs[1].prefs["helpfulness"] is None and rep.n_ties == 1


@pytest.mark.parametrize(
    "row, field",
    [
        (safesora_row(sub={"correctness": "video_2"}), "sub_preferences.correctness"),
        (safesora_row(sub={"informativeness": "video_0"}), "sub_preferences.informativeness"),
        (safesora_row(help_="left"), "helpfulness"),
        (safesora_row(labels0={"violence": True, "gore": True}), "video_0.video_labels"),
        ({**safesora_row(), "video_1": {"video_id": "x"}}, "video_1.video_text"),
        ({**safesora_row(), "video_0": "v0.mp4"}, "video_0"),
    ],
)
def test_safesora_errors_name_file_line_and_field(tmp_path, row, field):
    path = _jsonl(tmp_path / "safesora.jsonl", [safesora_row(), row])
    with pytest.raises(RecordError) as e:
        load_safesora(path)
    assert (e.value.line, e.value.field) == (2, field)


def helpsteer_row(prompt="p", response="r", **ratings):
    return {"prompt": prompt, "response": response, **{k: ratings.get(k, 2) for k in HELPSTEER2_ATTRIBUTES}}


def test_helpsteer2_ratings_and_its_pairs_by_helpfulness(tmp_path):
    rows = [
        helpsteer_row("p1", "a", helpfulness=3, verbosity=4),
        helpsteer_row("p1", "b", helpfulness=1),
        helpsteer_row("p2", "c", helpfulness=2),
        helpsteer_row("p2", "d", helpfulness=2),
        helpsteer_row("p3", "e"),  # one response: no pair
        helpsteer_row("p1", "a", helpfulness=3, verbosity=4),  # rated twice
    ]
    path = _jsonl(tmp_path / "train.jsonl", rows)
    ratings, rep = load_helpsteer2_ratings(path)
    assert len(ratings) == 6 and ratings[0].ratings == {
        "helpfulness": 3.0,
        "correctness": 2.0,
        "coherence": 2.0,
        "complexity": 2.0,
        "verbosity": 4.0,
    }
    assert rep.degenerate == {"rated_twice": 1}
    assert "helpsteer2" in LOADERS
    recs, rep = load("helpsteer2", path)
    assert [(r.response_a, r.response_b, r.better) for r in recs] == [("a", "b", 0), ("c", "d", None)]
    assert recs[0].meta["ratings_b"]["helpfulness"] == 1.0 and recs[0].tree_id == recs[0].prompt_id
    assert rep.skipped == {"single_response": 1} and rep.n_ties == 1


@pytest.mark.parametrize(
    "row, field",
    [
        (helpsteer_row(helpfulness=5), "helpfulness"),
        (helpsteer_row(coherence="good"), "coherence"),
        ({k: v for k, v in helpsteer_row().items() if k != "verbosity"}, "verbosity"),
        (helpsteer_row(complexity=True), "complexity"),
    ],
)
def test_helpsteer2_errors_name_file_line_and_field(tmp_path, row, field):
    path = _jsonl(tmp_path / "hs.jsonl", [helpsteer_row(), row])
    with pytest.raises(RecordError) as e:
        load("helpsteer2", path)
    assert (e.value.line, e.value.field) == (2, field)


def test_empty_multi_dimensional_sources_are_errors_naming_the_path(tmp_path):
    for loader, name in (
        (load_pku_saferlhf_dual, "e.jsonl"),
        (load_safesora, "e.json"),
        (load_helpsteer2_ratings, "f.jsonl"),
    ):
        path = tmp_path / name
        path.write_text("[]" if name.endswith(".json") else "")
        with pytest.raises(EmptyDataError, match=f"{path}: no "):
            loader(path)
    # Every HelpSteer2 prompt with one response: no pair at all, said so.
    path = _jsonl(tmp_path / "one.jsonl", [helpsteer_row("p1"), helpsteer_row("p2")])
    with pytest.raises(EmptyDataError, match="single_response"):
        load("helpsteer2", path)
