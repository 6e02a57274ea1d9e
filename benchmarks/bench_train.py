"""Training throughput of a K-member reward-model ensemble: the fused program of
`rm_theory.rm.train` (vmap over members, lax.scan over steps, one jit) against the plain loop
(members one after another, one `nnx.jit` call per step), measured in the same process.

Run by hand:  python benchmarks/bench_train.py [--members 8 --pairs 20000 --steps 200]
Prints comparisons/s of both (compilation excluded: each is warmed up first), their ratio, and
the wall time of one full `train_ensemble` run (compilation included).

With --mesh [N]: the fused loop on one device against the same loop sharded over a
("member", "data") mesh of N devices (`rm_theory.rm.sharding`; default all). On a CPU, force N
host devices first (the flag must precede jax's import, so this script sets it):
  python benchmarks/bench_train.py --mesh 8
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

if "--mesh" in sys.argv and "xla_force_host_platform_device_count" not in os.environ.get(
    "XLA_FLAGS", ""
):  # several host devices for the mesh on a CPU; ignored by GPU/TPU backends
    i = sys.argv.index("--mesh")
    n = sys.argv[i + 1] if i + 1 < len(sys.argv) and sys.argv[i + 1].isdigit() else "8"
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n}"

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rm_theory.rm import losses
from rm_theory.rm import sharding as distributed
from rm_theory.rm.models import ModelConfig, make_model
from rm_theory.rm.step import TrainConfig, make_optimizer
from rm_theory.rm.train import train_ensemble
from rm_theory.world.inputs import PrefData


def synthetic_data(n_pairs: int, rng: np.random.Generator, vocab: int = 20) -> PrefData:
    """[prompt, t_1..t_L] right-padded sequences, L in 6..12, BT labels on a token-sum reward."""
    N = n_pairs // 2
    L_N = rng.integers(6, 13, N)
    tok = np.zeros((N, 13), np.int32)
    tok[:, 0] = rng.integers(1, 5, N)
    for i, n in enumerate(L_N):
        tok[i, 1 : 1 + n] = rng.integers(5, vocab, n)
    w = rng.normal(size=vocab)
    gold = np.where(tok > 0, w[tok], 0).sum(1)
    a, b = rng.integers(0, N, (2, n_pairs))
    pref = (rng.random(n_pairs) < 1 / (1 + np.exp(gold[b] - gold[a]))).astype(np.float32)
    return PrefData(x=tok, a_P=a, b_P=b, pref_P=pref)


def sequential(mc: ModelConfig, tc: TrainConfig, data: PrefData, key: jax.Array) -> float:
    """Seconds to train the K members one after another with a per-step `nnx.jit` call."""
    x = jnp.asarray(data.x)
    a, b, y = (jnp.asarray(v) for v in (data.a_P, data.b_P, data.pref_P))

    @nnx.jit
    def step(model, opt, k):
        i_B = jax.random.randint(k, (tc.batch_size,), 0, a.shape[0])

        def loss_fn(m):
            r = m(jnp.concatenate([x[a[i_B]], x[b[i_B]]]))
            return jnp.mean(losses.bt_loss(r[: tc.batch_size], r[tc.batch_size :], y[i_B]))

        loss, g = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, g)
        return loss

    tx = make_optimizer(tc)  # one object: a fresh one per member would change the graphdef

    def run(k_member: jax.Array, steps: int) -> float:
        """Seconds of the step loop alone (initialisation excluded, in the baseline's favour)."""
        model = make_model(mc, nnx.Rngs(k_member))
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
        keys = jax.random.split(k_member, steps)
        jax.block_until_ready(keys)
        t0 = time.perf_counter()
        for t in range(steps):
            loss = step(model, opt, keys[t])
        loss.block_until_ready()
        return time.perf_counter() - t0

    run(key, 2)  # compile
    return sum(run(k, tc.steps) for k in jax.random.split(key, tc.ensemble_size))


def timed(mc, tc, data, key, mesh) -> tuple[float, float, list[dict]]:
    """(seconds with compilation, seconds of a second identical run, history)."""
    t0 = time.perf_counter()
    train_ensemble(mc, tc, data, key, progress=False, mesh=mesh)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens, hist = train_ensemble(mc, tc, data, key, progress=False, mesh=mesh)
    jax.block_until_ready(ens.state_K)
    return t_full, time.perf_counter() - t0, hist


def bench_mesh(mc, tc, data, key, n_dev: int, n_comp: int) -> None:
    mesh = distributed.make_mesh(distributed.DistributedConfig(devices=n_dev), tc.ensemble_size)
    f1, t1, h1 = timed(mc, tc, data, key, None)
    f8, t8, h8 = timed(mc, tc, data, key, mesh)
    print(f"backend: {jax.default_backend()}, {jax.device_count()} device(s), "
          f"{os.cpu_count()} CPU cores; mesh {dict(mesh.shape) if mesh else None}")  # fmt: skip
    print(f"K={tc.ensemble_size}, {tc.steps} steps x {tc.batch_size} pairs per member")
    print(f"1 device : {n_comp / t1:10.0f} comparisons/s ({t1:.2f} s; {f1:.2f} s with compile)")
    print(f"mesh     : {n_comp / t8:10.0f} comparisons/s ({t8:.2f} s; {f8:.2f} s with compile)")
    print(f"ratio mesh/1 device: {t1 / t8:.2f}x; final loss {h1[-1]['loss']:.6f} vs "
          f"{h8[-1]['loss']:.6f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--pairs", type=int, default=20000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mesh", type=int, nargs="?", const=0, default=None,
                   help="compare 1 device with a mesh of N devices (default all)")  # fmt: skip
    args = p.parse_args()
    mc = ModelConfig(family="transformer", vocab=20, max_len=16, d_model=32, heads=2, layers=2,
                     mlp_dim=64)  # fmt: skip
    tc = TrainConfig(ensemble_size=args.members, steps=args.steps, batch_size=args.batch,
                     log_every=args.steps, warmup_steps=10)  # fmt: skip
    data = synthetic_data(args.pairs, np.random.default_rng(0))
    key = jax.random.key(0)
    n_comp = args.members * args.steps * args.batch  # comparisons processed by either method
    if args.mesh is not None:
        bench_mesh(mc, tc, data, key, args.mesh, n_comp)
        return

    t_full, t_fused, hist = timed(mc, tc, data, key, None)  # the second run reuses the programs
    t_seq = sequential(mc, dataclasses.replace(tc), data, key)
    # One member through the same fused program: its step is pure compute (no dispatch), so
    # t_seq / (K·t_one) bounds what fusing can gain unless batching members saves compute.
    _, t_one, _ = timed(mc, dataclasses.replace(tc, ensemble_size=1), data, key, None)

    fused, seq = n_comp / t_fused, n_comp / t_seq
    ms = 1e3 / (args.members * args.steps)  # seconds of a whole run → ms per member-step
    print(f"device: {jax.devices()[0].device_kind}, {len(jax.devices())} device(s)")
    print(f"K={args.members} members, {args.pairs} comparisons, {args.steps} steps x "
          f"{args.batch} pairs per member; final loss {hist[-1]['loss']:.4f}")  # fmt: skip
    print(f"fused vmap+scan : {fused:10.0f} comparisons/s ({t_fused:.2f} s)")
    print(f"per-step nnx.jit: {seq:10.0f} comparisons/s ({t_seq:.2f} s)")
    print(f"ratio fused/sequential: {fused / seq:.2f}x (goal >= 4x)")
    print(f"ms per member-step: per-step loop {t_seq * ms:.2f}, fused K={args.members} "
          f"{t_fused * ms:.2f}, fused K=1 {t_one * ms * args.members:.2f}; dispatch overhead of "
          f"the loop {(t_seq - args.members * t_one) * ms:.2f}")  # fmt: skip
    print(f"ceiling without cheaper per-member compute: {t_seq / (args.members * t_one):.2f}x")
    print(f"one full train_ensemble run incl. compilation: {t_full:.2f} s")


if __name__ == "__main__":
    main()
