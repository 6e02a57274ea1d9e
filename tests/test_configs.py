"""Every experiment preset composes; misspelt keys and wrong types fail, naming the key."""

import os
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
    out = subprocess.run(
        [sys.executable, "-m", "experiments.ibn_scaling", "space.Vocab=3"],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "Vocab" in out.stderr


@pytest.mark.parametrize(
    "launcher,target",
    [
        ("local", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
        ("ray_cluster", "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"),
    ],
)
def test_launcher_configs_compose(launcher, target):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rm_theory.config import register

    register("ibn_scaling")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("ibn_scaling", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == target


def _two_seed_sweep(sweep_dir, project_root, launcher_args: list[str], env=None) -> None:
    """A smoke multirun over seed=0,1 with the given launcher; both jobs must end ok, each in
    its own numbered folder."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.ibn_scaling",
            "-m",
            *launcher_args,
            "debug=smoke",
            "figures=false",
            "seed=0,1",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    from rm_theory.runs.aggregate import collect_runs

    runs = collect_runs(sweep_dir)
    assert sorted(runs["run_dir"]) == ["0_figures=False,seed=0", "1_figures=False,seed=1"]
    assert (runs["status"] == "ok").all()


def test_local_parallel_sweep_gives_numbered_folders(tmp_path, project_root):
    _two_seed_sweep(tmp_path, project_root, ["hydra/launcher=local"])


def test_local_ray_sweep_runs_every_job(tmp_path, project_root):
    """A real Ray run: the launcher starts a local cluster (no RAY_ADDRESS) and runs each job in
    a Ray worker. Skipped where the `ray` extra is not installed (CI installs it)."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    ray_args = [
        "hydra/launcher=ray_cluster",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "+hydra.launcher.ray.init.num_cpus=2",
    ]
    _two_seed_sweep(tmp_path, project_root, ray_args, env)


def test_each_seed_draws_its_own_world_unless_told_not_to():
    import dataclasses

    import numpy as np

    from rm_theory.config.common import SpaceSchema, make_space
    from rm_theory.world.spaces import Responses

    leaves = Responses(np.zeros(4, np.int64), np.arange(4)[:, None].repeat(10, 1) % 4)
    per_seed = SpaceSchema()
    gold = lambda cfg, seed: make_space(cfg, seed).gold_reward(leaves)
    assert per_seed.field_per_seed
    assert not np.allclose(gold(per_seed, 0), gold(per_seed, 1))
    shared = dataclasses.replace(per_seed, field_per_seed=False)
    np.testing.assert_array_equal(gold(shared, 0), gold(shared, 1))
