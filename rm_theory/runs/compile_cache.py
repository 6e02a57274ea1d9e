"""XLA's persistent compilation cache, shared by the runs of a machine."""

from __future__ import annotations

from pathlib import Path


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
