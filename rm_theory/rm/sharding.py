"""Data-parallel and member-parallel sharding of fused ensemble training over JAX devices, and
multi-host start-up (`jax.distributed.initialize`).

Design. The mesh is 2-D, axes ("member", "data") of shape (M, D/M) with M = gcd(K, D) by
default (D devices, K ensemble members):
- "member" splits the leading member axis of the vmapped (model, optimizer) state, the bootstrap
  indices and the minibatch keys. Members never talk to each other, so this part is exact: each
  device runs the same per-member program as one device does.
- "data" splits each member's minibatch (pairs, items, groups) inside the jitted step; the
  parameters are replicated along it and GSPMD inserts the all-reduce of the gradient. Only the
  order of that sum changes, so numbers agree with one device up to float32 rounding.
The (small) training arrays are replicated on every device; minibatches are gathered from them.
With K = 8 on 8 devices the run is purely member-parallel; with K = 3 it is purely data-parallel.
"data" is the last mesh axis, so `jax.make_mesh` puts it on the devices closest together (one
host, one slice) and only the member axis spans hosts.

Multi-host: every process runs the same script; `common.distributed.maybe_initialize` calls
`jax.distributed.initialize` (coordinator/process count/id from the config, or detected from
SLURM / Open MPI / TPU environment when left None) before any other JAX call, after which
`jax.devices()` lists the devices of all hosts and the mesh spans them.

Legend: K ensemble members, D devices, M member-axis size, B minibatch rows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rm_theory.common.validate import spec

MEMBER, DATA = "member", "data"


@dataclasses.dataclass
class DistributedConfig:
    """`devices`: 1 = one device, no mesh (the default); 0 = all devices (all hosts after
    initialize); n = the first n. `members`: size of the member axis, 0 = gcd(K, devices)."""

    devices: int = spec(1, ge=0)
    members: int = spec(0, ge=0)
    initialize: bool = False  # multi-host: call jax.distributed.initialize first
    coordinator_address: str | None = None  # "host:port" of process 0; None = auto-detect
    num_processes: int | None = spec(None, ge=1)
    process_id: int | None = spec(None, ge=0)


def make_mesh(cfg: DistributedConfig, ensemble_size: int) -> Mesh | None:
    """The ("member", "data") mesh for a K-member ensemble, or None for single-device runs."""
    devs = jax.devices()
    n = len(devs) if cfg.devices == 0 else cfg.devices
    if n == 1:
        return None
    if n > len(devs):
        raise ValueError(f"asked for {n} devices, {len(devs)} available")
    M = cfg.members or math.gcd(ensemble_size, n)
    if n % M or ensemble_size % M:
        raise ValueError(f"member axis {M} must divide both devices {n} and K={ensemble_size}")
    shape, types = (M, n // M), (AxisType.Auto, AxisType.Auto)
    try:  # topology-aware device order on TPU/GPU
        return jax.make_mesh(shape, (MEMBER, DATA), axis_types=types, devices=devs[:n])
    except ValueError:  # some backends refuse a device subset
        return Mesh(np.asarray(devs[:n]).reshape(shape), (MEMBER, DATA), axis_types=types)


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis (members) split over "member", the rest replicated."""
    return NamedSharding(mesh, P(MEMBER))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _put(x: Any, sharding: NamedSharding) -> jax.Array:
    """A global array from a value every process holds in full (works on one host or many)."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        # Typed keys: place their raw data and wrap again.
        impl = jax.random.key_impl(x)
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding), impl=impl)
    x_np = np.asarray(x)
    return jax.make_array_from_callback(x_np.shape, sharding, lambda idx: x_np[idx])


def place_members(tree: Any, mesh: Mesh) -> Any:
    """Places every leaf (leading member axis) split over the "member" axis."""
    s = member_sharding(mesh)
    return jax.tree.map(lambda v: _put(v, s), tree)


def place_replicated(tree: Any, mesh: Mesh) -> Any:
    s = replicated(mesh)
    return jax.tree.map(lambda v: _put(v, s), tree)


def constrain_batch(batch: Any, mesh: Mesh) -> Any:
    """Inside jit (and inside the member vmap, whose spmd_axis_name adds "member"): split the
    leading (row) axis of every minibatch array over "data"."""
    s = NamedSharding(mesh, P(DATA))
    return jax.tree.map(lambda v: jax.lax.with_sharding_constraint(v, s), batch)


def constrain_member(tree: Any, mesh: Mesh) -> Any:
    """Inside the member vmap: a member's own state is replicated over "data" (and, through
    spmd_axis_name, split over "member")."""
    s = replicated(mesh)
    return jax.tree.map(lambda v: jax.lax.with_sharding_constraint(v, s), tree)


def to_host(tree: Any) -> Any:
    """numpy copies of global arrays, gathered across processes when there are several."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.tree.map(np.asarray, tree)
