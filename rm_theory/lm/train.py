"""Fine-tuning score models on preference pairs: reward models by Bradley–Terry, with a margin and a
centring term, and Safe RLHF's cost model; full fine-tuning, the top layers only, LoRA, or the head
alone; ensembles of K heads or K LoRA adapters on one shared backbone.

Objectives, per pair (a, b), weighted and averaged over a step's pairs:

- "reward": −log σ(r_a − r_b − m) for a preferred (Bradley–Terry; InstructGPT's reward model,
  Ouyang et al. 2022, arXiv 2203.02155, §3.5), ties as half a win each way; m = `margin` plus the
  pair's own margin (Llama 2's margin loss, Touvron et al. 2023, arXiv 2307.09288, §3.2.2); plus
  `centre_coef` · (r_a + r_b)² (reward centring, Eisenstein et al. 2023, arXiv 2312.09244), which
  pins the additive constant that Bradley–Terry leaves free.
- "cost": Safe RLHF's cost-model loss (Dai et al. 2023, arXiv 2310.12773, §3.2, eq. 6):
  −log σ(c_unsafer − c_safer) − Σ_side log σ(s·c), s = +1 for an unsafe response and −1 for a
  safe one, so that "safe" ⇔ c ≤ 0 (the sign term of a response whose safety is unknown is left out).

What is trained (`mode`, the optimiser's `wrt` filter): "full" (every parameter), "top_k" (the top
`top_layers` layers, a decoder's final norm, and the head), "lora" (`lora.add_lora` adapters and the
head; the backbone frozen), "head" (the head on a frozen backbone). An ensemble of K members shares
the backbone: with "lora" each member has its own adapters and head (K forward passes, vmapped);
otherwise its own head on one backbone pass (the backbone, when trained, gets the sum of the members'
gradients). Members start from their own draws (the head's output layer, the adapters' A) and,
with `bootstrap`, weight each pair by their own Poisson(1) draw.

The program (STYLE.md, fused form): the state is split once into the trained parameters (shared and
per member), the frozen ones and the optimiser states; a chunk of `chunk_steps` steps of one length
bucket runs in `jax.lax.scan` inside one `jax.jit`; a step sums the gradients of `grad_accum`
microbatches of `batch_size` pairs (equal to one step on all of them) and then applies AdamW
(decoupled weight decay on matrices only, Loshchilov & Hutter 2019, arXiv 1711.05101) after global
norm clipping, its learning rate an input (linear warm-up, then cosine or linear decay), so one
compiled program serves every data set and schedule. Pairs are bucketed by length
(`text.choose_buckets`: at most `buckets` padded lengths, the fewest padded tokens), the steps of a
bucket grouped into chunks, the chunks shuffled within each epoch: one compile per bucket. Steps and
microbatches with no pair in them (a bucket's last chunk) are skipped by `lax.cond`, not computed.

Sharding (`make_mesh`): a ("data", "fsdp") mesh; each microbatch's rows split over both axes, every
parameter and optimiser array split over "fsdp" along its largest divisible axis (replicated over
"data"), the gradient reductions inserted by XLA (GSPMD): the numbers of one device up to float32
summation order. Checkpoints (`rm.checkpoint`, Orbax) at chunk ends; the batches are a pure
function of (data, config, key), so a resumed run replays the same steps to the same bits.

Legend: P pairs, K ensemble members, S steps per chunk, A microbatches per step, B pairs per
microbatch, T tokens, N texts, L labels, H hidden.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from rm_theory.common.rng import str_hash
from rm_theory.lm.lora import add_lora
from rm_theory.lm.score import ScoreModel
from rm_theory.lm.text import choose_buckets, padded_batches
from rm_theory.rm import losses
from rm_theory.rm.sharding import to_host

log = logging.getLogger(__name__)

OBJECTIVES = ("reward", "cost")
MODES = ("full", "top_k", "lora", "head")
DECAYS = ("cosine", "linear", "constant")
DATA, FSDP = "data", "fsdp"
ROWS = (DATA, FSDP)  # a batch's rows are split over both mesh axes
ROW_AXIS = {"ids": 3, "types": 3, "len": 3, "safe": 3, "w": 3, "y": 2, "margin": 2}  # of a chunk's inputs


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    objective: str = "reward"  # "reward" | "cost"
    mode: str = "full"  # "full" | "top_k" | "lora" | "head"
    top_layers: int = 2  # mode "top_k"
    lora_rank: int = 8  # mode "lora" (a model without adapters gets them)
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] | None = None  # None: lora.DEFAULT_TARGETS
    ensemble_size: int = 1
    bootstrap: bool = False  # each member weights each pair by its own Poisson(1) draw
    epochs: int = 1
    max_steps: int = 0  # > 0: stop after this many steps (the schedule is cut, not stretched)
    batch_size: int = 16  # pairs per microbatch
    grad_accum: int = 1  # microbatches per optimiser step
    lr: float = 3e-5
    warmup_frac: float = 0.1  # of the steps, linear from 0
    decay: str = "linear"  # "cosine" | "linear" | "constant", to lr · end_lr_frac at the last step
    end_lr_frac: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # global norm, each member's parameters and the shared ones apart; 0 = off
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    margin: float = 0.0  # reward: added to every pair's own margin
    centre_coef: float = 0.0  # reward: weight of (r_a + r_b)^2
    rank_coef: float = 1.0  # cost: the ranking term
    sign_coef: float = 1.0  # cost: the sign term
    buckets: int = 3  # padded lengths (one compile each)
    chunk_steps: int = 8  # steps per compiled scan
    checkpoint_every: int = 0  # steps between checkpoints (at the next chunk end); 0 = at the end only
    eval_every: int = 0  # steps between calls of `eval_fn` (at the next chunk end); 0 = at the end only

    def check(self) -> None:
        """Raises ValueError naming the first field out of range."""
        checks = {
            "objective": self.objective in OBJECTIVES,
            "mode": self.mode in MODES,
            "decay": self.decay in DECAYS,
            "top_layers": self.top_layers >= 1,
            "lora_rank": self.lora_rank >= 1,
            "ensemble_size": self.ensemble_size >= 1,
            "epochs": self.epochs >= 1,
            "max_steps": self.max_steps >= 0,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "warmup_frac": 0 <= self.warmup_frac < 1,
            "end_lr_frac": 0 <= self.end_lr_frac <= 1,
            "weight_decay": self.weight_decay >= 0,
            "clip_norm": self.clip_norm >= 0,
            "buckets": self.buckets >= 1,
            "chunk_steps": self.chunk_steps >= 1,
            "checkpoint_every": self.checkpoint_every >= 0,
            "eval_every": self.eval_every >= 0,
        }
        bad = next((k for k, ok in checks.items() if not ok), None)
        if bad is not None:
            raise ValueError(f"{bad} = {getattr(self, bad)!r}: out of range (see FinetuneConfig)")


def step_config(cfg: FinetuneConfig) -> FinetuneConfig:
    """cfg without the fields that do not change a step's program (the schedule, the sizes of the
    run), so that they never cause a compile."""
    return dataclasses.replace(
        cfg,
        epochs=1,
        max_steps=0,
        lr=1.0,
        warmup_frac=0.0,
        decay="constant",
        end_lr_frac=0.0,
        buckets=1,
        chunk_steps=1,
        checkpoint_every=0,
        eval_every=0,
        bootstrap=False,
        lora_rank=1,
        lora_alpha=1.0,
        lora_targets=None,
    )


@dataclasses.dataclass
class Pairs:
    """Preference pairs as token ids: side a and side b of each (prompt and response, at most the
    model's positions: `text.fit_pairs` makes them) and the labels.

    `y_P`: reward, 1 = a preferred, 0 = b, 0.5 a tie; cost, 1 = a is the safer (lower cost), 0 = b.
    `safe_a_P` / `safe_b_P` (cost): 1 safe, 0 unsafe, NaN unknown. `margin_P` (reward): each pair's
    margin, added to the config's.
    """

    ids_a: Sequence[Sequence[int]]
    ids_b: Sequence[Sequence[int]]
    y_P: np.ndarray
    types_a: Sequence[Sequence[int]] | None = None
    types_b: Sequence[Sequence[int]] | None = None
    safe_a_P: np.ndarray | None = None
    safe_b_P: np.ndarray | None = None
    margin_P: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids_a)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array([len(x) for x in self.ids_a], np.int64), np.array([len(x) for x in self.ids_b], np.int64)

    def check(self, max_len: int) -> None:
        P_ = len(self)
        for name in ("ids_b", "y_P", "types_a", "types_b", "safe_a_P", "safe_b_P", "margin_P"):
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


# ---------------------------------------------------------------------------- mesh


def make_mesh(devices: int = 1, fsdp: int = 1) -> Mesh | None:
    """The ("data", "fsdp") mesh over the first `devices` devices (0: all, every host's after
    `jax.distributed.initialize`), "fsdp" of size `fsdp`; None for one device (the plain program)."""
    devs = jax.devices()
    n = len(devs) if devices == 0 else devices
    if n > len(devs):
        raise ValueError(f"asked for {n} devices, {len(devs)} available")
    if fsdp < 1 or n % fsdp:
        raise ValueError(f"fsdp = {fsdp}: must divide the {n} devices")
    if n == 1:
        return None
    shape, types = (n // fsdp, fsdp), (AxisType.Auto, AxisType.Auto)
    try:  # topology-aware order on TPU / GPU
        return jax.make_mesh(shape, (DATA, FSDP), axis_types=types, devices=devs[:n])
    except ValueError:  # some backends refuse a device subset
        return Mesh(np.asarray(devs[:n]).reshape(shape), (DATA, FSDP), axis_types=types)


def _spec(shape: tuple[int, ...], fsdp: int, lead: int) -> P:
    """Split the largest axis (from `lead` on: a member axis stays whole) that "fsdp" divides."""
    axes = [i for i in range(lead, len(shape)) if fsdp > 1 and shape[i] % fsdp == 0]
    if not axes:
        return P()
    i = max(axes, key=lambda i: shape[i])
    return P(*([None] * i), FSDP)


def _shardings(tree, mesh: Mesh, lead: int = 0):
    fsdp = mesh.shape[FSDP]
    return jax.tree.map(lambda x: NamedSharding(mesh, _spec(tuple(x.shape), fsdp, lead)), tree)


def _place(tree, shardings):
    """Global arrays from values every process holds in full (one host or many)."""

    def put(x, s):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])

    return jax.tree.map(put, tree, shardings)


def _rows(mesh: Mesh, axis: int, ndim: int) -> NamedSharding:
    return NamedSharding(mesh, P(*([None] * axis), ROWS, *([None] * (ndim - axis - 1))))


def _constrain(tree, shardings):
    return jax.tree.map(jax.lax.with_sharding_constraint, tree, shardings)


# ---------------------------------------------------------------------------- parameters


def _names(path) -> tuple[str, ...]:
    return tuple(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path)


def filters(cfg: FinetuneConfig, n_layers: int):
    """(member filter, shared filter): the parameters each member has of its own, and the shared
    ones that are trained (the rest are frozen)."""
    lora = cfg.mode == "lora"

    def member(path, v) -> bool:
        return isinstance(v, nnx.Param) and (path[0] == "head" or (lora and isinstance(v, nnx.LoRAParam)))

    first = n_layers - cfg.top_layers

    def shared(path, v) -> bool:
        if not isinstance(v, nnx.Param) or cfg.mode in ("lora", "head"):
            return False
        if cfg.mode == "full":
            return True
        in_top = path[:2] == ("backbone", "layers") and int(path[2]) >= first
        return in_top or path[:2] == ("backbone", "norm")  # a decoder's final norm sits above the top layer

    return member, shared


def init_members(members, K: int, key: jax.Array, std: float):
    """[K, ...] member parameters. One member keeps the model's own (a loaded or fresh head, new
    adapters); K > 1 members each draw the head's output layer (N(0, std), bias 0, as transformers'
    init) and the adapters' A (He uniform, B = 0, as `nnx.LoRA`) from their own key."""
    if K == 1:
        return jax.tree.map(lambda v: v[None], members)

    def draw(path, x, k):
        names = _names(path)
        sub = jax.random.fold_in(jax.random.fold_in(key, k), str_hash(".".join(names)) % (2**31))
        if "lora_a" in names:
            return jax.nn.initializers.he_uniform()(sub, x.shape, x.dtype)
        if "lora_b" in names:
            return jnp.zeros_like(x)
        if names[0] == "head" and ("score" in names or "out" in names):  # the output layer
            return (jax.random.normal(sub, x.shape) * std).astype(x.dtype) if "kernel" in names else jnp.zeros_like(x)
        return x

    per = [jax.tree_util.tree_map_with_path(lambda p, x, k=k: draw(p, x, k), members) for k in range(K)]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *per)


