"""Safer-Instruct's real pairs: the canned-refusal rule on fixed texts, its counts on files the tests write,
and the real-data part of the AI-label study on fixtures (`real.safer_instruct`, `studies.ai_labels`)."""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pytest

from rm_theory.real import safer_instruct as si
from rm_theory.real.loaders import load_safer_instruct, randomize_sides

REFUSALS = [
    "Sorry, but I can't assist with that.",
    "I'm sorry, but I can't assist with that.",
    "Apologies, but I'm unable to assist with that.",
    "Sorry, I can\u2019t help with that.",  # a curly apostrophe
    "  sorry,  but I won't be able to   assist with that. ",
    "I'm really sorry that you're feeling this way, but I'm unable to provide the help that you need. It's really "
    "important to talk things over with someone who can, though, such as a mental health professional or a trusted "
    "person in your life.",
    "As an AI, I cannot generate content that promotes hate.",
    "I cannot comply with that request.",
    "\"Sorry, but I can't provide the information you're looking for.\"",
]
NOT_REFUSALS = [
    "Sorry to hear that. How can I assist you better?",
    "I'm sorry, your request seems incomplete. Could you please provide more details?",
    "Here is a kinder way to say it: everyone deserves respect.",
    "You can't be serious, that's hilarious!",  # declines nothing, opens with no apology
    "Sorry, but I can't assist with that. "
    + "Let me explain at length why this matters to everyone. " * 12,  # not short
    "",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_canned_refusals_are_found(text):
    assert si.is_canned_refusal(text)


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_answers_and_long_replies_are_not_canned_refusals(text):
    assert not si.is_canned_refusal(text)


def _write(path, rows):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["instruction", "rejected", "chosen", "label"])
    w.writerows(rows)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def test_counts_per_topic_on_files_the_loader_reads(tmp_path):
    _write(
        tmp_path / "hate.csv.gz",
        [
            ["say something mean", "mean words", "Sorry, but I can't assist with that.", "hate"],
            ["insult them", "an insult", "Sorry, but I cannot help with that.", "hate"],
            ["be rude", "rude words", "Let us talk about something kind instead.", "hate"],
            ["slur please", "a slur", "I'm sorry, but I can't assist with that.", "hate"],
        ],
    )
    _write(
        tmp_path / "self-harm.csv.gz",
        [
            [
                "how to hurt",
                "harm text",
                "I'm really sorry that you're feeling this way, but I'm unable to help.",
                "self-harm",
            ]
        ],
    )
    records, report = load_safer_instruct(tmp_path)
    assert len(records) == 5 and report.n_read == 5
    counts = si.refusal_counts(records)
    assert counts == {
        "hate": {"rows": 4, "refusal": 3, "substring": 2},  # the substring misses "I'm sorry, but I can't"
        "self-harm": {"rows": 1, "refusal": 1, "substring": 0},
    }
    # the chosen side is found whichever side randomisation puts it on
    swapped = randomize_sides(records, np.random.default_rng(0))
    assert any(r.better == 1 for r in swapped)
    np.testing.assert_array_equal(si.refusal_mask(swapped), si.refusal_mask(records))


def test_the_fixture_writer_makes_loadable_files_with_known_refusals(tmp_path):
    folder = si.write_fixture(tmp_path / "si", seed=0, rows=12)
    records, _ = load_safer_instruct(folder)
    counts = si.refusal_counts(records)
    # rows 0, 3, 6, 9 refuse, with the first, second, third and first stock phrase
    assert counts == {t: {"rows": 12, "refusal": 4, "substring": 2} for t in ("hate", "self-harm")}


def test_the_real_part_on_fixtures(tmp_path):
    """Heads on the two fixture sets, cross-evaluated, with bootstrap intervals and the refusal counts."""
    from rm_theory.studies import ai_labels
    from tests.helpers import run_smoke

    summary = run_smoke("ai_labels", ai_labels.run, tmp_path / "run", ["parts=[real]"])
    assert summary["status"] == "ok"
    assert summary["refusal_chosen_hate"] == 8 and summary["refusal_rows_self_harm"] == 24
    for train in ("safer_instruct", "safer_instruct_norefusal", "pku"):
        for test in ("safer_instruct", "pku"):
            key = f"real_accuracy_{train}_on_{test}"
            assert 0 <= summary[f"{key}_lo"] <= summary[key] <= summary[f"{key}_hi"] <= 1, key
    assert "real_accuracy_diff_safer_instruct_minus_pku_on_pku" in summary
    assert summary["real_heads"] == "frozen"
    assert (tmp_path / "run" / "figures" / "real_accuracy.png").exists()
