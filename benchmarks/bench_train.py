"""Training throughput of a K-member reward-model ensemble (K = 8 causal transformers, d = 32, 2 layers,
64 pairs per member and step): the fused program of `rm_theory.rm.train` (vmap over members, lax.scan
over steps, one jit) against a PyTorch peer and against the plain per-step loop, in the same process.

Run by hand:  python benchmarks/bench_train.py [--members 8 --pairs 20000 --steps 200 --rounds 2]
(PyTorch from the `bench` extra: pip install -e .[bench]; without it the peer is skipped with a note.)
Prints, with the load average beside the figures (the machine may be shared: compare only the ratios
of one run):
- the FLOPs of one member-step (`train_flops`: forward matmuls counted analytically, x3 for forward
  + backward) and the matmul peak of this machine (a 2048^2 fp32 matmul in jax and in torch);
- comparisons/s and GFLOP/s of the fused program;
- comparisons/s and GFLOP/s of each PyTorch variant ("eager": bmm over the member axis with an
  explicit softmax attention, "sdpa": F.scaled_dot_product_attention, "compile": torch.compile of
  the loss), with its parameter count and its initial loss against the trainer's on a fixed batch
  (the peer starts from the JAX members' parameters, so both must agree to float rounding);
  each variant is timed `--rounds` times alternating with a run of the fused program, best of each;
- the ratio project / best PyTorch variant (goal >= 1.5x);
- the secondary figure: fused against members one after another with one `nnx.jit` call per step
  (compilation excluded: each is warmed up first), and ms per member-step of both.
--no-torch and --no-loop skip those parts. The peer's OpenMP threads wait passively (see below).

Measured (2 cores shared, load 5.9-6.9, --steps 40 --rounds 1): project 2351 comparisons/s (6.6 GFLOP/s),
torch eager 1583, sdpa 1598, torch.compile 3741 (10.5 GFLOP/s); matmul peak 47 (jax) / 64 (torch)
GFLOP/s: the project runs at 0.63x of the best peer, short of the 1.5x goal. Thunk profile of the
fused step: matmuls 34% of the time, layout copies/transposes 26%, reductions 21%, elementwise 19%.

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

# PyTorch's OpenMP threads spin while they wait; on a shared (oversubscribed) machine they then lose
# their time slices and the peer runs 3-4x slower than it can (torch eager at load 6: 429 against
# 1583 comparisons/s with PASSIVE). Passive waiting is what a fair user sets there; override with
# OMP_WAIT_POLICY=ACTIVE. It must precede torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rm_theory.rm import (
    ModelConfig,
    TrainConfig,
    loss_and_metrics,
    losses,
    make_model,
    make_optimizer,
    make_schedule,
    setup_ensemble,
    step_config,
    train_ensemble,
)
from rm_theory.rm import sharding as distributed
from rm_theory.world import PrefData


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


# ---------------------------------------------------------------------------------------------
# The PyTorch peer: the same model, loss and optimizer, members batched as one model with a
# leading member axis K on every parameter (torch.bmm over members), started from the JAX
# members' initial parameters so both compute the same thing from step 0.


def torch_peer(mc: ModelConfig, tc: TrainConfig, data: PrefData, key: jax.Array, variant: str):
    """(step(t) that runs training step t of all K members, loss_K(tokens, y) of a fixed batch,
    parameter count). variant: "eager" (explicit softmax attention), "sdpa"
    (F.scaled_dot_product_attention), "compile" (torch.compile of the loss, forward + backward)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    _, state_K, _, boot, _ = setup_ensemble(mc, tc, data, key)
    p = jax.tree.map(lambda v: torch.tensor(np.asarray(v)), nnx.to_pure_dict(state_K[0]))
    blocks = [p["blocks"][i] for i in range(mc.layers)]
    params = [p["tok"]["embedding"], p["pos"]["embedding"], p["ln_f"]["scale"], p["ln_f"]["bias"],
              p["head"]["kernel"], p["head"]["bias"]]  # fmt: skip
    params += [blk[m][n] for blk in blocks for m in ("ln1", "qkv", "out", "ln2", "fc1", "fc2") for n in blk[m]]
    for v in params:
        v.requires_grad_(True)
    K, D, H, L = tc.ensemble_size, mc.d_model, mc.heads, mc.max_len
    eps = nnx.LayerNorm(1, rngs=nnx.Rngs(0)).epsilon  # flax's default, 1e-6 (torch's is 1e-5)

    def ln(h, q):  # h [K, R, D]
        return F.layer_norm(h, (D,), eps=eps) * q["scale"][:, None] + q["bias"][:, None]

    def linear(h, q):  # h [K, R, in] @ kernel [K, in, out] + bias
        return torch.baddbmm(q["bias"][:, None], h, q["kernel"])

    def scores(tok_KxMxT):
        _, M, T = tok_KxMxT.shape
        mask = tok_KxMxT > 0
        pos = (mask.cumsum(-1) - 1).clamp(0, L - 1)
        k_K11 = torch.arange(K)[:, None, None]
        h = (p["tok"]["embedding"][k_K11, tok_KxMxT] + p["pos"]["embedding"][k_K11, pos]).reshape(K, M * T, D)
        allow = (torch.ones(T, T, dtype=torch.bool).tril() & mask[:, :, None, :]).reshape(K * M, 1, T, T)
        for blk in blocks:
            qkv = linear(ln(h, blk["ln1"]), blk["qkv"]).reshape(K * M, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
            if variant == "sdpa":
                att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=allow)
            else:
                logits = qkv[0] @ qkv[1].transpose(-1, -2) / (D // H) ** 0.5
                att = torch.softmax(logits.masked_fill(~allow, -1e30), -1) @ qkv[2]
            h = h + linear(att.transpose(1, 2).reshape(K, M * T, D), blk["out"])
            h = h + linear(F.gelu(linear(ln(h, blk["ln2"]), blk["fc1"]), approximate="tanh"), blk["fc2"])
        h = ln(h, p["ln_f"]).reshape(K, M, T, D)
        last = (mask * torch.arange(T)).amax(-1)
        h_last = torch.gather(h, 2, last[:, :, None, None].expand(K, M, 1, D))[:, :, 0]
        return linear(h_last, p["head"])[..., 0]  # [K, M]

    def loss_K(tok_KxMxT, y_KxB):
        r = scores(tok_KxMxT)
        B = y_KxB.shape[1]
        d = r[:, :B] - r[:, B:]
        bt = -(y_KxB * F.logsigmoid(d) + (1 - y_KxB) * F.logsigmoid(-d)).mean(1)
        return bt + tc.centre_coef * r.mean(1) ** 2 + tc.l2_coef * (r**2).mean(1)

    def total(tok, y):
        return loss_K(tok, y).sum()  # members are independent: d(sum)/dθ_k = d(loss_k)/dθ_k

    total_fn = torch.compile(total) if variant == "compile" else total
    # optax adamw's defaults; weight decay on every parameter, as optax applies it without a mask
    opt = torch.optim.AdamW(params, lr=0.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=tc.weight_decay, fused=True)
    lr_S = np.asarray(jax.vmap(make_schedule(tc))(jnp.arange(tc.steps)))
    x, a, b = (torch.from_numpy(np.asarray(v)).long() for v in (data.x, data.a_P, data.b_P))
    y_P = torch.from_numpy(np.asarray(data.pref_P, np.float32))
    boot_KxP = torch.from_numpy(np.array(boot["pair"][:, : data.n_pairs])).long()  # unpadded

    def step(t: int) -> None:
        i_KxB = boot_KxP.gather(1, torch.randint(boot_KxP.shape[1], (K, tc.batch_size)))
        loss = total_fn(torch.cat([x[a[i_KxB]], x[b[i_KxB]]], 1), y_P[i_KxB])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # clip_by_global_norm per member: the norm over all of member k's grads
            sq_K = sum(v.grad.pow(2).flatten(1).sum(1) for v in params)
            scale_K = torch.clamp(tc.clip_norm / sq_K.sqrt(), max=1.0)
            for v in params:
                v.grad.mul_(scale_K.view(-1, *[1] * (v.dim() - 1)))
        opt.param_groups[0]["lr"] = float(lr_S[min(t, tc.steps - 1)])
        opt.step()

    def fixed_loss(tok_KxMxT: np.ndarray, y_KxB: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loss_K(torch.from_numpy(tok_KxMxT).long(), torch.from_numpy(y_KxB)).numpy()

    return step, fixed_loss, sum(v[0].numel() for v in params)


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


def jax_fixed_loss(mc, tc, data, key, tok_KxMxT, y_KxB) -> np.ndarray:
    """Each member's initial loss (the trainer's own loss function) on a fixed batch."""
    graphdef, state_K, *_ = setup_ensemble(mc, tc, data, key)
    B = y_KxB.shape[1]

    def one(state, tok_MxT, y_B):
        model, _ = nnx.merge(graphdef, state)
        return loss_and_metrics(model, {"xa": tok_MxT[:B], "xb": tok_MxT[B:], "pair_y": y_B}, step_config(tc))[0]

    return np.asarray(jax.vmap(one)(state_K, jnp.asarray(tok_KxMxT), jnp.asarray(y_KxB)))


def train_flops(mc: ModelConfig, B: int, T: int) -> float:
    """Matmul FLOPs of one member-step (forward + backward = 3x forward; the backward computes
    two matmuls per forward one). Forward, per layer over M = 2B sequences of T slots:
    projections 2·M·T·(3D² + D² + 2·D·F), attention 2·M·H·T²·(D/H)·2 (QKᵀ and AV); head 2·M·D."""
    M, D, F, n = 2 * B, mc.d_model, mc.mlp_dim, mc.layers
    fwd = n * (2 * M * T * (4 * D * D + 2 * D * F) + 4 * M * T * T * D) + 2 * M * D
    return 3.0 * fwd


def matmul_peak(n: int = 2048, reps: int = 5) -> tuple[float, float | None]:
    """GFLOP/s of an n×n fp32 matmul in jax and in torch (2 threads), best of reps."""
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    mm(a, a).block_until_ready()
    t = min(_time(lambda: mm(a, a).block_until_ready()) for _ in range(reps))
    try:
        import torch
    except ImportError:
        return 2 * n**3 / t / 1e9, None
    torch.set_num_threads(2)
    ta = torch.ones(n, n)
    t2 = min(_time(lambda: torch.mm(ta, ta)) for _ in range(reps))
    return 2 * n**3 / t / 1e9, 2 * n**3 / t2 / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def load() -> str:
    return "load " + " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else ""


def bench_torch(mc, tc, data, key, rounds: int, t_fused: float, n_comp: int, flop: float) -> float:
    """PyTorch variants against the fused program; each variant timed in `rounds` rounds
    alternating with the project's run (best of each: the machine may be shared). Returns the
    project's best time, for the secondary ratio."""
    try:
        import torch
    except ImportError:
        print("PyTorch not installed (pip install -e .[bench]): no peer comparison")
        return t_fused
    B, K = tc.batch_size, tc.ensemble_size
    rng = np.random.default_rng(1)
    i_KxB = rng.integers(0, data.n_pairs, (K, B))
    tok_KxMxT = np.concatenate([data.x[data.a_P[i_KxB]], data.x[data.b_P[i_KxB]]], 1)
    y_KxB = np.asarray(data.pref_P)[i_KxB]
    l_jax = jax_fixed_loss(mc, tc, data, key, tok_KxMxT, y_KxB)
    n_jax = sum(v.size for v in jax.tree.leaves(nnx.state(make_model(mc, nnx.Rngs(0)), nnx.Param)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}; parameters per member: "
          f"jax {n_jax}, torch (below)")  # fmt: skip
    best, project_runs = {"project": t_fused}, 1
    for variant in ("eager", "sdpa", "compile"):
        try:
            t0 = time.perf_counter()
            step, fixed_loss, n_torch = torch_peer(mc, tc, data, key, variant)
            l_torch = fixed_loss(tok_KxMxT, y_KxB)  # before any step: the same initial parameters
            for t in range(3):  # warm-up (and compilation)
                step(t)
            t_warm = time.perf_counter() - t0
        except Exception as e:  # noqa: BLE001 -- a failing variant is reported, not fatal
            print(f"pytorch {variant:8s}: failed ({type(e).__name__}: {str(e)[:200]})")
            continue
        ts = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for t in range(tc.steps):
                step(t)
            ts.append(time.perf_counter() - t0)
            best["project"] = min(best["project"], timed_fused(mc, tc, data, key))
            project_runs += 1
        best[variant] = min(ts)
        print(f"pytorch {variant:8s}: {n_comp / best[variant]:8.0f} comparisons/s "
              f"({flop / best[variant] / 1e9:5.1f} GFLOP/s; {n_torch} parameters per member; "
              f"initial loss max |torch - jax| {np.max(np.abs(l_torch - l_jax)):.1e} at "
              f"{np.mean(l_jax):.4f}; warm-up {t_warm:.1f} s; {load()})")  # fmt: skip
    peers = {k: v for k, v in best.items() if k != "project"}
    if peers:
        name = min(peers, key=peers.get)
        print(f"project fused    : {n_comp / best['project']:8.0f} comparisons/s "
              f"({flop / best['project'] / 1e9:5.1f} GFLOP/s; best of {project_runs} runs)")  # fmt: skip
        print(f"ratio project / best PyTorch ({name}): {peers[name] / best['project']:.2f}x (goal >= 1.5x)")
    return best["project"]


def timed_fused(mc, tc, data, key) -> float:
    """Seconds of one full fused training run, its programs already compiled."""
    t0 = time.perf_counter()
    ens, _ = train_ensemble(mc, tc, data, key, progress=False)
    jax.block_until_ready(ens.state_K)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--pairs", type=int, default=20000)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2, help="timed runs of each PyTorch variant")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--no-loop", action="store_true", help="skip the per-step loop")
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
    flop = args.members * args.steps * train_flops(mc, args.batch, data.x.shape[1])
    print(f"device: {jax.devices()[0].device_kind}, {len(jax.devices())} device(s), {os.cpu_count()} CPU cores; "
          f"{load()}")  # fmt: skip
    print(f"K={args.members} members, {args.pairs} comparisons, {args.steps} steps x "
          f"{args.batch} pairs per member; final loss {hist[-1]['loss']:.4f}")  # fmt: skip
    print(f"FLOPs per member-step (3 x forward matmuls, see train_flops): {flop / n_comp * args.batch / 1e6:.1f} M")
    peak_jax, peak_torch = matmul_peak()
    print(f"matmul peak (2048^2 fp32): jax {peak_jax:.1f} GFLOP/s, torch "
          f"{'-' if peak_torch is None else f'{peak_torch:.1f}'} GFLOP/s; {load()}")  # fmt: skip
    print(f"fused vmap+scan : {n_comp / t_fused:8.0f} comparisons/s ({t_fused:.2f} s, "
          f"{flop / t_fused / 1e9:.1f} GFLOP/s; {t_full:.2f} s with compilation)")  # fmt: skip
    if not args.no_torch:
        # the loop below is compared with the fused program's best run, not its first
        t_fused = bench_torch(mc, tc, data, key, args.rounds, t_fused, n_comp, flop)
    if args.no_loop:
        return
    t_seq = sequential(mc, dataclasses.replace(tc), data, key)
    # One member through the same fused program: its step is pure compute (no dispatch), so
    # t_seq / (K·t_one) bounds what fusing can gain unless batching members saves compute.
    _, t_one, _ = timed(mc, dataclasses.replace(tc, ensemble_size=1), data, key, None)
    ms = 1e3 / (args.members * args.steps)  # seconds of a whole run → ms per member-step
    print(f"per-step nnx.jit: {n_comp / t_seq:8.0f} comparisons/s ({t_seq:.2f} s); ratio fused/loop "
          f"{t_seq / t_fused:.2f}x (secondary figure); {load()}")  # fmt: skip
    print(f"ms per member-step: per-step loop {t_seq * ms:.2f}, fused K={args.members} "
          f"{t_fused * ms:.2f}, fused K=1 {t_one * ms * args.members:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
