"""The IBN report of a user's data set (`experiments.analyse_data`): smoke run and bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from rm_theory.runs import run_entry
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
        (["data.path=x.jsonl", "data.format=nope"], "data.format = .nope.: must be one of"),
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


def _user_file(path, rows):
    """The project's JSONL format: rows of (prompt_id, response_a, response_b, better[, meta])."""
    recs = [
        {
            "prompt": f"Question {p}?",
            "prompt_id": p,
            "response_a": a,
            "response_b": b,
            "better": w,
            "meta": m[0] if m else {},
        }
        for p, a, b, w, *m in rows
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _strict_json_lines(path):
    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def _words(rng, n):
    # words outside the tiny encoder's vocabulary: every one is [UNK], as in a user's real text
    return " ".join(rng.choice(["zebra", "quantum", "velvet", "harbour", "plinth", "saffron", "orbit"], n))


def _tree_rows(prompts=12, per=4, long_prefix=""):
    """Each prompt: `per` responses, compared along a chain (so same-prompt pairs remain to ask for)."""
    rng = np.random.default_rng(0)
    rows = []
    for p in range(prompts):
        ys = [long_prefix + _words(rng, 4) + f" {i}" for i in range(per)]
        rows += [(f"p{p}", ys[i], ys[i + 1], i % 2) for i in range(per - 1)]
    return rows


@pytest.mark.parametrize(
    "prefix",
    [
        "",  # a user's words the smoke encoder does not know: identical embeddings, zero-variance IB edges
        "good answer " * 20,  # texts identical after truncation to the encoder's 32 tokens
    ],
)
def test_a_smoke_run_on_a_users_file_proposes_its_batch(tmp_path, prefix):
    path = _user_file(tmp_path / "mine.jsonl", _tree_rows(long_prefix=prefix))
    s = run_smoke("analyse_data", study.run, tmp_path / "run", [f"data.path={path}", "data.format=jsonl"])
    assert s["status"] == "ok" and s["next_batch"] == 5
    assert np.isfinite(s["target_resistance_before"]) and np.isfinite(s["target_resistance_after"])
    batch, _ = read_jsonl(tmp_path / "run" / "next_batch.jsonl")
    assert len(batch) == 5


def test_unreachable_pairs_are_null_in_least_determined_and_counted(tmp_path):
    from rm_theory.real.fixtures import write_fixture

    fx = write_fixture(tmp_path / "fx")
    # without the spanning tree, with one neighbour each and responses alone, the IB graph falls apart
    over = [f"data.path={fx['pku']}", "data.format=pku-saferlhf", "ibn.mst=false", "ibn.k=1", "features.mode=response"]
    over += ["ibn.least_determined=30"]
    s = run_smoke("analyse_data", study.run, tmp_path / "run", over)
    lines = _strict_json_lines(tmp_path / "run" / "least_determined.jsonl")
    nulls = sum(r["meta"]["resistance"] is None for r in lines)
    assert s["heldout_unreachable"] > 0 and nulls == s["least_determined_unreachable"] > 0


def test_ties_self_pairs_and_unlabelled_requests_are_counted(tmp_path):
    rows = _tree_rows()
    rows += [("p0", "same words", "same words", 0), ("p1", "one tie", "other tie", None)]
    rows += [("p2", "asked a", "asked b", None, {"request": True})]
    path = _user_file(tmp_path / "mine.jsonl", rows)
    s = run_smoke("analyse_data", study.run, tmp_path / "run", [f"data.path={path}", "data.format=jsonl"])
    assert s["ties"] == 1 and s["self_pairs"] == 1 and s["unlabelled_requests"] == 1
    assert s["pairs"] == len(rows) - 1
    d = pd.read_csv(tmp_path / "run" / "distances.csv")
    assert (d["a"] != d["b"]).all()  # a self-pair is no held-out pair: its distance 0 would enter the mean


@pytest.mark.parametrize("over", [["ibn.M_values=[]"], ["ibn.M_values=[64]"]])
def test_no_f_of_m_point_still_gives_the_report(tmp_path, over):
    s = run_smoke("analyse_data", study.run, tmp_path, over)
    assert s["status"] == "ok" and s["fm_points"] == 0 and s["fm_regime"] == "none"
    assert (tmp_path / "figures" / "structural.png").exists()


def test_pairs_under_one_prompt_name_the_file(tmp_path):
    path = _user_file(tmp_path / "one.jsonl", [("p0", "a b", "c d", 0), ("p0", "c d", "e f", 1)])
    with pytest.raises(ValueError, match=r"one\.jsonl: 2 pairs under 1 prompt"):
        run_smoke("analyse_data", study.run, tmp_path / "run", [f"data.path={path}", "data.format=jsonl"])


def test_chosen_rejected_data_gets_cross_prompt_comparisons_and_prompts_to_extend(tmp_path):
    from rm_theory.real.fixtures import write_fixture

    fx = write_fixture(tmp_path / "fx")
    s = run_smoke("analyse_data", study.run, tmp_path / "run", [f"data.path={fx['hh']}", "data.format=hh-rlhf"])
    run = tmp_path / "run"
    assert s["status"] == "ok" and s["next_batch"] == 0 and "already compared" in s["next_batch_why"]
    assert not (run / "next_batch.jsonl").exists()
    batch, _ = read_jsonl(run / "cross_prompt_batch.jsonl")
    assert len(batch) == s["cross_prompt_batch"] == 5
    assert all(r.meta["cross_prompt"] and r.meta["prompt_id_b"] != r.prompt_id for r in batch)
    assert all(r.meta["predicted_gain"] > 0 for r in batch)
    assert s["target_resistance_after"] < s["target_resistance_before"]
    ext = pd.read_csv(run / "prompts_to_extend.csv")
    assert len(ext) == s["prompts_to_extend"] == s["prompts"]
    assert (ext["predicted_gain"] > 0).all() and ext["predicted_gain"].is_monotonic_decreasing
    assert (ext["responses"] == 2).all() and (ext["comparisons"] == 1).all()


def test_prompt_extension_gain_is_the_exact_decrease():
    from rm_theory.ibn import Network, network_distance

    rng = np.random.default_rng(1)
    # two parts {0..4} and {5..7}: S = {1, 3, 6} spans both
    u, v = np.array([0, 1, 2, 3, 0, 5, 6]), np.array([1, 2, 3, 4, 3, 6, 7])
    net = Network(8, u, v, rng.uniform(0.2, 2.0, len(u)))
    S, xi2 = np.array([1, 3, 6]), 0.7
    ij = np.array([(a, b) for k, a in enumerate(S) for b in S[k + 1 :]])
    R = np.zeros((3, 3))
    R[np.triu_indices(3, 1)] = network_distance(net, ij, "resistance")
    R = R + R.T
    grown = Network(9, np.r_[u, S], np.r_[v, [8, 8, 8]], np.r_[net.var_E, [xi2] * 3])
    before, after = study.prompt_extension_gain(R, xi2)
    assert np.isinf(before)
    assert after == pytest.approx(network_distance(grown, ij, "resistance").mean(), rel=1e-9)
    S = np.array([0, 2, 3, 4])  # one part: finite before
    ij = np.array([(a, b) for k, a in enumerate(S) for b in S[k + 1 :]])
    R = np.zeros((4, 4))
    R[np.triu_indices(4, 1)] = network_distance(net, ij, "resistance")
    grown = Network(9, np.r_[u, S], np.r_[v, [8] * 4], np.r_[net.var_E, [xi2] * 4])
    before, after = study.prompt_extension_gain(R + R.T, xi2)
    assert before == pytest.approx(network_distance(net, ij, "resistance").mean(), rel=1e-12)
    assert after == pytest.approx(network_distance(grown, ij, "resistance").mean(), rel=1e-9)


@pytest.mark.parametrize("cap", [0, 40, 10_000])
def test_cross_prompt_pairs_are_distinct_and_cross(cap):
    prompt_N = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "e", "f"], dtype=object)
    pairs = study.cross_prompt_pairs(prompt_N, cap, np.random.default_rng(0))
    every = {(i, j) for i in range(10) for j in range(i + 1, 10) if prompt_N[i] != prompt_N[j]}
    got = {tuple(p) for p in pairs.tolist()}
    assert len(got) == len(pairs) and got <= every
    assert len(pairs) == (len(every) if cap in (0, 10_000) else cap)


