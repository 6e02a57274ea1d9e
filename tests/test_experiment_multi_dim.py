"""The multi_dim entry point on its smoke config: outputs, summary keys named by protocol, the
theory's self-check, determinism, and config errors that name their key before any work."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rm_theory.common.validate import ConfigError
from rm_theory.runs.folder import run_entry
from rm_theory.studies import multi_dim as study
from tests.helpers import compose_config, run_smoke

OVER = ["protocols=[dual,single,sub,ratings]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_dim")
    # Twice with the same seed (the second reuses the first's compiled programs).
    return [(root / k, run_smoke("multi_dim", study.run, root / k, OVER)) for k in ("a", "b")]


def test_smoke_run_writes_tables_figures_and_protocol_keys(runs):
    out, s = runs[0]
    assert s["status"] == "ok"
    for p in ("dual", "single", "sub", "ratings"):
        for key in (f"acc_helpfulness_{p}", f"acc_harmlessness_{p}", f"harmless_rate_safe_pooled_{p}", f"n_pairs_{p}"):
            assert key in s, key
        assert s[f"cost_per_pair_{p}"] > 0
    for key in (
        "acc_helpfulness_dual_minus_single",
        "acc_harmlessness_dual_minus_single_p_holm",
        "single_ceiling_helpfulness",
    ):
        assert key in s, key
    assert s["largest_distance_dim_sub"] in (
        "instruction_following",
        "correctness",
        "information",
        "aesthetics",
        "harmlessness",
    )
    assert s["theory_check_rel_err"] < 1e-8  # theory §4's closed form against the joint solve
    df = pd.read_csv(out / "results.csv")
    assert set(df["protocol"]) == {"dual", "single", "sub", "ratings"} and len(df) == 2 * 2 * 4
    assert (df["cost"] <= df["budget"] + 1e-9).all()  # equal cost: no protocol spends more
    assert (df[df["protocol"] == "ratings"]["family"] == "armorm").all()
    dims = pd.read_csv(out / "dims.csv")
    assert {"acc", "pred_acc", "dist", "dist_own", "prior", "ens_var"} <= set(dims.columns)
    assert ((dims["dist"] <= dims["prior"] + 1e-9) | dims["dist"].isna()).all()  # data never add variance
    down = pd.read_csv(out / "downstream.csv")
    assert {"safe_pooled", "safe_percat", "kl", "bon", "reference"} <= set(down["policy"])
    assert set(down[down["protocol"] == "oracle"]["policy"]) >= {"safe_pooled", "kl"}
    for stem in ("accuracy_vs_budget", "pareto_front", "theory_vs_measured"):
        assert (out / "figures" / f"{stem}.png").exists(), stem


def test_same_seed_gives_identical_summary(runs):
    (_, a), (_, b) = runs
    drop = lambda s: {k: v for k, v in s.items() if k != "wall_time_s"}
    assert json.dumps(drop(a), sort_keys=True) == json.dumps(drop(b), sort_keys=True)


@pytest.mark.parametrize(
    "override, message",
    [
        ("annotators.beta_sub=[1.0,2.0]", "annotators.beta_sub = .*one β per sub-dimension"),
        ("world.rho_cross=0.9", "world.rho_cross = 0.9: .*not positive definite"),
        ("protocols=[dual,dual]", "protocols = .*each protocol once"),
        ("protocols=[dual,triple]", "protocols\\[1\\] = 'triple': must be one of"),
        ("space.L=9", "space.L = 9: downstream enumerates"),
        ("world.severity_cuts=[2.5,2.1]", "world.severity_cuts"),
        ("budgets=[1.0]", "budgets = \\[1.0\\]: no protocol buys two pairs"),
        ("costs.help_label=0 costs.harm_label=0 costs.read_pair=0 item_labels=false", "costs: a pair of \\['dual'\\]"),
    ],
)
def test_config_errors_name_the_key_before_any_work(tmp_path, override, message):
    overrides = ["debug=smoke", *override.split()]
    cfg = compose_config("multi_dim", overrides)
    with pytest.raises(ConfigError, match=message):
        run_entry(cfg, study.run, out_dir=tmp_path / "run", overrides=overrides)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
    assert not (tmp_path / "run" / "results.csv").exists()
