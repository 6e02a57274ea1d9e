"""House style: the tree is lint- and format-clean with the pinned ruff (setup.cfg's test extra), and
shape-suffixed names are explained by a legend in the terms of the package's table of letters."""

import ast
import importlib
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e '.[test]')")
@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(args):
    proc = subprocess.run([RUFF, *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


# ---------------------------------------------------------------------------- shape letters

PKG = ROOT / "rm_theory"
# a name ending in its shape: x_BxD, harm_KxNxC, ids_NxL1, grp_BgxNg, pairs_Px2
SHAPED = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_((?:[A-Z][a-z]?[0-9]*|[0-9]+)(?:x(?:[A-Z][a-z]?[0-9]*|[0-9]+))*)$")
LETTER = re.compile(r"^([A-Z])([a-z]?)([0-9]*)$")


def letter_table() -> dict[str, tuple[str, ...]]:
    """The package's table (`rm_theory/__init__.py`): letter -> the words that may name it (its word,
    and the kinds listed after the colon, without their bracketed remarks)."""
    doc = importlib.import_module("rm_theory").__doc__
    table = {}
    for line in doc.split("Shape letters")[1].splitlines():
        m = re.match(r"^    ([A-Z])   (.+)$", line)
        if m:
            text = m.group(2)
            while re.search(r"\([^()]*\)", text):  # bracketed remarks, nested ones too
                text = re.sub(r"\([^()]*\)", "", text)
            head, _, kinds = text.partition(":")
            table[m.group(1)] = tuple(w.strip() for w in [head, *kinds.split(",")] if w.strip())
    return table


def shaped_letters(source: str) -> set[str]:
    """The letters of every shape-suffixed name in a module (literal sizes such as the 2 of Px2 left out)."""
    out, prev = set(), None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        # an attribute after "." is named where it is defined (or by another library: factor.solve_L)
        if tok.type == tokenize.NAME and (m := SHAPED.match(tok.string)) and prev != ".":
            out |= {part for part in m.group(1).split("x") if not part.isdigit()}
        prev = tok.string
    return out


def legend(source: str) -> dict[str, str] | None:
    """The module docstring's "Legend: X meaning, Y meaning." as {letter: meaning}, or None."""
    doc = ast.get_docstring(ast.parse(source)) or ""
    m = re.search(r"Legend:(.*?)(?:\n\s*\n|$)", doc, re.S)
    if not m:
        return None
    entries, depth, cur = [], 0, ""
    for ch in " ".join(m.group(1).split()).rstrip("."):
        depth += (ch == "(") - (ch == ")")
        if ch in ",;" and depth == 0:
            entries.append(cur)
            cur = ""
        else:
            cur += ch
    entries.append(cur)
    out = {}
    for entry in entries:
        word, _, meaning = entry.strip().partition(" ")
        if LETTER.match(word):
            out[word] = meaning.strip().lstrip("=").strip()
    return out


def legend_problems(source: str, table: dict[str, tuple[str, ...]]) -> list[str]:
    used = shaped_letters(source)
    if not used:
        return []
    found = legend(source)
    if found is None:
        return [f"shape letters {sorted(used)} but no legend"]
    bad = []
    for letter in sorted(used):
        base, part, _ = LETTER.match(letter).groups()
        if base not in table:
            bad.append(f"{letter}: {base} is not in the package's table")
        elif (letter if part else base) not in found:
            bad.append(f"{letter} is used but not in the legend")
    for letter, meaning in found.items():
        base, part, plus = LETTER.match(letter).groups()
        if base not in table:
            bad.append(f"legend {letter}: not in the package's table")
        elif not part and not plus and not meaning.lower().startswith(tuple(w.lower() for w in table[base])):
            bad.append(f"legend {letter} {meaning!r}: the package's {base} is {' / '.join(table[base])}")
    return bad


def test_every_module_with_shaped_names_has_a_legend_agreeing_with_the_package_table():
    table = letter_table()
    bad = {}
    for path in sorted(PKG.rglob("*.py")):
        if problems := legend_problems(path.read_text(), table):
            bad[str(path.relative_to(ROOT))] = problems
    assert bad == {}


def test_the_legend_check_catches_what_it_forbids():
    table = letter_table()
    assert {"P", "X", "N", "K"} <= table.keys()
    ok = '"""Doc.\n\nLegend: X prompts, Y responses, Nt terminal nodes.\n"""\nr_XxY = t_Nt = 0\n'
    assert legend_problems(ok, table) == []
    assert legend_problems('"""Doc."""\nr_XxY = 0\n', table) == ["shape letters ['X', 'Y'] but no legend"]
    mixed = '"""Doc.\n\nLegend: P prompts, Y responses.\n"""\nr_PxY = 0\n'
    assert [p[:8] for p in legend_problems(mixed, table)] == ["legend P"]
    assert legend_problems('"""Doc.\n\nLegend: X prompts.\n"""\nr_XxY = 0\n', table) == [
        "Y is used but not in the legend"
    ]
