"""Joining a multi-host JAX job (`jax.distributed.initialize`): the first thing every process of a
multi-host run does, before any other JAX work, whatever it then computes (README "Sharding and
multi-host training")."""

from __future__ import annotations

from typing import Any


def maybe_initialize(cfg: Any) -> bool:
    """Joins the multi-host job when `cfg.initialize`; True if it did. Call before other JAX use.

    `cfg` (`rm.sharding.DistributedConfig`) names the coordinator address, the number of processes and
    this one's id; where they are None, JAX reads them from the environment (SLURM, Open MPI, Cloud TPU).
    """
    import jax

    if not cfg.initialize or jax.distributed.is_initialized():  # once per process (multirun)
        return False
    jax.distributed.initialize(
        coordinator_address=cfg.coordinator_address,
        num_processes=cfg.num_processes,
        process_id=cfg.process_id,
    )
    return True


def process_index() -> int:
    """This process's index in the job (0 on one host)."""
    import jax

    return jax.process_index()
