"""Orbax checkpoints of a training state (any pytree, e.g. the stacked nnx.State of models and
optimizers) plus a JSON metadata record (step, history, config fingerprint).

Saves are asynchronous: `save` returns once the arrays are copied off the training state, and the
files are written while training goes on (the next save, or `close`, waits for the previous one).
Orbax writes each step into a temporary folder that it renames when complete, so a run killed in
mid-save leaves the previous checkpoint as the latest one, never a torn one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def open_manager(
    directory: str | os.PathLike, max_to_keep: int = 2, asynchronous: bool = True
) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=asynchronous)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mgr: ocp.CheckpointManager, step: int, state: Any, meta: dict) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
    mgr.save(step, args=args, force=True)


def restore_latest(mgr: ocp.CheckpointManager, like_state: Any) -> tuple[Any, dict] | None:
    """(state, meta) of the newest complete checkpoint, shaped like `like_state`; None if there is none."""
    step = mgr.latest_step()
    if step is None:
        return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    out = mgr.restore(step, args=args)
    return out.state, out.meta
