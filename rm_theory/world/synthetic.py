"""Synthetic comparison data in the trainer's form, and in the project's JSONL record format.

`to_pref_data` turns a response space's comparisons and their labels (THEORY.md §2 "Labels") into
`train.PrefData`: every comparison contributes its own two items (item a_p = p, b_p = P + p), so
per-item labels (safe, harm, severity), which are drawn per comparison, stay exact. Model inputs:

* prefix-tree geometry: `labels.model_tokens` ([prompt token, response tokens], pad 0);
* metric geometry: features [one-hot prompt, point coordinates] (D = num_prompts + K).

Tree data can instead carry Plackett–Luce groups: each tree's distinct compared items, ranked by a
Gumbel-max draw under β·r* (`labels.tree_rankings`'s law), best first.

`to_records` / `from_records` convert to and from `data.records.PreferenceRecord` (JSONL on disk),
with `tree_id` and the prefix-node ids of both responses, so tree-structured data from elsewhere
can be trained on. Label-inconsistent rows (the safer response labelled unsafe while the other is
labelled safe) are counted and reported, never dropped.

Legend: P comparisons, N items (= 2P), T tokens (padded length), D feature width, C harm categories, G
groups (trees), Ng items of a group.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from rm_theory.world.inputs import PrefData
from rm_theory.world.labels import Labels, model_tokens, vocab_size
from rm_theory.world.records import HARM_CATEGORIES, LoadReport, PreferenceRecord, audit
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses, ResponseSpace
from rm_theory.world.topology import Comparisons

log = logging.getLogger(__name__)


def item_inputs(space: ResponseSpace, resp: Responses) -> np.ndarray:
    """Model inputs of responses: `tokens_NxT` (prefix tree) or `x_NxD` features (metric)."""
    if isinstance(space, PrefixTreeSpace):
        return model_tokens(space, resp)
    if isinstance(space, MetricSpace):
        onehot_NxP = np.eye(space.num_prompts, dtype=np.float32)[resp.prompt]
        return np.concatenate([onehot_NxP, resp.data.astype(np.float32)], axis=1)
    raise TypeError(f"no model inputs for {type(space).__name__}")


def input_spec(space: ResponseSpace) -> dict:
    """The `ModelConfig` fields that follow from the space (input kind, vocab, lengths, width)."""
    if isinstance(space, PrefixTreeSpace):
        return {"input": "tokens", "vocab": vocab_size(space), "max_len": space.L + 1}
    return {"input": "features", "feature_dim": space.num_prompts + space.K}


def item_ids(space: ResponseSpace, resp: Responses) -> np.ndarray:
    """An int64 id per response, equal for equal responses (the prefix node id, or a point hash)."""
    if isinstance(space, PrefixTreeSpace):
        return space.node_ids(resp)[np.arange(len(resp)), space.depth(resp)]
    key = np.concatenate([resp.prompt[:, None].astype(np.float64), resp.data], axis=1)
    return np.unique(key, axis=0, return_inverse=True)[1].ravel().astype(np.int64)


@dataclasses.dataclass(frozen=True)
class SyntheticData:
    """A labelled data set ready for training, with what evaluation and reports need beside it."""

    data: PrefData
    items: Responses  # the N = 2P items indexed by data.a_P, data.b_P (a's first, then b's)
    tree_P: np.ndarray  # −1 for chain pairs
    n_inconsistent: int
    n_groups: int


def _groups(
    space: ResponseSpace,
    items: Responses,
    tree_P: np.ndarray,
    beta: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """`group_GxNg`: each tree's distinct items (first occurrence), best first under β·r* + Gumbel."""
    tree_N = np.concatenate([tree_P, tree_P])
    ids_N = item_ids(space, items)
    on_tree = np.flatnonzero(tree_N >= 0)
    if on_tree.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # One entry per distinct (tree, item); np.unique keeps the first index of each.
    _, first = np.unique(np.stack([tree_N[on_tree], ids_N[on_tree]], axis=1), axis=0, return_index=True)
    keep = np.sort(on_tree[first])
    score = beta * space.gold_reward(items.take(keep)) + rng.gumbel(size=keep.size)
    ranked = keep[np.lexsort((-score, tree_N[keep]))]  # by tree, then best first
    trees, start, count = np.unique(tree_N[ranked], return_index=True, return_counts=True)
    out = np.full((len(trees), max(int(count.max()), 2)), -1, dtype=np.int64)
    for g, (s, c) in enumerate(zip(start, count, strict=True)):
        out[g, :c] = ranked[s : s + c]
    return out


