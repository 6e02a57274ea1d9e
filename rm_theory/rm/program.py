"""The compiled ensemble program: K members trained by one `jax.jit` (paper-free engineering; see
STYLE.md "fused form").

The (model, optimizer) state is split once, the members are a leading vmap axis (own init key,
own bootstrap resample, own minibatches), and the steps of a chunk run in `lax.scan`. Sharding
(`mesh=`, see `rm_theory.rm.sharding`): members split over the mesh's "member" axis, each
minibatch over its "data" axis; `mesh=None` is the plain single-device program.

Legend: N items, B batch, F features (or tokens) of an item, K ensemble members, S steps.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh

from rm_theory.rm import sharding as dist
from rm_theory.rm.batches import bootstrap_indices, sample_batch, to_device
from rm_theory.rm.models import ModelConfig, make_model
from rm_theory.rm.step import Arrays, TrainConfig, loss_and_metrics, make_optimizer, make_schedule
from rm_theory.world.inputs import PrefData


def _build(mc: ModelConfig, tc: TrainConfig, key: jax.Array) -> tuple[nnx.Module, nnx.Optimizer]:
    model = make_model(mc, nnx.Rngs(key))
    return model, nnx.Optimizer(model, make_optimizer(tc), wrt=nnx.Param)


def _init_states(mc: ModelConfig, tc: TrainConfig, key: jax.Array) -> nnx.State:
    keys_K = jax.random.split(key, tc.ensemble_size)
    return jax.vmap(lambda k: nnx.state(_build(mc, tc, k)))(keys_K)


# Two programs, so that data sets of another size reuse the initialisation's compile (XLA:CPU
# takes seconds over the random-number code of a model's init); jit's own cache keys them on the
# static configs and sizes.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _init(mc: ModelConfig, tc: TrainConfig, key: jax.Array):
    k_init, _, k_batch = jax.random.split(key, 3)
    return _init_states(mc, tc, k_init), jax.random.split(k_batch, tc.ensemble_size)


# The bootstrap is drawn at each list's true length (see `bootstrap_indices`), so it compiles per
# data size; it is a small program, unlike the training chunk, which sees only the padded lengths.
@functools.partial(jax.jit, static_argnums=(0, 1))
def _bootstrap(tc: TrainConfig, lists: tuple[tuple[str, int, int], ...], key: jax.Array):
    k_boot = jax.random.split(key, 3)[1]
    return {name: bootstrap_indices(tc, n, m, jax.random.fold_in(k_boot, i)) for i, (name, n, m) in enumerate(lists)}


# (bootstrap list, the array it indexes, that array's true length): those present in the data
_LISTS = (("pair", "a", "n_pair"), ("group", "group", "n_group"), ("item", "safe", "n_item"))


def _setup(mc: ModelConfig, tc: TrainConfig, d: Arrays, key: jax.Array):
    state_K, keys_K = _init(mc, tc, key)
    lists = tuple((name, int(d[n]), d[array].shape[0]) for name, array, n in _LISTS if array in d)
    return state_K, _bootstrap(tc, lists, key), keys_K


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
    (the same values: initialisation does not depend on the mesh). Lists are padded
    (`batches.bucket`); d[n_pair] etc. give their true lengths."""
    tc = step_config(tc)
    d = to_device(data, tc.objective)
    state_K, boot, keys_K = _setup(mc, tc, d, key)
    if mesh is not None:
        state_K, d, boot, keys_K = _place(mesh, state_K, d, boot, keys_K)
    return graphdef_of(mc, tc), state_K, d, boot, keys_K


def make_chunk_fn(graphdef: nnx.GraphDef, tc: TrainConfig, n_steps: int, mesh: Mesh | None = None) -> Callable:
    """fn(state_K, step0, data, boot_K, keys_K) -> (state_K, aux_KxS): n_steps fused steps of all
    members. Not jitted, so callers (and tests) can wrap it before `jax.jit`. With a mesh, the
    members map to its "member" axis and each minibatch is split over its "data" axis."""
    lr_fn = make_schedule(tc)

    def member(state: nnx.State, step0: jax.Array, d: Arrays, boot: Arrays, key: jax.Array):
        def step(state: nnx.State, t: jax.Array):
            model, opt = nnx.merge(graphdef, state)
            batch = sample_batch(d, boot, jax.random.fold_in(key, t), tc)
            if mesh is not None:
                batch = dist.constrain_batch(batch, mesh)
            grads, aux = nnx.grad(loss_and_metrics, has_aux=True)(model, batch, tc)
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
def graphdef_of(mc: ModelConfig, tc: TrainConfig | None = None) -> nnx.GraphDef:
    """Graphdef of the model, or of (model, optimizer) when a TrainConfig is given."""
    if tc is None:
        return nnx.graphdef(nnx.eval_shape(lambda: make_model(mc, nnx.Rngs(0))))
    return nnx.graphdef(nnx.eval_shape(lambda: _build(mc, tc, jax.random.key(0))))


# Static configs, not graphdefs: the optimizer's graphdef holds a fresh optax object per build,
# which would defeat jit's cache.
@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def run_chunk(mc: ModelConfig, tc: TrainConfig, n_steps: int, mesh: Mesh | None, *args):
    return make_chunk_fn(graphdef_of(mc, tc), tc, n_steps, mesh)(*args)


def step_config(tc: TrainConfig) -> TrainConfig:
    """tc without the fields that do not change a step, so they do not trigger recompiles."""
    return dataclasses.replace(tc, log_every=1, checkpoint_every=0)


@functools.partial(jax.jit, static_argnums=0)
def _apply_members(mc: ModelConfig, state_K: nnx.State, x_BxF: jax.Array):
    graphdef = graphdef_of(mc)

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
