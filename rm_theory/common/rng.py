"""Generators seeded by stable hashes of named parts (STYLE.md habit 2: one root, named streams).

`rng(*parts)` is the same generator in every process for the same parts (strings and numbers), so
a unit of work (a study point, a seed, a data set) draws the same numbers wherever it runs.
"""

from __future__ import annotations

import zlib

import jax
import numpy as np


def tag(*parts) -> list[int]:
    """The seed words of `rng`: a CRC-32 of each part's repr."""
    return [zlib.crc32(repr(p).encode()) for p in parts]


def rng(*parts) -> np.random.Generator:
    return np.random.default_rng(tag(*parts))


def named_rng(seed: int, *tags: str) -> np.random.Generator:
    """A run's generator for the stream its string tags name (the same in every process)."""
    return np.random.default_rng([seed, *(str_hash(t) for t in tags)])


def named_key(seed: int, *tags: str) -> jax.Array:
    """A run's JAX key for the stream its string tags name (the key of `seed` folded with each tag)."""
    k = jax.random.key(seed)
    for t in tags:
        k = jax.random.fold_in(k, int(np.uint32(str_hash(t))))
    return k


def str_hash(s: str) -> int:
    """A stable 32-bit hash of a string (Python's `hash` is salted per process)."""
    return zlib.crc32(s.encode())
