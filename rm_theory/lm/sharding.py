"""Sharding the fine-tuning of a score model (`train.finetune`) over a ("data", "fsdp") mesh.

Each microbatch's rows are split over both axes (`row_sharding`); every parameter and optimiser array
is split over "fsdp" along its largest divisible axis and replicated over "data" (`param_shardings`;
an ensemble's member axis stays whole: its members are vmapped on every device); the gradient
reductions are inserted by XLA (GSPMD). The numbers are those of one device up to float32 summation
order (tests/test_lm_sharding.py). A multi-host run joins its job first
(`common.distributed.maybe_initialize`); `make_mesh` then sees every host's devices.

Legend: K ensemble members.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA, FSDP = "data", "fsdp"
ROWS = (DATA, FSDP)  # a batch's rows are split over both mesh axes


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


def param_shardings(tree, mesh: Mesh, lead: int = 0):
    """Each array split over "fsdp" along its largest divisible axis from `lead` on, replicated over "data"."""
    fsdp = mesh.shape[FSDP]
    return jax.tree.map(lambda x: NamedSharding(mesh, _spec(tuple(x.shape), fsdp, lead)), tree)


def place(tree, shardings):
    """Global arrays from values every process holds in full (one host or many)."""

    def put(x, s):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])

    return jax.tree.map(put, tree, shardings)


def row_sharding(mesh: Mesh, axis: int, ndim: int) -> NamedSharding:
    """An `ndim`-dimensional array's rows (its axis `axis`) split over both mesh axes."""
    return NamedSharding(mesh, P(*([None] * axis), ROWS, *([None] * (ndim - axis - 1))))


def constrain(tree, shardings):
    """Inside a jitted program: each array kept where `shardings` puts it."""
    return jax.tree.map(jax.lax.with_sharding_constraint, tree, shardings)


def state_shardings(state, mesh: Mesh):
    """Shardings of the training state (shared, members_K, opt_shared, opt_members_K): a member axis stays whole."""
    shared, members_K, opt_s, opt_m = state
    return (
        param_shardings(shared, mesh),
        param_shardings(members_K, mesh, lead=1),
        param_shardings(opt_s, mesh),
        param_shardings(opt_m, mesh, lead=1),
    )
