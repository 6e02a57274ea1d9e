"""Score models (reward or cost) on a pretrained backbone, loaded from and saved to the Hugging Face
layout so that transformers' `AutoModelForSequenceClassification` gives the same scores.

A score model maps a text to one number: the backbone's hidden states, pooled to one vector, through
a head with `num_labels` outputs, of which column 0 is the score (InstructGPT's reward model: Ouyang
et al. 2022, arXiv 2203.02155, section 3.5; Safe RLHF's cost model, same form and another loss: Dai
et al. 2023, arXiv 2310.12773, section 3.2). An optional harm-category head adds C more columns,
multi-label logits of the harm categories a response falls into (PKU-SafeRLHF's labels: Ji et al.
2024, arXiv 2406.15513); they are extra rows of the same head matrix, so the Hugging Face layout
holds them as `num_labels = 1 + C`. A vector reward model (`kind="vector"`, `heads`: one preference
head per named dimension) has `rm_theory.rm.multidim`'s layout: G preference heads, C harm-category
logits, 4 severity logits (0 = safe), `num_labels = G + C + 4`; its cost is minus its `harm_head`.

Poolings (`pooling=`), their head tensors, and the transformers class each maps to:

- "last" (llama, mistral, qwen2): the hidden state of the rightmost token whose id is not
  `pad_token_id`, for left or right padding (transformers' rule, with its quirk that a pad id inside
  the text, such as an EOS used as pad, is passed over too); `score.weight` [L, H], no bias;
  `{Llama,Mistral,Qwen2}ForSequenceClassification`.
- "cls" (bert, roberta): first token -> dense -> tanh -> linear; BERT's `bert.pooler.dense.*` and
  `classifier.*` (`BertForSequenceClassification`), RoBERTa's `classifier.dense.*` and
  `classifier.out_proj.*` (`RobertaForSequenceClassification`).
- "mean" (bert, roberta): the mean over the attention mask (sentence-transformers), and "first": the
  first token with no dense layer; `score.weight` [L, H] and `score.bias`. No transformers class
  computes these: the folder is saved as `BertModel` / `RobertaModel` plus the head, and only this
  loader scores it (transformers' `AutoModelForSequenceClassification` would warn that its
  classifier is newly initialised).

The pooling (with `kind`, the harm categories and a vector model's heads) is recorded in the saved
config.json under the key `rm_theory`. Dropout is not modelled: the forward pass is the evaluation-mode one.

Legend: B batch, T tokens, H hidden width, O output features (labels: 1 + C harm categories, or a vector
model's G + C + 4), N texts, G groups of labels (a vector model's preference heads), C harm categories.
"""

from __future__ import annotations

import functools
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from rm_theory.lm.bert import BertBackbone
from rm_theory.lm.config import CheckpointError, DecoderConfig, EncoderConfig, parse_config, read_config
from rm_theory.lm.hf import TOKENIZER_FILES, Tensors, read_files, write_safetensors
from rm_theory.lm.layers import Linear, RMSNorm
from rm_theory.lm.llama import LlamaBackbone
from rm_theory.lm.text import TextTokenizer, length_buckets, padded_batches
from rm_theory.rm.multidim import SEVERITY_CLASSES

Pooling = Literal["last", "cls", "mean", "first"]
BASE_PREFIX = {"bert": "bert.", "roberta": "roberta.", "llama": "model.", "mistral": "model.", "qwen2": "model."}
CLASS_STEM = {"bert": "Bert", "roberta": "Roberta", "llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2"}


class LinearHead(nnx.Module):
    """One linear layer on the pooled vector ("last": no bias, as transformers; "mean"/"first": a bias)."""

    def __init__(self, H: int, L: int, *, bias: bool, std: float, param_dtype, rngs: nnx.Rngs):
        self.score = Linear(H, L, bias=bias, dtype=jnp.float32, param_dtype=param_dtype, rngs=rngs, std=std)

    def __call__(self, x_BxH: jax.Array) -> jax.Array:
        return self.score(x_BxH)

    def hf_modules(self, model_type: str, prefix: str) -> dict[str, nnx.Module]:
        return {"score": self.score}


