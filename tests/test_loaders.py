"""Loaders on small fixtures written in each data set's published format; splits; baselines."""

import csv
import gzip
import json

import numpy as np
import pytest

from rm_theory.real import LOADERS, load, randomize_sides, split_by_prompt
from rm_theory.real.baselines import (
    bow_accuracy,
    fit_bow_logistic,
    hash_features,
    prefer_longer_accuracy,
    record_accuracy,
)
from rm_theory.world import HARM_CATEGORIES, PreferenceRecord, RecordError, prompt_hash, write_jsonl


def write_jsonl_gz(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


# ---------------------------------------------------------------------------- HH-RLHF


def test_hh_rlhf_splits_shared_prefix(tmp_path):
    hist = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I bake bread?\n\nAssistant:"
    rows = [
        {"chosen": hist + " Knead and bake.", "rejected": hist + " No."},
        {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"},
        # different histories: not a comparison of two replies to one prompt
        {
            "chosen": "\n\nHuman: q\n\nAssistant: a\n\nHuman: more\n\nAssistant: c",
            "rejected": "\n\nHuman: q\n\nAssistant: b",
        },
    ]
    path = tmp_path / "test.jsonl.gz"
    write_jsonl_gz(path, rows)
    recs, rep = load("hh-rlhf", path)
    assert rep.n_read == 3 and rep.n_records == 2 and rep.skipped == {"no_shared_prefix": 1}
    r = recs[0]
    assert r.prompt == hist and r.response_a == "Knead and bake." and r.response_b == "No."
    assert r.prompt + " " + r.response_a == rows[0]["chosen"] and r.better == 0
    assert r.prompt_id == prompt_hash(hist)


def test_hh_rlhf_bad_field_names_line(tmp_path):
    path = tmp_path / "t.jsonl.gz"
    write_jsonl_gz(path, [{"chosen": "a", "rejected": "b"}, {"chosen": "a", "rejected": 3}])
    with pytest.raises(RecordError) as e:
        load("hh-rlhf", path)
    assert (e.value.line, e.value.field) == (2, "rejected")


# ---------------------------------------------------------------------------- PKU-SafeRLHF


def pku_row(safe0, safe1, better, safer, harm0=(), sev0=0, sev1=0):
    cats = lambda hs: {c: c in hs for c in HARM_CATEGORIES}
    return {
        "prompt": "How do I pick a lock?",
        "response_0": "r0",
        "response_1": "r1",
        "is_response_0_safe": safe0,
        "is_response_1_safe": safe1,
        "better_response_id": better,
        "safer_response_id": safer,
        "response_0_harm_category": cats(harm0),
        "response_1_harm_category": cats(()),
        "response_0_severity_level": sev0,
        "response_1_severity_level": sev1,
        "response_0_sha256": "h0",
        "response_1_sha256": "h1",
    }


def test_pku_full_schema(tmp_path):
    rows = [
        pku_row(False, True, 0, 1, harm0=("Cybercrime", "Privacy Violation"), sev0=2),
        # safer = 0 but response 0 unsafe while response 1 safe: counted, not raised
        pku_row(False, True, 1, 0, harm0=("Cybercrime",), sev0=1),
    ]
    path = tmp_path / "pku.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    recs, rep = load("pku-saferlhf", path)
    r = recs[0]
    assert (r.better, r.safer, r.safe_a, r.safe_b) == (0, 1, False, True)
    assert r.harm_a == ("Cybercrime", "Privacy Violation") and r.harm_b == ()
    assert (r.severity_a, r.severity_b) == (2, 0) and r.meta["response_0_sha256"] == "h0"
    assert rep.n_records == 2 and rep.inconsistent_rows == [1]
    assert rep.inconsistent == {"safer_is_unsafe_other_safe": 1}
    assert rep.n_duplicates == 1  # same prompt and responses twice


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda r: r["response_0_harm_category"].update({"Rudeness": True}), "response_0_harm_category"),
        (lambda r: r.update(safer_response_id=2), "safer_response_id"),
        (lambda r: r.update(is_response_1_safe="yes"), "is_response_1_safe"),
        (lambda r: r.update(response_1_severity_level=5), "response_1_severity_level"),
        (lambda r: r.pop("response_1"), "response_1"),
    ],
)
def test_pku_full_schema_errors(tmp_path, edit, field):
    bad = pku_row(True, False, 0, 0)
    edit(bad)
    path = tmp_path / "pku.json"
    path.write_text(json.dumps([pku_row(True, False, 0, 0), bad]))
    with pytest.raises(RecordError) as e:
        load("pku-saferlhf", path)
    assert (e.value.line, e.value.field) == (2, field)


