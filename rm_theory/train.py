"""Fused ensemble training of reward and cost models on comparison data (chain pairs and/or
tree groups), with Orbax checkpoints that resume bit-exactly.

One compiled program trains all K members: the (model, optimizer) state is split once, the
members are a leading vmap axis (own init key, own bootstrap resample, own minibatches), and the
steps of a chunk run in `lax.scan` inside `jax.jit`. Minibatch t of member k is drawn with
`fold_in(key_k, t)`, so a run is a pure function of (configs, data, key) and a resumed run
replays exactly the same steps.

Objectives: "reward" = Bradley–Terry on pairs + Plackett–Luce on ranked groups (+ score L2 and
centring); "cost" = Safe RLHF cost loss (arXiv 2310.12773 §3.2) + harm-category BCE.

Legend: N items, T padded length, D feature width, P pairs, G groups, Kg group size,
K ensemble members, B pairs per minibatch, Bg groups per minibatch, C harm categories, S steps.

Sharding (`mesh=`, see `rm_theory.distributed`): members split over the mesh's "member" axis,
each minibatch over its "data" axis; `mesh=None` is the plain single-device program.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rm_theory import checkpoint as ckpt
from rm_theory import distributed as dist
from rm_theory import losses
from rm_theory.models import ModelConfig, make_model

Arrays = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    objective: str = "reward"  # "reward" | "cost"
    ensemble_size: int = 4
    steps: int = 1000
    batch_size: int = 64  # pairs per member per step
    group_batch_size: int = 16  # tree groups per member per step
    lr: float = 1e-3
    warmup_steps: int = 50
    end_lr_frac: float = 0.1
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    bootstrap: bool = True  # each member trains on its own resample (with replacement)
    margin: float = 0.0
    pair_coef: float = 1.0
    group_coef: float = 1.0
    l2_coef: float = 0.0
    centre_coef: float = 1e-3
    rank_coef: float = 1.0
    sign_coef: float = 1.0
    harm_coef: float = 1.0
    log_every: int = 100  # steps per compiled chunk; one log row per chunk
    checkpoint_every: int = 0  # multiple of log_every; 0 = only at the end (with a directory)


@dataclasses.dataclass(frozen=True)
class PrefData:
    """Plain arrays. `x` is tokens_NxT (int, pad 0) or x_NxD (float). Preferences: pref = 1 means
    a ≻ b (0.5 = tie); safer = 1 means a is safer; safe = 1 means safe. group_GxKg lists item
    indices best first, −1 padded. severity_N is carried for evaluation; no loss uses it."""

    x: np.ndarray
    a_P: np.ndarray | None = None
    b_P: np.ndarray | None = None
    pref_P: np.ndarray | None = None
    safer_P: np.ndarray | None = None
    safe_N: np.ndarray | None = None
    harm_NxC: np.ndarray | None = None
    severity_N: np.ndarray | None = None
    group_GxK: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.x)

    @property
    def n_pairs(self) -> int:
        return 0 if self.a_P is None else len(self.a_P)

    @property
    def n_groups(self) -> int:
        return 0 if self.group_GxK is None else len(self.group_GxK)

    @property
    def has_safety(self) -> bool:
        return self.safe_N is not None or (self.n_pairs > 0 and self.safer_P is not None)


def to_device(data: PrefData, objective: str) -> Arrays:
    """The arrays an objective uses, as JAX arrays (absent labels are absent keys)."""
    x = np.asarray(data.x)
    d: Arrays = {
        "x": jnp.asarray(x, jnp.int32 if np.issubdtype(x.dtype, np.integer) else jnp.float32)
    }
    pairs = {"reward": data.pref_P, "cost": data.safer_P}.get(objective)
    if data.n_pairs and pairs is not None:
        d["a"] = jnp.asarray(data.a_P, jnp.int32)
        d["b"] = jnp.asarray(data.b_P, jnp.int32)
        d["pair_y"] = jnp.asarray(pairs, jnp.float32)  # pref (reward) or safer (cost)
    if objective == "reward":
        if data.n_groups:
            d["group"] = jnp.asarray(data.group_GxK, jnp.int32)
        if not (data.n_pairs or data.n_groups):
            raise ValueError("no comparisons to train on")
        if data.n_pairs and data.pref_P is None:
            raise ValueError("reward pairs need pref_P")
    elif objective == "cost":
        if not data.has_safety:
            raise ValueError("the cost objective needs safe_N and/or pairs with safer_P")
        # Item-level labels train on items drawn from all N (tree items included).
        if data.safe_N is not None:
            d["safe"] = jnp.asarray(data.safe_N, jnp.float32)
            if data.harm_NxC is not None:
                d["harm"] = jnp.asarray(data.harm_NxC, jnp.float32)
    else:
        raise ValueError(f"unknown objective {objective!r}")
    return d


def make_schedule(tc: TrainConfig) -> optax.Schedule:
    """Linear warm-up from 0 to lr, then cosine decay to lr·end_lr_frac at the last step."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=tc.lr,
        warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.steps, tc.warmup_steps + 1),
        end_value=tc.lr * tc.end_lr_frac,
    )


