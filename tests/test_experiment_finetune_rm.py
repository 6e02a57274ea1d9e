"""The fine-tuned reward-model entry point on its smoke config (tiny data sets and a tiny random BERT
that the run writes itself), a rerun into its folder, the reproduction's quick step against its
preset, and a bad model folder named before any run folder is written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from safetensors.numpy import load_file, save_file

from rm_theory.common import ConfigError
from rm_theory.lm import CheckpointError
from rm_theory.registry import steps
from rm_theory.runs import read_metrics, run_entry
from rm_theory.studies import finetune_rm as study
from tests.helpers import compose_config, run_smoke


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune_rm")
    return out, run_smoke("finetune_rm", study.run, out)


def test_smoke_run_writes_accuracies_intervals_differences_and_figures(smoke):
    out, s = smoke
    assert s["status"] == "ok"
    for name in ("pku", "safer_instruct", "pku_to_pandalm"):
        lo, hi = s[f"test_accuracy_{name}_ci"]
        assert lo <= s[f"test_accuracy_{name}"] <= hi and s[f"test_pairs_{name}"] > 0
        dlo, dhi = s[f"finetuned_minus_frozen_{name}_ci"]
        assert dlo <= s[f"finetuned_minus_frozen_{name}"] <= dhi
        diff = s[f"test_accuracy_{name}"] - s[f"test_accuracy_frozen_{name}"]
        assert s[f"finetuned_minus_frozen_{name}"] == pytest.approx(diff)  # the same pairs
    assert 0 <= s["cost_sign_accuracy_pku"] <= 1 and len(s["cost_sign_accuracy_pku_ci"]) == 2
    assert s["length_pairs_pku"] == s["length_kept_pku"] + s["length_dropped_pku"]
    df = pd.read_csv(out / "results.csv")
    assert set(df["method"]) == {"finetuned", "frozen", "bow", "longer", "vector", "vector_frozen"}
    # every method is scored on the same held-out pairs
    assert df.groupby(["train_set", "test_set"])["accuracy_n"].nunique().max() == 1
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["objective"]) == {"reward", "cost", "vector"} and curves["val_accuracy"].notna().any()
    for stem in ("accuracy", "learning_curve"):
        assert (out / "figures" / f"{stem}.png").exists()
    assert not (out / "checkpoints").exists()  # a finished model's checkpoint goes


def test_the_vector_model_is_paired_with_each_heads_own_model(smoke):
    """Issue 26's vector reward model on the fine-tuned trunk: heads for PKU-SafeRLHF's two labels
    (helpfulness, harmlessness: dual preferences) and for another set, each scored on its set's
    held-out pairs, the paired difference against the head's own model (the set's reward model, or
    its cost model for the harmlessness head) equal to the difference of the accuracies (the same
    pairs); the harm head's negation scored as a cost; the categories and severity on the held-out
    responses that have them; the model saved with its heads."""
    out, s = smoke
    own = {"pku_full": "test_accuracy_pku_full", "safer_instruct": "test_accuracy_safer_instruct"}
    for key, m, theirs in [
        *((k, "vector", v) for k, v in own.items()),
        *((k, "vector_frozen", v.replace("accuracy", "accuracy_frozen")) for k, v in own.items()),
        ("pku_full_safer", "vector", "cost_safer_accuracy_pku_full"),
    ]:
        lo, hi = s[f"{m}_accuracy_{key}_ci"]
        assert lo <= s[f"{m}_accuracy_{key}"] <= hi
        assert s[f"{m}_minus_separate_{key}"] == pytest.approx(s[f"{m}_accuracy_{key}"] - s[theirs])
    assert "vector_frozen_minus_separate_pku_full_safer" not in s  # no frozen cost model to pair with
    assert s["vector_accuracy_pku_full_safer"] > 0.5  # the fixture's unsafe side says "kill"
    assert 0 <= s["vector_cost_sign_accuracy_pku_full_safer"] <= 1
    assert s["vector_category_items"] > 0 and 0 <= s["vector_severity_accuracy"] <= 1
    assert s["vector_length_kept"] == sum(s[f"length_kept_{n}"] for n in ("pku_full", "safer_instruct"))
    df = pd.read_csv(out / "results.csv")
    assert {"vector", "vector_frozen"} <= set(df["method"])
    rm = json.loads((out / "models" / "vector" / "config.json").read_text())["rm_theory"]
    assert rm["heads"] == ["pku_full", "pku_full:safer", "safer_instruct"] and rm["harm_head"] == "pku_full:safer"
    assert len(rm["harm_categories"]) == 19


def test_a_rerun_into_the_folder_reuses_the_finished_units(smoke):
    out, s = smoke
    rows = len(read_metrics(out / "metrics.jsonl"))
    again = run_smoke("finetune_rm", study.run, out)
    assert len(read_metrics(out / "metrics.jsonl")) == rows  # nothing trained again
    same = lambda d: {k: v for k, v in d.items() if not k.endswith("_s") and k != "wall_time_s"}
    assert same(again) == same(s)


def test_the_quick_reproduction_step_is_the_quick_preset():
    _, step = steps()["finetune_rm"]
    via_step = compose_config("finetune_rm", [f"experiment={step.preset}", *step.quick])
    preset = compose_config("finetune_rm", ["experiment=finetune_quick"])
    assert OmegaConf.to_container(via_step) == OmegaConf.to_container(preset)


def test_a_folder_without_config_json_is_named_before_the_run_folder_is_touched(tmp_path):
    """The model folder is checked with the config (its schema's cross_checks): the new run folder
    holds only the summary saying why."""
    (tmp_path / "model").mkdir()
    cfg = compose_config("finetune_rm", [f"model.path={tmp_path / 'model'}", "fixture=true"])
    with pytest.raises(ConfigError, match=r"model\.path = '.*model': .*config.json: not found"):
        run_entry(cfg, study.run, out_dir=tmp_path / "run", overrides=[])
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["summary.json"]
    (tmp_path / "model" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ConfigError, match=r"model\.path = .*model_type"):
        run_entry(cfg, study.run, out_dir=tmp_path / "run2", overrides=[])
    assert sorted(p.name for p in (tmp_path / "run2").iterdir()) == ["summary.json"]


def test_a_tensor_of_the_wrong_shape_fails_the_run_naming_file_and_tensor(tmp_path):
    from rm_theory.real.fixtures import write_tiny_encoder

    folder = write_tiny_encoder(tmp_path / "model")
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["encoder.layer.1.output.dense.weight"] = np.zeros((3, 3), np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors.*encoder.layer.1.output.dense.weight"):
        run_smoke("finetune_rm", study.run, tmp_path / "run", [f"model.path={folder}"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "encoder.layer.1.output.dense.weight" in summary["error"]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # it failed before any data or training


@pytest.mark.slow
def test_kill_9_mid_training_then_rerun_is_bit_identical(tmp_path):
    """`experiments.finetune_rm` killed with SIGKILL while a model trains ends, when rerun into its
    folder, with the numbers of an uninterrupted run (the model resumes from its Orbax checkpoint)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    args = ["debug=smoke", "in_domain=[pku]", "cost=[]", "transfer_from=[]", "vector.heads=[]", "train.epochs=12"]
    args += ["train.checkpoint_every=4", "figures=false"]
    cmd = lambda out: [sys.executable, "-m", "experiments.finetune_rm", *args, f"hydra.run.dir={out}"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(cmd(full), cwd=ROOT, check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(cmd(killed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "pku"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists() and any(p.name.isdigit() and int(p.name) >= 8 for p in ckpt.iterdir()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"
    out = subprocess.run(cmd(killed), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "resuming fine-tuning from step" in out.stdout + out.stderr

    def numbers(d):  # all but times and the run's own folder
        s = json.loads((d / "summary.json").read_text())
        return {k: v for k, v in s.items() if not (k.endswith("_s") or "_s_" in k or k == "model")}

    assert numbers(killed) == numbers(full)


@pytest.mark.parametrize(
    "args, key",
    [
        (["vector.heads=[pku]"], "vector.heads"),
        (["vector.heads=[pku,hh]"], "vector.heads[1]"),
        (["vector.heads=[pku,pku:better]"], "vector.heads[1]"),
        (["vector.heads=[pku,safer_instruct]", "vector.harm_head=hh"], "vector.harm_head"),
        (["vector.heads=[pku,safer_instruct]", "vector.harm_head=", "vector.categories=true"], "vector.categories"),
    ],
)
def test_a_bad_vector_config_names_its_key(args, key, tmp_path):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        run_smoke("finetune_rm", study.run, tmp_path / "run", args)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["summary.json"]  # only why it stopped


def test_a_head_whose_label_the_set_lacks_fails_naming_it(tmp_path):
    """GSM8K has no harmlessness label: a head on it would train on nothing and report NaN."""
    args = ["in_domain=[pku_full,gsm8k]", "cost=[]", "transfer_from=[]", "vector.heads=[pku_full,gsm8k:safer]"]
    args += ["vector.harm_head=", "vector.categories=false", "baselines.frozen=false", "baselines.bow=false"]
    with pytest.raises(
        ValueError, match=r"vector\.heads\[1\] = 'gsm8k:safer': no training pair of its set has that label"
    ):
        run_smoke("finetune_rm", study.run, tmp_path / "run", args)
