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