def to_pref_data(
    space: ResponseSpace,
    comps: Comparisons,
    labels: Labels,
    *,
    groups: bool = False,
    beta: float = 1.0,
    rng: np.random.Generator | None = None,
) -> SyntheticData:
    """The trainer's arrays for labelled comparisons.

    With `groups`, tree comparisons are replaced by Plackett–Luce rankings of each tree's items
    (chain comparisons stay pairs); the ranking needs `rng` and the label's β.
    """
    P = len(comps)
    items = Responses.concat([comps.a, comps.b])
    x = item_inputs(space, items)
    a_P, b_P = np.arange(P), P + np.arange(P)
    group = None
    pairs = np.ones(P, dtype=bool)
    if groups:
        if rng is None:
            raise ValueError("Plackett–Luce groups need an rng for the rankings")
        group = _groups(space, items, comps.tree_P, beta, rng)
        pairs = comps.tree_P < 0
        if len(group) == 0:
            group = None
    sel = np.flatnonzero(pairs)
    n_bad = int(labels.inconsistent().sum())
    if n_bad:
        log.info(
            "%d of %d rows are label-inconsistent (safer labelled unsafe, other safe); kept",
            n_bad,
            P,
        )
    data = PrefData(
        x=x,
        a_P=a_P[sel] if sel.size else None,
        b_P=b_P[sel] if sel.size else None,
        pref_P=labels.better_P[sel].astype(np.float32) if sel.size else None,
        safer_P=labels.safer_P[sel].astype(np.float32) if sel.size else None,
        safe_N=np.concatenate([labels.safe_a, labels.safe_b]).astype(np.float32),
        harm_NxC=np.concatenate([labels.harm_a, labels.harm_b]).astype(np.float32),
        severity_N=np.concatenate([labels.severity_a, labels.severity_b]).astype(np.int64),
        group_GxNg=group,
    )
    return SyntheticData(data, items, comps.tree_P, n_bad, 0 if group is None else len(group))


# ------------------------------------------------------------------------------- JSONL records


def _tokens(row: np.ndarray) -> list[int]:
    return [int(t) for t in row if t >= 0]


