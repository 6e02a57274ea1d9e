"""Tiny random checkpoints in the Hugging Face layout, written with transformers itself, for the
`rm_theory.lm` tests: a word-level `tokenizers` tokenizer (tokenizer.json + tokenizer_config.json)
and a 2-layer model of each supported family.

Weights are redrawn N(0, 0.2), norm gains 1 + N(0, 0.2) (transformers' own init, std 0.02, gives
scores near 0, where a 1e-4 agreement says little).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel

WORDS = "the cat sat on a mat and dog ran to big red house is not safe help me please how do i make bread".split()
SPECIALS = {
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
    "roberta": ["<s>", "<pad>", "</s>", "<unk>"],
    "decoder": ["<unk>", "<s>", "</s>"],
}
TEMPLATES = {  # what each family's tokenizer adds around a text
    "bert": ("[CLS] $A [SEP]", ["[CLS]", "[SEP]"]),
    "roberta": ("<s> $A </s>", ["<s>", "</s>"]),
    "bos": ("<s> $A", ["<s>"]),  # Llama
    "bos_eos": ("<s> $A </s>", ["<s>", "</s>"]),  # EOS at the end: with pad = EOS, transformers skips it
    "none": (None, []),  # Qwen2 adds nothing
}
H, F, LAYERS, HEADS, MAX_POS = 32, 64, 2, 4, 64


def write_tokenizer(folder: Path, specials: list[str], template: str, tokenizer_config: dict) -> int:
    """tokenizer.json (specials, then WORDS) and tokenizer_config.json; returns the vocabulary size."""
    vocab = {t: i for i, t in enumerate([*specials, *WORDS])}
    unk = next(t for t in specials if "unk" in t.lower())
    tok = Tokenizer(WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    single, used = TEMPLATES[template]
    if single is not None:
        tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=[(t, vocab[t]) for t in used])
    tok.save(str(folder / "tokenizer.json"))
    tcfg = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": unk, **tokenizer_config}
    (folder / "tokenizer_config.json").write_text(json.dumps(tcfg))
    return len(vocab)


def _randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = "norm" in name.lower() and name.endswith("weight")  # norm gains near 1
            p.copy_(torch.randn(p.shape, generator=g) * 0.2 + float(norm))


def write_tiny(
    folder: Path,
    family: str,
    *,
    head: bool = True,
    template: str | None = None,
    tokenizer_config: dict | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    max_shard_size: str | None = None,
    **config,
) -> Path:
    """A 2-layer `family` model ("bert", "roberta", "llama", "mistral", "qwen2") saved into `folder`,
    as `*ForSequenceClassification` (`head=True`) or as the base / causal-LM model (`head=False`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = family in ("bert", "roberta")
    specials = SPECIALS[family] if encoder else SPECIALS["decoder"]
    template = template or {"bert": "bert", "roberta": "roberta", "qwen2": "none"}.get(family, "bos")
    tcfg = tokenizer_config or {}
    if family == "bert":
        tcfg = {"pad_token": "[PAD]", **tcfg}
    elif family == "roberta":
        tcfg = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", **tcfg}
    else:
        tcfg = {"bos_token": "<s>", "eos_token": "</s>", **tcfg}
    V = write_tokenizer(folder, specials, template, tcfg)
    common = dict(vocab_size=V, hidden_size=H, intermediate_size=F, num_hidden_layers=LAYERS, num_attention_heads=HEADS)
    if family == "bert":
        cfg = transformers.BertConfig(**(common | dict(max_position_embeddings=MAX_POS, pad_token_id=0) | config))
    elif family == "roberta":
        kw = dict(max_position_embeddings=MAX_POS + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        kw["type_vocab_size"] = 1
        cfg = transformers.RobertaConfig(**(common | kw | config))
    else:
        Config = {"llama": transformers.LlamaConfig, "mistral": transformers.MistralConfig}.get(
            family, transformers.Qwen2Config
        )
        kw = dict(max_position_embeddings=MAX_POS, bos_token_id=1, eos_token_id=2, pad_token_id=None)
        cfg = Config(**(common | kw | config))
    cfg.num_labels = 1
    if head:
        Model = transformers.AutoModelForSequenceClassification
    else:
        Model = transformers.AutoModel if encoder else transformers.AutoModelForCausalLM
    torch.manual_seed(seed)
    model = Model.from_config(cfg)
    _randomise(model, seed)
    model.to(dtype)
    kw = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(folder, **kw)
    return folder


def texts(n: int = 6, seed: int = 0) -> list[str]:
    """Texts of different lengths (1 to 12 words) from the tiny vocabulary."""
    rng = np.random.default_rng(seed)
    lengths = [1, 12, 4, 7, 2, 10, 5, 9][:n]
    return [" ".join(rng.choice(WORDS, size=k)) for k in lengths]


def hf_model(folder: Path, pad_id: int | None = None) -> torch.nn.Module:
    """transformers' own reading of `folder`, evaluation mode, eager attention."""
    m = transformers.AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    if pad_id is not None:
        m.config.pad_token_id = pad_id
    return m.eval()


def hf_logits(model: torch.nn.Module, ids: list[list[int]], pad_id: int, side: str = "right") -> np.ndarray:
    """[N, L] logits of transformers on the token ids, padded with `pad_id` to the longest."""
    T = max(map(len, ids))
    ids_NxT = np.full((len(ids), T), pad_id, dtype=np.int64)
    mask_NxT = np.zeros((len(ids), T), dtype=np.int64)
    for i, x in enumerate(ids):
        sl = slice(0, len(x)) if side == "right" else slice(T - len(x), T)
        ids_NxT[i, sl], mask_NxT[i, sl] = x, 1
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids_NxT), attention_mask=torch.from_numpy(mask_NxT))
    return out.logits.float().numpy()
