"""Each wing has a public face (`rm_theory.<wing>`, its `__init__.py`): what the README, the notebooks
and the benchmarks import, and no private name crosses a wing (README "Layout")."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "rm_theory"
WINGS = ("common", "world", "ibn", "rm", "policy", "real", "lm", "runs", "figures", "config", "studies")


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "rm_theory" and len(parts) > 1 else None


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(tree: ast.AST, own: str | None, where: str) -> list[str]:
    """Private names (`_x`) of another wing that a module imports, or reads as an attribute of a
    module of another wing it imported (`import rm_theory.ibn.distance as d; d._x`). `own` is the
    module's wing (None: outside the package, where every wing is another)."""
    bad, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _wing(node.module):
            if _wing(node.module) == own:
                continue
            for a in node.names:
                if _private(a.name) or any(_private(p) for p in node.module.split(".")):
                    bad.append(f"{where}:{node.lineno} imports {node.module}.{a.name}")
                else:  # `from rm_theory.ibn import distance as d`: d may be a module
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if _wing(a.name) and _wing(a.name) != own:
                    if any(_private(p) for p in a.name.split(".")):
                        bad.append(f"{where}:{node.lineno} imports {a.name}")
                    aliases[a.asname or a.name.split(".")[0]] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name):
            if node.value.id in aliases:
                bad.append(f"{where}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    return bad


def _sources() -> list[tuple[Path, str | None]]:
    """(file, wing) for the package's modules; the benchmarks and notebooks have no wing."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        out.append((path, rel.parts[0] if len(rel.parts) > 1 else None))
    out += [(p, None) for p in sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "notebooks").glob("*.py"))]
    return out


def readme_code() -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)


def face_violations(tree: ast.AST, where: str) -> list[str]:
    """Imports of anything but a wing's face (`from rm_theory.<wing> import <name in its __all__>`)."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [f"{where}:{node.lineno} imports {a.name}" for a in node.names if a.name.startswith("rm_theory")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rm_theory"):
            wing = _wing(node.module)
            if wing is None or node.module != f"rm_theory.{wing}":
                bad.append(f"{where}:{node.lineno} imports from {node.module}, not a wing's face")
                continue
            public = importlib.import_module(node.module).__all__
            bad += [
                f"{where}:{node.lineno} imports {node.module}.{a.name}, not in its __all__"
                for a in node.names
                if a.name not in public
            ]
    return bad


@pytest.mark.parametrize("wing", WINGS)
def test_every_wing_has_a_documented_face(wing):
    face = importlib.import_module(f"rm_theory.{wing}")
    assert face.__doc__ and face.__doc__.strip(), f"rm_theory/{wing}/__init__.py has no docstring"
    assert isinstance(getattr(face, "__all__", None), list), f"rm_theory.{wing} has no __all__"
    assert face.__all__ == sorted(set(face.__all__), key=face.__all__.index), "a name is listed twice"
    for name in face.__all__:
        assert hasattr(face, name) or importlib.util.find_spec(f"rm_theory.{wing}.{name}"), f"{wing}.{name}"


@pytest.mark.parametrize("wing", WINGS)
def test_a_face_exports_only_its_own_wing(wing):
    """One home per concept: a face re-exports names of its own wing's modules, never another's."""
    tree = ast.parse((PKG / wing / "__init__.py").read_text())
    public = set(importlib.import_module(f"rm_theory.{wing}").__all__)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rm_theory"):
            if _wing(node.module) != wing:
                shared = public & {a.asname or a.name for a in node.names}
                assert not shared, f"rm_theory.{wing} re-exports {sorted(shared)} from {node.module}"


def test_a_module_lists_only_its_own_names():
    """A module's `__all__` names what it defines, not what it imports (a second home)."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
                names = [e.value for e in node.value.elts]
                bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n in imported]
    assert bad == []


def test_the_front_door_opens():
    from rm_theory.ibn import inference_distance
    from rm_theory.rm import train_ensemble
    from rm_theory.world import PrefixTreeSpace

    assert callable(inference_distance) and callable(train_ensemble) and isinstance(PrefixTreeSpace, type)


def test_fine_tuning_opens_from_the_lm_face():
    """What the studies built on fine-tuned score models (issues 24, 25) import: `rm_theory.lm`'s face."""
    import rm_theory.lm as lm

    names = {"finetune", "FinetuneConfig", "Pairs", "Finetuned", "logits_program", "member_logits", "make_mesh"}
    assert names <= set(lm.__all__)
    assert lm.finetune.__module__ == "rm_theory.lm.train" and lm.Finetuned.__module__ == "rm_theory.lm.program"


def test_no_private_name_crosses_a_wing():
    bad = []
    for path, wing in _sources():
        bad += private_uses(ast.parse(path.read_text()), wing, str(path.relative_to(ROOT)))
    assert bad == []


def test_notebooks_and_readme_import_only_wing_faces():
    bad = []
    for path in sorted((ROOT / "notebooks").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")):
        bad += face_violations(ast.parse(path.read_text()), str(path.relative_to(ROOT)))
    for i, block in enumerate(readme_code()):
        bad += face_violations(ast.parse(block), f"README.md python block {i + 1}")
    assert bad == []


def test_the_readme_code_runs():
    blocks = readme_code()
    assert blocks, "the README shows the library's front door in a python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_the_checks_catch_what_they_forbid():
    deep = ast.parse("from rm_theory.ibn.distance import _block_pcg, Network\nimport rm_theory.rm.bayes as b\nb._x\n")
    assert private_uses(deep, "rm", "x.py") == ["x.py:1 imports rm_theory.ibn.distance._block_pcg"]
    assert private_uses(deep, "ibn", "x.py") == ["x.py:3 reads rm_theory.rm.bayes._x"]
    assert len(private_uses(deep, "policy", "x.py")) == 2
    aliased = ast.parse("from rm_theory.ibn import distance as dist\ndist._cholmod()\n")
    assert private_uses(aliased, None, "bench.py") == ["bench.py:2 reads rm_theory.ibn.distance._cholmod"]
    faces = ast.parse("from rm_theory.ibn.network import build_ibn\nfrom rm_theory.ibn import nonesuch, Network\n")
    assert len(face_violations(faces, "nb.py")) == 2