def to_records(
    space: PrefixTreeSpace, comps: Comparisons, labels: Labels, source: str = "synthetic"
) -> list[PreferenceRecord]:
    """One `PreferenceRecord` per comparison (prefix-tree geometry: responses are token lists).

    `prompt_id` is the prompt's index as a string; `node_a`/`node_b` are the responses' prefix-node
    ids (`PrefixTreeSpace.node_ids`), unique across prompts; `tree_id` is None for chain pairs.
    """
    if not isinstance(space, PrefixTreeSpace):
        raise TypeError("records hold token responses: only the prefix-tree geometry converts")
    C = labels.harm_a.shape[1]
    if C > len(HARM_CATEGORIES):
        raise ValueError(f"{C} harm categories; the record format names {len(HARM_CATEGORIES)}")
    ids_a, ids_b = item_ids(space, comps.a), item_ids(space, comps.b)
    cats = np.array(HARM_CATEGORIES[:C])
    out = []
    for p in range(len(comps)):
        t = int(comps.tree_P[p])
        out.append(
            PreferenceRecord(
                prompt=f"prompt {int(comps.a.prompt[p])}",
                prompt_id=str(int(comps.a.prompt[p])),
                response_a=_tokens(comps.a.data[p]),
                response_b=_tokens(comps.b.data[p]),
                better=0 if labels.better_P[p] > 0.5 else 1,
                safer=0 if labels.safer_P[p] > 0.5 else 1,
                safe_a=bool(labels.safe_a[p]),
                safe_b=bool(labels.safe_b[p]),
                harm_a=tuple(cats[labels.harm_a[p]]),
                harm_b=tuple(cats[labels.harm_b[p]]),
                severity_a=int(labels.severity_a[p]),
                severity_b=int(labels.severity_b[p]),
                tree_id=t if t >= 0 else None,
                node_a=int(ids_a[p]),
                node_b=int(ids_b[p]),
                source=source,
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class RecordData:
    """Records in the trainer's form: `comps` (prompt indices, tokens padded with −1) and `data`."""

    data: PrefData
    comps: Comparisons
    prompts: list[str]  # the prompt ids, in index order
    vocab: int  # model vocabulary: 1 + num_prompts + max token + 1
    report: LoadReport


def _prompt_index(ids: Sequence[str]) -> dict[str, int]:
    """Prompt id → index. Decimal ids (as `to_records` writes them) are their own index, so prompt p
    of a space stays p; other ids are numbered in sorted order."""
    uniq = sorted(set(ids))
    if all(u.isdecimal() for u in uniq):
        return {u: int(u) for u in uniq}
    return {u: i for i, u in enumerate(uniq)}


def from_records(
    records: Sequence[PreferenceRecord], *, L: int | None = None, num_prompts: int | None = None
) -> RecordData:
    """Token-list records → comparisons and `PrefData` (pairs; ties give pref 0.5).

    Model ids follow `labels.model_tokens`: prompt index p → 1 + p, token t → 1 + num_prompts + t.
    Missing safer labels become 0.5 (no information); per-item safety/harm/severity are kept only
    when every record has them. Inconsistent rows are counted in the report, not dropped.
    """
    if not records:
        raise ValueError("no records")
    for i, r in enumerate(records):
        if isinstance(r.response_a, str):
            raise ValueError(f"record {i}: text responses; from_records needs token lists")
    index = _prompt_index([r.prompt_id for r in records])
    needed = max(index.values()) + 1
    P_prompts = num_prompts if num_prompts is not None else needed
    if P_prompts < needed:
        raise ValueError(f"num_prompts={P_prompts} but the records need {needed} prompt indices")
    prompts = sorted(index, key=index.get)
    longest = max(max(len(r.response_a), len(r.response_b)) for r in records)
    L = longest if L is None else L
    if longest > L:
        raise ValueError(f"a response has {longest} tokens, more than L={L}")
    R = len(records)
    tok = np.full((2, R, L), -1, dtype=np.int64)
    for i, r in enumerate(records):
        tok[0, i, : len(r.response_a)] = r.response_a
        tok[1, i, : len(r.response_b)] = r.response_b
    if (tok < -1).any():
        raise ValueError("token ids must be non-negative")
    prompt_P = np.array([index[r.prompt_id] for r in records], dtype=np.int64)
    tree_P = _tree_index([r.tree_id for r in records])
    comps = Comparisons(Responses(prompt_P, tok[0]), Responses(prompt_P, tok[1]), tree_P)
    V = int(tok.max()) + 1
    x = np.zeros((2 * R, L + 1), dtype=np.int32)
    x[:, 0] = 1 + np.concatenate([prompt_P, prompt_P])
    both = np.concatenate([tok[0], tok[1]])
    x[:, 1:] = np.where(both >= 0, 1 + P_prompts + both, 0)
    pref = np.array([0.5 if r.better is None else 1.0 - r.better for r in records], dtype=np.float32)
    safer = np.array([0.5 if r.safer is None else 1.0 - r.safer for r in records], dtype=np.float32)
    have = lambda f: all(getattr(r, f + "_a") is not None and getattr(r, f + "_b") is not None for r in records)
    safe = (
        np.array([r.safe_a for r in records] + [r.safe_b for r in records], dtype=np.float32) if have("safe") else None
    )
    sev = (
        np.array([r.severity_a for r in records] + [r.severity_b for r in records], dtype=np.int64)
        if have("severity")
        else None
    )
    cat = {c: k for k, c in enumerate(HARM_CATEGORIES)}
    harm = np.zeros((2 * R, len(HARM_CATEGORIES)), dtype=np.float32)
    for i, r in enumerate(records):
        harm[i, [cat[c] for c in r.harm_a]] = 1.0
        harm[R + i, [cat[c] for c in r.harm_b]] = 1.0
    any_safety = any(r.safer is not None for r in records) or safe is not None
    data = PrefData(
        x=x,
        a_P=np.arange(R),
        b_P=R + np.arange(R),
        pref_P=pref,
        safer_P=safer if any_safety else None,
        safe_N=safe,
        harm_NxC=harm if safe is not None else None,
        severity_N=sev,
    )
    report = audit(list(records), LoadReport(source="records", path="<records>", n_read=R))
    if report.n_inconsistent:
        log.info("records: %s", report.summary())
    return RecordData(data, comps, prompts, 1 + P_prompts + V, report)


def _tree_index(tree_ids: Sequence) -> np.ndarray:
    """Tree ids (str, int or None) → dense indices, −1 for None; ints written by us keep their value."""
    if all(t is None or (isinstance(t, int) and t >= 0) for t in tree_ids):
        return np.array([-1 if t is None else t for t in tree_ids], dtype=np.int64)
    uniq = {t: i for i, t in enumerate(dict.fromkeys(str(t) for t in tree_ids if t is not None))}
    return np.array([-1 if t is None else uniq[str(t)] for t in tree_ids], dtype=np.int64)
