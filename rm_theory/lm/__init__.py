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
the pad-token rule and `fit_pairs`.
"""

from rm_theory.lm.config import CheckpointError
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
from rm_theory.lm.score import ScoreModel, ScoreNet, load_score_model, save_score_model
from rm_theory.lm.text import LengthReport, fit_pairs

__all__ = [
    "LORA_AND_HEAD",
    "BertConfig",
    "CheckpointError",
    "Encoder",
    "FeatureCache",
    "LengthReport",
    "MiniLM",
    "ScoreModel",
    "ScoreNet",
    "add_lora",
    "cached_encode",
    "default_model_dir",
    "fit_pairs",
    "load_encoder",
    "load_score_model",
    "load_weights",
    "merge_lora",
    "numpy_forward",
    "save_score_model",
    "text_key",
    "write_tiny_bert",
]
