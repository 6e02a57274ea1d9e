"""The notebooks execute (jupytext → nbclient) on a fixture folder of smoke runs.

The fixture runs an entry point's smoke config (`debug=smoke`) only for the notebooks that need
it and only once per session. The scaling study's smoke run is cheap enough for the default
suite; the model, downstream and real-data runs train networks, so their notebooks run under
`-m slow`, while the default suite checks that those notebooks degrade to a message when the
results folder holds no run of theirs.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# notebook -> (entry points whose smoke runs it reads, least number of figures it must show)
NEEDS = {
    "ibn_explorer": ((), 4),
    "scaling_study": (("ibn_scaling",), 4),
    "reward_models": (("train_rm",), 2),
    "downstream": (("best_of_n", "win_rates", "safe_rlhf"), 5),
    "real_data": (("real_data",), 3),
    "real_theory": (("real_theory", "real_design"), 3),
    "ai_labels": (("ai_labels",), 5),
    "multi_dim": (("multi_dim",), 3),
    "finetune_rm": (("finetune_rm",), 2),
}
SLOW = {"reward_models", "downstream", "real_data", "real_theory", "ai_labels", "multi_dim", "finetune_rm"}


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """A function name -> results root, running `python -m experiments.<name> debug=smoke` into
    `<root>/<name>` the first time a name is asked for (a missing entry point skips the test)."""
    root = tmp_path_factory.mktemp("smoke_results")
    done: set[str] = set()

    def ensure(*names: str) -> Path:
        for name in names:
            if name in done:
                continue
            if not (ROOT / "experiments" / f"{name}.py").exists():
                pytest.skip(f"experiments/{name}.py does not exist yet")
            proc = subprocess.run(
                [sys.executable, "-m", f"experiments.{name}", "debug=smoke", f"hydra.run.dir={root / name}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert proc.returncode == 0, f"smoke run of {name} failed:\n{proc.stderr[-3000:]}"
            done.add(name)
        return root

    return ensure


def execute(name: str, results: Path, monkeypatch) -> tuple[list[str], list[bytes]]:
    """Executes notebooks/<name>.py in a fresh python3 kernel; returns its text outputs and PNGs."""
    monkeypatch.setenv("RM_THEORY_RESULTS", str(results))
    monkeypatch.setenv("RM_THEORY_SMOKE", "1")
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    # The kernel starts in the project root, so `rm_theory` imports without being installed;
    # jupyter_client swaps the spec's "python" for this interpreter, so the venv's kernel runs.
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    texts, images = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":  # execute() raises first; kept as a guard
                pytest.fail(f"{name}: {out['ename']}: {out['evalue']}")
            texts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
            if "image/png" in out.get("data", {}):
                images.append(base64.b64decode(out["data"]["image/png"]))
    return texts, images


def test_every_notebook_is_covered():
    assert {p.stem for p in NOTEBOOKS.glob("*.py")} == set(NEEDS)


def test_notebooks_have_parameters_cell():
    for name in NEEDS:
        nb = jupytext.read(NOTEBOOKS / f"{name}.py")
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert 'os.environ.get("RM_THEORY_RESULTS"' in code[0].source, name
        assert 'os.environ.get("RM_THEORY_SMOKE") == "1"' in code[0].source, name


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NEEDS])
def test_notebook_executes(name, smoke_results, monkeypatch):
    entries, min_figures = NEEDS[name]
    results = smoke_results(*entries)
    texts, images = execute(name, results, monkeypatch)
    assert len(images) >= min_figures, f"{name} drew {len(images)} figures, want >= {min_figures}"
    assert all(img.startswith(b"\x89PNG") for img in images)
    assert not any(" run under " in t for t in texts), texts  # every part found its run


@pytest.mark.parametrize("name", sorted(SLOW))
def test_notebook_without_runs_says_so(name, tmp_path, monkeypatch):
    texts, images = execute(name, tmp_path, monkeypatch)
    assert images == []
    assert any("python -m experiments." in t for t in texts), texts
