"""On-disk feature cache: text embeddings keyed by sha256(model identity, text).

Layout of a cache folder: one `shard-<content hash>.npz` per call that encoded something new, each holding
`keys` ([M] sha256 hex strings) and `feats` ([M, H] float32). The index (key -> shard, row) is
rebuilt from the shards when the cache opens, so there is no separate index to fall out of
sync; a shard is written to a temporary name and renamed, so a crash never leaves half a shard.
A shard damaged otherwise (a truncated copy, a full disk) is a `CacheError` naming it: delete it
and its texts are encoded again. Several model identities may share one folder: keys never collide
across identities.

Legend: N texts asked for, Nn new texts (not in the cache yet), H hidden width (of the encoder: the
features).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# What numpy raises on a damaged .npz: not a zip, a truncated member, a missing array, not an array.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError)


class CacheError(RuntimeError):
    """A damaged shard of the feature cache (the message names it and how to recover)."""


def _damaged(shard: Path, what: str) -> CacheError:
    return CacheError(
        f"{shard}: damaged feature-cache shard ({what}). It holds only features that can be computed "
        "again: delete it (its texts are encoded again on the next run), or use another cache folder "
        "(features.cache_dir=...)"
    )


def _read_shard(shard: Path, name: str, rows: int | None = None) -> np.ndarray:
    """One array of a shard (`keys` [M] or `feats` [M, H], `rows` = M when known); a damaged
    shard is a `CacheError`."""
    try:
        with np.load(shard, allow_pickle=False) as z:
            out = z[name]
    except _DAMAGE as err:
        raise _damaged(shard, f"{type(err).__name__}: {err}") from err
    if rows is not None and len(out) != rows:
        raise _damaged(shard, f"{len(out)} rows of {name} for {rows} keys")
    return out


def text_key(identity: str, text: str) -> str:
    """sha256 over the model identity and the text (NUL-separated, so no two pairs collide)."""
    return hashlib.sha256(f"{identity}\0{text}".encode()).hexdigest()


class FeatureCache:
    """Cached `encode_fn(texts) -> [N, H]` for one model identity."""

    def __init__(self, root: str | os.PathLike, identity: str):
        self.root, self.identity = Path(root), identity
        self.root.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[Path, int]] = {}
        self._shards: dict[Path, np.ndarray] = {}
        self._rows: dict[Path, int] = {}
        for shard in sorted(self.root.glob("shard-*.npz")):
            keys = _read_shard(shard, "keys")
            self._rows[shard] = len(keys)
            for row, key in enumerate(keys):
                self._index[str(key)] = (shard, row)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str) -> bool:
        return text_key(self.identity, text) in self._index

    def _feats(self, shard: Path) -> np.ndarray:
        if shard not in self._shards:
            self._shards[shard] = _read_shard(shard, "feats", self._rows[shard])
        return self._shards[shard]

    def encode(self, texts: Sequence[str], encode_fn: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """[N, H] features; only texts not cached yet (each once) go to `encode_fn`."""
        keys = [text_key(self.identity, t) for t in texts]
        new: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self._index and k not in new:
                new[k] = t
        if new:
            feats_NnxH = np.asarray(encode_fn(list(new.values())), dtype=np.float32)
            if feats_NnxH.shape[0] != len(new):
                raise ValueError(f"encode_fn gave {feats_NnxH.shape[0]} rows for {len(new)} texts")
            self._write_shard(np.array(list(new), dtype="<U64"), feats_NnxH)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        rows = [self._index[k] for k in keys]
        return np.stack([self._feats(s)[r] for s, r in rows])

    def _write_shard(self, keys_Nn: np.ndarray, feats_NnxH: np.ndarray) -> None:
        # Named by its content, so concurrent writers never pick the same name for different
        # features (two writers of the same keys write the same file).
        digest = hashlib.sha256("\n".join(map(str, keys_Nn)).encode()).hexdigest()[:20]
        shard = self.root / f"shard-{digest}.npz"
        tmp = self.root / f".tmp-{os.getpid()}-{digest}.npz"
        np.savez(tmp, keys=keys_Nn, feats=feats_NnxH)
        os.replace(tmp, shard)
        self._shards[shard] = feats_NnxH
        for row, key in enumerate(keys_Nn):
            self._index[str(key)] = (shard, row)


def cached_encode(
    encoder,
    texts: Sequence[str],
    cache_dir: str | os.PathLike,
    batch_size: int = 64,
    progress: bool = True,
    bucket: bool = True,
) -> np.ndarray:
    """`encoder.encode(texts)` through a `FeatureCache` in `cache_dir` (keyed by
    `encoder.identity`; length bucketing on by default since it changes no number)."""
    cache = FeatureCache(cache_dir, encoder.identity)
    return cache.encode(texts, lambda t: encoder.encode(t, batch_size=batch_size, progress=progress, bucket=bucket))
