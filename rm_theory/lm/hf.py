"""Reading and writing the Hugging Face folder layout: safetensors (one file or a sharded index) and
the tokenizer files.

Tensors are read one at a time (`safetensors.safe_open`), so a model never holds two copies of its
weights on the host. Every error names the file and the tensor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from rm_theory.lm.config import CheckpointError

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
# What `save_score_model` copies beside the weights (whichever the source folder had).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)
# Tensors a score model may not use and skips without a word: non-persistent buffers that older
# checkpoints saved, and the heads of other tasks (language modelling, BERT's pre-training heads, the
# BERT pooler where the pooling is not "cls" or the model is a RoBERTa, whose classifier has its own).
# Any other tensor the model does not use is "unexpected" (see `Tensors.unexpected`).
IGNORED = re.compile(
    r"(^|\.)(position_ids|token_type_ids|rotary_emb\.inv_freq|pooler\.dense\.weight|pooler\.dense\.bias)$|^(lm_head|cls)\."
)


class Tensors:
    """The safetensors of one model folder, by tensor name."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        single, index = self.folder / SINGLE, self.folder / INDEX
        if single.is_file():
            self.files = {name: single for name in _keys(single)}
        elif index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"{index}: not a safetensors index (key 'weight_map': {e})") from None
            self.files = {name: self.folder / shard for name, shard in weight_map.items()}
            for shard in sorted(set(self.files.values())):
                if not shard.is_file():
                    raise CheckpointError(f"{index}: names shard {shard.name}, which is not in the folder")
        else:
            other = [p.name for p in self.folder.glob("*.bin")] + [p.name for p in self.folder.glob("*.pt")]
            raise CheckpointError(
                f"{self.folder}: neither {SINGLE} nor {INDEX} found"
                + (f" (found {other}: re-save the model with safetensors)" if other else "")
            )
        self.used: set[str] = set()
        self._open: dict[Path, object] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def where(self, name: str) -> str:
        """The file a tensor comes from, as errors name it."""
        f = self.files.get(name)
        return str(f) if f is not None else str(self.folder / (INDEX if (self.folder / INDEX).is_file() else SINGLE))

    def _read(self, name: str, what: str):
        """`what` ("shape" or "tensor") of `name`; a weight map naming a tensor its shard lacks is an error."""
        if name not in self.files:
            raise CheckpointError(f"{self.where(name)}: tensor {name!r} missing")
        path = self.files[name]
        try:
            if path not in self._open:
                self._open[path] = safe_open(str(path), framework="numpy")
            h = self._open[path]
            return tuple(h.get_slice(name).get_shape()) if what == "shape" else h.get_tensor(name)
        except Exception as e:
            raise CheckpointError(f"{path}: tensor {name!r} cannot be read ({e})") from None

    def shape(self, name: str) -> tuple[int, ...]:
        return self._read(name, "shape")

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor `name`, checked to have `shape` (what the config implies)."""
        x = self._read(name, "tensor")
        if tuple(x.shape) != tuple(shape):
            raise CheckpointError(
                f"{self.files[name]}: tensor {name!r} has shape {tuple(x.shape)}, config.json implies {tuple(shape)}"
            )
        self.used.add(name)
        return x

    def unexpected(self) -> list[str]:
        """Tensors neither used nor in `IGNORED`: weights of something this code does not model."""
        return sorted(n for n in self.files if n not in self.used and not IGNORED.search(n))

    def close(self) -> None:
        self._open.clear()


def _keys(path: Path) -> list[str]:
    try:
        with safe_open(str(path), framework="numpy") as f:
            return list(f.keys())
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def write_safetensors(tensors: dict[str, np.ndarray], folder: Path, shard_bytes: int) -> list[str]:
    """`model.safetensors`, or shards of at most `shard_bytes` (a tensor larger than that gets its
    own shard) and `model.safetensors.index.json`, as transformers names them. Returns the files."""
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, x in tensors.items():
        if shards[-1] and size + x.nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = np.ascontiguousarray(x)
        size += x.nbytes
    meta = {"format": "pt"}  # transformers refuses safetensors without a framework tag it knows
    if len(shards) == 1:
        save_file(shards[0], str(folder / SINGLE), metadata=meta)
        return [SINGLE]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for shard, fname in zip(shards, names, strict=True):
        save_file(shard, str(folder / fname), metadata=meta)
    index = {
        "metadata": {"total_size": int(sum(x.nbytes for x in tensors.values()))},
        "weight_map": {name: fname for shard, fname in zip(shards, names, strict=True) for name in shard},
    }
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return [*names, INDEX]


def read_files(folder: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The bytes of those of `names` that exist in `folder` (kept, so saving never needs the source)."""
    return {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}
