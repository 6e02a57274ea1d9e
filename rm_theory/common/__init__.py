"""Shared tools below every wing: seeded generators, the one 95% interval and Holm's correction,
sparse SPD factors, and the declared allowed values of config fields."""

from rm_theory.common.linalg import SOLVE_COLUMNS, LDLFactor, SPDFactor
from rm_theory.common.rng import named_key, named_rng, rng, str_hash, tag
from rm_theory.common.stats import (
    LEVEL,
    ci_half_width,
    holm,
    holm_claims,
    mean_ci,
    p_from_interval,
    round_significant,
    seed_means,
    verdict,
)
from rm_theory.common.validate import ConfigError, problems, spec, validate

__all__ = [
    "LEVEL",
    "SOLVE_COLUMNS",
    "ConfigError",
    "LDLFactor",
    "SPDFactor",
    "ci_half_width",
    "holm",
    "holm_claims",
    "mean_ci",
    "p_from_interval",
    "named_key",
    "named_rng",
    "problems",
    "rng",
    "round_significant",
    "seed_means",
    "spec",
    "str_hash",
    "tag",
    "validate",
    "verdict",
]
