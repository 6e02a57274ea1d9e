"""The IBN report of a user's data set (`experiments.analyse_data`): smoke run and bad input."""

import json

import pandas as pd
import pytest

from rm_theory.runs.folder import run_entry
from rm_theory.studies import analyse_data as study
from rm_theory.world.records import read_jsonl
from tests.helpers import compose_config, run_smoke


def test_smoke_report_has_every_part(tmp_path):
    s = run_smoke("analyse_data", study.run, tmp_path)
    assert s["status"] == "ok" and s["pairs"] > 0 and s["heldout_pairs"] > 0
    for name in ("components.csv", "distances.csv", "degrees.csv", "structural.csv", "results.csv"):
        assert (tmp_path / name).exists(), name
    assert s["fm_regime"] in ("polynomial", "logarithmic", "sublogarithmic", "indeterminate", "none")
    batch, _ = read_jsonl(tmp_path / "next_batch.jsonl")
    assert len(batch) == s["next_batch"] == 5
    assert all(r.better is None and r.meta["request"] for r in batch)
    assert all(r.response_a != r.response_b for r in batch)
    # the design never asks for a comparison the data already holds, and its gains are positive
    assert all(r.meta["predicted_gain"] > 0 for r in batch)
    least, _ = read_jsonl(tmp_path / "least_determined.jsonl")
    d = pd.read_csv(tmp_path / "distances.csv")
    assert least[0].meta["resistance"] == pytest.approx(d["resistance"].max())
    assert s["target_resistance_after"] <= s["target_resistance_before"]
    assert (tmp_path / "figures" / "distances.png").exists()


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ([], "data.path is not set"),
        (["data.path=/no/such/file.jsonl"], "does not exist"),
        (["data.path=x.jsonl", "data.format=nope"], "not a loader"),
    ],
)
def test_bad_input_names_the_key(tmp_path, over, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_entry(compose_config("analyse_data", over), study.run, out_dir=tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_the_project_jsonl_format_is_read(tmp_path):
    """A user's file in the project's own format, analysed with the tiny encoder."""
    from rm_theory.real.fixtures import write_fixture
    from rm_theory.real.loaders import load
    from rm_theory.world.records import write_jsonl

    fx = write_fixture(tmp_path / "fx")
    records, _ = load("pku-saferlhf", fx["pku"])
    write_jsonl(tmp_path / "mine.jsonl.gz", records)
    s = run_smoke("analyse_data", study.run, tmp_path / "run", [f"data.path={tmp_path / 'mine.jsonl.gz'}"])
    assert s["status"] == "ok" and s["pairs"] == len(records)


def test_a_malformed_record_in_the_users_file_names_file_line_and_field(tmp_path):
    from rm_theory.world.records import RecordError

    path = tmp_path / "mine.jsonl"
    good = {
        "prompt": "Is it safe?",
        "prompt_id": "p0",
        "response_a": "Yes, with care.",
        "response_b": "No.",
        "better": 0,
    }
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "response_a": 3.5}) + "\n")
    with pytest.raises(RecordError, match=r"mine\.jsonl:2.*response_a"):
        run_smoke("analyse_data", study.run, tmp_path / "run", [f"data.path={path}", "data.format=jsonl"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