def make_optimizer(tc: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(tc.clip_norm),
        optax.adamw(make_schedule(tc), weight_decay=tc.weight_decay),
    )


def _build(mc: ModelConfig, tc: TrainConfig, key: jax.Array) -> tuple[nnx.Module, nnx.Optimizer]:
    model = make_model(mc, nnx.Rngs(key))
    return model, nnx.Optimizer(model, make_optimizer(tc), wrt=nnx.Param)


def _init_states(mc: ModelConfig, tc: TrainConfig, key: jax.Array) -> nnx.State:
    keys_K = jax.random.split(key, tc.ensemble_size)
    return jax.vmap(lambda k: nnx.state(_build(mc, tc, k)))(keys_K)


def bootstrap_indices(tc: TrainConfig, n: int, key: jax.Array) -> jax.Array:
    """idx_KxN: member k trains on items idx[k] of a list of n (a resample, or all of them)."""
    if not tc.bootstrap or n == 0:
        return jnp.tile(jnp.arange(n, dtype=jnp.int32), (tc.ensemble_size, 1))
    keys = jax.random.split(key, tc.ensemble_size)
    return jax.vmap(lambda k: jax.random.randint(k, (n,), 0, n, dtype=jnp.int32))(keys)


# Configs are frozen (hashable) dataclasses, so jit's own cache reuses the compiled programs
# across calls with the same configs and sizes (seeds, resumes, data sets of equal size).
@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _setup(mc: ModelConfig, tc: TrainConfig, sizes: tuple[tuple[str, int], ...], key: jax.Array):
    k_init, k_boot, k_batch = jax.random.split(key, 3)
    state_K = _init_states(mc, tc, k_init)
    boot = {
        name: bootstrap_indices(tc, n, jax.random.fold_in(k_boot, i))
        for i, (name, n) in enumerate(sizes)
    }
    return state_K, boot, jax.random.split(k_batch, tc.ensemble_size)


def _place(mesh: Mesh, state_K: nnx.State, d: Arrays, boot: Arrays, keys_K: jax.Array):
    """Per-member arrays split over "member", the data set replicated on every device."""
    return (
        dist.place_members(state_K, mesh),
        dist.place_replicated(d, mesh),
        dist.place_members(boot, mesh),
        dist.place_members(keys_K, mesh),
    )


def setup_ensemble(
    mc: ModelConfig, tc: TrainConfig, data: PrefData, key: jax.Array, mesh: Mesh | None = None
) -> tuple[nnx.GraphDef, nnx.State, Arrays, Arrays, jax.Array]:
    """Everything a fused run starts from, in one compiled program: graphdef and K stacked
    (model, optimizer) states (own init keys), device data, bootstrap indices boot[name]_KxM
    for name in pair/group/item, and the K minibatch keys; placed on `mesh` if one is given
    (the same values: initialisation does not depend on the mesh)."""
    tc = _step_config(tc)
    d = to_device(data, tc.objective)
    sizes = []
    if "a" in d:
        sizes.append(("pair", data.n_pairs))
    if "group" in d:
        sizes.append(("group", data.n_groups))
    if "safe" in d:
        sizes.append(("item", data.n_items))
    state_K, boot, keys_K = _setup(mc, tc, tuple(sizes), key)
    if mesh is not None:
        state_K, d, boot, keys_K = _place(mesh, state_K, d, boot, keys_K)
    return _graphdef(mc, tc), state_K, d, boot, keys_K


def _draw(key: jax.Array, boot_M: jax.Array, n: int) -> jax.Array:
    """n indices drawn uniformly from a member's (resampled) list."""
    return boot_M[jax.random.randint(key, (n,), 0, boot_M.shape[0])]


