"""Frozen encoder features of real preference data: the texts a record list needs, its items (one per
(prompt, response)) and the pairs over them, and their features through the on-disk cache.

Features of an item: "concat" = [e(prompt), e(response)] (the head may learn prompt-dependent
rewards), or "response" = e(response). Prompts are encoded from their last `prompt_chars`
characters, since the encoder truncates from the end and a transcript's last turn matters most.

Legend: N items (distinct prompt+response), P pairs, U texts (each once), H hidden width of the encoder
(384), D feature width (H or 2H), G clusters (prompts), C harm categories.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rm_theory.lm.encoders import cached_encode
from rm_theory.world.records import HARM_CATEGORIES, PreferenceRecord


def prompt_text(prompt: str, prompt_chars: int) -> str:
    """The part of a prompt that is encoded: its last `prompt_chars` characters (0: all)."""
    p = prompt.strip()
    return p[-prompt_chars:] if prompt_chars > 0 else p


def record_texts(records: Sequence[PreferenceRecord], prompt_chars: int) -> list[str]:
    """Every text the features of `records` need (prompts and responses), each once."""
    out: dict[str, None] = {}
    for r in records:
        out[prompt_text(r.prompt, prompt_chars)] = None
        out[str(r.response_a)] = None
        out[str(r.response_b)] = None
    return list(out)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    mode: str = "concat"  # concat | response
    prompt_chars: int = 400
    batch_size: int = 32
    cache_dir: str = "outputs/feature_cache"


@dataclasses.dataclass(frozen=True)
class Items:
    """Distinct (prompt, response) items of a record list and the pairs over them.

    a_P, b_P index items; pref_P = 1 when a is preferred (0.5 tie); safer_P likewise (nan
    where unlabelled); safe_N 1 safe / 0 unsafe / nan unknown (first label seen wins); harm_NxC
    PKU-SafeRLHF's categories (`records.HARM_CATEGORIES`; 1 in, 0 not, nan unknown) and severity_N
    (0 safe to 3 severe, −1 unknown) where a record gives the severity (PKU's full schema).
    """

    prompt_id: np.ndarray  # [N] object
    prompt: list[str]
    response: list[str]
    a_P: np.ndarray
    b_P: np.ndarray
    pref_P: np.ndarray
    safer_P: np.ndarray
    safe_N: np.ndarray
    group_P: np.ndarray  # [P] prompt index 0..G-1 (bootstrap clusters)
    harm_NxC: np.ndarray | None = None
    severity_N: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.response)


def items_of(records: Sequence[PreferenceRecord]) -> Items:
    """Items and pairs of `records` (a response seen under two prompts is two items)."""
    index: dict[tuple[str, str], int] = {}
    pid, prompts, resps, safe, harm, sev = [], [], [], [], [], []
    groups: dict[str, int] = {}
    C = len(HARM_CATEGORIES)

    def item(r: PreferenceRecord, y, s, h, v) -> int:
        k = (r.prompt_id, str(y))
        if k not in index:
            index[k] = len(resps)
            pid.append(r.prompt_id)
            prompts.append(r.prompt)
            resps.append(str(y))
            safe.append(np.nan)
            harm.append(np.full(C, np.nan, np.float32))
            sev.append(-1)
        i = index[k]
        if np.isnan(safe[i]) and s is not None:
            safe[i] = float(s)
        if sev[i] < 0 and v is not None:  # a record with the severity lists the categories too
            sev[i] = int(v)
            harm[i] = np.isin(HARM_CATEGORIES, h).astype(np.float32)
        return i

    a, b, pref, safer, grp = [], [], [], [], []
    for r in records:
        a.append(item(r, r.response_a, r.safe_a, r.harm_a, r.severity_a))
        b.append(item(r, r.response_b, r.safe_b, r.harm_b, r.severity_b))
        pref.append(0.5 if r.better is None else 1.0 - r.better)
        safer.append(np.nan if r.safer is None else 1.0 - r.safer)
        grp.append(groups.setdefault(r.prompt_id, len(groups)))
    return Items(
        np.array(pid, dtype=object),
        prompts,
        resps,
        np.array(a, np.int64),
        np.array(b, np.int64),
        np.array(pref, np.float32),
        np.array(safer, np.float32),
        np.array(safe, np.float32),
        np.array(grp, np.int64),
        np.array(harm, np.float32).reshape(-1, C),
        np.array(sev, np.int32),
    )


def featurize(encoder, items: Items, fc: FeatureConfig, progress: bool = True) -> np.ndarray:
    """x_NxD float32 features of the items (through the on-disk feature cache)."""
    p_text = [prompt_text(p, fc.prompt_chars) for p in items.prompt]
    texts = list(dict.fromkeys(items.response + (p_text if fc.mode == "concat" else [])))
    e_UxH = encode_texts(encoder, texts, fc, progress)
    row = {t: i for i, t in enumerate(texts)}
    e_resp_NxH = e_UxH[[row[t] for t in items.response]]
    if fc.mode == "response":
        return e_resp_NxH
    if fc.mode == "concat":
        return np.concatenate([e_UxH[[row[t] for t in p_text]], e_resp_NxH], axis=1)
    raise ValueError(f"unknown feature mode {fc.mode!r} (concat, response)")


def encode_texts(encoder, texts: Sequence[str], fc: FeatureConfig, progress: bool = True) -> np.ndarray:
    if not texts:
        return np.zeros((0, encoder.dim), np.float32)
    return cached_encode(encoder, list(texts), fc.cache_dir, batch_size=fc.batch_size, progress=progress, bucket=True)


def item_embeddings(x_NxD: np.ndarray, mode: str) -> np.ndarray:
    """Unit vectors of whole items, prompt and response together: what the IBN's k-NN compares.

    With `concat` features [e(prompt), e(response)] the cosine of two items is the mean of their
    prompts' and responses' cosines, so one response under two prompts stays two nodes with a
    positive IB variance between them (with response-only features it would get variance 0 and
    merge). `response` features carry no prompt: the items are compared by response alone.
    """
    x_NxD = np.asarray(x_NxD, np.float64)
    if mode == "response":
        return x_NxD
    return x_NxD / np.maximum(np.linalg.norm(x_NxD, axis=1, keepdims=True), 1e-12)