def member_logits(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone: bool):
    """[K, N, L] logits of every member: one backbone pass and K heads (`share_backbone`), or K
    whole passes (members with adapters of their own)."""
    if share_backbone:
        m0 = jax.tree.map(lambda v: v[0], members_K)  # its head is not read by `pooled`
        x_NxH = nnx.merge(graphdef, shared, frozen, m0).pooled(ids_NxT, mask_NxT, types_NxT)
        return jax.vmap(lambda m: nnx.merge(graphdef, shared, frozen, m).head(x_NxH))(members_K)
    return jax.vmap(lambda m: nnx.merge(graphdef, shared, frozen, m)(ids_NxT, mask_NxT, types_NxT))(members_K)


# ---------------------------------------------------------------------------- losses


def pair_losses(r_a_KxB, r_b_KxB, batch: dict, cfg: FinetuneConfig):
    """(loss, hit, counted) per member and pair; `hit` is 1 where the pair is ranked right (reward:
    the preferred side higher; cost: the safer side lower), `counted` 0 for ties."""
    y_B = batch["y"]
    if cfg.objective == "reward":
        m_B = cfg.margin + batch["margin"]
        loss = losses.bt_loss(r_a_KxB, r_b_KxB, y_B, m_B)
        if cfg.centre_coef:
            loss = loss + cfg.centre_coef * losses.pair_centring(r_a_KxB, r_b_KxB)
        hit = ((r_a_KxB > r_b_KxB) == (y_B > 0.5)).astype(jnp.float32)
    else:
        safe_2xB = batch["safe"]
        known_2xB = jnp.isfinite(safe_2xB).astype(jnp.float32)
        s_2xB = jnp.nan_to_num(safe_2xB)
        sign = known_2xB[0] * losses.cost_sign_loss(r_a_KxB, s_2xB[0]) + known_2xB[1] * losses.cost_sign_loss(
            r_b_KxB, s_2xB[1]
        )
        loss = cfg.rank_coef * losses.cost_rank_loss(r_a_KxB, r_b_KxB, y_B) + cfg.sign_coef * sign
        hit = ((r_a_KxB < r_b_KxB) == (y_B > 0.5)).astype(jnp.float32)
    return loss, hit, (y_B != 0.5).astype(jnp.float32) * jnp.ones_like(loss)