def test_pku_pair_list_form(tmp_path):
    rows = [
        {"prompt": "p", "response": ["safe one", "unsafe one"]},
        {"prompt": "p", "response": ["safe two", "unsafe one"]},
        {"prompt": "q", "response": ["s", "u"]},
    ]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(rows))
    recs, rep = load("pku-saferlhf", path)
    assert [(r.response_a, r.better, r.safer, r.safe_a, r.safe_b) for r in recs][0] == ("safe one", 0, 0, True, False)
    assert len({r.prompt_id for r in recs}) == 2 and rep.n_inconsistent == 0
    path.write_text(json.dumps([{"prompt": "p", "response": ["only one"]}]))
    with pytest.raises(RecordError, match="response"):
        load("pku-saferlhf", path)


# ---------------------------------------------------------------------------- GSM8K


def gsm_row(q, correct):
    names = ["6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"]
    sols = {n: {"is_correct": c, "solution": f"{q}-{n}-{c}"} for n, c in zip(names, correct, strict=True)}
    return {"question": q, "ground_truth": "A: 1"} | sols


def test_gsm8k_correct_over_incorrect_pairs(tmp_path):
    rows = [
        gsm_row("q1", [True, False, True, False]),  # 2 x 2 = 4 pairs
        gsm_row("q2", [True, True, True, True]),  # no pair
        gsm_row("q3", [False, True, False, False]),  # 1 x 3 = 3 pairs
        gsm_row("q4", [False, False, False, False]),
    ]  # no pair
    path = tmp_path / "example_model_solutions.jsonl.gz"
    write_jsonl_gz(path, rows)
    recs, rep = load("gsm8k", path)
    assert len(recs) == 7 and rep.n_read == 4
    assert rep.skipped == {"all_correct": 1, "all_incorrect": 1}
    assert all(r.response_a.endswith("True") and r.response_b.endswith("False") for r in recs)
    assert {r.tree_id for r in recs} == {1, 3}
    assert {(r.node_a, r.node_b) for r in recs if r.tree_id == 3} == {
        ("6b_verification", n) for n in ("6b_finetuning", "175b_finetuning", "175b_verification")
    }


# ---------------------------------------------------------------------------- PandaLM


def test_pandalm_majority_and_ties(tmp_path):
    def row(i, votes, r1="first", r2="second"):
        return {"idx": i, "instruction": "Rewrite.", "input": "Text.", "response1": r1, "response2": r2} | {
            f"annotator{k + 1}": v for k, v in enumerate(votes)
        }

    rows = [
        row(0, ["2", "2", "1"]),
        row(1, [1, 1, 0]),
        row(2, ["0", "0", "1"]),
        row(3, ["0", "1", "2"]),
        row(4, ["1", "1", "1"], r1=True),
    ]
    path = tmp_path / "testset-v1.json"
    path.write_text(json.dumps(rows))
    recs, rep = load("pandalm", path)
    assert [r.better for r in recs] == [1, 0, None, None, 0]
    assert rep.n_ties == 2 and recs[3].meta["no_majority"] and not recs[2].meta["no_majority"]
    assert recs[0].prompt == "Rewrite.\n\nText." and recs[4].response_a == "True"
    rows[1]["annotator2"] = "3"
    path.write_text(json.dumps(rows))
    with pytest.raises(RecordError) as e:
        load("pandalm", path)
    assert (e.value.line, e.value.field) == (2, "annotator2")


# ---------------------------------------------------------------------------- LLMBar