def _sample_batch(d: Arrays, boot: Arrays, key: jax.Array, tc: TrainConfig) -> Arrays:
    k_pair, k_group, k_item = jax.random.split(key, 3)
    x = d["x"]
    batch: Arrays = {}
    if "a" in d:
        i_B = _draw(k_pair, boot["pair"], tc.batch_size)
        batch["xa"], batch["xb"] = x[d["a"][i_B]], x[d["b"][i_B]]
        batch["pair_y"] = d["pair_y"][i_B]
    if "safe" in d:
        n_2B = _draw(k_item, boot["item"], 2 * tc.batch_size)
        batch["xs"], batch["safe"] = x[n_2B], d["safe"][n_2B]
        if "harm" in d:
            batch["harm"] = d["harm"][n_2B]
    if "group" in d:
        g_Bg = boot["group"][
            jax.random.randint(k_group, (tc.group_batch_size,), 0, boot["group"].shape[0])
        ]
        grp_BgxKg = d["group"][g_Bg]
        batch["valid"] = grp_BgxKg >= 0
        batch["xg"] = x[jnp.maximum(grp_BgxKg, 0)]
    return batch


def _wmean(v: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(v * w) / jnp.maximum(jnp.sum(w), 1.0)


def _loss(model: nnx.Module, batch: Arrays, tc: TrainConfig) -> tuple[jax.Array, Arrays]:
    """Total loss and named parts of one minibatch (pieces present in the batch only)."""
    names = [k for k in ("xa", "xb", "xs") if k in batch]
    parts = [batch[k] for k in names]
    w_parts = [jnp.ones(batch[k].shape[0]) for k in names]
    if "xg" in batch:
        Bg, Kg = batch["valid"].shape
        parts.append(batch["xg"].reshape(Bg * Kg, *batch["xg"].shape[2:]))
        w_parts.append(batch["valid"].reshape(-1).astype(jnp.float32))
    # One forward pass over every item of the batch, then split back by name.
    r_M, harm_MxC = model.score_and_harm(jnp.concatenate(parts))
    w_M = jnp.concatenate(w_parts)
    lo, r, harm = 0, {}, {}
    for k in names:
        n = batch[k].shape[0]
        r[k] = r_M[lo : lo + n]
        harm[k] = None if harm_MxC is None else harm_MxC[lo : lo + n]
        lo += n
    aux: Arrays = {}
    total = tc.l2_coef * _wmean(r_M**2, w_M) + tc.centre_coef * _wmean(r_M, w_M) ** 2
    if tc.objective == "reward":
        if "xa" in batch:
            y_B = batch["pair_y"]
            aux["bt"] = jnp.mean(losses.bt_loss(r["xa"], r["xb"], y_B, tc.margin))
            hit_B = ((r["xa"] > r["xb"]) == (y_B > 0.5)).astype(jnp.float32)
            aux["acc"] = _wmean(hit_B, (y_B != 0.5).astype(jnp.float32))
            total += tc.pair_coef * aux["bt"]
        if "xg" in batch:
            r_BgxKg = r_M[lo:].reshape(batch["valid"].shape)
            aux["pl"] = jnp.mean(losses.plackett_luce_loss(r_BgxKg, batch["valid"]))
            total += tc.group_coef * aux["pl"]
    else:
        if "xa" in batch:
            aux["rank"] = jnp.mean(losses.cost_rank_loss(r["xa"], r["xb"], batch["pair_y"]))
            total += tc.rank_coef * aux["rank"]
        if "xs" in batch:
            c_2B, safe_2B = r["xs"], batch["safe"]
            aux["sign"] = jnp.mean(losses.cost_sign_loss(c_2B, safe_2B))
            aux["sign_acc"] = jnp.mean(((c_2B <= 0) == (safe_2B > 0.5)).astype(jnp.float32))
            total += tc.sign_coef * aux["sign"]
            if "harm" in batch and harm["xs"] is not None:
                aux["harm"] = jnp.mean(losses.harm_bce(harm["xs"], batch["harm"]))
                total += tc.harm_coef * aux["harm"]
    aux["loss"] = total
    return total, aux


def make_chunk_fn(
    graphdef: nnx.GraphDef, tc: TrainConfig, n_steps: int, mesh: Mesh | None = None
) -> Callable:
    """fn(state_K, step0, data, boot_K, keys_K) -> (state_K, aux_KxS): n_steps fused steps of all
    members. Not jitted, so callers (and tests) can wrap it before `jax.jit`. With a mesh, the
    members map to its "member" axis and each minibatch is split over its "data" axis."""
    lr_fn = make_schedule(tc)

    def member(state: nnx.State, step0: jax.Array, d: Arrays, boot: Arrays, key: jax.Array):
        def step(state: nnx.State, t: jax.Array):
            model, opt = nnx.merge(graphdef, state)
            batch = _sample_batch(d, boot, jax.random.fold_in(key, t), tc)
            if mesh is not None:
                batch = dist.constrain_batch(batch, mesh)
            grads, aux = nnx.grad(_loss, has_aux=True)(model, batch, tc)
            opt.update(model, grads)
            aux["grad_norm"] = optax.tree.norm(grads)
            aux["lr"] = lr_fn(t)
            new = nnx.state((model, opt))
            if mesh is not None:  # keep the carry where it started: no resharding per step
                new = dist.constrain_member(new, mesh)
            return new, aux

        return jax.lax.scan(step, state, step0 + jnp.arange(n_steps))

    spmd = None if mesh is None else dist.MEMBER
    return jax.vmap(member, in_axes=(0, None, None, 0, 0), spmd_axis_name=spmd)


@functools.lru_cache(maxsize=64)  # tracing a model and optimizer costs ~0.3 s per call on CPU
def _graphdef(mc: ModelConfig, tc: TrainConfig | None = None) -> nnx.GraphDef:
    """Graphdef of the model, or of (model, optimizer) when a TrainConfig is given."""
    if tc is None:
        return nnx.graphdef(nnx.eval_shape(lambda: make_model(mc, nnx.Rngs(0))))
    return nnx.graphdef(nnx.eval_shape(lambda: _build(mc, tc, jax.random.key(0))))


# Static configs, not graphdefs: the optimizer's graphdef holds a fresh optax object per build,
# which would defeat jit's cache.
@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _run_chunk(mc: ModelConfig, tc: TrainConfig, n_steps: int, mesh: Mesh | None, *args):
    return make_chunk_fn(_graphdef(mc, tc), tc, n_steps, mesh)(*args)


def _step_config(tc: TrainConfig) -> TrainConfig:
    """tc without the fields that do not change a step, so they do not trigger recompiles."""
    return dataclasses.replace(tc, log_every=1, checkpoint_every=0)


@functools.partial(jax.jit, static_argnums=0)
def _apply_members(mc: ModelConfig, state_K: nnx.State, x_BxF: jax.Array):
    graphdef = _graphdef(mc)

    def one(state: nnx.State) -> tuple[jax.Array, jax.Array | None]:
        return nnx.merge(graphdef, state).score_and_harm(x_BxF)

    return jax.vmap(one)(state_K)


@dataclasses.dataclass
class Ensemble:
    """K trained members of one model config; parameters stacked on a leading axis."""

    graphdef: nnx.GraphDef
    state_K: nnx.State
    cfg: ModelConfig

    @property
    def size(self) -> int:
        return jax.tree.leaves(self.state_K)[0].shape[0]

    def member(self, k: int) -> nnx.Module:
        return nnx.merge(self.graphdef, jax.tree.map(lambda v: v[k], self.state_K))

    def score_and_harm(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, Any]:
        """s_KxN (and harm logits KxNxC or None), evaluated in fixed-size padded batches."""
        x = np.asarray(x)
        N = len(x)
        bs = min(batch_size, max(N, 1))
        s_chunks, h_chunks = [], []
        for lo in range(0, N, bs):
            xb = x[lo : lo + bs]
            n = len(xb)
            if n < bs:  # pad to the compiled batch size instead of compiling again
                xb = np.concatenate([xb, np.repeat(xb[:1], bs - n, axis=0)])
            s, h = _apply_members(self.cfg, self.state_K, jnp.asarray(xb))
            s, h = dist.to_host((s, h))
            s_chunks.append(s[:, :n])
            if h is not None:
                h_chunks.append(h[:, :n])
        s_KxN = np.concatenate(s_chunks, axis=1) if s_chunks else np.zeros((self.size, 0))
        return s_KxN, (np.concatenate(h_chunks, axis=1) if h_chunks else None)

    def score(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        return self.score_and_harm(x, batch_size)[0]


def ensemble_scores(ens: Ensemble, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """s_KxN: every member's score of every item."""
    return ens.score(x, batch_size)


def _fingerprint(mc: ModelConfig, tc: TrainConfig, data: PrefData, key: jax.Array) -> dict:
    fp = {
        "model": dataclasses.asdict(mc),
        "train": dataclasses.asdict(tc),
        "key": np.asarray(jax.random.key_data(key)).tolist(),
        "data": [data.n_items, data.n_pairs, data.n_groups],
    }
    return json.loads(json.dumps(fp))  # tuples → lists, as they come back from disk


def _metrics_row(aux: Arrays) -> dict:
    """Means over members and steps of a chunk's per-step metrics (numpy: no XLA compiles)."""
    aux = dist.to_host(aux)
    row = {k: float(np.mean(v)) for k, v in aux.items()}
    row["lr"] = float(aux["lr"][0, -1])  # at the chunk's last step
    row["loss_member_std"] = float(np.std(np.mean(aux["loss"], axis=1)))
    return row


def train_ensemble(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: PrefData,
    key: jax.Array,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    log_fn: Callable[[int, dict], None] | None = None,
    progress: bool = True,
    mesh: Mesh | None = None,
) -> tuple[Ensemble, list[dict]]:
    """Train K members on `data`; resumes from `checkpoint_dir` if it holds a checkpoint of the
    same configs and key (from any mesh). Returns the ensemble and one metrics row per chunk.
    `mesh` (`distributed.make_mesh`) shards the run; None is the single-device program."""
    mc, tc = model_cfg, train_cfg
    S = tc.log_every
    if tc.checkpoint_every % S:
        raise ValueError("checkpoint_every must be a multiple of log_every")
    tc_step = _step_config(tc)
    _, state_K, d, boot, keys_K = setup_ensemble(mc, tc, data, key, mesh)

    history: list[dict] = []
    start = 0
    fp = _fingerprint(mc, tc, data, key)
    mgr = ckpt.open_manager(checkpoint_dir) if checkpoint_dir is not None else None
    if mgr is not None:
        restored = ckpt.restore_latest(mgr, state_K)
        if restored is not None:
            state_K, meta = restored
            # Fresh uncommitted arrays, like the initial state's: restored ones would make jit
            # compile the chunk again.
            state_K = jax.tree.map(lambda v: jnp.asarray(np.asarray(v)), state_K)
            if mesh is not None:
                state_K = dist.place_members(state_K, mesh)
            if meta["fingerprint"] != fp:
                raise ValueError(f"{checkpoint_dir} holds a run of another config or key")
            start, history = int(meta["step"]), list(meta["history"])

    bar = tqdm(total=tc.steps, initial=start, disable=not progress, desc=tc.objective, leave=False)
    try:
        t_last = time.perf_counter()
        for step0 in range(start, tc.steps, S):
            n = min(S, tc.steps - step0)
            state_K, aux = _run_chunk(
                mc, tc_step, n, mesh, state_K, jnp.int32(step0), d, boot, keys_K
            )
            step = step0 + n
            row = _metrics_row(aux)
            now = time.perf_counter()  # the first chunk's rate includes compilation
            row["comparisons_per_s"] = n * tc.ensemble_size * tc.batch_size / (now - t_last)
            t_last = now
            row = {"step": step, "objective": tc.objective, **row}
            history.append(row)
            bar.update(n)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if mgr is not None and (
                step == tc.steps or (tc.checkpoint_every and step % tc.checkpoint_every == 0)
            ):
                meta = {"step": step, "history": history, "fingerprint": fp}
                ckpt.save(mgr, step, state_K, meta)
            if log_fn is not None:
                log_fn(step, row)
    finally:
        bar.close()
        if mgr is not None:
            mgr.close()
    return Ensemble(_graphdef(mc), state_K[0], mc), history


def train_reward_and_cost(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: PrefData,
    key: jax.Array,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    log_fn: Callable[[int, dict], None] | None = None,
    progress: bool = True,
    mesh: Mesh | None = None,
) -> dict[str, tuple[Ensemble, list[dict]]]:
    """A reward ensemble, and a cost ensemble (harm head if harm labels exist) when the data
    carry safety labels. Keys: "reward", "cost"."""
    out = {}
    objectives = ["reward"] + (["cost"] if data.has_safety else [])
    for i, obj in enumerate(objectives):
        mc = model_cfg
        if obj == "cost":
            mc = dataclasses.replace(model_cfg, harm_head=data.harm_NxC is not None)
            if data.harm_NxC is not None:
                mc = dataclasses.replace(mc, n_harm=np.asarray(data.harm_NxC).shape[1])
        sub = None if checkpoint_dir is None else os.path.join(checkpoint_dir, obj)
        out[obj] = train_ensemble(
            mc,
            dataclasses.replace(train_cfg, objective=obj),
            data,
            jax.random.fold_in(key, i),
            checkpoint_dir=sub,
            log_fn=log_fn,
            progress=progress,
            mesh=mesh,
        )
    return out