def test_two_identical_runs_in_two_folders_compare_equal(tmp_path):
    from rm_theory.runs.compare import compare_summaries

    for name in ("a", "b"):
        assert run_smoke("analyse_data", study.run, tmp_path / name)["status"] == "ok"
    assert compare_summaries(tmp_path / "a", tmp_path / "b") == []


def test_a_trained_score_models_own_representation_replaces_the_encoder(tmp_path):
    from rm_theory.lm import load_score_model, save_score_model
    from rm_theory.real.fixtures import write_tiny_encoder

    # a score model saved in the Hugging Face layout, as a fine-tuning run writes it
    folder = tmp_path / "rm"
    save_score_model(load_score_model(write_tiny_encoder(tmp_path / "enc", seed=7), seed=2), folder)
    base = run_smoke("analyse_data", study.run, tmp_path / "enc_run")
    s = run_smoke("analyse_data", study.run, tmp_path / "rm_run", [f"score_model={folder}"])
    assert s["status"] == "ok" and s["representation"] == f"score model {folder}"
    assert base["representation"] == "frozen encoder"
    d0 = pd.read_csv(tmp_path / "enc_run" / "distances.csv")
    d1 = pd.read_csv(tmp_path / "rm_run" / "distances.csv")
    assert d0[["a", "b"]].equals(d1[["a", "b"]])  # the same held-out pairs
    assert not np.allclose(d0["resistance"], d1["resistance"])  # another geometry