def test_llmbar_file_or_folder(tmp_path):
    a = [
        {"input": "i1", "output_1": "o1", "output_2": "o2", "label": "2"},
        {"input": "i2", "output_1": "o1", "output_2": "o2", "label": 1},
    ]
    (tmp_path / "LLMBar_Natural.json").write_text(json.dumps(a))
    (tmp_path / "Processed_MT-Bench.json").write_text(json.dumps(a[:1]))
    recs, rep = load("llmbar", tmp_path)
    assert [r.better for r in recs] == [1, 0, 1] and rep.n_read == 3
    assert recs[2].source == "llmbar/Processed_MT-Bench"
    recs1, _ = load("llmbar", tmp_path / "LLMBar_Natural.json")
    assert len(recs1) == 2
    (tmp_path / "bad.json").write_text(json.dumps([dict(a[0], label="3")]))
    with pytest.raises(RecordError, match="label"):
        load("llmbar", tmp_path)


# ---------------------------------------------------------------------------- UltraFeedback


def test_ultrafeedback_strings_and_message_lists(tmp_path):
    msgs = lambda t: [{"role": "user", "content": "p"}, {"role": "assistant", "content": t}]
    rows = [
        {
            "prompt": "p",
            "chosen": "good",
            "rejected": "bad",
            "source_index": 1,
            "metadata": {"score_chosen": 9.0, "score_rejected": 8.0},
        },
        {
            "prompt": "p2",
            "chosen": msgs("good2"),
            "rejected": msgs("bad2"),
            "source_index": 2,
            "metadata": {"score_chosen": 7.0, "score_rejected": 7.0},
        },
    ]
    path = tmp_path / "train_clean.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    recs, rep = load("ultrafeedback", path)
    assert [(r.response_a, r.response_b, r.better) for r in recs] == [("good", "bad", 0), ("good2", "bad2", 0)]
    assert recs[0].meta["score_chosen"] == 9.0 and recs[1].meta["source_index"] == 2
    recs, rep = LOADERS["ultrafeedback"](path, equal_scores_as_ties=True)
    assert [r.better for r in recs] == [0, None] and rep.n_ties == 1


# ---------------------------------------------------------------------------- Safer-Instruct


def test_safer_instruct_csv_gz(tmp_path):
    path = tmp_path / "safer_instruct_hate.csv.gz"
    rows = [
        ['say something, "mean"', "mean\nthing", "Sorry, but I can't.", "hate"],
        ["hurt myself?", "how-to", "Please reach out for help.", "self-harm"],
    ]
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "rejected", "chosen", "label"])
        w.writerows(rows)
    recs, rep = load("safer-instruct", path)
    assert rep.n_records == 2
    r = recs[0]
    assert (r.prompt, r.response_a, r.response_b) == (rows[0][0], rows[0][2], rows[0][1])
    assert (r.better, r.safer, r.meta["topic"]) == (0, 0, "hate")
    with gzip.open(path, "wt", newline="") as f:
        f.write("instruction,chosen,label\nx,y,hate\n")
    with pytest.raises(RecordError, match="rejected"):
        load("safer-instruct", path)


# ---------------------------------------------------------------------------- registry, splits


def toy_records(n_prompts=30, per_prompt=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_prompts):
        for k in range(per_prompt):
            out.append(
                PreferenceRecord(
                    f"prompt {p}", prompt_hash(f"prompt {p}"), f"a{p}-{k}", f"b{p}-{k}", better=int(rng.integers(2))
                )
            )
    return out


def test_registry_and_project_jsonl(tmp_path):
    recs = toy_records(3)
    write_jsonl(tmp_path / "x.jsonl.gz", recs)
    assert load("jsonl", tmp_path / "x.jsonl.gz")[0] == recs
    with pytest.raises(KeyError, match="unknown data set"):
        load("hh", tmp_path / "x.jsonl.gz")


@pytest.mark.parametrize("frac", [0.0, 0.2, 0.5, 1.0])
def test_split_by_prompt_is_disjoint_complete_and_seeded(frac):
    recs = toy_records(30)
    train, test = split_by_prompt(recs, frac, seed=1)
    assert len(train) + len(test) == len(recs)
    assert not {r.prompt_id for r in train} & {r.prompt_id for r in test}
    assert len({r.prompt_id for r in test}) == round(frac * 30)
    assert split_by_prompt(recs, frac, seed=1) == (train, test)
    if 0 < frac < 1:
        assert split_by_prompt(recs, frac, seed=2)[1] != test


