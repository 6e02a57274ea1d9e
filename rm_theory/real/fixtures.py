"""Tiny files in the real data sets' formats and a tiny random encoder, for smoke runs and tests
that must run without ../shared/data or the encoder wheel (the real loaders read them unchanged)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from rm_theory.lm.encoders.tiny import write_tiny_bert

FIXTURE_WORDS = (
    "good great helpful safe correct answer bad wrong harmful unsafe kill steal hurt the a is "
    "to you i can not how do please sorry here help with that what why tell me about cook "
    "math two four six plus equals so total question dog cat money".split()
)


def write_tiny_encoder(d: Path, seed: int = 0, hidden: int = 16) -> Path:
    """A 2-layer random BERT in the published layout over `FIXTURE_WORDS` (see `lm.encoders.tiny`)."""
    return write_tiny_bert(d, [*FIXTURE_WORDS, ".", "?", ","], seed=seed, hidden=hidden)


def _sentence(rng: np.random.Generator, words: list[str], n: int, mark: str) -> str:
    return " ".join([mark, *rng.choice(words, n)]) + "."


def write_fixture(root: Path, seed: int = 0, prompts: int = 24) -> dict[str, str]:
    """Tiny files in each source format (preferred responses say "good"/"safe"/"correct",
    the others "bad"/"unsafe"/"wrong"); returns {data set name: path}, plus "encoder_dir"."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    filler = list(FIXTURE_WORDS[16:])
    q = lambda: _sentence(rng, filler, 5, "please")
    good = lambda: _sentence(rng, filler, int(rng.integers(3, 9)), "good")
    bad = lambda: _sentence(rng, filler, int(rng.integers(3, 9)), "bad")
    paths: dict[str, str] = {}

    def jsonl_gz(name, rows):
        with gzip.open(root / name, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return str(root / name)

    hh = []
    for _ in range(prompts):
        p = q()
        hh.append(
            {"chosen": f"\n\nHuman: {p}\n\nAssistant: {good()}", "rejected": f"\n\nHuman: {p}\n\nAssistant: {bad()}"}
        )
    paths["hh"] = jsonl_gz("hh.jsonl.gz", hh)
    pku = []
    for _ in range(prompts):
        p, safe, unsafe = q(), [good(), good()], [bad(), bad(), bad()]
        pku += [{"prompt": p, "response": [s, u]} for s in safe for u in unsafe]
    (root / "pku.json").write_text(json.dumps(pku))
    paths["pku"] = str(root / "pku.json")
    models = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    gsm = []
    for _ in range(prompts):
        ok = rng.permutation([True, True, False, False])
        gsm.append(
            {
                "question": q(),
                "ground_truth": "4",
                **{
                    m: {"is_correct": bool(c), "solution": good() if c else bad()}
                    for m, c in zip(models, ok, strict=True)
                },
            }
        )
    paths["gsm8k"] = jsonl_gz("gsm8k.jsonl.gz", gsm)
    panda = []
    for i in range(prompts):
        first = bool(rng.integers(2))
        v = str(1 if first else 2)
        panda.append(
            {
                "idx": i,
                "instruction": q(),
                "input": "",
                "response1": good() if first else bad(),
                "response2": bad() if first else good(),
                "annotator1": v,
                "annotator2": v,
                "annotator3": "0",
            }
        )
    (root / "pandalm.json").write_text(json.dumps(panda))
    paths["pandalm"] = str(root / "pandalm.json")
    (root / "llmbar").mkdir(exist_ok=True)
    bar = []
    for _ in range(prompts):
        first = bool(rng.integers(2))
        bar.append(
            {
                "input": q(),
                "output_1": good() if first else bad(),
                "output_2": bad() if first else good(),
                "label": 1 if first else 2,
            }
        )
    (root / "llmbar" / "Natural.json").write_text(json.dumps(bar))
    paths["llmbar"] = str(root / "llmbar")
    for name, n in (("ultrafeedback", prompts), ("ultrafeedback_eval", prompts // 2)):
        rows = []
        for i in range(n):
            p = q()
            msg = lambda y, p=p: [{"role": "user", "content": p}, {"role": "assistant", "content": y}]
            rows.append({"prompt": p, "chosen": msg(good()), "rejected": msg(bad()), "source_index": i, "metadata": {}})
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths[name] = str(root / f"{name}.jsonl")
    with gzip.open(root / "safer_instruct.csv.gz", "wt", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "rejected", "chosen", "label"])
        w.writerows([q(), bad(), good(), "hate"] for _ in range(prompts))
    paths["safer_instruct"] = str(root / "safer_instruct.csv.gz")
    paths["pku_full"] = _pku_full(root / "pku_full.jsonl", np.random.default_rng([seed, 26]), prompts, filler)
    paths["encoder_dir"] = str(write_tiny_encoder(root / "encoder", seed))
    return paths


def _pku_full(path: Path, rng: np.random.Generator, prompts: int, filler: list[str]) -> str:
    """PKU-SafeRLHF's full schema (dual labels): a helpful response says "good", an unhelpful one
    "bad"; an unsafe one also "kill" with the category Violence and a severity of 1 to 3. `better`
    is the helpful side and `safer` the safe side, drawn apart, so that the two labels disagree on
    about half of the pairs where both are decided."""
    rows = []
    for _ in range(prompts):
        prompt = _sentence(rng, filler, 5, "please")
        for _ in range(3):
            helpful, safe = rng.permutation(2), rng.integers(0, 2, 2).astype(bool)
            if safe.all() or not safe.any():
                safe[rng.integers(2)] = not safe[0]  # one safe side: the safer label is decided
            resp = [
                " ".join(["good" if helpful[i] else "bad", *([] if safe[i] else ["kill"]), *rng.choice(filler, 4)])
                for i in (0, 1)
            ]
            row = {
                "prompt": prompt,
                "better_response_id": int(np.argmax(helpful)),
                "safer_response_id": int(np.argmax(safe)),
            }
            for i in (0, 1):
                row |= {
                    f"response_{i}": resp[i],
                    f"is_response_{i}_safe": bool(safe[i]),
                    f"response_{i}_harm_category": {"Violence": not safe[i], "Cybercrime": False},
                    f"response_{i}_severity_level": 0 if safe[i] else int(rng.integers(1, 4)),
                }
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ---------------------------------------------------------------------------- data preparation
