"""The train_rm entry point on its smoke config: outputs, summary keys, cost model, determinism."""

import json

import pandas as pd
import pytest

from rm_theory.studies import train_rm as train_rm_study
from rm_theory.world.records import read_jsonl
from tests.helpers import compose_config, run_smoke


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_rm")
    # Twice with the same seed (the second reuses the first's compiled programs). The token MLP keeps
    # the XLA compiles short; the transformer and the cost model run in the slow test.
    over = ["model.family=mlp"]
    return [(root / k, run_smoke("train_rm", train_rm_study.run, root / k, over)) for k in ("a", "b")]


def check_outputs(out, s, cost: bool):
    assert s["status"] == "ok"
    keys = [
        "gold_accuracy",
        "label_accuracy",
        "ensemble_variance",
        "ibn_resistance",
        "gold_accuracy_chain",
        "gold_accuracy_tree",
        "ensemble_variance_chain",
        "theory_practice_pair_spearman",
        "theory_practice_corr_pooled",
    ]
    for key in keys + ["cost_sign_accuracy"] * cost:
        assert key in s, key
    assert ("cost_sign_accuracy" in s) == cost
    assert 0 <= s["gold_accuracy"] <= 1 and s["ensemble_variance"] > 0 and s["ibn_resistance"] > 0
    df = pd.read_csv(out / "results.csv")
    assert set(df["topology"]) == {"chain", "tree"} and len(df) == s["rows"] == 4
    assert (df["n_comparisons"] == 64).all()  # equal comparisons budget
    stems = ["accuracy_variance_vs_n", "theory_vs_practice"] + [
        "cost_vs_n",
        "severity_accuracy",
    ] * cost
    for stem in stems:
        assert (out / "figures" / f"{stem}.png").exists(), stem
    if cost:
        assert len(pd.read_csv(out / "categories.csv")) == 4 * 19
    files = sorted((out / "data").glob("*.jsonl.gz"))
    assert len(files) == 4
    recs, report = read_jsonl(files[-1])
    assert len(recs) == 64 and all(r.tree_id is not None for r in recs)  # sorted: tree files last
    assert report.n_records == 64


def test_smoke_run_writes_summary_table_figures_and_data(runs):
    check_outputs(*runs[0], cost=False)


def test_same_seed_gives_identical_summary(runs):
    (_, a), (_, b) = runs
    drop = lambda s: {k: v for k, v in s.items() if k != "wall_time_s"}
    assert json.dumps(drop(a), sort_keys=True) == json.dumps(drop(b), sort_keys=True)


@pytest.mark.slow
def test_smoke_with_transformer_and_cost_model(tmp_path):
    s = run_smoke("train_rm", train_rm_study.run, tmp_path, ["cost=true"])
    check_outputs(tmp_path, s, cost=True)


def test_unknown_topology_fails_with_its_name(tmp_path):
    cfg = compose_config("train_rm", ["debug=smoke", "topologies=[chain,forest]"])
    from rm_theory.runs import run_entry

    with pytest.raises(ValueError, match="forest"):
        run_entry(cfg, train_rm_study.run, out_dir=tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_theory_practice_spearman_is_averaged_within_a_seed_and_its_interval_is_over_seeds():
    """The data sets of one seed share its world and query pairs: they are one unit, not several."""
    import itertools

    import numpy as np
    from scipy import stats

    rows = []
    per_seed = {0: [0.05, 0.15, 0.10, 0.10], 1: [0.30, 0.10, 0.20, 0.20], 2: [0.0, 0.0, np.nan, 0.0]}
    for seed, vals in per_seed.items():
        for (n, topology), v in zip(itertools.product([64, 128], ["chain", "tree"]), vals, strict=True):
            rows.append(
                {"regime": "polynomial", "n": n, "topology": topology, "seed": seed, "gold_accuracy": 0.6,
                 "label_accuracy": 0.6, "ensemble_variance": 1.0, "ibn_resistance": 0.5, "spearman": 0.1,
                 "ece": 0.05, "pair_spearman": v, "n_inconsistent": 0}
            )  # fmt: skip
    out = train_rm_study.headline(pd.DataFrame(rows), beta=1.0)
    units = [0.10, 0.20, 0.0]
    assert out["theory_practice_pair_spearman"] == pytest.approx(np.mean(units))
    half = stats.t.ppf(0.975, 2) * np.std(units, ddof=1) / np.sqrt(3)
    assert out["theory_practice_pair_spearman_ci"] == pytest.approx(half)
    assert out["theory_practice_seeds"] == 3
    assert out["theory_practice_datasets"] == 11 and out["theory_practice_datasets_nan"] == 1
