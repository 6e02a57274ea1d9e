"""The package's layout explains itself: imports run one way between its wings (README "Layout").

world ← ibn ← rm ← policy; real may use rm, ibn and lm (pretrained text models), which uses common and
rm (its losses, checkpoints and host transfer);
config, figures and runs sit above the library wings; studies sit on top; nothing in the package
imports `experiments`. `common` is below all. The registry of studies (`rm_theory/registry.py`) imports
no wing (it names code as strings): config, runs, figures and studies read it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "rm_theory"
LIBRARY = {"common", "world", "ibn", "rm", "policy", "real", "lm"}
# wing -> the wings it may import (besides itself)
ALLOWED = {
    "common": set(),
    "world": {"common"},
    "ibn": {"common", "world"},
    "rm": {"common", "world", "ibn"},
    "policy": {"common", "world", "ibn", "rm"},
    "real": {"common", "world", "ibn", "rm", "lm"},
    "lm": {"common", "rm"},
    "config": LIBRARY | {"registry"},
    "runs": LIBRARY | {"registry"},
    "figures": LIBRARY | {"runs", "registry"},
    "studies": LIBRARY | {"config", "runs", "figures", "registry"},
}


def wing_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "rm_theory" and len(parts) > 1 else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every absolute module a file imports (top level and inside functions), with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # `from rm_theory import x` names a wing
            if node.module == "rm_theory":
                out += [(node.lineno, f"rm_theory.{a.name}") for a in node.names]
    return out


def violations(root: Path = PKG) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        wing = rel.parts[0] if len(rel.parts) > 1 else None
        for line, mod in imports_of(path):
            where = f"{path.relative_to(root.parent)}:{line} imports {mod}"
            if mod.split(".")[0] == "experiments":
                bad.append(f"{where} (nothing in the package imports experiments)")
                continue
            target = wing_of(mod)
            if target is None or target == wing:
                continue
            if wing is None:
                bad.append(f"{where} (top-level modules of the package import no wing)")
            elif target not in ALLOWED.get(wing, set()):
                bad.append(f"{where} ({wing} may import only {sorted(ALLOWED[wing])})")
    return bad


def test_every_module_belongs_to_a_known_wing():
    wings = {p.relative_to(PKG).parts[0] for p in PKG.rglob("*.py") if len(p.relative_to(PKG).parts) > 1}
    assert wings <= set(ALLOWED), sorted(wings - set(ALLOWED))
    top = {p.name for p in PKG.glob("*.py")}
    assert top == {"__init__.py", "registry.py"}, "a module at the top of the package is no wing's"


def test_imports_run_one_way():
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "bad.py").write_text("from rm_theory.rm.train import TrainConfig\n")
    (tmp_path / "ibn").mkdir()
    (tmp_path / "ibn" / "ok.py").write_text("from rm_theory.world.spaces import Responses\n")
    found = violations(tmp_path)
    assert len(found) == 1 and "world/bad.py:1 imports rm_theory.rm.train" in found[0]


@pytest.mark.parametrize("name", sorted(__import__("rm_theory.config", fromlist=["SCHEMAS"]).SCHEMAS))
def test_entry_point_study_and_config_share_a_name(name):
    assert (ROOT / "experiments" / f"{name}.py").exists()
    assert (PKG / "studies" / f"{name}.py").exists()
    assert (ROOT / "conf" / f"{name}.yaml").exists()


MAX_LINES = 600


def test_no_module_holds_more_than_one_concept_by_size():
    """A module over 600 lines holds several concepts (README "Layout"): split it by concept."""
    long = {
        str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
