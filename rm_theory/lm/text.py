"""Text to token ids: the folder's fast tokenizer, its pad token, length buckets, and the rule for
prompt + response pairs longer than the model's window.

The pad token (`pad_token_rule`): config.json's `pad_token_id` if set (it is the id transformers'
`*ForSequenceClassification` looks for); else the tokenizer's own pad token (`tokenizer_config.json`
`pad_token`, or the padding set in `tokenizer.json`); else the EOS token, as TRL does for Llama
checkpoints, which have no pad token (the tokenizer's `eos_token`, else config.json's
`eos_token_id`, the first if a list). `save_score_model` records the id in config.json.

A (prompt, response) item is encoded as the tokenizer's text pair, what transformers'
`tokenizer(prompt, response)` gives: BERT's `[CLS] prompt [SEP] response [SEP]` with token types 0
and 1, a Llama tokenizer's own pair template, Qwen2's plain concatenation (`encode_pairs`). Its
prompt part (the prompt and the special tokens before the response) is what `fit_pairs` keeps whole.

Legend: N texts or pairs, T tokens, B batch (its rows), Tc candidate padded lengths.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Tokenizer

from rm_theory.lm.config import CheckpointError


def _token(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


class TextTokenizer:
    """A `tokenizers.Tokenizer` from `tokenizer.json`, with special tokens added by its post-processor,
    and no truncation or padding of its own (the score model pads; too-long texts are an error)."""

    def __init__(self, tok: Tokenizer, pad_id: int, pad_rule: str):
        self.tok = tok
        self.tok.no_truncation()
        self.tok.no_padding()
        self.pad_id, self.pad_rule = pad_id, pad_rule

    @property
    def pad_token(self) -> str | None:
        return self.tok.id_to_token(self.pad_id)

    @classmethod
    def from_folder(cls, folder: Path, config: dict) -> TextTokenizer:
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(f"{path}: not found (the fast-tokenizer file; slow tokenizers are not read)")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable tokenizer ({e})") from None
        tcfg_path = folder / "tokenizer_config.json"
        tcfg = json.loads(tcfg_path.read_text()) if tcfg_path.is_file() else {}
        pad_id, rule = pad_token_rule(config, tcfg, tok, folder)
        return cls(tok, pad_id, rule)

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and token-type ids of each text, special tokens included."""
        enc = self.tok.encode_batch(list(texts))
        return [e.ids for e in enc], [e.type_ids for e in enc]

    def encode_pairs(
        self, prompts: Sequence[str], responses: Sequence[str]
    ) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
        """Token ids and types of each (prompt, response) text pair, and the length of each one's
        prompt part: every token before the response's first, the specials between the two included
        (for an empty response, the specials the template puts there)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts, {len(responses)} responses")
        # Where the template puts specials, read off a pair with one token on each side.
        ref = self.tok.encode("a", "b").sequence_ids
        lead = ref.index(0) if 0 in ref else 0
        between = ref.index(1) - (len(ref) - ref[::-1].index(0)) if 0 in ref and 1 in ref else 0
        ids, types, plen = [], [], []
        for e in self.tok.encode_batch(list(zip(prompts, responses, strict=True))):
            seq = e.sequence_ids
            if 1 in seq:
                n = seq.index(1)
            else:  # no response token: the prompt part ends where the response would start
                n = (len(seq) - seq[::-1].index(0) if 0 in seq else lead) + between
            ids.append(e.ids)
            types.append(e.type_ids)
            plen.append(n)
        return ids, types, np.asarray(plen, np.int64)


def pad_token_rule(config: dict, tcfg: dict, tok: Tokenizer, folder: Path) -> tuple[int, str]:
    """(pad id, which rule gave it: "config", "tokenizer" or "eos"); see the module docstring."""
    if isinstance(config.get("pad_token_id"), int):
        return config["pad_token_id"], "config"
    name = _token(tcfg.get("pad_token"))
    if name is not None and tok.token_to_id(name) is not None:
        return tok.token_to_id(name), "tokenizer"
    if tok.padding is not None:
        return tok.padding["pad_id"], "tokenizer"
    # TRL sets tokenizer.pad_token = tokenizer.eos_token: the tokenizer's EOS first (Llama 3 Instruct:
    # <|eot_id|>, where config.json lists three EOS ids), config.json's only without one.
    name = _token(tcfg.get("eos_token"))
    if name is not None and tok.token_to_id(name) is not None:
        return tok.token_to_id(name), "eos"
    eos = config.get("eos_token_id")
    eos = eos[0] if isinstance(eos, list) and eos else eos
    if isinstance(eos, int):
        return eos, "eos"
    raise CheckpointError(
        f"{folder}: no pad token (config.json 'pad_token_id', tokenizer_config.json 'pad_token') and no EOS "
        "token to pad with (config.json 'eos_token_id', tokenizer_config.json 'eos_token')"
    )


def length_buckets(max_len: int) -> tuple[int, ...]:
    """Padded lengths: steps of 16 up to 128, of 32 up to 256, of 64 up to 512, then doublings, and
    `max_len`. A batch pads to the smallest that holds its longest text: at most 1/8 extra padding
    beyond 128 tokens, and few compiles (one per bucket used)."""
    out, L = [], 16
    while L < max_len:
        out.append(L)
        L += 16 if L < 128 else 32 if L < 256 else 64 if L < 512 else L
    return (*out, max_len)


def choose_buckets(len_N: np.ndarray, max_len: int, n: int) -> tuple[int, ...]:
    """At most `n` padded lengths, taken from `length_buckets(max_len)`, that minimise the padded
    tokens of texts of lengths `len_N`, each padded to the smallest length that holds it (one
    compiled training program per bucket, and little padding); the fewest that reach the minimum.
    Exact, by dynamic programming over the candidate lengths."""
    len_N = np.asarray(len_N, np.int64)
    if n < 1:
        raise ValueError(f"n = {n}: must be >= 1")
    if len(len_N) == 0:
        return (max_len,)
    if len_N.max() > max_len:
        raise ValueError(f"a text of {int(len_N.max())} tokens is longer than max_len = {max_len}")
    cand_Tc = np.array(length_buckets(max_len))
    cand_Tc = cand_Tc[: int(np.searchsorted(cand_Tc, len_N.max())) + 1]  # the last holds the longest text
    n_cand = len(cand_Tc)
    # cum[j + 1]: texts that fit in cand[j]
    cum = np.r_[0, np.searchsorted(np.sort(len_N), cand_Tc, side="right")]
    big = np.iinfo(np.int64).max // 4
    # f[k, j]: padded tokens of the texts up to cand[j], k buckets, the last cand[j]
    f = np.full((n + 1, n_cand), big, np.int64)
    arg = np.full((n + 1, n_cand), -1, np.int64)
    f[1] = cum[1:] * cand_Tc
    for k in range(2, n + 1):
        for j in range(1, n_cand):
            cost_i = f[k - 1, :j] + (cum[j + 1] - cum[1 : j + 1]) * cand_Tc[j]
            arg[k, j] = int(np.argmin(cost_i))
            f[k, j] = cost_i[arg[k, j]]
    k = int(np.argmin(f[1:, n_cand - 1])) + 1  # argmin: the fewest buckets among equal costs
    out, j = [], n_cand - 1
    while k >= 1:
        out.append(int(cand_Tc[j]))
        j, k = int(arg[k, j]), k - 1
    return tuple(sorted(out))


def padded_batches(
    ids: Sequence[Sequence[int]],
    types: Sequence[Sequence[int]] | None,
    batch_size: int,
    buckets: Sequence[int],
    pad_id: int,
    side: Literal["right", "left"] = "right",
):
    """Yields (rows, ids_BxT, mask_BxT, types_BxT) over the texts sorted by length, each batch of
    `batch_size` rows (the last filled with pad rows) padded to the smallest of `buckets` that
    holds its longest text: one compiled program per bucket, not per batch."""
    len_N = np.array([len(x) for x in ids], np.int64)
    order = np.argsort(len_N, kind="stable")
    for s in range(0, len(order), batch_size):
        rows = order[s : s + batch_size]
        T = next(b for b in sorted(buckets) if b >= len_N[rows].max())
        ids_BxT = np.full((batch_size, T), pad_id, dtype=np.int32)
        mask_BxT = np.zeros((batch_size, T), dtype=np.int32)
        types_BxT = np.zeros((batch_size, T), dtype=np.int32)
        for b, r in enumerate(rows):
            n = len_N[r]
            sl = slice(0, n) if side == "right" else slice(T - n, T)
            ids_BxT[b, sl], mask_BxT[b, sl] = ids[r], 1
            if types is not None:
                types_BxT[b, sl] = types[r]
        yield rows, ids_BxT, mask_BxT, types_BxT


@dataclasses.dataclass(frozen=True)
class LengthReport:
    """What `fit_pairs` did: `truncated` kept pairs had a response cut at its end (the prompt fits,
    so a cut always falls inside a response); `dropped` pairs are left out, `prompt_too_long` of them
    because the prompt alone fills the window (no response token would remain)."""

    rule: str
    max_len: int
    pairs: int
    kept: int
    dropped: int
    truncated: int
    prompt_too_long: int


def fit_pairs(
    prompt_ids: Sequence[Sequence[int]],
    chosen_ids: Sequence[Sequence[int]],
    rejected_ids: Sequence[Sequence[int]],
    max_len: int,
    rule: Literal["drop", "truncate"],
) -> tuple[np.ndarray, list[list[int]], list[list[int]], LengthReport]:
    """Prompt + response token ids of preference pairs, fitted to `max_len` tokens.

    `rule="drop"` (TRL's RewardTrainer): a pair whose chosen or rejected sequence is longer than
    `max_len` is left out. `rule="truncate"` (safe-rlhf's preference data set): each sequence keeps
    its first `max_len` tokens, so the end of a long response is cut; the report counts those pairs.
    Either way a pair whose prompt alone reaches `max_len` is dropped. Returns (the kept pairs'
    indices, their chosen and rejected sequences, the report); nothing is cut without being counted.
    """
    if rule not in ("drop", "truncate"):
        raise ValueError(f"rule = {rule!r}: must be one of 'drop', 'truncate'")
    if not len(prompt_ids) == len(chosen_ids) == len(rejected_ids):
        raise ValueError(f"{len(prompt_ids)} prompts, {len(chosen_ids)} chosen, {len(rejected_ids)} rejected")
    keep, chosen, rejected = [], [], []
    truncated = prompt_long = 0
    for i, (p, c, r) in enumerate(zip(prompt_ids, chosen_ids, rejected_ids, strict=True)):
        if len(p) >= max_len:
            prompt_long += 1
            continue
        long_side = len(p) + len(c) > max_len or len(p) + len(r) > max_len
        if long_side and rule == "drop":
            continue
        truncated += long_side
        keep.append(i)
        chosen.append([*p, *c][:max_len])
        rejected.append([*p, *r][:max_len])
    n = len(prompt_ids)
    report = LengthReport(rule, max_len, n, len(keep), n - len(keep), truncated, prompt_long)
    return np.asarray(keep, dtype=np.int64), chosen, rejected, report
