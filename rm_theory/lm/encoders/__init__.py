"""Pretrained sentence encoders (all-MiniLM-L6-v2 in Flax NNX) and their on-disk feature cache."""

from rm_theory.lm.encoders.cache import FeatureCache, cached_encode, text_key
from rm_theory.lm.encoders.minilm import (
    BertConfig,
    Encoder,
    MiniLM,
    default_model_dir,
    load_encoder,
    load_weights,
    numpy_forward,
)

__all__ = [
    "BertConfig",
    "Encoder",
    "FeatureCache",
    "MiniLM",
    "cached_encode",
    "default_model_dir",
    "load_encoder",
    "load_weights",
    "numpy_forward",
    "text_key",
]