# ---------------------------------------------------------------------------- the program


def _adamw(cfg: FinetuneConfig) -> optax.GradientTransformation:
    """AdamW without its learning rate (an input of each step): clip, Adam, decoupled weight decay on
    matrices (not biases, norms' gains or vectors)."""
    parts = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    parts += [optax.scale_by_adam(cfg.b1, cfg.b2, cfg.eps)]
    if cfg.weight_decay:
        parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)))
    return optax.chain(*parts)


def lr_schedule(cfg: FinetuneConfig, total_steps: int) -> np.ndarray:
    """[total_steps] learning rate of each step: linear warm-up from 0 over `warmup_frac` of the
    steps, then `decay` to lr · end_lr_frac at the last step."""
    warm = int(cfg.warmup_frac * total_steps)
    end = cfg.lr * cfg.end_lr_frac
    decay_steps = max(total_steps - warm, 1)
    if cfg.decay == "cosine":
        after = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=cfg.end_lr_frac)
    elif cfg.decay == "linear":
        after = optax.linear_schedule(cfg.lr, end, decay_steps)
    else:
        after = optax.constant_schedule(cfg.lr)
    sched = optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warm), after], [warm])
    return np.asarray(sched(jnp.arange(1, total_steps + 1)), np.float32)


@functools.lru_cache(maxsize=16)
def chunk_program(graphdef, cfg: FinetuneConfig, share_backbone: bool, has_types: bool, mesh: Mesh | None):
    """jit(fn)(state, frozen, batches) -> (state, aux_S): the steps of one chunk, fused. `state` =
    (shared, members_K, opt_shared, opt_members_K), donated; `batches` holds each step's
    microbatches: ids [S, A, 2, B, T] (side a, side b), len [S, A, 2, B], types (if `has_types`),
    y [S, A, B], safe [S, A, 2, B], margin [S, A, B], w [S, A, K, B] (each member's weight of each
    pair, 0 for a padding row), lr [S]. Compiled once per bucket length T; `cfg` is a `step_config`."""
    tx = _adamw(cfg)

    def chunk(state, frozen, batches):
        def objective(shared, members_K, b: dict, W_K):
            _, B, T = b["ids"].shape
            ids_NxT = b["ids"].reshape(2 * B, T)
            mask_NxT = (jnp.arange(T)[None, :] < b["len"].reshape(2 * B, 1)).astype(jnp.int32)
            types_NxT = b["types"].reshape(2 * B, T) if has_types else None
            if mesh is not None:
                ids_NxT = jax.lax.with_sharding_constraint(ids_NxT, _rows(mesh, 0, 2))
            r_KxN = member_logits(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone)
            loss_KxB, hit_KxB, count_KxB = pair_losses(r_KxN[:, :B, 0], r_KxN[:, B:, 0], b, cfg)
            w_KxB = b["w"]
            loss_K = (w_KxB * loss_KxB).sum(1) / jnp.maximum(W_K, 1e-9)
            aux = {"loss": loss_K, "hit": (w_KxB * hit_KxB * count_KxB).sum(1), "count": (w_KxB * count_KxB).sum(1)}
            return loss_K.sum(), aux  # members' losses add: member k's gradient is that of its own loss

        grad_fn = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)

        def step(state, b: dict):
            shared, members_K, opt_s, opt_m = state
            W_K = b["w"].sum((0, 2))
            none = {k: jnp.zeros_like(W_K) for k in ("loss", "hit", "count")}

            def run(state):
                def micro(g, mb):
                    def add(g):
                        (_, aux), gr = grad_fn(shared, members_K, mb, W_K)
                        return jax.tree.map(jnp.add, g, gr), aux

                    return jax.lax.cond(mb["w"].sum() > 0, add, lambda g: (g, none), g)

                zero = jax.tree.map(jnp.zeros_like, (shared, members_K))
                (g_s, g_m), aux_A = jax.lax.scan(micro, zero, {k: v for k, v in b.items() if k != "lr"})
                u_s, new_opt_s = tx.update(g_s, opt_s, shared)
                u_m, new_opt_m = jax.vmap(tx.update)(g_m, opt_m, members_K)
                descend = functools.partial(jax.tree.map, lambda p, u: p - b["lr"] * u)
                new = (descend(shared, u_s), descend(members_K, u_m), new_opt_s, new_opt_m)
                aux = {k: v.sum(0) for k, v in aux_A.items()}
                return new, aux | {"grad_norm": optax.tree.norm((g_s, g_m))}

            def skip(state):
                return state, none | {"grad_norm": jnp.zeros(())}

            new, aux = jax.lax.cond(W_K.sum() > 0, run, skip, state)
            if mesh is not None:  # keep the carry where it started: no resharding per step
                new = _constrain(new, state_shardings(new, mesh))
            return new, aux

        return jax.lax.scan(step, state, batches)

    return jax.jit(chunk, donate_argnums=0)


