"""Training reward and cost ensembles on comparison data (chain pairs and/or tree groups), chunk
by chunk, with Orbax checkpoints that resume bit-exactly.

A run is a pure function of (configs, data, key): minibatch t of member k is drawn with
`fold_in(key_k, t)`, so a resumed run replays exactly the same steps as an uninterrupted one.

Legend: N items, K ensemble members, S steps, C harm categories.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rm_theory.rm import checkpoint as ckpt
from rm_theory.rm import sharding as dist
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.program import Ensemble, graphdef_of, run_chunk, setup_ensemble, step_config
from rm_theory.rm.step import Arrays, TrainConfig
from rm_theory.world.inputs import PrefData

log = logging.getLogger(__name__)


def _fingerprint(mc: ModelConfig, tc: TrainConfig, data: PrefData, key: jax.Array) -> dict:
    # how often checkpoints are written does not change the run: a resume may use another interval
    train = {k: v for k, v in dataclasses.asdict(tc).items() if k != "checkpoint_every"}
    fp = {
        "model": dataclasses.asdict(mc),
        "train": train,
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


def program_length(log_every: int, steps: int) -> int:
    """Steps per compiled chunk. A run of 600 steps logged every 250 would compile a 250-step
    program and a 100-step one for the tail (each compile costs seconds); a common divisor of both
    (here 50) is one program for every chunk, run several times per log row. Below a tenth of the
    log interval the extra dispatches outweigh the compile, and the tail compiles its own."""
    if steps <= log_every or steps % log_every == 0:
        return min(log_every, steps)
    common = math.gcd(log_every, steps)
    return common if 10 * common >= log_every else log_every


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
    tc_step = step_config(tc)
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
            log.info("resuming training from step %d of %d (%s)", start, tc.steps, checkpoint_dir)

    bar = tqdm(total=tc.steps, initial=start, disable=not progress, desc=tc.objective, leave=False)
    length = program_length(S, tc.steps)
    try:
        t_last = time.perf_counter()
        for step0 in range(start, tc.steps, S):
            n = min(S, tc.steps - step0)
            c = min(length, n)  # divides n: see program_length
            auxes = []
            for s0 in range(step0, step0 + n, c):
                state_K, aux = run_chunk(mc, tc_step, c, mesh, state_K, jnp.int32(s0), d, boot, keys_K)
                auxes.append(dist.to_host(aux))
            step = step0 + n
            row = _metrics_row(jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *auxes))
            now = time.perf_counter()  # the first chunk's rate includes compilation
            row["comparisons_per_s"] = n * tc.ensemble_size * tc.batch_size / (now - t_last)
            t_last = now
            row = {"step": step, "objective": tc.objective, **row}
            history.append(row)
            bar.update(n)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if mgr is not None and (step == tc.steps or (tc.checkpoint_every and step % tc.checkpoint_every == 0)):
                meta = {"step": step, "history": history, "fingerprint": fp}
                ckpt.save(mgr, step, state_K, meta)
            if log_fn is not None:
                log_fn(step, row)
    finally:
        bar.close()
        if mgr is not None:
            mgr.close()
    return Ensemble(graphdef_of(mc), state_K[0], mc), history


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
