"""Token-level rules of `rm_theory.lm`: fitting pairs to the window, length buckets, the pad token."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from rm_theory.lm import fit_pairs
from rm_theory.lm.text import length_buckets, pad_token_rule

PROMPTS = [[1, 2], [1, 2, 3, 4, 5, 6], [1] * 10, [1]]
CHOSEN = [[7, 8], [7, 8, 9], [7], [7] * 3]
REJECTED = [[9], [9] * 6, [9], [9] * 12]  # pair 1: rejected too long; 2: prompt fills 10; 3: rejected too long


def test_drop_rule_leaves_out_every_pair_with_a_long_side():
    keep, chosen, rejected, rep = fit_pairs(PROMPTS, CHOSEN, REJECTED, max_len=10, rule="drop")
    assert keep.tolist() == [0] and chosen == [[1, 2, 7, 8]] and rejected == [[1, 2, 9]]
    assert (rep.pairs, rep.kept, rep.dropped, rep.truncated, rep.prompt_too_long) == (4, 1, 3, 0, 1)


def test_truncate_rule_cuts_the_end_and_counts_it():
    keep, chosen, rejected, rep = fit_pairs(PROMPTS, CHOSEN, REJECTED, max_len=10, rule="truncate")
    assert keep.tolist() == [0, 1, 3]
    assert rejected[1] == [1, 2, 3, 4, 5, 6, 9, 9, 9, 9] and chosen[1] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert rejected[2] == [1] + [9] * 9 and all(len(x) <= 10 for x in chosen + rejected)
    assert (rep.kept, rep.dropped, rep.truncated, rep.prompt_too_long) == (3, 1, 2, 1)


def test_fit_pairs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rule = 'clip'"):
        fit_pairs(PROMPTS, CHOSEN, REJECTED, 10, "clip")
    with pytest.raises(ValueError, match="4 prompts, 3 chosen"):
        fit_pairs(PROMPTS, CHOSEN[:3], REJECTED, 10, "drop")


def test_length_buckets():
    assert length_buckets(64) == (16, 32, 48, 64)
    b = length_buckets(4096)
    assert b[:8] == (16, 32, 48, 64, 80, 96, 112, 128) and b[8:12] == (160, 192, 224, 256)
    assert b[12:] == (320, 384, 448, 512, 1024, 2048, 4096)
    assert length_buckets(100)[-1] == 100


def test_pad_token_rule_order(tmp_path):
    tok = Tokenizer(WordLevel({"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}, unk_token="<unk>"))
    config = {"pad_token_id": 0, "eos_token_id": 2}
    assert pad_token_rule(config, {"pad_token": "<pad>"}, tok, tmp_path) == (0, "config")
    assert pad_token_rule({"eos_token_id": 2}, {"pad_token": {"content": "<pad>"}}, tok, tmp_path) == (3, "tokenizer")
    assert pad_token_rule({"eos_token_id": [2, 1]}, {}, tok, tmp_path) == (2, "eos")
    assert pad_token_rule({}, {"eos_token": "</s>"}, tok, tmp_path) == (2, "eos")
    assert pad_token_rule({"eos_token_id": 1}, {"eos_token": "</s>"}, tok, tmp_path) == (2, "eos")  # TRL's


def test_choose_buckets_is_the_least_padding_of_any_choice():
    """Against every choice of at most n candidate lengths (brute force)."""
    import itertools

    import numpy as np

    from rm_theory.lm.text import choose_buckets

    rng = np.random.default_rng(0)
    for _ in range(60):
        len_N, n = rng.integers(1, 120, int(rng.integers(1, 30))), int(rng.integers(1, 4))
        got = choose_buckets(len_N, 128, n)

        def cost(bs, len_N=len_N):
            return sum(min(b for b in bs if b >= x) for x in len_N) if max(bs) >= len_N.max() else float("inf")

        options = [c for k in range(1, n + 1) for c in itertools.combinations(length_buckets(128), k)]
        assert (cost(got), len(got)) == min((cost(c), len(c)) for c in options)
    assert choose_buckets([5, 5, 70], 128, 2) == (16, 80)
    with pytest.raises(ValueError, match="longer than max_len"):
        choose_buckets([200], 128, 2)


def test_encode_pairs_marks_where_the_response_starts(tmp_path):
    """A BERT pair is [CLS] prompt [SEP] response [SEP] with types 0 then 1: the prompt part is up to
    the first [SEP]; an empty response keeps that boundary."""
    from rm_theory.lm.text import TextTokenizer
    from tests.lm_tiny import write_tiny

    tok = TextTokenizer.from_folder(write_tiny(tmp_path, "bert"), {"pad_token_id": 0})
    bare = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    bare.post_processor = __import__("tokenizers").processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.tok = bare
    ids, types, plen = tok.encode_pairs(["the cat", "a dog", "the"], ["sat on a mat", "", "red"])
    words = [[bare.id_to_token(i) for i in x] for x in ids]
    assert words[0] == ["[CLS]", "the", "cat", "[SEP]", "sat", "on", "a", "mat", "[SEP]"] and plen[0] == 4
    assert types[0] == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert words[1] == ["[CLS]", "a", "dog", "[SEP]", "[SEP]"] and plen[1] == 4
    assert plen[2] == 3 and words[2][3:] == ["red", "[SEP]"]
