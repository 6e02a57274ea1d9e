"""The process that writes a run: it dies with the `reproduce` that started it (a parent-death
signal), and in a multi-host run it joins the job and writes only its own part of the folder."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from rm_theory.common.distributed import maybe_initialize, process_index


def arm_parent_death_signal() -> bool:
    """SIGKILL this process when its parent dies (Linux `prctl(PR_SET_PDEATHSIG)`; kept across exec).
    Returns False where the call is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """A run started by `reproduce` dies with it, never running on as an orphan that a rerun would
    race. `experiments/__init__.py` calls it before the entry point's heavy imports, so a kill of the
    parent during them counts too; a parent that died before the signal was armed is caught here.
    `RM_THEORY_PARENT_PID` names the parent."""
    parent = os.environ.get("RM_THEORY_PARENT_PID")
    if not parent:
        return
    if not arm_parent_death_signal():  # not Linux: the parent still kills our process group on exit
        return
    os.environ.pop("RM_THEORY_PARENT_PID")  # for this process only, not for what it starts
    if os.getppid() != int(parent):  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


def process_dir(out_dir: Path, obj: Any) -> Path:
    """The folder this process writes. Multi-host runs (`distributed.initialize`) join the job
    first; every process then runs the same program, process 0 writes the run folder and the
    others their own hidden `.process_<i>/` inside it, so no file is written twice."""
    dist_cfg = getattr(obj, "distributed", None)
    if dist_cfg is None or not dist_cfg.initialize:
        return out_dir
    maybe_initialize(dist_cfg)
    i = process_index()
    return out_dir if i == 0 else out_dir / f".process_{i}"
