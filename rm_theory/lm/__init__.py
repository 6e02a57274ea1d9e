"""Pretrained text models: the all-MiniLM-L6-v2 sentence encoder of the real-data studies and its
on-disk feature cache (`encoders`), and pretrained models as reward and cost models: backbones in
Flax NNX loaded from Hugging Face folders (BERT, RoBERTa; Llama, Mistral, Qwen2), score heads with
transformers' `*ForSequenceClassification` semantics, saving back to that layout, and LoRA.

    model = load_score_model("path/to/folder")        # config.json, model.safetensors, tokenizer.json
    r_N = model.score(["text one", "text two"])       # one float per text
    add_lora(model, rank=8, alpha=16)                  # optional; train params selected by LORA_AND_HEAD
    save_score_model(model, "out")                     # transformers loads it back, same scores

`model.net` is the `nnx.Module` to train: `model.net(ids_BxT, mask_BxT, types_BxT)` -> logits [B, L],
column 0 the score. See `score` for the poolings and the Hugging Face classes they map to, `text` for
the pad-token rule and `fit_pairs`. `finetune` trains it on preference pairs (`train` runs the steps
that `step` defines and `program` compiles; `sharding` places them on a (data, fsdp) mesh):

    ids_a, ids_b = ...                                 # token ids of each pair's two sides (fit_pairs)
    result, history = finetune(model, Pairs(ids_a, ids_b, y_P), FinetuneConfig(mode="lora"), key)
    result.scores(ids)                                 # [K, N]: every ensemble member's scores

A vector reward model (one head per preference dimension, a cost from its harm head, optional harm
category and severity outputs; `rm.multidim`'s layout) is the same net with more outputs:

    model = load_score_model(folder, kind="vector", heads=["helpful", "harmless"], harm_head="harmless")
    finetune(model, Pairs(ids_a, ids_b, y_PxG, safe_a_P=..., safe_b_P=...), FinetuneConfig(objective="vector"), key)
"""

from rm_theory.lm.config import CheckpointError, parse_config
from rm_theory.lm.encoders import (
    BertConfig,
    Encoder,
    FeatureCache,
    MiniLM,
    cached_encode,
    default_model_dir,
    load_encoder,
    load_weights,
    numpy_forward,
    text_key,
)
from rm_theory.lm.encoders.tiny import write_tiny_bert
from rm_theory.lm.lora import LORA_AND_HEAD, add_lora, merge_lora
from rm_theory.lm.program import Finetuned, logits_program
from rm_theory.lm.score import ScoreModel, ScoreNet, load_score_model, save_score_model
from rm_theory.lm.sharding import make_mesh
from rm_theory.lm.step import FinetuneConfig, init_members, lr_schedule, member_logits, pair_losses
from rm_theory.lm.text import LengthReport, TextTokenizer, fit_pairs
from rm_theory.lm.train import Pairs, finetune

__all__ = [
    "LORA_AND_HEAD",
    "BertConfig",
    "CheckpointError",
    "Encoder",
    "FeatureCache",
    "FinetuneConfig",
    "Finetuned",
    "LengthReport",
    "MiniLM",
    "Pairs",
    "ScoreModel",
    "ScoreNet",
    "TextTokenizer",
    "add_lora",
    "cached_encode",
    "default_model_dir",
    "finetune",
    "fit_pairs",
    "init_members",
    "load_encoder",
    "load_score_model",
    "load_weights",
    "logits_program",
    "lr_schedule",
    "make_mesh",
    "member_logits",
    "merge_lora",
    "numpy_forward",
    "pair_losses",
    "parse_config",
    "save_score_model",
    "text_key",
    "write_tiny_bert",
]
