import os
from pathlib import Path

import pytest

# JAX on the CPU, quietly, in every test process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project_root() -> Path:
    return ROOT


# Tests compile the same XLA programs in several processes (xdist workers, entry-point
# subprocesses): a persistent compilation cache shared by them saves most of the compile time.
os.environ.setdefault("RM_THEORY_COMPILE_CACHE_DIR", str(ROOT / ".cache" / "jax"))


@pytest.fixture(autouse=True, scope="session")
def _compilation_cache():
    from rm_theory.runs import enable_compilation_cache

    enable_compilation_cache()
