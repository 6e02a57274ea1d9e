"""Benchmark of KL-regularised policy optimisation (paper §5: PPO, DPO, Best-of-N on tabulated worlds).

Run by hand, not a test:

    python benchmarks/bench_policy.py --steps 200 --seeds 4 [--table]

Measures PPO steps per second on a tabulated prefix-tree space three ways, in one process:
(1) fused: `nnx.split` once, `lax.scan` over steps inside one `jax.jit`, one seed;
(2) fused and vmapped over `--seeds` reward tables (steps x seeds per second);
(3) a per-step Python loop calling an `nnx.jit`-compiled step.
Compilation is excluded (each variant is run once to warm up). With `--table` it also times the
whole default win-rate table (`python -m experiments.win_rates`), wall and CPU time.

Legend: P prompts, Y leaves per prompt, S steps, K seeds.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rm_theory.policy import ppo, tables
from rm_theory.world import PrefixTreeSpace


def _timed(fn, *args) -> float:
    jax.block_until_ready(fn(*args))  # warm-up: compile
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--V", type=int, default=4)
    ap.add_argument("--L", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--baseline", default="loo")
    ap.add_argument("--table", action="store_true", help="also time the default win-rate table")
    a = ap.parse_args()

    tt = tables.tabulate(PrefixTreeSpace(V=a.V, L=a.L, num_prompts=a.prompts, seed=0))
    cfg = ppo.PPOConfig(steps=a.steps, batch=a.batch, baseline=a.baseline, log_every=a.steps)
    jt = tables.to_jax(tt)
    r = jnp.asarray(tt.gold_XxY, jnp.float32)
    print(
        f"space V={a.V} L={a.L} P={a.prompts} (Y={tt.Y} leaves/prompt), batch {a.batch}/prompt, "
        f"baseline {a.baseline}, devices {jax.devices()}, CPUs {os.cpu_count()}"
    )
    with jax.threefry_partitionable(False):
        graphdef, state = ppo.init_policy(tt, cfg.lr)
        run = ppo.make_ppo_run(graphdef, cfg)
        fused = jax.jit(run)
        dt = _timed(fused, state, jt, r, jax.random.key(0))
        print(f"fused (scan in jit), 1 seed:   {a.steps / dt:9.1f} steps/s")
        vm = jax.jit(jax.vmap(run, in_axes=(None, None, 0, 0)))
        rK = jnp.stack([r] * a.seeds)
        dt = _timed(vm, state, jt, rK, jax.random.split(jax.random.key(0), a.seeds))
        print(f"fused + vmap over {a.seeds} seeds:   {a.steps * a.seeds / dt:9.1f} seed-steps/s")

        model, opt = nnx.merge(graphdef, state)

        @nnx.jit
        def step(model, opt, base_P, key):
            return ppo.ppo_step(model, opt, jt, cfg, r, base_P, key)

        key, base = jax.random.key(0), jnp.zeros(tt.P)
        jax.block_until_ready(step(model, opt, base, key))
        t = time.perf_counter()
        for i in range(a.steps):
            base = step(model, opt, base, jax.random.fold_in(key, i))
        jax.block_until_ready(base)
        print(f"per-step nnx.jit Python loop:   {a.steps / (time.perf_counter() - t):9.1f} steps/s")

    if a.table:
        with tempfile.TemporaryDirectory() as d:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "experiments.win_rates", f"hydra.run.dir={d}"],
                check=True,
                capture_output=True,
            )
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        load = os.getloadavg()[0]
        print(f"default win-rate table: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU (load average {load:.1f})")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
