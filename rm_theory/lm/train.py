"""Fine-tuning score models on preference pairs (`finetune`): reward models by Bradley–Terry, with a
margin and a centring term, and Safe RLHF's cost model; full fine-tuning, the top layers only, LoRA,
or the head alone; ensembles of K heads or K LoRA adapters on one shared backbone. What a step
optimises and trains is `step`'s, the compiled programs and the trained ensemble `program`'s, the mesh
`sharding`'s; this module runs the steps.

The order of the steps (`make_schedule`): pairs are bucketed by length (`text.choose_buckets`: at most
`buckets` padded lengths, the fewest padded tokens), each bucket's pairs shuffled into steps of
`grad_accum` microbatches of `batch_size` pairs, the steps of a bucket grouped into chunks of
`chunk_steps` (one compiled scan each), the chunks shuffled within each epoch; `max_steps` cuts the
run (the learning-rate schedule is cut, not stretched). Checkpoints (`rm.checkpoint`, Orbax) at chunk
ends, every `checkpoint_every` steps and at the end: the batches are a pure function of (data,
config, key), so a resumed run replays the same steps to the same bits, and a checkpoint of another
model, data, config or key is refused (its fingerprint).

Legend: P pairs, K ensemble members, S steps (of a chunk), Sm microbatches (of a step), Sr steps (of
the run), B batch (the pairs of a microbatch), T tokens, G groups of labels (a vector model's preference
heads), C harm categories.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from rm_theory.lm.lora import add_lora
from rm_theory.lm.program import Finetuned, chunk_program
from rm_theory.lm.score import ScoreModel
from rm_theory.lm.sharding import param_shardings, place, row_sharding, state_shardings
from rm_theory.lm.step import FinetuneConfig, adamw, filters, init_members, lr_schedule, step_config
from rm_theory.lm.text import choose_buckets
from rm_theory.rm.multidim import SEVERITY_CLASSES
from rm_theory.rm.sharding import to_host

log = logging.getLogger(__name__)

ROW_AXIS = {
    "ids": 3,
    "types": 3,
    "len": 3,
    "safe": 3,
    "cat": 3,
    "sev": 3,
    "w": 3,
    "y": 2,
    "margin": 2,
}  # of a chunk's inputs


@dataclasses.dataclass
class Pairs:
    """Preference pairs as token ids: side a and side b of each (prompt and response, at most the
    model's positions: `text.fit_pairs` makes them) and the labels.

    `y_P`: reward, 1 = a preferred, 0 = b, 0.5 a tie; cost, 1 = a is the safer (lower cost), 0 = b;
    vector, [P, G]: each head's label, NaN where the pair is not labelled on it.
    `safe_a_P` / `safe_b_P` (cost, vector): 1 safe, 0 unsafe, NaN unknown. `margin_P` (reward,
    vector): each pair's margin, added to the config's. Vector only: `category_a_PxC` /
    `category_b_PxC` (1 in the category, 0 not, NaN unknown) and `severity_a_P` / `severity_b_P`
    (0 safe to 3 severe, −1 unknown).
    """

    ids_a: Sequence[Sequence[int]]
    ids_b: Sequence[Sequence[int]]
    y_P: np.ndarray
    types_a: Sequence[Sequence[int]] | None = None
    types_b: Sequence[Sequence[int]] | None = None
    safe_a_P: np.ndarray | None = None
    safe_b_P: np.ndarray | None = None
    margin_P: np.ndarray | None = None
    category_a_PxC: np.ndarray | None = None
    category_b_PxC: np.ndarray | None = None
    severity_a_P: np.ndarray | None = None
    severity_b_P: np.ndarray | None = None

    LABELS = (
        "y_P",
        "safe_a_P",
        "safe_b_P",
        "margin_P",
        "category_a_PxC",
        "category_b_PxC",
        "severity_a_P",
        "severity_b_P",
    )

    def __len__(self) -> int:
        return len(self.ids_a)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([len(x) for x in self.ids_a], np.int64), np.array([len(x) for x in self.ids_b], np.int64)

    def check(self, max_len: int) -> None:
        P_ = len(self)
        for name in ("ids_b", "types_a", "types_b", *self.LABELS):
            v = getattr(self, name)
            if v is not None and len(v) != P_:
                raise ValueError(f"Pairs.{name}: {len(v)} entries for {P_} pairs")
        if P_ == 0:
            raise ValueError("no pairs to train on")
        for name, len_P in zip(("ids_a", "ids_b"), self.lengths(), strict=True):
            if (len_P > max_len).any() or (len_P == 0).any():
                i = int(np.argmax((len_P > max_len) | (len_P == 0)))
                raise ValueError(
                    f"Pairs.{name}[{i}] has {len_P[i]} tokens: each side needs 1 to {max_len} (the model's "
                    "positions); fit prompt and response with rm_theory.lm.fit_pairs first"
                )


def make_schedule(bucket_P: np.ndarray, J: int, cfg: FinetuneConfig, rng: np.random.Generator) -> list:
    """[(bucket j, idx [S, Sm, B] of pair indices, -1 for none)] in run order: per epoch, each
    bucket's pairs shuffled into steps of Sm·B pairs (its last step partly empty), grouped into chunks
    of S steps (its last chunk padded with empty steps), the chunks shuffled."""
    S, Sm, B = cfg.chunk_steps, cfg.grad_accum, cfg.batch_size
    out = []
    for _ in range(cfg.epochs):
        chunks = []
        for j in range(J):
            rows = np.flatnonzero(bucket_P == j)
            if len(rows) == 0:
                continue
            n_steps = -(-len(rows) // (Sm * B))
            n_chunks = -(-n_steps // S)
            idx = np.full(n_chunks * S * Sm * B, -1, np.int64)
            idx[: len(rows)] = rows[rng.permutation(len(rows))]
            chunks += [(j, c) for c in idx.reshape(n_chunks, S, Sm, B)]
        out += [chunks[i] for i in rng.permutation(len(chunks))]
    return out


def _steps_of(idx_SxSmxB: np.ndarray) -> np.ndarray:
    """[S] True for the steps with at least one pair."""
    return (idx_SxSmxB >= 0).any(axis=(1, 2))


def _host_batches(pairs: Pairs, arrays: dict, idx_SxSmxB: np.ndarray, T: int, w_KxP: np.ndarray, pad_id: int) -> dict:
    """The chunk's inputs (see `chunk_program`), gathered on the host."""
    S, Sm, B = idx_SxSmxB.shape
    valid = idx_SxSmxB >= 0
    i = np.where(valid, idx_SxSmxB, 0)
    ids = np.full((S, Sm, 2, B, T), pad_id, np.int32)
    types = np.zeros((S, Sm, 2, B, T), np.int32) if pairs.types_a is not None else None
    lens = np.zeros((S, Sm, 2, B), np.int32)
    for side, (seqs, tseqs) in enumerate(((pairs.ids_a, pairs.types_a), (pairs.ids_b, pairs.types_b))):
        for s, a, b in zip(*np.nonzero(valid), strict=True):
            x = seqs[i[s, a, b]]
            ids[s, a, side, b, : len(x)] = x
            lens[s, a, side, b] = len(x)
            if types is not None:
                types[s, a, side, b, : len(x)] = tseqs[i[s, a, b]]
    out = {
        "ids": ids,
        "len": lens,
        "y": arrays["y"][i].astype(np.float32),
        "safe": np.moveaxis(arrays["safe"][:, i], 0, 2).astype(np.float32),
        "margin": arrays["margin"][i].astype(np.float32),
        "w": np.moveaxis(w_KxP[:, i] * valid, 0, 2).astype(np.float32),
    }
    if types is not None:
        out["types"] = types
    if "cat" in arrays:
        out["cat"] = np.moveaxis(arrays["cat"][:, i], 0, 2).astype(np.float32)
        out["sev"] = np.moveaxis(arrays["sev"][:, i], 0, 2).astype(np.int32)
    return out


def _labels(pairs: Pairs, model: ScoreModel, cfg: FinetuneConfig) -> dict:
    """The pairs' labels as the chunks read them (`_host_batches`); a vector model's checked against
    its heads and categories."""
    P_ = len(pairs)
    nan = np.full(P_, np.nan, np.float32)
    side = lambda a, b, fill: np.stack([fill if a is None else np.asarray(a, np.float32), fill if b is None else b])
    y = np.asarray(pairs.y_P, np.float32)
    arrays = {
        "y": y,
        "safe": side(pairs.safe_a_P, pairs.safe_b_P, nan),
        "margin": np.zeros(P_, np.float32) if pairs.margin_P is None else np.asarray(pairs.margin_P, np.float32),
    }
    vector = cfg.objective == "vector"
    if vector != (model.kind == "vector"):
        raise ValueError(
            f"objective = {cfg.objective!r} trains a {'vector' if vector else 'score'} model; "
            f"this one is a {model.kind!r} model"
        )
    if not vector:
        if y.ndim != 1:
            raise ValueError(f"Pairs.y_P has shape {y.shape}: a {cfg.objective} model takes one label per pair")
        return arrays
    G, C = len(model.heads), len(model.harm_categories)
    if y.shape != (P_, G):
        raise ValueError(
            f"Pairs.y_P has shape {y.shape}: the vector model needs [pairs, heads] = [{P_}, {G}] ({list(model.heads)})"
        )
    arrays["cat"] = side(pairs.category_a_PxC, pairs.category_b_PxC, np.full((P_, C), np.nan, np.float32))
    if arrays["cat"].shape != (2, P_, C):
        raise ValueError(f"Pairs.category_*_PxC: {arrays['cat'].shape[-1]} categories, the model has {C}")
    arrays["sev"] = side(pairs.severity_a_P, pairs.severity_b_P, np.full(P_, -1.0, np.float32))
    if not np.isin(arrays["sev"], np.arange(-1, SEVERITY_CLASSES)).all():
        raise ValueError(f"Pairs.severity_*_P: levels are 0 to {SEVERITY_CLASSES - 1}, or -1 for unknown")
    return arrays


def _fingerprint(model: ScoreModel, pairs: Pairs, cfg: FinetuneConfig, key: jax.Array, buckets) -> dict:
    h = hashlib.sha256()
    for seqs in (pairs.ids_a, pairs.ids_b):
        for x in seqs:
            h.update(np.asarray(x, np.int32).tobytes() + b"|")
    for name in pairs.LABELS:
        if getattr(pairs, name) is not None:
            h.update(name.encode() + np.asarray(getattr(pairs, name), np.float32).tobytes())
    fp = {
        "config": dataclasses.asdict(dataclasses.replace(cfg, checkpoint_every=0, eval_every=0)),
        "model": json.dumps(model.config, sort_keys=True, default=str),
        "pooling": model.pooling,
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "pairs": [len(pairs), h.hexdigest()],
        "buckets": list(buckets),
    }
    return json.loads(json.dumps(fp))


def finetune(
    model: ScoreModel,
    pairs: Pairs,
    cfg: FinetuneConfig,
    key: jax.Array,
    *,
    mesh: Mesh | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    log_fn: Callable[[int, dict], None] | None = None,
    eval_fn: Callable[[Finetuned], dict] | None = None,
    progress: bool = True,
) -> tuple[Finetuned, list[dict]]:
    """Fine-tune `model` on `pairs`; returns the trained ensemble and one metrics row per chunk.

    `model` is changed in place: mode "lora" adds adapters where it has none, and at the end its net
    holds member 0's trained parameters. `checkpoint_dir` resumes a run of the same model, pairs,
    config and key from its last checkpoint (and saves one every `checkpoint_every` steps and at the
    end). `eval_fn(result)` is called every `eval_every` steps and at the end; its dict joins that
    step's row (a learning curve). `mesh` (`make_mesh`) shards the run.
    """
    cfg.check()
    pairs.check(model.max_len)
    arrays = _labels(pairs, model, cfg)
    K = cfg.ensemble_size
    if mesh is not None and cfg.batch_size % mesh.size:
        raise ValueError(f"batch_size = {cfg.batch_size}: must be a multiple of the {mesh.size} devices")
    net = model.net
    if cfg.mode == "top_k" and cfg.top_layers > net.cfg.n_layers:
        raise ValueError(f"top_layers = {cfg.top_layers}: the model has {net.cfg.n_layers} layers")
    if cfg.mode == "lora" and not any(isinstance(v, nnx.LoRAParam) for _, v in nnx.iter_graph(net)):
        add_lora(
            model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets, seed=int(jax.random.randint(key, (), 0, 2**30))
        )
    member_f, shared_f = filters(cfg, net.cfg.n_layers)
    graphdef, members0, shared, frozen = nnx.split(net, member_f, shared_f, ...)
    share_backbone = cfg.mode != "lora"
    k_init, k_boot, k_order = jax.random.split(key, 3)
    members_K = init_members(members0, K, k_init, net.cfg.init_std)

    # Buckets and the order of the steps: a pure function of the pairs, the config and the key.
    len_a, len_b = pairs.lengths()
    len_P = np.maximum(len_a, len_b)
    buckets = choose_buckets(len_P, model.max_len, cfg.buckets)
    bucket_P = np.searchsorted(np.asarray(buckets), len_P)
    seed_words = np.asarray(jax.random.key_data(k_order)).ravel().tolist()
    rng = np.random.default_rng(seed_words)
    schedule = make_schedule(bucket_P, len(buckets), cfg, rng)
    active = np.concatenate([_steps_of(c) for _, c in schedule])
    total = int(active.sum())
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    # the chunks that hold the first `total` active steps; steps past the cap are emptied
    ends = np.cumsum([_steps_of(c).sum() for _, c in schedule])
    schedule = schedule[: int(np.searchsorted(ends, total)) + 1]
    over = int(ends[len(schedule) - 1] - total)
    if over:
        j, c = schedule[-1]
        c = c.copy()
        c[np.flatnonzero(_steps_of(c))[-over:]] = -1
        schedule[-1] = (j, c)
    lr_Sr = lr_schedule(cfg, total)
    w_KxP = np.ones((K, len(pairs)), np.float32)
    if cfg.bootstrap:
        w_KxP = np.asarray(jax.random.poisson(k_boot, 1.0, (K, len(pairs))), np.float32)

    tx = adamw(cfg)
    state = (shared, members_K, tx.init(shared), jax.vmap(tx.init)(members_K))
    state = jax.tree.map(lambda v: jnp.asarray(np.asarray(v)), state)  # uncommitted: one compile for all calls
    frozen = jax.tree.map(lambda v: jnp.asarray(np.asarray(v)), frozen)
    if mesh is not None:
        state = place(state, state_shardings(state, mesh))
        frozen = place(frozen, param_shardings(frozen, mesh))

    history: list[dict] = []
    start, t = 0, 0
    fp = _fingerprint(model, pairs, cfg, key, buckets)
    if checkpoint_dir is not None:
        from rm_theory.rm import checkpoint as ckpt  # Orbax: imported only by runs that checkpoint

    mgr = ckpt.open_manager(checkpoint_dir) if checkpoint_dir is not None else None
    if mgr is not None:
        restored = ckpt.restore_latest(mgr, {"state": state})
        if restored is not None:
            got, meta = restored
            if meta["fingerprint"] != fp:
                raise ValueError(f"{checkpoint_dir} holds a run of another model, data, config or key")
            state = jax.tree.map(lambda v: jnp.asarray(np.asarray(v)), got["state"])
            if mesh is not None:
                state = place(state, state_shardings(state, mesh))
            start, t, history = int(meta["chunk"]), int(meta["step"]), list(meta["history"])
            log.info("resuming fine-tuning from step %d of %d (%s)", t, total, checkpoint_dir)

    has_types = pairs.types_a is not None
    program = chunk_program(graphdef, step_config(cfg), share_backbone, has_types, mesh, model.harm_head_index)

    def result(state) -> Finetuned:
        return Finetuned(model, graphdef, state[0], frozen, state[1], share_backbone, buckets, mesh)

    bar = tqdm(total=total, initial=t, disable=not progress, desc=f"finetune {cfg.objective}", leave=False)
    next_eval = (t // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (t // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else None
    try:
        t_last = time.perf_counter()
        for c in range(start, len(schedule)):
            j, idx_SxSmxB = schedule[c]
            steps_S = _steps_of(idx_SxSmxB)
            n = int(steps_S.sum())
            b = _host_batches(pairs, arrays, idx_SxSmxB, buckets[j], w_KxP, model.tokenizer.pad_id)
            lr_S = np.zeros(len(steps_S), np.float32)
            lr_S[steps_S] = lr_Sr[t : t + n]
            b["lr"] = lr_S
            n_pairs, n_tokens = int((idx_SxSmxB >= 0).sum()), int(b["len"].sum())
            if mesh is not None:
                b = place(
                    b,
                    {
                        k: NamedSharding(mesh, P()) if k == "lr" else row_sharding(mesh, ROW_AXIS[k], v.ndim)
                        for k, v in b.items()
                    },
                )
            state, aux = program(state, frozen, b)
            aux = to_host(aux)
            t += n
            now = time.perf_counter()  # the first chunk of a bucket includes its compile
            dt = now - t_last
            row = {
                "step": t,
                "chunk": c + 1,
                "bucket": buckets[j],
                "loss": float(aux["loss"][steps_S].mean()) if n else float("nan"),  # members' and steps' mean
                "acc": float(aux["hit"].sum() / aux["count"].sum()) if aux["count"].sum() else float("nan"),
                "lr": float(lr_S[steps_S][-1]) if n else 0.0,
                "grad_norm": float(aux["grad_norm"][steps_S].mean()) if n else 0.0,
                "pairs": n_pairs,
                "pairs_per_s": n_pairs / dt,
                "tokens_per_s": n_tokens / dt,  # real tokens, padding left out
                "padded_tokens_per_s": 2 * n_pairs * buckets[j] / dt,
            }
            done = c + 1 == len(schedule)
            if eval_fn is not None and (done or (next_eval is not None and t >= next_eval)):
                row |= eval_fn(result(state))
                while next_eval is not None and next_eval <= t:
                    next_eval += cfg.eval_every
            history.append(row)
            bar.update(n)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if mgr is not None and (done or (next_ckpt is not None and t >= next_ckpt)):
                ckpt.save(mgr, t, {"state": state}, {"chunk": c + 1, "step": t, "history": history, "fingerprint": fp})
                while next_ckpt is not None and next_ckpt <= t:
                    next_ckpt += cfg.checkpoint_every
            if log_fn is not None:
                log_fn(t, row)
            t_last = time.perf_counter()
    finally:
        bar.close()
        if mgr is not None:
            mgr.close()
    out = result(state)
    nnx.update(net, to_host(out.shared), jax.tree.map(lambda v: np.asarray(v[0]), to_host(out.members_K)))
    return out, history
