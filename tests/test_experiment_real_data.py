"""The real-data entry point on its smoke config: fixture data and a random encoder that the run
writes itself (no ../shared/data, no encoder wheel)."""

import pandas as pd

from rm_theory.studies import real_data as real_data_study
from tests.helpers import compose_config, run_smoke


def test_smoke_run_writes_summary_table_and_figures(tmp_path):
    s = run_smoke("real_data", real_data_study.run, tmp_path)
    assert s["status"] == "ok"
    for k in (
        "test_accuracy_pku",
        "test_accuracy_gsm8k",
        "cost_sign_accuracy",
        "test_accuracy_pku_to_pandalm",
        "fm_regime_pku",
    ):
        assert k in s, k
    assert 0.0 <= s["test_accuracy_pku"] <= 1.0 and 0.0 <= s["cost_sign_accuracy"] <= 1.0
    assert set(s["test_accuracy"]) >= {"pku", "gsm8k", "pku_to_llmbar"}
    df = pd.read_csv(tmp_path / "results.csv")
    assert set(df["part"]) == {"accuracy", "ibn", "structural", "structural_edge_variance", "topology"}
    acc = df[df["part"] == "accuracy"]
    assert set(acc["method"]) == {"encoder", "longer", "bow"}
    assert (acc["accuracy_lo"] <= acc["accuracy"] + 1e-12).all()
    assert set(df[df["part"] == "topology"]["strategy"]) == {"chain", "tree"}
    for stem in ("accuracy", "structural_function", "topology"):
        assert (tmp_path / "figures" / f"{stem}.png").exists()
    assert (tmp_path / "fixture" / "encoder" / "model.safetensors").exists()


def test_data_paths_come_from_the_primary_config_not_the_schema(monkeypatch):
    from rm_theory.config.real_data import RealDataSchema

    assert all(d.path == "" for d in RealDataSchema().datasets.values())
    monkeypatch.setenv("RM_THEORY_DATA", "/data/here")
    cfg = compose_config("real_data")
    assert cfg.datasets.pku.path == "/data/here/pku-saferlhf-subset/pairs.json"
