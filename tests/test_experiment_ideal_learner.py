"""The ideal_learner entry point on its smoke config: outputs, summary keys, the exactness identity."""

import json

import pandas as pd
import pytest

from rm_theory.studies import ideal_learner as study
from tests.helpers import run_smoke


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ideal_learner")
    return out, run_smoke("ideal_learner", study.run, out)


def test_smoke_run_writes_summary_tables_and_figures(smoke):
    out, s = smoke
    assert s["status"] == "ok"
    for key in [
        "bayes_gold_accuracy_chain",
        "bayes_gold_accuracy_tree",
        "bayes_gold_accuracy_chain_ci",
        "bayes_gold_accuracy_tree_minus_chain",
        "bayes_gold_accuracy_tree_minus_chain_ci",
        "bayes_n_pairs",
        "bayes_seeds",
        "posterior_vs_ibn_max_rel_err",
        "ensemble_vs_posterior_spearman_anchored",
        "gap_to_ceiling_mlp",
        "gap_to_ceiling_prefix",
        "anchored_gaussian_rel_err_K8",
        "gp_vs_ibn_spearman",
    ]:
        assert key in s, key
    assert 0 <= s["bayes_gold_accuracy_tree"] <= 1 and s["bayes_seeds"] == 2
    assert s["posterior_vs_ibn_max_rel_err"] < 1e-8

    df = pd.read_csv(out / "results.csv")
    assert set(df["topology"]) == {"chain", "tree"} and set(df["kind"]) >= {"independent", "in_tree"}
    assert len(pd.read_csv(out / "neural.csv")) == 2 * 2 * 3  # seeds × topologies × families
    for stem in ["accuracy_vs_n", "variance_scatter", "anchored_convergence", "best_of_n"]:
        assert (out / "figures" / f"{stem}.png").exists(), stem
    json.dumps(s)


def test_gap_to_ceiling_has_one_unit_per_seed():
    """A seed's chain and tree data sets share its world and query pairs: averaged first."""
    import types

    import numpy as np
    from scipy import stats

    exact = pd.DataFrame(
        [
            {"kind": "independent", "budget": "comparisons", "n": 64, "topology": t, "seed": s,
             "bayes_gold_accuracy": 0.7, "bayes_expected_accuracy": 0.7, "posterior_variance": 1.0, "n_pairs": 10,
             "posterior_vs_ibn_max_rel_err": 0.0, "posterior_vs_fisher_ibn_max_rel_err": 0.1,
             "posterior_vs_fisher_ibn_ratio": 1.0}
            for s in range(3) for t in ("chain", "tree")
        ]
    )  # fmt: skip
    gaps = {
        (0, "chain"): 0.0,
        (0, "tree"): 0.2,
        (1, "chain"): 0.3,
        (1, "tree"): 0.1,
        (2, "chain"): 0.2,
        (2, "tree"): 0.3,
    }
    neural = pd.DataFrame(
        [
            {"n": 64, "topology": t, "seed": s, "family": "mlp", "gold_accuracy": 0.6, "gap_to_ceiling": g,
             "ensemble_vs_posterior_spearman": 0.1, "ece": 0.0}
            for (s, t), g in gaps.items()
        ]
    )  # fmt: skip
    conv = pd.DataFrame(columns=["likelihood", "K", "median_rel_err", "spearman"])
    out = study.headline(types.SimpleNamespace(budgets=["comparisons"]), exact, neural, conv, pd.DataFrame())
    units = [0.1, 0.2, 0.25]
    assert out["gap_to_ceiling_mlp"] == pytest.approx(np.mean(units))
    assert out["gap_to_ceiling_mlp_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(units, ddof=1) / np.sqrt(3))
    assert out["gap_to_ceiling_seeds"] == 3


def test_the_identity_holds_for_edges_at_the_mode_not_for_the_fisher_ibn(smoke):
    """The exact learner's posterior variance is the resistance of the IBN whose comparison edges carry
    1/(β² p̂(1 − p̂)) at the posterior mode; the Fisher IBN (at the true gap) of the scaling and design
    studies is close on average but not equal."""
    _, s = smoke
    assert s["posterior_vs_ibn_max_rel_err"] < 1e-8
    assert s["posterior_vs_fisher_ibn_max_rel_err"] > 1e-3
    assert 0.5 < s["posterior_vs_fisher_ibn_ratio"] < 2.0
