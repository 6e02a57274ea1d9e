"""Records of multi-dimensional preference data: a comparison with one preference per named
dimension (PKU-SafeRLHF's dual and single preferences, SafeSora's helpfulness, harmlessness and
sub-preferences), and a response's attribute ratings (HelpSteer2).

A `MultiPreference` keeps every label of its source: `prefs` maps a dimension to 0 (a preferred),
1 (b preferred) or None (a tie, or not labelled); `protocol` says which kind of annotation made
them (`dual`: helpfulness and harmlessness decoupled; `single`: one trade-off label; `sub`: sub-
dimensions too). Item labels keep the source's full harm dictionary (category -> flag), in its own
category names (PKU-SafeRLHF's 19, SafeSora's 12). `as_record(dim)` is the one-dimensional
`PreferenceRecord` the rest of the project reads (the dimension's label as `better`, harmlessness
as `safer`; PKU categories as `harm_*`), so the report's counts (`records.audit`) apply unchanged.

Legend: none (records are Python objects).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rm_theory.world.records import HARM_CATEGORIES, PreferenceRecord

MULTI_PROTOCOLS = ("dual", "single", "sub")


@dataclasses.dataclass(frozen=True)
class MultiPreference:
    """One comparison with a preference per dimension, and per-response labels (module docstring).
    `id_*` are the responses' ids (SafeSora's video ids, PKU's sha256), `path_*` a media path."""

    prompt: str
    prompt_id: str
    response_a: str
    response_b: str
    prefs: dict[str, int | None]
    protocol: str
    safe_a: bool | None = None
    safe_b: bool | None = None
    harm_a: dict[str, bool] = dataclasses.field(default_factory=dict)
    harm_b: dict[str, bool] = dataclasses.field(default_factory=dict)
    severity_a: int | None = None
    severity_b: int | None = None
    id_a: str | None = None
    id_b: str | None = None
    path_a: str | None = None
    path_b: str | None = None
    source: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.protocol not in MULTI_PROTOCOLS:
            raise ValueError(f"protocol must be one of {MULTI_PROTOCOLS}, got {self.protocol!r}")
        for dim, v in self.prefs.items():
            if v is not None and v not in (0, 1):
                raise ValueError(f"prefs[{dim!r}] must be 0, 1 or None, got {v!r}")

    def as_record(self, dim: str) -> PreferenceRecord:
        """The one-dimensional record of dimension `dim` (its label as `better`)."""
        if dim not in self.prefs:
            raise KeyError(f"no {dim!r} preference in this record; it has {sorted(self.prefs)}")
        pku = lambda h: tuple(c for c in HARM_CATEGORIES if h.get(c, False))
        return PreferenceRecord(
            self.prompt,
            self.prompt_id,
            self.response_a,
            self.response_b,
            better=self.prefs[dim],
            safer=self.prefs.get("harmlessness"),
            safe_a=self.safe_a,
            safe_b=self.safe_b,
            harm_a=pku(self.harm_a),
            harm_b=pku(self.harm_b),
            severity_a=self.severity_a,
            severity_b=self.severity_b,
            node_a=self.id_a,
            node_b=self.id_b,
            source=self.source,
            meta=self.meta,
        )


@dataclasses.dataclass(frozen=True)
class AttributeRating:
    """One response's ratings of named attributes (HelpSteer2: helpfulness, correctness, coherence,
    complexity, verbosity, each 0..4)."""

    prompt: str
    prompt_id: str
    response: str
    ratings: dict[str, float]
    source: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