def state_shardings(state, mesh: Mesh):
    shared, members_K, opt_s, opt_m = state
    return (
        _shardings(shared, mesh),
        _shardings(members_K, mesh, lead=1),
        _shardings(opt_s, mesh),
        _shardings(opt_m, mesh, lead=1),
    )


@functools.partial(jax.jit, static_argnums=(0, 7))
def logits_program(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone):
    return member_logits(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone)


# ---------------------------------------------------------------------------- the schedule


def make_schedule(bucket_P: np.ndarray, J: int, cfg: FinetuneConfig, rng: np.random.Generator) -> list:
    """[(bucket j, idx [S, A, B] of pair indices, -1 for none)] in run order: per epoch, each
    bucket's pairs shuffled into steps of A·B pairs (its last step partly empty), grouped into chunks
    of S steps (its last chunk padded with empty steps), the chunks shuffled."""
    S, A, B = cfg.chunk_steps, cfg.grad_accum, cfg.batch_size
    out = []
    for _ in range(cfg.epochs):
        chunks = []
        for j in range(J):
            rows = np.flatnonzero(bucket_P == j)
            if len(rows) == 0:
                continue
            n_steps = -(-len(rows) // (A * B))
            n_chunks = -(-n_steps // S)
            idx = np.full(n_chunks * S * A * B, -1, np.int64)
            idx[: len(rows)] = rows[rng.permutation(len(rows))]
            chunks += [(j, c) for c in idx.reshape(n_chunks, S, A, B)]
        out += [chunks[i] for i in rng.permutation(len(chunks))]
    return out


def _steps_of(idx_SxAxB: np.ndarray) -> np.ndarray:
    """[S] True for the steps with at least one pair."""
    return (idx_SxAxB >= 0).any(axis=(1, 2))


# ---------------------------------------------------------------------------- results


@dataclasses.dataclass
class Finetuned:
    """A trained ensemble: `model` (a `ScoreModel` whose net holds member 0, so `model.score` and
    `save_score_model` use it) and every member's parameters."""

    model: ScoreModel
    graphdef: nnx.GraphDef
    shared: nnx.State
    frozen: nnx.State
    members_K: nnx.State
    share_backbone: bool
    buckets: tuple[int, ...]
    mesh: Mesh | None = None

    @property
    def size(self) -> int:
        return int(jax.tree.leaves(self.members_K)[0].shape[0])

    def logits_ids(
        self,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int]] | None = None,
        *,
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        """[K, N, L] every member's logits of token-id sequences (padded to the training buckets)."""
        N, L = len(ids), self.model.net.num_labels
        out_KxNxL = np.zeros((self.size, N, L), np.float32)
        len_N = np.array([len(x) for x in ids], np.int64)
        if N and (len_N.max() > self.model.max_len or len_N.min() == 0):
            raise ValueError(f"each input needs 1 to {self.model.max_len} tokens (the model's positions)")
        if self.mesh is not None and batch_size % self.mesh.size:
            raise ValueError(f"batch_size = {batch_size}: must be a multiple of the {self.mesh.size} devices")
        buckets = tuple(sorted({*self.buckets, self.model.max_len}))
        batches = padded_batches(ids, types, batch_size, buckets, self.model.tokenizer.pad_id)
        n_batches = -(-N // batch_size)
        for rows, ids_BxT, mask_BxT, types_BxT in tqdm(
            batches, total=n_batches, desc="score", disable=not progress or n_batches < 2, leave=False
        ):
            arrays = (ids_BxT, mask_BxT, types_BxT)
            if self.mesh is not None:
                arrays = _place(arrays, (_rows(self.mesh, 0, 2),) * 3)
            out = logits_program(self.graphdef, self.shared, self.frozen, self.members_K, *arrays, self.share_backbone)
            out_KxNxL[:, rows] = to_host(out)[:, : len(rows)]
        return out_KxNxL

    def scores(self, ids, types=None, **kw) -> np.ndarray:
        """[K, N] every member's score (or cost)."""
        return self.logits_ids(ids, types, **kw)[..., 0]

    def member(self, k: int) -> ScoreModel:
        """Member k as a `ScoreModel` of its own (to score or save)."""
        state = jax.tree.map(lambda v: np.asarray(v[k]), to_host(self.members_K))
        net = nnx.merge(self.graphdef, to_host(self.shared), to_host(self.frozen), state)
        m = self.model
        return ScoreModel(
            net,
            m.tokenizer,
            config=m.config,
            kind=m.kind,
            harm_categories=m.harm_categories,
            tokenizer_files=m.tokenizer_files,
            source=m.source,
        )


# ---------------------------------------------------------------------------- training


def _host_batches(pairs: Pairs, arrays: dict, idx_SxAxB: np.ndarray, T: int, w_KxP: np.ndarray, pad_id: int) -> dict:
    """The chunk's inputs (see `chunk_program`), gathered on the host."""
    S, A, B = idx_SxAxB.shape
    valid = idx_SxAxB >= 0
    i = np.where(valid, idx_SxAxB, 0)
    ids = np.full((S, A, 2, B, T), pad_id, np.int32)
    types = np.zeros((S, A, 2, B, T), np.int32) if pairs.types_a is not None else None
    lens = np.zeros((S, A, 2, B), np.int32)
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
    return out


def _fingerprint(model: ScoreModel, pairs: Pairs, cfg: FinetuneConfig, key: jax.Array, buckets) -> dict:
    h = hashlib.sha256()
    for seqs in (pairs.ids_a, pairs.ids_b):
        for x in seqs:
            h.update(np.asarray(x, np.int32).tobytes() + b"|")
    h.update(np.asarray(pairs.y_P, np.float32).tobytes())
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
    lr_T = lr_schedule(cfg, total)
    w_KxP = np.ones((K, len(pairs)), np.float32)
    if cfg.bootstrap:
        w_KxP = np.asarray(jax.random.poisson(k_boot, 1.0, (K, len(pairs))), np.float32)
    nan = np.full(len(pairs), np.nan, np.float32)
    arrays = {
        "y": np.asarray(pairs.y_P, np.float32),
        "safe": np.stack(
            [nan if pairs.safe_a_P is None else pairs.safe_a_P, nan if pairs.safe_b_P is None else pairs.safe_b_P]
        ),
        "margin": np.zeros(len(pairs), np.float32)
        if pairs.margin_P is None
        else np.asarray(pairs.margin_P, np.float32),
    }

    tx = _adamw(cfg)
    state = (shared, members_K, tx.init(shared), jax.vmap(tx.init)(members_K))
    state = jax.tree.map(lambda v: jnp.asarray(np.asarray(v)), state)  # uncommitted: one compile for all calls
    frozen = jax.tree.map(lambda v: jnp.asarray(np.asarray(v)), frozen)
    if mesh is not None:
        state = _place(state, state_shardings(state, mesh))
        frozen = _place(frozen, _shardings(frozen, mesh))

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
                state = _place(state, state_shardings(state, mesh))
            start, t, history = int(meta["chunk"]), int(meta["step"]), list(meta["history"])
            log.info("resuming fine-tuning from step %d of %d (%s)", t, total, checkpoint_dir)

    program = chunk_program(graphdef, step_config(cfg), share_backbone, pairs.types_a is not None, mesh)

    def result(state) -> Finetuned:
        return Finetuned(model, graphdef, state[0], frozen, state[1], share_backbone, buckets, mesh)

    bar = tqdm(total=total, initial=t, disable=not progress, desc=f"finetune {cfg.objective}", leave=False)
    next_eval = (t // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (t // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else None
    try:
        t_last = time.perf_counter()
        for c in range(start, len(schedule)):
            j, idx_SxAxB = schedule[c]
            steps_S = _steps_of(idx_SxAxB)
            n = int(steps_S.sum())
            b = _host_batches(pairs, arrays, idx_SxAxB, buckets[j], w_KxP, model.tokenizer.pad_id)
            lr_S = np.zeros(len(steps_S), np.float32)
            lr_S[steps_S] = lr_T[t : t + n]
            b["lr"] = lr_S
            n_pairs, n_tokens = int((idx_SxAxB >= 0).sum()), int(b["len"].sum())
            if mesh is not None:
                b = _place(
                    b,
                    {
                        k: NamedSharding(mesh, P()) if k == "lr" else _rows(mesh, ROW_AXIS[k], v.ndim)
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
