"""Fine-tuning sharded over a ("data", "fsdp") mesh of 8 forced host devices (4 x 2): the same
parameters and scores as one device to float32 rounding, the parameters really split over "fsdp",
and a batch size the devices do not divide refused.

XLA_FLAGS must be set before jax is imported, so the work runs in one subprocess whose results (JSON
on stdout) the tests below check."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.lm_tiny import write_tiny

SCRIPT = r"""
import json, sys
import jax, numpy as np
from flax import nnx
from rm_theory.lm import load_score_model
from rm_theory.lm import FinetuneConfig, Pairs, finetune, make_mesh
from rm_theory.runs import enable_compilation_cache
from tests.lm_tiny import WORDS

enable_compilation_cache()
folder = sys.argv[1]
rng = np.random.default_rng(0)
texts = [" ".join(rng.choice(WORDS, int(rng.integers(1, 12)))) for _ in range(32)]
model = load_score_model(folder)
ids, _ = model.encode(texts)
pairs = Pairs(ids[:16], ids[16:], rng.integers(0, 2, 16).astype(np.float32))
cfg = FinetuneConfig(batch_size=8, chunk_steps=2, buckets=1, lr=1e-2, epochs=2, ensemble_size=2, bootstrap=True,
                     weight_decay=0.01)
out = {"devices": jax.device_count()}
runs = {}
for name, mesh in (("one", None), ("mesh", make_mesh(8, fsdp=2))):
    m = load_score_model(folder)
    res, hist = finetune(m, pairs, cfg, jax.random.key(0), mesh=mesh, progress=False)
    runs[name] = (res, hist, m)
    if mesh is not None:
        out["mesh"] = dict(mesh.shape)
        kernel = res.shared["backbone"]["layers"][0]["gate_proj"]["kernel"][...]
        out["kernel_spec"] = [str(s) for s in kernel.sharding.spec]
        out["kernel_shard_shape"] = list(kernel.addressable_shards[0].data.shape)
        try:
            finetune(load_score_model(folder), pairs, FinetuneConfig(batch_size=4), jax.random.key(0), mesh=mesh)
        except ValueError as e:
            out["refused"] = str(e)
(r1, h1, m1), (r8, h8, m8) = runs["one"], runs["mesh"]
p1 = {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(m1.net, nnx.Param))}
p8 = {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(m8.net, nnx.Param))}
out["param_err"] = max(float(np.abs(p1[k] - p8[k]).max() / (np.abs(p1[k]).max() + 1e-12)) for k in p1)
s1, s8 = r1.scores(ids, batch_size=8), r8.scores(ids, batch_size=8)
out["score_err"], out["score_scale"] = float(np.abs(s1 - s8).max()), float(np.abs(s1).max())
out["loss"] = [[r["loss"] for r in h1], [r["loss"] for r in h8]]
# a vector model (issue 26): its per-pair label arrays [B, G], [2, B, C] and [2, B] are split by rows too
y = rng.integers(0, 2, (16, 2)).astype(np.float32)
y[::3, 0] = np.nan
cat, sev = rng.integers(0, 2, (16, 2)).astype(np.float32), rng.integers(-1, 4, 16)
vp = Pairs(ids[:16], ids[16:], y, safe_a_P=np.ones(16), safe_b_P=np.zeros(16), category_a_PxC=cat,
           category_b_PxC=cat[::-1], severity_a_P=sev, severity_b_P=sev[::-1])
vcfg = FinetuneConfig(objective="vector", batch_size=8, chunk_steps=2, buckets=1, lr=1e-2, epochs=2)
logits = []
for mesh in (None, make_mesh(8, fsdp=2)):
    m = load_score_model(sys.argv[2], kind="vector", heads=["h0", "h1"], harm_head="h1",
                         harm_categories=["Drugs", "Violence"])
    res, _ = finetune(m, vp, vcfg, jax.random.key(0), mesh=mesh, progress=False)
    logits.append(res.logits_ids(ids, batch_size=8))
out["vector_err"], out["vector_scale"] = float(np.abs(logits[0] - logits[1]).max()), float(np.abs(logits[0]).max())
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = write_tiny(tmp_path_factory.mktemp("llama"), "llama", num_key_value_heads=2)
    base = write_tiny(tmp_path_factory.mktemp("llama_base"), "llama", head=False, num_key_value_heads=2)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(base)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_a_four_by_two_mesh(result):
    assert result["devices"] == 8 and result["mesh"] == {"data": 4, "fsdp": 2}


def test_sharded_fine_tuning_equals_one_device(result):
    assert result["param_err"] < 1e-4
    assert result["score_err"] < 1e-4 * max(1.0, result["score_scale"])
    one, eight = result["loss"]
    assert len(one) == len(eight) >= 2
    for u, v in zip(one, eight, strict=True):
        assert abs(u - v) <= 1e-4 * abs(u)


def test_parameters_are_split_over_fsdp(result):
    # gate_proj's kernel is [H=32, F=64]: its larger axis is split over the 2 fsdp devices
    assert result["kernel_spec"] == ["None", "fsdp"] and result["kernel_shard_shape"] == [32, 32]
    assert "batch_size = 4: must be a multiple of the 8 devices" in result["refused"]


def test_a_sharded_vector_model_equals_one_device(result):
    assert result["vector_err"] < 1e-4 * max(1.0, result["vector_scale"]) and result["vector_scale"] > 0
