"""Real items as a score model's token inputs: each item's (prompt, response) text pair tokenised once,
training pairs fitted to the model's window by a stated rule (`lm.fit_pairs`: dropped or truncated, and
counted), and items cut to the window for scoring (the end of a long response goes; counted).

Shared by every study that fine-tunes a score model on real pairs (`studies.finetune_rm`,
`studies.real_theory`, `studies.real_design`, the AI-label study's real part).

Legend: N items, P comparisons (pairs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rm_theory.lm import Pairs, fit_pairs
from rm_theory.real.features import Items, prompt_text


def encode_items(tokenizer, items: Items, prompt_chars: int) -> tuple[list[list[int]], list[list[int]], np.ndarray]:
    """(ids, types, plen_N): each item's tokens as a (prompt, response) pair (the prompt's last
    `prompt_chars` characters, as the features') and the length of its prompt part."""
    prompts = [prompt_text(p, prompt_chars) for p in items.prompt]
    return tokenizer.encode_pairs(prompts, items.response)


def training_pairs(
    ids: Sequence[Sequence[int]],
    types: Sequence[Sequence[int]],
    plen_N: np.ndarray,
    items: Items,
    mask_P: np.ndarray,
    objective: str,
    max_len: int,
    rule: str,
    name: str = "",
) -> tuple[Pairs, dict]:
    """The pairs `mask_P` as token ids fitted to `max_len` by `rule` ("drop" | "truncate"), labelled for
    `objective` ("reward": the preference; "cost": the safer side, with each side's safety; "vector":
    y [P, 2] = (the preference, the safer side), each side's safety, harm categories and severity),
    and the counts of what the rule did."""
    a_P, b_P = items.a_P[mask_P], items.b_P[mask_P]
    if not (plen_N[a_P] == plen_N[b_P]).all():
        raise ValueError(f"{name}: two sides of a pair tokenise their shared prompt differently")
    keep, ids_a, ids_b, rep = fit_pairs(
        [ids[a][: plen_N[a]] for a in a_P],
        [ids[a][plen_N[a] :] for a in a_P],
        [ids[b][plen_N[b] :] for b in b_P],
        max_len,
        rule,
    )
    a_P, b_P = a_P[keep], b_P[keep]
    types_a = [types[a][: len(x)] for a, x in zip(a_P, ids_a, strict=True)]
    types_b = [types[b][: len(x)] for b, x in zip(b_P, ids_b, strict=True)]
    if objective == "reward":
        pairs = Pairs(ids_a, ids_b, items.pref_P[mask_P][keep], types_a, types_b)
    elif objective == "vector":
        y_Px2 = np.stack([items.pref_P[mask_P][keep], items.safer_P[mask_P][keep]], 1)
        pairs = Pairs(ids_a, ids_b, y_Px2, types_a, types_b, items.safe_N[a_P], items.safe_N[b_P])
        pairs.category_a_PxC, pairs.category_b_PxC = items.harm_NxC[a_P], items.harm_NxC[b_P]
        pairs.severity_a_P, pairs.severity_b_P = items.severity_N[a_P], items.severity_N[b_P]
    else:
        y_P = items.safer_P[mask_P][keep]
        pairs = Pairs(ids_a, ids_b, y_P, types_a, types_b, safe_a_P=items.safe_N[a_P], safe_b_P=items.safe_N[b_P])
    counts = {"pairs": rep.pairs, "kept": rep.kept, "dropped": rep.dropped, "truncated": rep.truncated}
    return pairs, counts | {"prompt_too_long": rep.prompt_too_long}


def windowed(
    ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]], plen_N: np.ndarray, item_N: np.ndarray, max_len: int
) -> tuple[list, list, int, int]:
    """The tokens of the items `item_N`, each cut to `max_len` (the end of a long response goes), the
    number cut and the number whose prompt part alone fills the window."""
    out_ids = [list(ids[i][:max_len]) for i in item_N]
    out_types = [list(types[i][:max_len]) for i in item_N]
    cut = int(sum(len(ids[i]) > max_len for i in item_N))
    return out_ids, out_types, cut, int((np.asarray(plen_N)[item_N] >= max_len).sum())
