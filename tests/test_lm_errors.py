"""Bad model folders and bad calls get errors that name the file and the key or tensor."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from rm_theory.lm import CheckpointError, add_lora, load_score_model, save_score_model
from tests.lm_tiny import texts, write_tiny


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("good"), "llama", num_key_value_heads=2)


@pytest.fixture
def copy(good, tmp_path):
    d = tmp_path / "bad"
    shutil.copytree(good, d)
    return d


def edit_config(d, **changes):
    c = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    (d / "config.json").write_text(json.dumps(c))


def edit_tensors(d, fn):
    t = load_file(str(d / "model.safetensors"))
    fn(t)
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})


def test_folder_without_config_json(copy):
    (copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"bad/config.json: not found"):
        load_score_model(copy)
    with pytest.raises(CheckpointError, match="no such model folder"):
        load_score_model(copy / "nothing")


def test_unsupported_model_type(copy):
    edit_config(copy, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    with pytest.raises(CheckpointError, match=r"config.json: model_type 'gpt2' is not supported.*GPT2LMHeadModel"):
        load_score_model(copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(hidden_act="gelu"), r"config.json: key 'hidden_act' = 'gelu'"),
        (dict(rope_parameters={"rope_type": "dynamic", "factor": 2.0}), r"key 'rope_parameters.rope_type' = 'dynamic'"),
        (dict(rope_scaling={"type": "yarn", "factor": 2.0}), r"key 'rope_scaling.rope_type' = 'yarn'"),
        (dict(hidden_size=None), r"config.json: key 'hidden_size' missing"),
        (dict(num_key_value_heads=3), r"num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
        (dict(vocab_size="many"), r"key 'vocab_size' = 'many', expected int"),
    ],
    ids=["act", "rope_dynamic", "rope_yarn_old_key", "missing_key", "gqa", "type"],
)
def test_unsupported_or_malformed_config(copy, change, message):
    edit_config(copy, **change)
    with pytest.raises(CheckpointError, match=message):
        load_score_model(copy)


def test_tensor_of_the_wrong_shape(copy):
    edit_tensors(copy, lambda t: t.update({"model.norm.weight": np.ones(31, np.float32)}))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor 'model.norm.weight' has shape \(31,\)"):
        load_score_model(copy)


def test_missing_tensor(copy):
    edit_tensors(copy, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor 'model.layers.1.mlp.up_proj.weight' missing"):
        load_score_model(copy)


def test_missing_head_of_a_sequence_classification_checkpoint(copy):
    edit_tensors(copy, lambda t: t.pop("score.weight"))
    with pytest.raises(CheckpointError, match=r"tensor 'score.weight' missing \(config.json names"):
        load_score_model(copy)


def test_unexpected_tensor_is_an_error_or_with_strict_false_a_warning(copy):
    edit_tensors(copy, lambda t: t.update({"model.layers.0.self_attn.q_norm.weight": np.ones(8, np.float32)}))
    with pytest.raises(CheckpointError, match=r"'model.layers.0.self_attn.q_norm.weight' \(.*model.safetensors\)"):
        load_score_model(copy)
    with pytest.warns(UserWarning, match="q_norm"):
        model = load_score_model(copy, strict=False)
    assert model.score(texts(2)).shape == (2,)


def test_sharded_index_errors(copy):
    t = load_file(str(copy / "model.safetensors"))
    (copy / "model.safetensors").unlink()
    names = sorted(t)
    save_file({n: t[n] for n in names[:5]}, str(copy / "a.safetensors"), metadata={"format": "pt"})
    weight_map = {n: "a.safetensors" if i < 5 else "b.safetensors" for i, n in enumerate(names)}
    (copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match=r"model.safetensors.index.json: names shard b.safetensors"):
        load_score_model(copy)
    save_file({n: t[n] for n in names[5:-1]}, str(copy / "b.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=rf"b.safetensors: tensor '{names[-1]}' cannot be read"):
        load_score_model(copy)
    (copy / "model.safetensors.index.json").unlink()
    with pytest.raises(CheckpointError, match=r"neither model.safetensors nor model.safetensors.index.json"):
        load_score_model(copy)


def test_missing_tokenizer_and_no_pad_token(copy):
    edit_config(copy, eos_token_id=None)
    tcfg = json.loads((copy / "tokenizer_config.json").read_text())
    (copy / "tokenizer_config.json").write_text(json.dumps({k: v for k, v in tcfg.items() if k != "eos_token"}))
    with pytest.raises(CheckpointError, match=r"no pad token \(config.json 'pad_token_id'"):
        load_score_model(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"bad/tokenizer.json: not found"):
        load_score_model(copy)


def test_head_with_labels_that_are_not_a_score(copy):
    edit_tensors(copy, lambda t: t.update({"score.weight": np.ones((2, 32), np.float32)}))
    with pytest.raises(CheckpointError, match=r"tensor 'score.weight' has 2 rows \(num_labels\)"):
        load_score_model(copy)


def test_bad_arguments(good, tmp_path):
    model = load_score_model(good)
    with pytest.raises(ValueError, match="pooling = 'mean'"):
        load_score_model(good, pooling="mean")
    with pytest.raises(ValueError, match="harm_categories"):
        load_score_model(good, harm_categories=["violence"])
    with pytest.raises(ValueError, match="kind = 'loss'"):
        load_score_model(good, kind="loss")
    with pytest.raises(ValueError, match=r"LoRA targets \['qkv'\] match no Linear layer"):
        add_lora(model, targets=["qkv"])
    with pytest.raises(ValueError, match="1 of 2 inputs are longer than the model's 64 positions"):
        model.score(["a", " ".join(["cat"] * 70)])
    with pytest.raises(FileExistsError, match="not empty"):
        save_score_model(model, good)
    with pytest.raises(ValueError, match="the folder the model was loaded from"):
        save_score_model(model, good, overwrite=True)
    assert (good / "model.safetensors").is_file()  # nothing lost


def test_a_head_in_the_folder_must_be_whole(tmp_path):
    folder = write_tiny(tmp_path / "bert", "bert")
    edit_tensors(folder, lambda t: t.pop("classifier.bias"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor 'classifier.bias' missing"):
        load_score_model(folder)
