"""Sharded training on 8 forced host devices: same numbers as one device, state really split,
no recompiles between chunks, and the train_rm entry point with `distributed.devices=8`.

XLA_FLAGS must be set before jax is imported, so the work runs in one subprocess whose results
(JSON on stdout) the tests below check.
"""

import json
import os
import subprocess
import sys

import pytest

from rm_theory.rm import sharding as distributed
from tests.conftest import ROOT

SCRIPT = r"""
import json, sys, tempfile
from pathlib import Path
import jax, numpy as np
from rm_theory.rm import sharding as dist
from rm_theory.rm import program
from rm_theory.rm.models import ModelConfig
from rm_theory.runs import enable_compilation_cache
from rm_theory.rm.train import PrefData, TrainConfig, train_ensemble

enable_compilation_cache()
out = {"device_count": jax.device_count()}
rng = np.random.default_rng(0)
N, L, V = 300, 6, 6
tok = rng.integers(1, V, (N, L)).astype(np.int32)
gold = rng.normal(size=(L, V))[np.arange(L), tok].sum(1)
a, b = rng.integers(0, N, (2, 800))
group = np.take_along_axis(g := rng.choice(N, (100, 4)), np.argsort(-gold[g], 1), 1)
data = PrefData(x=tok, a_P=a, b_P=b, pref_P=(gold[a] > gold[b]).astype(np.float32), group_GxNg=group)
mc = ModelConfig(family="mlp", vocab=V, max_len=8, hidden=(32,))
tc = TrainConfig(ensemble_size=4, steps=40, batch_size=32, group_batch_size=8, warmup_steps=5,
                 log_every=20)
key = jax.random.key(0)
ens1, h1 = train_ensemble(mc, tc, data, key, progress=False)
mesh = dist.make_mesh(dist.DistributedConfig(devices=0), tc.ensemble_size)
out["mesh"] = dict(mesh.shape)
n_cached = program.run_chunk._cache_size()
ens8, h8 = train_ensemble(mc, tc, data, key, progress=False, mesh=mesh)
out["new_programs"] = program.run_chunk._cache_size() - n_cached  # two chunks, one program
leaves1, leaves8 = jax.tree.leaves(ens1.state_K), jax.tree.leaves(ens8.state_K)
out["param_rel_err"] = max(
    float(np.max(np.abs(np.asarray(u) - np.asarray(v))) / (np.max(np.abs(np.asarray(u))) + 1e-12))
    for u, v in zip(leaves1, leaves8))
s1, s8 = ens1.score(tok), ens8.score(tok)
out["score_max_err"], out["score_scale"] = float(np.max(np.abs(s1 - s8))), float(np.std(s1))
out["loss"] = [[r["loss"] for r in h1], [r["loss"] for r in h8]]
k = leaves8[0]
out["state_devices"] = len(k.sharding.device_set)
out["state_spec"] = list(k.sharding.spec)
out["shard_rows"] = sorted({s.data.shape[0] for s in k.addressable_shards})

# The entry point, composed with distributed.devices=8 (smoke config, token MLP).
sys.path.insert(0, sys.argv[1])
from rm_theory.studies import train_rm as train_rm_study
from tests.helpers import run_smoke
with tempfile.TemporaryDirectory() as tmp:
    s = run_smoke("train_rm", train_rm_study.run, Path(tmp),
                  ["model.family=mlp", "distributed.devices=8", "export_jsonl=false"])
    out["smoke_status"], out["smoke_acc"] = s["status"], s["gold_accuracy"]
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def result():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


def test_eight_devices_and_a_two_axis_mesh(result):
    assert result["device_count"] == 8
    assert result["mesh"] == {"member": 4, "data": 2}  # gcd(K=4, 8) members, the rest data


def test_sharded_run_matches_one_device(result):
    assert result["param_rel_err"] < 1e-4
    assert result["score_max_err"] < 1e-4 * max(1.0, result["score_scale"])
    one, eight = result["loss"]
    assert len(one) == len(eight) == 2
    for u, v in zip(one, eight, strict=True):
        assert abs(u - v) <= 1e-4 * abs(u)


def test_state_is_split_over_members_without_recompiles(result):
    assert result["state_devices"] == 8
    assert result["state_spec"] == ["member"]
    assert result["shard_rows"] == [1]  # K=4 members over a member axis of 4
    assert result["new_programs"] == 1


def test_train_rm_runs_on_eight_devices(result):
    assert result["smoke_status"] == "ok" and 0 <= result["smoke_acc"] <= 1


def test_mesh_shapes_and_single_device_default():
    import jax

    from rm_theory.common.distributed import maybe_initialize

    cfg = distributed.DistributedConfig()
    assert cfg.devices == 1 and distributed.make_mesh(cfg, 4) is None  # the unsharded program
    assert maybe_initialize(cfg) is False  # no multi-host unless asked
    with pytest.raises(ValueError, match="devices"):
        distributed.make_mesh(distributed.DistributedConfig(devices=len(jax.devices()) + 1), 4)


def test_two_process_run_agrees_and_writes_the_run_folder_once(tmp_path):
    """Multi-host on one machine: two processes join through `jax.distributed.initialize` (CPU
    collectives over gloo), train one ensemble over a mesh spanning both, and agree; process 0
    writes the run folder, process 1 only its hidden `.process_1/`, and aggregation sees one run."""
    import socket

    from rm_theory.runs import read_json
    from rm_theory.runs.aggregate import collect_runs

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}
    env.pop("XLA_FLAGS", None)  # one device per process: the mesh must span the processes
    cmd = [
        sys.executable,
        "-m",
        "experiments.train_rm",
        "debug=smoke",
        "model.family=mlp",
        "export_jsonl=false",
        "distributed.initialize=true",
        "distributed.devices=0",
        "distributed.num_processes=2",
        f"distributed.coordinator_address=localhost:{port}",
        f"hydra.run.dir={tmp_path}",
    ]
    procs = [
        subprocess.Popen(
            [*cmd, f"distributed.process_id={i}"],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    main, other = read_json(tmp_path / "summary.json"), read_json(tmp_path / ".process_1" / "summary.json")
    assert main["status"] == other["status"] == "ok"
    assert main["gold_accuracy"] == other["gold_accuracy"]  # results are gathered on every host
    runs = collect_runs(tmp_path)
    assert list(runs["run_dir"]) == ["."] and runs["status"].iloc[0] == "ok"
