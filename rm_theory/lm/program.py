"""The compiled programs of fine-tuning (`train.finetune`) and the trained ensemble they leave
(`Finetuned`), which scores texts with every member.

The training program (STYLE.md, fused form; `chunk_program`): the state is split once into the
trained parameters (shared and per member), the frozen ones and the optimiser states; a chunk of
`chunk_steps` steps of one length bucket runs in `jax.lax.scan` inside one `jax.jit`; a step sums
the gradients of `grad_accum` microbatches of `batch_size` pairs (equal to one step on all of them)
and then applies `step.adamw` with the step's learning rate, an input, so one compiled program
serves every data set and schedule: one compile per bucket length. Steps and microbatches with no
pair in them (a bucket's last chunk) are skipped by `lax.cond`, not computed. With a mesh the carry
keeps its shardings (`sharding.state_shardings`): no resharding per step.

Legend: S steps (of a chunk), Sm microbatches (of a step, their gradients summed), B batch (the pairs
of a microbatch), T tokens, K ensemble members, N texts, O output features (the score and any harm
categories).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rm_theory.lm.score import ScoreModel
from rm_theory.lm.sharding import constrain, place, row_sharding, state_shardings
from rm_theory.lm.step import FinetuneConfig, adamw, member_logits, pair_losses
from rm_theory.lm.text import padded_batches
from rm_theory.rm.sharding import to_host


@functools.lru_cache(maxsize=16)
def chunk_program(
    graphdef, cfg: FinetuneConfig, share_backbone: bool, has_types: bool, mesh: Mesh | None, harm_head: int = -1
):
    """jit(fn)(state, frozen, batches) -> (state, aux_S): the steps of one chunk, fused. `state` =
    (shared, members_K, opt_shared, opt_members_K), donated; `batches` holds each step's
    microbatches: ids [S, Sm, 2, B, T] (side a, side b), len [S, Sm, 2, B], types (if `has_types`),
    y [S, Sm, B] (a vector model's [S, Sm, B, G]), safe [S, Sm, 2, B], margin [S, Sm, B], w [S, Sm, K, B]
    (each member's weight of each pair, 0 for a padding row), lr [S]; a vector model's also cat
    [S, Sm, 2, B, C] and sev [S, Sm, 2, B]. Compiled once per bucket length T; `cfg` is a `step_config`,
    `harm_head` the vector model's (`step.pair_losses`)."""
    tx = adamw(cfg)

    def chunk(state, frozen, batches):
        def objective(shared, members_K, b: dict, W_K):
            _, B, T = b["ids"].shape
            ids_NxT = b["ids"].reshape(2 * B, T)
            mask_NxT = (jnp.arange(T)[None, :] < b["len"].reshape(2 * B, 1)).astype(jnp.int32)
            types_NxT = b["types"].reshape(2 * B, T) if has_types else None
            if mesh is not None:
                ids_NxT = jax.lax.with_sharding_constraint(ids_NxT, row_sharding(mesh, 0, 2))
            r_KxN = member_logits(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone)
            out_KxN = r_KxN if cfg.objective == "vector" else r_KxN[..., 0]
            loss_KxB, hit_KxB, count_KxB = pair_losses(out_KxN[:, :B], out_KxN[:, B:], b, cfg, harm_head)
            w_KxB = b["w"]
            loss_K = (w_KxB * loss_KxB).sum(1) / jnp.maximum(W_K, 1e-9)
            aux = {"loss": loss_K, "hit": (w_KxB * hit_KxB).sum(1), "count": (w_KxB * count_KxB).sum(1)}
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
                (g_s, g_m), aux_Sm = jax.lax.scan(micro, zero, {k: v for k, v in b.items() if k != "lr"})
                u_s, new_opt_s = tx.update(g_s, opt_s, shared)
                u_m, new_opt_m = jax.vmap(tx.update)(g_m, opt_m, members_K)
                descend = functools.partial(jax.tree.map, lambda p, u: p - b["lr"] * u)
                new = (descend(shared, u_s), descend(members_K, u_m), new_opt_s, new_opt_m)
                aux = {k: v.sum(0) for k, v in aux_Sm.items()}
                return new, aux | {"grad_norm": optax.tree.norm((g_s, g_m))}

            def skip(state):
                return state, none | {"grad_norm": jnp.zeros(())}

            new, aux = jax.lax.cond(W_K.sum() > 0, run, skip, state)
            if mesh is not None:  # keep the carry where it started: no resharding per step
                new = constrain(new, state_shardings(new, mesh))
            return new, aux

        return jax.lax.scan(step, state, batches)

    return jax.jit(chunk, donate_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 7))
def logits_program(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone):
    return member_logits(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone)


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
        """[K, N, O] every member's logits of token-id sequences (padded to the training buckets)."""
        N, O = len(ids), self.model.net.num_labels
        out_KxNxO = np.zeros((self.size, N, O), np.float32)
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
                arrays = place(arrays, (row_sharding(self.mesh, 0, 2),) * 3)
            out = logits_program(self.graphdef, self.shared, self.frozen, self.members_K, *arrays, self.share_backbone)
            out_KxNxO[:, rows] = to_host(out)[:, : len(rows)]
        return out_KxNxO

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
            heads=m.heads,
            harm_head=m.harm_head,
            tokenizer_files=m.tokenizer_files,
            source=m.source,
        )
