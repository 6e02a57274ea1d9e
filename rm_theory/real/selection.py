"""Which real comparisons a run uses: one data set's records loaded, duplicate comparisons dropped,
capped by whole prompts, and the held-out side of a split by prompt.

Legend: P records (comparisons).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rm_theory.common.rng import str_hash
from rm_theory.real.loaders import load
from rm_theory.world.records import LoadReport, PreferenceRecord


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One data set: loader name (a key of `data.LOADERS`), path, cap on pairs (0 = all)."""

    name: str
    loader: str
    path: str
    max_pairs: int = 0


def dedupe(records: Sequence[PreferenceRecord]) -> list[PreferenceRecord]:
    """First copy of each comparison (a reversed or conflicting copy is dropped too: the
    first label wins, so no pair is trained on twice or against itself)."""
    seen, out = set(), []
    for r in records:
        k = r.pair_key()
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def cap_by_prompt(
    records: Sequence[PreferenceRecord], max_pairs: int, rng: np.random.Generator
) -> list[PreferenceRecord]:
    """Records of whole prompts in a random prompt order, up to `max_pairs` pairs (0: all).

    Whole prompts keep every response group intact (the topology experiment needs them);
    source order is kept inside the selection."""
    if max_pairs <= 0 or len(records) <= max_pairs:
        return list(records)
    ids = sorted({r.prompt_id for r in records})
    count: dict[str, int] = {}
    for r in records:
        count[r.prompt_id] = count.get(r.prompt_id, 0) + 1
    keep, total = set(), 0
    for i in rng.permutation(len(ids)):
        pid = ids[i]
        if total + count[pid] > max_pairs and keep:
            continue
        keep.add(pid)
        total += count[pid]
        if total >= max_pairs:
            break
    return [r for r in records if r.prompt_id in keep]


def data_rng(name: str, seed: int) -> np.random.Generator:
    """Generator of a data set's selection: stable per name, so caches are reused across runs."""
    return np.random.default_rng([str_hash(name), seed])


def load_selection(spec: DataSpec, seed: int = 0) -> tuple[list[PreferenceRecord], LoadReport]:
    """Load, dedupe and cap one data set (the report is the loader's, before selection)."""
    records, report = load(spec.loader, spec.path)
    records = cap_by_prompt(dedupe(records), spec.max_pairs, data_rng(spec.name, seed))
    return records, report


def test_mask(records: Sequence[PreferenceRecord], test_frac: float, seed: int) -> np.ndarray:
    """[P] True for records whose prompt `split_by_prompt` puts on the test side."""
    from rm_theory.real.loaders import split_by_prompt

    _, test = split_by_prompt(records, test_frac, seed)
    ids = {r.prompt_id for r in test}
    return np.array([r.prompt_id in ids for r in records], bool)
