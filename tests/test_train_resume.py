"""Training resumes from its checkpoint: `experiments.train_rm` killed with SIGKILL in the middle
of a unit's training ends, when rerun into its folder, bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "debug=smoke",
    "model.family=mlp",
    "seeds=1",
    "n_values=[64]",
    "topologies=[chain]",
    "checkpoint=true",  # smoke turns checkpoints off; the command line wins
    "train.steps=6000",
    "train.log_every=100",
    "train.checkpoint_every=200",
]


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.train_rm", *ARGS, f"hydra.run.dir={out}"]


def _run(out: Path) -> str:
    proc = subprocess.run(_cmd(out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _numbers(out: Path) -> dict:
    return {k: v for k, v in json.loads((out / "summary.json").read_text()).items() if k != "wall_time_s"}


@pytest.mark.slow
def test_kill_9_mid_unit_then_rerun_is_bit_identical(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run(full)
    proc = subprocess.Popen(_cmd(killed), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    unit = killed / "checkpoints" / "polynomial_64_chain_0"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            steps = [int(p.name) for p in unit.glob("*") if p.name.isdigit()] if unit.exists() else []
            if any(s >= 400 for s in steps):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the unit finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"  # killed, not failed
    assert not (killed / "results.csv").exists()
    log = _run(killed)
    resumed = [line for line in log.splitlines() if "resuming training from step" in line]
    assert resumed and " 0 of" not in resumed[0], log[-2000:]
    assert _numbers(killed) == _numbers(full)
    assert (killed / "results.csv").read_text() == (full / "results.csv").read_text()
    assert not (killed / "checkpoints" / "polynomial_64_chain_0").exists()  # a finished unit's checkpoint goes