class ClsHead(nnx.Module):
    """First token -> dense -> tanh -> linear: BERT's pooler + classifier, RoBERTa's classification head."""

    def __init__(self, H: int, L: int, *, std: float, param_dtype, rngs: nnx.Rngs):
        kw = dict(bias=True, dtype=jnp.float32, param_dtype=param_dtype, rngs=rngs, std=std)
        self.dense = Linear(H, H, **kw)
        self.out = Linear(H, L, **kw)

    def __call__(self, x_BxH: jax.Array) -> jax.Array:
        return self.out(jnp.tanh(self.dense(x_BxH)))

    def hf_modules(self, model_type: str, prefix: str) -> dict[str, nnx.Module]:
        if model_type == "bert":
            return {prefix + "pooler.dense": self.dense, "classifier": self.out}
        return {"classifier.dense": self.dense, "classifier.out_proj": self.out}


class ScoreNet(nnx.Module):
    """Backbone + pooling + head; `net(ids_BxT, mask_BxT, types_BxT)` -> logits [B, L], column 0 the
    score. A pure function of its parameters (no Python side effects), for `nnx.split` / `jax.jit` /
    `jax.lax.scan` / `jax.vmap`; `pooled` and `head` apart let an ensemble share one backbone pass."""

    def __init__(
        self,
        cfg: EncoderConfig | DecoderConfig,
        pooling: Pooling,
        num_labels: int,
        pad_id: int,
        *,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        remat: bool = False,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        decoder = isinstance(cfg, DecoderConfig)
        if (pooling == "last") != decoder:
            allowed = "'last'" if decoder else "'cls', 'mean', 'first'"
            raise ValueError(f"pooling = {pooling!r}: a {cfg.model_type} model takes {allowed}")
        self.backbone = (LlamaBackbone if decoder else BertBackbone)(cfg, remat=remat, **kw)
        hkw = dict(std=cfg.init_std, param_dtype=param_dtype, rngs=rngs)
        if pooling == "cls":
            self.head = ClsHead(cfg.hidden, num_labels, **hkw)
        else:
            self.head = LinearHead(cfg.hidden, num_labels, bias=not decoder, **hkw)
        self.pooling, self.pad_id, self.num_labels = pooling, pad_id, num_labels

    @property
    def cfg(self) -> EncoderConfig | DecoderConfig:
        return self.backbone.cfg

    def pooled(self, ids_BxT: jax.Array, mask_BxT: jax.Array, types_BxT: jax.Array | None = None) -> jax.Array:
        """[B, H] float32: the vector the head reads."""
        h_BxTxH = self.backbone(ids_BxT, mask_BxT, types_BxT).astype(jnp.float32)
        if self.pooling == "last":
            T = ids_BxT.shape[1]
            # transformers: argmax of position * (id != pad), the rightmost non-pad token (0 if none)
            last_B = jnp.argmax(jnp.arange(T) * (ids_BxT != self.pad_id), axis=1)
            return jnp.take_along_axis(h_BxTxH, last_B[:, None, None], axis=1)[:, 0]
        if self.pooling == "mean":
            m_BxTx1 = mask_BxT[..., None].astype(jnp.float32)
            return (h_BxTxH * m_BxTx1).sum(1) / jnp.maximum(m_BxTx1.sum(1), 1e-9)
        return h_BxTxH[:, 0]

    def __call__(self, ids_BxT: jax.Array, mask_BxT: jax.Array, types_BxT: jax.Array | None = None) -> jax.Array:
        return self.head(self.pooled(ids_BxT, mask_BxT, types_BxT))

    def hf_modules(self, prefix: str | None = None) -> dict[str, nnx.Module]:
        """Hugging Face module path -> our module, the backbone's under `prefix` (default: the
        family's base-model prefix, as `*ForSequenceClassification` saves them)."""
        mt = self.cfg.model_type
        prefix = BASE_PREFIX[mt] if prefix is None else prefix
        out = {prefix + k: m for k, m in self.backbone.hf_modules().items()}
        return out | self.head.hf_modules(mt, prefix)


def _slots(module: nnx.Module) -> list[tuple[str, nnx.Variable, bool]]:
    """(tensor suffix, variable, transposed?) of one module, in the torch layout's terms."""
    if isinstance(module, Linear):
        return [(".weight", module.kernel, True)] + ([(".bias", module.bias, False)] if module.bias is not None else [])
    if isinstance(module, nnx.LayerNorm):
        return [(".weight", module.scale, False), (".bias", module.bias, False)]
    if isinstance(module, nnx.Embed):
        return [(".weight", module.embedding, False)]
    if isinstance(module, RMSNorm):
        return [(".weight", module.weight, False)]
    raise TypeError(f"no tensor layout for {type(module).__name__}")


@functools.partial(jax.jit, static_argnums=(0, 5))
def _forward(graphdef: nnx.GraphDef, state: nnx.State, ids_BxT, mask_BxT, types_BxT, pooled: bool) -> jax.Array:
    net = nnx.merge(graphdef, state)
    return (net.pooled if pooled else net)(ids_BxT, mask_BxT, types_BxT)


class ScoreModel:
    """A `ScoreNet` with its tokenizer and what saving needs; `score(texts)` -> one float per text.

    `net` is the `nnx.Module` a training loop differentiates (`nnx.split(model.net)`); `score` always
    reads its current parameters. `max_len` is the longest input in tokens (the model's positions);
    longer texts are an error, never cut silently.
    """

    def __init__(
        self,
        net: ScoreNet,
        tokenizer: TextTokenizer,
        *,
        config: dict,
        kind: str = "reward",
        harm_categories: Sequence[str] = (),
        heads: Sequence[str] = (),
        harm_head: str | None = None,
        tokenizer_files: dict[str, bytes] | None = None,
        source: Path | None = None,
    ):
        self.net, self.tokenizer, self.config = net, tokenizer, config
        self.kind, self.harm_categories = kind, tuple(harm_categories)
        self.heads, self.harm_head = tuple(heads), harm_head
        if net.num_labels != num_labels(kind, self.harm_categories, self.heads):
            raise ValueError(
                f"a {kind} model with {len(self.heads)} heads and {len(self.harm_categories)} harm categories has "
                f"{num_labels(kind, self.harm_categories, self.heads)} outputs; the net has {net.num_labels}"
            )
        if harm_head is not None and harm_head not in self.heads:
            raise ValueError(f"harm_head = {harm_head!r}: not one of the heads {list(self.heads)}")
        self.tokenizer_files = dict(tokenizer_files or {})
        self.source = source
        self.max_len = net.cfg.max_len

    @property
    def model_type(self) -> str:
        return self.net.cfg.model_type

    @property
    def pooling(self) -> str:
        return self.net.pooling

    @property
    def labels(self) -> list[str]:
        """Names of the logits' columns: the score (a vector model's `pref:<head>` per head), then
        `harm:<category>` per harm category (then a vector model's `severity:<level>`)."""
        harm = [f"harm:{c}" for c in self.harm_categories]
        if self.kind == "vector":
            return [f"pref:{h}" for h in self.heads] + harm + [f"severity:{i}" for i in range(SEVERITY_CLASSES)]
        return [self.kind, *harm]

    @property
    def harm_head_index(self) -> int:
        """The column of the harm head (a vector model's cost is its negation), −1 for none."""
        return self.heads.index(self.harm_head) if self.harm_head is not None else -1

    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        return self.tokenizer.encode(texts)

    def logits_ids(
        self,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int]] | None = None,
        *,
        batch_size: int = 32,
        padding_side: Literal["right", "left"] = "right",
        progress: bool = False,
    ) -> np.ndarray:
        """[N, L] float32 logits of token-id sequences. Sorted by length and padded per batch to the
        smallest `length_buckets` entry that holds it (one compile per bucket, not per batch);
        every batch has `batch_size` rows. Left padding gives the same scores for decoders (for
        encoders the first token would be a pad: refused)."""
        return self._run(ids, types, batch_size, padding_side, progress, pooled=False)

    def pooled_ids(
        self,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int]] | None = None,
        *,
        batch_size: int = 32,
        padding_side: Literal["right", "left"] = "right",
        progress: bool = False,
    ) -> np.ndarray:
        """[N, H] float32: the pooled vector the head reads, of each sequence (as `logits_ids`): the
        model's own representation of a text, for its IBN (`real.model_ibn`)."""
        return self._run(ids, types, batch_size, padding_side, progress, pooled=True)

    def _run(self, ids, types, batch_size: int, padding_side: str, progress: bool, pooled: bool) -> np.ndarray:
        if padding_side not in ("right", "left") or (padding_side == "left" and self.pooling != "last"):
            raise ValueError(f"padding_side = {padding_side!r}: a {self.pooling!r} pooling reads right-padded rows")
        N, L = len(ids), (self.net.cfg.hidden if pooled else self.net.num_labels)
        out_NxO = np.zeros((N, L), dtype=np.float32)
        if N == 0:
            return out_NxO
        len_N = np.array([len(x) for x in ids])
        if (len_N > self.max_len).any():
            i = int(np.argmax(len_N > self.max_len))
            raise ValueError(
                f"{int((len_N > self.max_len).sum())} of {N} inputs are longer than the model's {self.max_len} "
                f"positions (the first: input {i}, {len_N[i]} tokens); fit prompt and response with "
                "rm_theory.lm.fit_pairs first"
            )
        if (len_N == 0).any():
            raise ValueError(f"input {int(np.argmin(len_N))} has no tokens")
        graphdef, state = nnx.split(self.net)
        batches = padded_batches(
            ids, types, batch_size, length_buckets(self.max_len), self.tokenizer.pad_id, padding_side
        )
        n_batches = -(-N // batch_size)
        for rows, ids_BxT, mask_BxT, types_BxT in tqdm(
            batches, total=n_batches, desc="score", disable=not progress or n_batches < 2
        ):
            out_BxO = _forward(graphdef, state, ids_BxT, mask_BxT, types_BxT, pooled)
            out_NxO[rows] = np.asarray(out_BxO)[: len(rows)]
        return out_NxO

    def logits(self, texts: Sequence[str], **kw) -> np.ndarray:
        """[N, L] logits of texts (see `logits_ids`)."""
        ids, types = self.encode(texts)
        return self.logits_ids(ids, types, **kw)

    def score(self, texts: Sequence[str], **kw) -> np.ndarray:
        """[N] float32: the reward (or cost) of each text."""
        return self.logits(texts, **kw)[:, 0]


# ---------------------------------------------------------------------------- loading


def _folder_head(cfg, tensors: Tensors, rm: dict, cfg_path: Path) -> tuple[Pooling | None, tuple[str, ...] | None]:
    """(pooling, output names or None) of a head the folder already holds, or (None, None)."""
    mt = cfg.model_type
    if isinstance(cfg, DecoderConfig):
        return ("last", ("score.weight",)) if "score.weight" in tensors else (None, None)
    cls_out = "classifier" if mt == "bert" else "classifier.out_proj"
    if cls_out + ".weight" in tensors:
        return "cls", (cls_out + ".weight",)
    if "score.weight" in tensors:
        pooling = rm.get("pooling")
        if pooling not in ("mean", "first"):
            raise CheckpointError(
                f"{cfg_path}: key 'rm_theory.pooling' = {pooling!r}: the folder holds score.weight on a {mt} "
                "backbone, which needs the pooling ('mean' or 'first') it was trained with"
            )
        return pooling, ("score.weight",)
    return None, None


def num_labels(kind: str, harm_categories: Sequence[str], heads: Sequence[str] = ()) -> int:
    """The head's outputs: 1 + C for a reward or cost model, G + C + 4 for a vector model."""
    if kind == "vector":
        if not heads:
            raise ValueError("a vector model needs at least one head (heads=[...])")
        return len(heads) + len(harm_categories) + SEVERITY_CLASSES
    return 1 + len(harm_categories)


def load_score_model(
    folder: str | Path,
    *,
    pooling: Pooling | None = None,
    kind: Literal["reward", "cost", "vector"] | None = None,
    harm_categories: Sequence[str] | None = None,
    heads: Sequence[str] | None = None,
    harm_head: str | None = None,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    remat: bool = False,
    seed: int = 0,
    strict: bool = True,
) -> ScoreModel:
    """A score model from a Hugging Face folder (config.json, model.safetensors or its sharded index,
    tokenizer.json).

    A folder that holds a head (a `*ForSequenceClassification` checkpoint, or one this function
    saved) loads it as is; `pooling`, `harm_categories` and `heads`, if given, must agree with it. A folder
    without one (a base or causal-LM checkpoint) gets a fresh head, N(0, initializer_range) weights
    and zero biases drawn from `seed`; `pooling` defaults to "last" for decoders and "cls" for
    encoders (the poolings transformers can load back). `dtype` is the compute dtype (bfloat16 on
    accelerators), `param_dtype` the parameters' (float32); `remat` recomputes each layer's
    activations in the backward pass (`nnx.remat`), for long sequences.

    `kind="vector"` with `heads` (and `harm_head`, one of them) makes a vector reward model (module
    docstring) of a folder without a head.

    Tensors the model does not use: the heads of other tasks and old buffers (`hf.IGNORED`) are
    skipped; any other is an error naming it and its file (it may be a variant of the architecture
    this code does not model), or with `strict=False` a warning.
    """
    folder = Path(folder)
    raw = read_config(folder)
    cfg_path = folder / "config.json"
    cfg = parse_config(raw, cfg_path)
    rm = raw.get("rm_theory") or {}
    tokenizer = TextTokenizer.from_folder(folder, raw)
    tensors = Tensors(folder)
    mt = cfg.model_type
    # Checkpoints name the backbone with the base-model prefix (model., bert., roberta.) or without.
    probe = "embed_tokens.weight" if isinstance(cfg, DecoderConfig) else "embeddings.word_embeddings.weight"
    prefix = next((p for p in (BASE_PREFIX[mt], "") if p + probe in tensors), BASE_PREFIX[mt])

    have_pooling, head_names = _folder_head(cfg, tensors, rm, cfg_path)
    if have_pooling is not None:
        if pooling is not None and pooling != have_pooling:
            raise ValueError(f"pooling = {pooling!r}, but {folder} holds a {have_pooling!r} head")
        pooling = have_pooling
        folder_harm = tuple(rm.get("harm_categories", ()))
        folder_kind, folder_heads = rm.get("kind", "reward"), tuple(rm.get("heads", ()))
        n_labels = tensors.shape(head_names[0])[0]
        if n_labels != num_labels(folder_kind, folder_harm, folder_heads):
            raise CheckpointError(
                f"{tensors.where(head_names[0])}: tensor {head_names[0]!r} has {n_labels} rows (num_labels); a "
                f"{folder_kind} model has {num_labels(folder_kind, folder_harm, folder_heads)} (config.json "
                "'rm_theory': 1 + the harm categories, or a vector model's heads + categories + 4 severities)"
            )
        for name, given, held in (("harm_categories", harm_categories, folder_harm), ("heads", heads, folder_heads)):
            if given is not None and tuple(given) != held:
                raise ValueError(f"{name} = {list(given)}, but {folder} holds {list(held)}")
        if kind is not None and kind != folder_kind and "vector" in (kind, folder_kind):
            raise ValueError(f"kind = {kind!r}, but {folder} holds a {folder_kind!r} head")
        harm_categories, heads = folder_harm, folder_heads
        harm_head = rm.get("harm_head") if harm_head is None else harm_head
    else:
        archs = raw.get("architectures") or []
        if any(a.endswith("ForSequenceClassification") for a in archs):
            want = {"bert": "classifier.weight", "roberta": "classifier.out_proj.weight"}.get(mt, "score.weight")
            raise CheckpointError(f"{tensors.where(want)}: tensor {want!r} missing (config.json names {archs})")
        pooling = pooling or ("last" if isinstance(cfg, DecoderConfig) else "cls")
        harm_categories = tuple(harm_categories or ())
        heads = tuple(heads or ())
    kind = kind or rm.get("kind", "reward")
    if kind not in ("reward", "cost", "vector"):
        raise ValueError(f"kind = {kind!r}: must be one of 'reward', 'cost', 'vector'")
    if heads and kind != "vector":
        raise ValueError(f"heads = {list(heads)}: only a kind='vector' model has named heads")

    net = nnx.eval_shape(
        lambda: ScoreNet(
            cfg,
            pooling,
            num_labels(kind, harm_categories, heads),
            tokenizer.pad_id,
            dtype=dtype,
            param_dtype=param_dtype,
            remat=remat,
            rngs=nnx.Rngs(0),
        )
    )
    # A head the folder lacks is drawn fresh (BERT's pooler may still come from the folder); a head it
    # holds must be whole.
    fresh_ids = {id(m) for m in net.head.hf_modules(mt, prefix).values()} if have_pooling is None else set()
    key = jax.random.key(seed)
    for name, module in net.hf_modules(prefix).items():
        for suffix, var, transpose in _slots(module):
            shape = tuple(var.shape)
            tname = name + suffix
            if tname not in tensors and id(module) in fresh_ids:  # as transformers' _init_weights
                key, sub = jax.random.split(key)
                fresh = jnp.zeros(shape) if suffix == ".bias" else jax.random.normal(sub, shape) * cfg.init_std
                var.set_value(fresh.astype(param_dtype))
                continue
            if tname not in tensors and tname == prefix + "embed_tokens.weight" and cfg.tie_embeddings:
                tname = "lm_head.weight"  # tied embeddings, stored under the output head's name only
            x = tensors.get(tname, shape[::-1] if transpose else shape)
            var.set_value(jnp.asarray(x.T if transpose else x, dtype=param_dtype))
    tensors.close()
    if extra := tensors.unexpected():
        msg = (
            f"{len(extra)} tensors that a {mt} score model does not use, e.g. "
            + ", ".join(f"{n!r} ({tensors.where(n)})" for n in extra[:5])
            + " (a variant of the architecture this code does not model?)"
        )
        if strict:
            raise CheckpointError(msg + "; load_score_model(..., strict=False) loads without them")
        warnings.warn(msg, stacklevel=2)
    files = read_files(folder, TOKENIZER_FILES)
    return ScoreModel(
        net,
        tokenizer,
        config=raw,
        kind=kind,
        harm_categories=harm_categories,
        heads=heads,
        harm_head=harm_head,
        tokenizer_files=files,
        source=folder,
    )


# ---------------------------------------------------------------------------- saving


def hf_tensors(net: ScoreNet) -> dict[str, np.ndarray]:
    """The net's parameters under their Hugging Face names (torch layout), LoRA merged in."""
    out = {}
    for name, module in net.hf_modules().items():
        for suffix, var, transpose in _slots(module):
            x = module.merged_kernel() if (isinstance(module, Linear) and suffix == ".weight") else var[...]
            out[name + suffix] = np.asarray(x.T if transpose else x)
    return out


def save_score_model(
    model: ScoreModel, folder: str | Path, *, overwrite: bool = False, shard_bytes: int = 5 * 2**30
) -> Path:
    """Write `model` as a Hugging Face folder: the weights (LoRA merged, the head included;
    safetensors, sharded above `shard_bytes`), config.json naming the architecture (see the module
    docstring), `num_labels` (through `id2label`) and `pad_token_id`, and the tokenizer files. A
    non-empty folder is refused unless `overwrite`."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder}: not empty (save_score_model(..., overwrite=True) replaces it)")
        if model.source is not None and folder.resolve() == Path(model.source).resolve():
            raise ValueError(f"{folder}: is the folder the model was loaded from; save elsewhere")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net, mt = model.net, model.model_type
    tensors = hf_tensors(net)
    dtypes = {str(x.dtype) for x in tensors.values()}
    config = dict(model.config)
    stem = CLASS_STEM[mt]
    config["architectures"] = [f"{stem}ForSequenceClassification" if net.pooling in ("last", "cls") else f"{stem}Model"]
    config["id2label"] = {str(i): label for i, label in enumerate(model.labels)}
    config["label2id"] = {label: i for i, label in enumerate(model.labels)}
    config.pop("num_labels", None)  # transformers derives it from id2label
    config["pad_token_id"] = model.tokenizer.pad_id
    config.pop("torch_dtype", None)
    config["dtype"] = dtypes.pop() if len(dtypes) == 1 else "float32"
    config["rm_theory"] = {
        "pooling": net.pooling,
        "kind": model.kind,
        "harm_categories": list(model.harm_categories),
        **({"heads": list(model.heads), "harm_head": model.harm_head} if model.kind == "vector" else {}),
        "pad_token_rule": model.tokenizer.pad_rule,
    }
    write_safetensors(tensors, folder, shard_bytes)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name, data in model.tokenizer_files.items():
        (folder / name).write_bytes(data)
    _record_pad_token(folder, model.tokenizer)
    return folder


def _record_pad_token(folder: Path, tokenizer: TextTokenizer) -> None:
    """Name the pad token in tokenizer_config.json too, so transformers' tokenizer pads with it."""
    path = folder / "tokenizer_config.json"
    tcfg = json.loads(path.read_text()) if path.is_file() else {}
    have = tcfg.get("pad_token")
    have = have.get("content") if isinstance(have, dict) else have
    if tokenizer.pad_token is not None and have != tokenizer.pad_token:
        tcfg["pad_token"] = tokenizer.pad_token
        path.write_text(json.dumps(tcfg, indent=2) + "\n")
