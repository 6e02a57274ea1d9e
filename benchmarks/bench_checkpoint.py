"""Overhead of training checkpoints: the same `train_ensemble` run without checkpoints, with
synchronous saves and with asynchronous saves (the default), at two intervals.

    python benchmarks/bench_checkpoint.py [--steps 3000] [--log_every 100]

Prints wall seconds per configuration (after a warm-up run that compiles) and the overhead
against the run without checkpoints. The resumed-run tests pin that the results are equal.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from unittest import mock

import jax
import numpy as np

from benchmarks.bench_train import synthetic_data
from rm_theory.rm import ModelConfig, TrainConfig, train_ensemble
from rm_theory.rm import checkpoint as ckpt


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--log_every", type=int, default=100)
    p.add_argument("--members", type=int, default=4)
    args = p.parse_args()
    mc = ModelConfig(family="mlp", vocab=20, max_len=13, hidden=(64, 64))
    tc = TrainConfig(ensemble_size=args.members, steps=args.steps, batch_size=64, log_every=args.log_every)
    d, key = synthetic_data(4096, np.random.default_rng(0)), jax.random.key(0)
    train_ensemble(mc, tc, d, key, progress=False)  # compile once

    def run(every: int | None, asynchronous: bool = True) -> float:
        with (
            tempfile.TemporaryDirectory() as tmp,
            mock.patch.object(
                ckpt,
                "open_manager",
                lambda dir_, **kw: ckpt.ocp.CheckpointManager(
                    dir_,
                    options=ckpt.ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=asynchronous),
                ),
            ),
        ):
            t = time.perf_counter()
            train_ensemble(
                mc,
                dataclasses.replace(tc, checkpoint_every=every or 0),
                d,
                key,
                progress=False,
                checkpoint_dir=None if every is None else tmp,
            )
            return time.perf_counter() - t

    base = run(None)
    print(f"{args.members} members, {args.steps} steps, log_every {args.log_every}: no checkpoints {base:.2f} s")
    for every in (args.log_every, 5 * args.log_every):
        for asynchronous in (False, True):
            t = run(every, asynchronous)
            kind = "async" if asynchronous else "sync "
            print(f"checkpoint_every {every:5d} {kind}: {t:.2f} s ({t / base:.2f}x)")


if __name__ == "__main__":
    main()
