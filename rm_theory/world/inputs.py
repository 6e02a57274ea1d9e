"""The trainer's input arrays: comparisons, groups and item labels as plain numpy (shared by the
synthetic world and real data, so it lives in the lowest wing that builds them).

Legend: N items, T tokens (padded length), D feature width, P pairs, G groups, Ng items of a group, C
harm categories.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class PrefData:
    """Plain arrays. `x` is tokens_NxT (int, pad 0) or x_NxD (float). Preferences: pref = 1 means
    a ≻ b (0.5 = tie); safer = 1 means a is safer; safe = 1 means safe. group_GxNg lists item
    indices best first, −1 padded. severity_N is carried for evaluation; no loss uses it."""

    x: np.ndarray
    a_P: np.ndarray | None = None
    b_P: np.ndarray | None = None
    pref_P: np.ndarray | None = None
    safer_P: np.ndarray | None = None
    safe_N: np.ndarray | None = None
    harm_NxC: np.ndarray | None = None
    severity_N: np.ndarray | None = None
    group_GxNg: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.x)

    @property
    def n_pairs(self) -> int:
        return 0 if self.a_P is None else len(self.a_P)

    @property
    def n_groups(self) -> int:
        return 0 if self.group_GxNg is None else len(self.group_GxNg)

    @property
    def has_safety(self) -> bool:
        return self.safe_N is not None or (self.n_pairs > 0 and self.safer_P is not None)
