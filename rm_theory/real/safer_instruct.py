"""Safer-Instruct's automatically built pairs (Shi et al. 2024, NAACL, arXiv 2311.08685): which chosen
responses are canned refusals, and tiny files in its format for tests and smoke runs.

A canned refusal declines with a stock phrase instead of answering. The rule (`is_canned_refusal`),
on the text lower-cased, curly apostrophes straightened and whitespace collapsed:

1. short: at most `MAX_WORDS` words (the longest stock refusal of the data, the self-harm template
   "I'm really sorry that you're feeling this way, but I'm unable to provide the help that you need.
   It's really important to talk things over with someone who can, ...", has 45);
2. it opens with an apology or a refusal (`OPENER`: "sorry", "I'm (really/truly) sorry",
   "apologies", "my apologies", "I apologise", "as an AI", "I can't", "I cannot", "I'm unable",
   "I won't", "unfortunately");
3. it declines (`DECLINE`: can't / cannot / unable to / not able to / won't / will not / must
   decline / not going to, followed within a few words by assist, help, provide, comply, fulfil,
   generate, create, do, engage, support, continue, produce, write, answer).

So "Sorry to hear that. How can I assist you better?" (no declining phrase) and "I'm sorry, your
request seems incomplete. Could you please provide more details?" are not refusals. The rule is
stated, not tuned to a count; the issue's 1,769 of 3,274 hate rows is what the substring
"Sorry, but I can" finds (`SUBSTRING_RULE`), reported beside it.

Legend: N records.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rm_theory.world.records import PreferenceRecord

MAX_WORDS = 60
OPENER = re.compile(
    r"^(?:(?:i'm|i am)\s+)?(?:(?:really|truly|so|very)\s+)?(?:sorry|apologies|my apologies|i apologi[sz]e)"
    r"|^as an ai\b|^unfortunately\b|^i\s+(?:can't|cannot|can not|won't|will not)\b"
    r"|^(?:i'm|i am)\s+(?:unable|not able)\b"
)
DECLINE = re.compile(
    r"\b(?:can't|cannot|can not|unable to|not able to|won't|will not|must decline|not going to)"
    r"(?:\s+\S+){0,4}?\s+(?:assist|help|provide|comply|fulfil|fulfill|generate|create|do|engage|support|continue"
    r"|produce|write|answer)\b"
)
SUBSTRING_RULE = "Sorry, but I can"  # the count quoted in the issue (case-sensitive substring)


def normalise(text: str) -> str:
    t = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return re.sub(r"\s+", " ", t).strip().strip("\"'")


def is_canned_refusal(text: str) -> bool:
    """The rule of the module docstring."""
    t = normalise(text)
    return len(t.split()) <= MAX_WORDS and bool(OPENER.search(t)) and bool(DECLINE.search(t))


def chosen_text(r: PreferenceRecord) -> str:
    """The preferred response of a record (`better` 0: a, 1: b); the safer one where `better` is unset."""
    side = r.better if r.better is not None else r.safer
    return str(r.response_a if side in (0, None) else r.response_b)


def refusal_mask(records: Sequence[PreferenceRecord]) -> np.ndarray:
    """[N] True where the record's chosen response is a canned refusal."""
    return np.array([is_canned_refusal(chosen_text(r)) for r in records], bool)


def refusal_counts(records: Sequence[PreferenceRecord]) -> dict[str, dict[str, int]]:
    """Per topic (`meta["topic"]`, the data set's label): rows, chosen canned refusals by the rule,
    and rows whose chosen response contains `SUBSTRING_RULE`."""
    out: dict[str, Counter] = {}
    for r in records:
        c = out.setdefault(str(r.meta.get("topic")), Counter())
        text = chosen_text(r)
        c["rows"] += 1
        c["refusal"] += is_canned_refusal(text)
        c["substring"] += SUBSTRING_RULE in text
    return {k: dict(v) for k, v in sorted(out.items())}


# ---------------------------------------------------------------------------- fixtures

FIXTURE_REFUSALS = (
    "Sorry, but I can't assist with that.",
    "I'm sorry, but I cannot help with that request.",
    "I'm really sorry that you're feeling this way, but I'm unable to provide the help that you need.",
)


def write_fixture(root: Path, seed: int = 0, rows: int = 24) -> Path:
    """A folder with one tiny Safer-Instruct file per topic (csv.gz, the data set's columns), in the
    words of `real.fixtures` (chosen responses say "good", rejected "bad"); every third chosen
    response is a canned refusal. Returns the folder."""
    from rm_theory.real.fixtures import FIXTURE_WORDS

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = list(FIXTURE_WORDS[16:])
    say = lambda mark, n: " ".join([mark, *rng.choice(words, n)]) + "."
    for topic in ("hate", "self-harm"):
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["instruction", "rejected", "chosen", "label"])
        for i in range(rows):
            chosen = FIXTURE_REFUSALS[i % 9 // 3] if i % 3 == 0 else say("good", int(rng.integers(3, 9)))
            w.writerow([say("please", 5), say("bad", int(rng.integers(3, 9))), chosen, topic])
        with gzip.open(root / f"safer_instruct_{topic}.csv.gz", "wt", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
    return root
