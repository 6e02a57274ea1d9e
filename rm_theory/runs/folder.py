"""Run outputs and their aggregation.

Every run writes into its own folder: `config.yaml`/`config.json` (the resolved config),
`metrics.jsonl` (one JSON object per logged step or finished unit of work) and `summary.json`
(final scalars and `"status"`: "ok", "failed" or "running"). Aggregation globs run folders into one
pandas table and tolerates failed or missing runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def to_jsonable(x: Any) -> Any:
    """Plain JSON types from numpy/jax scalars and arrays, dataclasses and paths; NaN/inf as strings."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist") and not isinstance(x, str):
        return to_jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, np.generic):
        return to_jsonable(x.item())
    return x


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(obj), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a killed run never leaves half a summary


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


class RunLog:
    """Appends metric rows to `metrics.jsonl` and writes `summary.json` in a run folder."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.dir / "metrics.jsonl"

    def metric(self, row: dict) -> None:
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(to_jsonable(row), sort_keys=True) + "\n")

    def rows(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def summary(self, values: dict, status: str = "ok") -> dict:
        out = {**values, "status": status}
        write_json(self.dir / "summary.json", out)
        return out


def apply_smoke(cfg: DictConfig, schema: type) -> DictConfig:
    """Shrinks a config to a run of seconds: the schema's `SMOKE` dotted-key overrides."""
    for key, value in getattr(schema, "SMOKE", {}).items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def enable_compilation_cache(path: str | Path | None = None) -> None:
    """Persists XLA compilations across runs (sweeps recompile the same programs otherwise).

    Off when RM_THEORY_COMPILE_CACHE=0; the folder defaults to ~/.cache/rm_theory/jax.
    """
    import os

    if os.environ.get("RM_THEORY_COMPILE_CACHE", "1") == "0":
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return
    path = path or os.environ.get("RM_THEORY_COMPILE_CACHE_DIR", Path.home() / ".cache" / "rm_theory" / "jax")
    Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _process_dir(out_dir: Path, obj: Any) -> Path:
    """The folder this process writes. Multi-host runs (`distributed.initialize`) join the job
    first; every process then runs the same program, process 0 writes the run folder and the
    others their own hidden `.process_<i>/` inside it, so no file is written twice."""
    dist_cfg = getattr(obj, "distributed", None)
    if dist_cfg is None or not dist_cfg.initialize:
        return out_dir
    import jax

    from rm_theory.rm import sharding as distributed

    distributed.maybe_initialize(dist_cfg)
    i = jax.process_index()
    return out_dir if i == 0 else out_dir / f".process_{i}"


def run_entry(cfg: DictConfig, main: Callable[[Any, RunLog], dict], out_dir: str | Path | None = None) -> dict:
    """The contract of every entry point: resolved config in, `summary.json` with a status out.

    `main(config_object, runlog)` returns the headline scalars. A failure is recorded in
    `summary.json` (status "failed", the error) before it is re-raised.
    """
    if out_dir is None:
        from hydra.core.hydra_config import HydraConfig

        out_dir = HydraConfig.get().runtime.output_dir
    enable_compilation_cache()
    schema = OmegaConf.get_type(cfg)
    if cfg.get("smoke", False):
        cfg = apply_smoke(cfg, schema)
    obj = OmegaConf.to_object(cfg)
    runlog = RunLog(_process_dir(Path(out_dir), obj))
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (runlog.dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    write_json(runlog.dir / "config.json", resolved)
    start = time.time()
    runlog.summary({}, status="running")
    try:
        values = main(obj, runlog)
    except BaseException as err:
        runlog.summary(
            {
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(),
                "wall_time_s": time.time() - start,
            },
            status="failed",
        )
        raise
    summary = runlog.summary({**values, "wall_time_s": time.time() - start}, status="ok")
    log.info("summary: %s", {k: v for k, v in summary.items() if not isinstance(v, dict | list)})
    return summary