def test_randomize_sides_keeps_the_preferred_response():
    recs = toy_records(20)
    flipped = randomize_sides(recs, np.random.default_rng(0))
    winner = lambda r: r.response_a if r.better == 0 else r.response_b
    assert [winner(r) for r in flipped] == [winner(r) for r in recs]
    n_swapped = sum(f.response_a != r.response_a for f, r in zip(flipped, recs, strict=True))
    assert 0 < n_swapped < len(recs)


# ---------------------------------------------------------------------------- baselines


def test_pairwise_accuracy_ties_and_halves():
    recs = [PreferenceRecord("p", "p", "a", "b", better) for better in (0, 0, 1, None)]
    acc = record_accuracy(np.array([2.0, 1.0, 1.0, 5.0]), np.array([1.0, 3.0, 1.0, 0.0]), recs)
    assert acc == pytest.approx((1 + 0 + 0.5) / 3)


def test_prefer_longer():
    mk = lambda a, b, better: PreferenceRecord("p", "p", a, b, better)
    recs = [
        mk("long answer", "no", 0),
        mk("x", "longer", 0),
        mk("ab", "cd", 1),
        mk([1, 2, 3], [1], 1),
        mk("a", "bb", None),
    ]
    assert prefer_longer_accuracy(recs) == pytest.approx((1 + 0 + 0.5 + 0) / 4)


def test_hash_features_deterministic_unit_rows():
    X = hash_features(["the cat sat", "", "the cat sat"], dim=1024)
    assert X.shape == (3, 1024)
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(1)).A1, [1, 0, 1], atol=1e-12)
    assert (X[0] != X[2]).nnz == 0


def test_bow_logistic_learns_a_planted_word_and_is_antisymmetric():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]

    def resp(good):
        body = " ".join(rng.choice(words, 8))
        return body + (" helpful" if good else " useless")

    def recs(n):
        out = []
        for i in range(n):
            b = int(rng.integers(2))
            ya, yb = resp(b == 0), resp(b == 1)
            out.append(PreferenceRecord(f"p{i}", f"p{i}", ya, yb, better=b))
        return out

    train, test = recs(200), recs(100)
    model = fit_bow_logistic(train, dim=4096, l2=1e-4)
    assert bow_accuracy(model, test) == 1.0
    swapped = [r.swapped() for r in test]
    sa, sb = model.score([r.response_a for r in test]), model.score([r.response_b for r in test])
    np.testing.assert_allclose(model.score([r.response_b for r in swapped]), sa)
    assert bow_accuracy(model, swapped) == 1.0 and np.all(sa != sb)


def test_bag_of_words_fit_minimises_the_stated_objective():
    """scikit-learn's solution is a stationary point of mean[y softplus(-z) + (1-y) softplus(z)] +
    l2/2 |w|^2 (its gradient vanishes there), ties included; a set with one label still fits."""
    from rm_theory.real.baselines import hash_features

    rng = np.random.default_rng(1)
    words = "good bad fine poor great awful ok meh".split()
    recs = [
        PreferenceRecord(
            f"p{i}",
            f"p{i}",
            " ".join(rng.choice(words, 4)),
            " ".join(rng.choice(words, 4)),
            better=[0, 1, None][i % 3],
        )
        for i in range(60)
    ]
    dim, l2 = 256, 1e-2
    w = fit_bow_logistic(recs, dim=dim, l2=l2).w_D
    X = (hash_features([r.response_a for r in recs], dim) - hash_features([r.response_b for r in recs], dim)).tocsr()
    y = np.array([0.5 if r.better is None else 1.0 - r.better for r in recs])
    p = 1 / (1 + np.exp(-(X @ w)))
    grad = X.T @ (p - y) / len(recs) + l2 * w
    assert np.abs(w).max() > 0.1 and np.abs(grad).max() < 1e-6
    one_label = [r for r in recs if r.better == 0]
    assert np.abs(fit_bow_logistic(one_label, dim=dim, l2=l2).w_D).max() > 0
