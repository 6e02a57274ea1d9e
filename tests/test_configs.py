"""Every experiment preset composes; misspelt keys and wrong types fail, naming the key."""

import re
import subprocess
import sys

import pytest

from tests.helpers import CONF, compose_config

PRESETS = sorted((CONF / "experiment").glob("*.yaml"))


def _entry(preset):
    m = re.search(r"python -m experiments\.(\w+)", preset.read_text())
    assert m, f"{preset.name} must open with its command (# Command: python -m experiments.<name> ...)"
    return m.group(1)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_experiment_preset_composes(preset):
    head = preset.read_text().splitlines()[:8]
    assert any("Runtime" in line for line in head) and any("Expected" in line for line in head), preset.name
    cfg = compose_config(_entry(preset), [f"experiment={preset.stem}"])
    assert "seed" in cfg and "smoke" in cfg


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_composes_with_smoke(preset):
    compose_config(_entry(preset), [f"experiment={preset.stem}", "debug=smoke"])


def test_misspelt_key_is_named():
    with pytest.raises(Exception, match="seeds_typo"):
        compose_config("ibn_scaling", ["seeds_typo=3"])
    with pytest.raises(Exception, match="regim"):
        compose_config("ibn_scaling", ["space.regim=polynomial"])


def test_wrong_type_is_named():
    with pytest.raises(Exception, match="seeds"):
        compose_config("ibn_scaling", ["seeds=three"])


def test_entry_point_reports_misspelt_key_on_the_command_line(project_root):
    out = subprocess.run([sys.executable, "-m", "experiments.ibn_scaling", "space.Vocab=3"], cwd=project_root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "Vocab" in out.stderr
