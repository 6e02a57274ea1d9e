"""The scaling study: determinism, resumption, the ratio fit and the entry-point contract."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rm_theory.ibn.scaling import fit_log_ratio
from rm_theory.runs import RunLog
from rm_theory.studies import ibn_scaling as scaling_study
from tests.helpers import compose_config, run_smoke


def test_same_seed_gives_identical_csv(tmp_path):
    s1 = run_smoke("ibn_scaling", scaling_study.run, tmp_path / "a")
    run_smoke("ibn_scaling", scaling_study.run, tmp_path / "b", ["figures=false"])
    assert s1["status"] == "ok"
    a, b = (tmp_path / "a" / "results.csv").read_text(), (tmp_path / "b" / "results.csv").read_text()
    strip = lambda text: pd.read_csv(pd.io.common.StringIO(text)).drop(columns="seconds")
    pd.testing.assert_frame_equal(strip(a), strip(b))
    df = strip(a)
    for col in ("topology", "n", "seed", "regime", "xi2", "mean_d_path", "mean_d_res"):
        assert col in df
    assert (df["mean_d_res"] <= df["mean_d_path"] + 1e-12).all()
    for key in ("ratio_fit_c", "ratio_fit_r2"):
        assert np.isfinite(s1[key])
    assert (tmp_path / "a" / "figures" / "ratio_heatmap.png").exists()


def test_a_killed_study_resumes_without_recomputing(tmp_path, monkeypatch):
    run_smoke("ibn_scaling", scaling_study.run, tmp_path / "full", ["figures=false"])
    rows = RunLog(tmp_path / "full").rows()
    # Pretend the run died after half of its rows.
    part = tmp_path / "part"
    log = RunLog(part)
    for row in rows[: len(rows) // 2]:
        log.metric(row)
    # a killed run's folder holds its fingerprint (written before any work)
    (part / "fingerprint.json").write_bytes((tmp_path / "full" / "fingerprint.json").read_bytes())
    calls = []
    import rm_theory.ibn.scaling as scaling

    real = scaling.run_cell
    monkeypatch.setattr(scaling_study, "run_cell", lambda *a, **k: calls.append(1) or real(*a, **k))
    run_smoke("ibn_scaling", scaling_study.run, part, ["figures=false"])
    full = pd.read_csv(tmp_path / "full" / "results.csv").drop(columns="seconds")
    resumed = pd.read_csv(part / "results.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(full, resumed)
    assert 0 < len(calls) < len(rows) // 2  # a cell is two rows


def test_ratio_fit_recovers_the_constant():
    n = 2.0 ** np.arange(6, 17)
    c, r2 = fit_log_ratio(n, 0.7 * np.log(n) / np.log(np.log(n)))
    assert c == pytest.approx(0.7) and r2 == pytest.approx(1.0)
    c, r2 = fit_log_ratio(n, 3.0 / np.log(n))  # a falling ratio is not that curve
    assert r2 < 0


def test_smoke_entry_point_contract(tmp_path, project_root):
    out = subprocess.run(
        [sys.executable, "-m", "experiments.ibn_scaling", "debug=smoke", f"hydra.run.dir={tmp_path}"],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    from rm_theory.runs import read_json

    assert read_json(tmp_path / "summary.json")["status"] == "ok"
    assert (tmp_path / ".hydra" / "config.yaml").exists()
    assert (tmp_path / "metrics.jsonl").exists()


def test_compose_sees_the_smoke_switch():
    assert compose_config("ibn_scaling", ["debug=smoke"]).smoke is True


def test_every_cell_pairs_chain_and_tree_on_its_own_queries(tmp_path):
    """Chain rows are measured per cell: on that cell's query pairs (its own trees' in-tree pairs)
    and with that cell's columns, never copied from another shape's cell."""
    run_smoke("ibn_scaling", scaling_study.run, tmp_path, ["figures=false"])
    df = pd.read_csv(tmp_path / "results.csv")
    cfg = compose_config("ibn_scaling", ["debug=smoke"])
    shapes = {name: (s.B, s.D) for name, s in cfg.shapes.items()}
    for _, row in df.iterrows():
        assert (row["B"], row["D"]) == shapes[row["shape"]]
    on_map = df[df["n"] == cfg.map.n_values[0]]
    keys = ["n", "seed", "geometry", "regime", "label_variance", "budget", "shape", "temperature"]
    for _, g in on_map.groupby(keys):
        chain, tree = g[g.topology == "chain"].iloc[0], g[g.topology == "tree"].iloc[0]
        for q in ("independent", "in_tree"):
            assert chain[f"pairs_res_{q}"] == tree[f"pairs_res_{q}"]  # the same (reachable) pairs
        assert tree["paired_ratio_res_independent"] == pytest.approx(chain["mean_d_res"] / tree["mean_d_res"])
    # the chain network is the same across shapes, but each shape's in-tree pairs are its own
    chain = on_map[(on_map.topology == "chain") & (on_map.budget == "comparisons")]
    per_shape = chain.groupby(["seed", "geometry", "label_variance"])["d_res_in_tree"].nunique()
    assert (per_shape > 1).all()


def test_paired_ratio_uses_common_pairs_and_has_a_delta_method_error():
    from rm_theory.ibn.scaling import _paired

    c = np.array([1.0, 2.0, np.inf, 4.0, 3.0])
    t = np.array([2.0, 2.0, 1.0, np.inf, 3.0])
    pr = _paired(c, t)
    assert pr["pairs"] == 3 and pr["ratio"] == pytest.approx(6.0 / 7.0)
    rng = np.random.default_rng(0)
    draws = [_paired(rng.exponential(1.0, 400) * 0.8, rng.exponential(1.0, 400)) for _ in range(400)]
    # the delta-method error matches the spread of the ratio over repeated draws of the pairs
    assert np.std([d["ratio"] for d in draws]) == pytest.approx(np.mean([d["se"] for d in draws]), rel=0.1)


def _tree_rows(ratios_by_seed: dict[int, list[float]], shape: str = "root", **extra) -> list[dict]:
    """Tree rows of map cells: one per (seed, cell), cells differing in their label variance."""
    return [
        {
            "topology": "tree",
            "n": 64,
            "seed": seed,
            "geometry": "tree",
            "regime": "polynomial",
            "label_variance": f"lv{i}",
            "budget": "comparisons",
            "shape": shape,
            "temperature": 1.0,
            **extra,
            "paired_ratio_res_in_tree": r,
        }
        for seed, ratios in ratios_by_seed.items()
        for i, r in enumerate(ratios)
    ]


def test_paired_ratio_interval_is_student_t_over_seeds_and_over_pairs_for_one_seed():
    from scipy import stats

    from rm_theory.ibn.scaling import paired_ratio_table

    rows = [
        {"topology": "tree", "n": 64, "seed": s, "geometry": "tree", "regime": "polynomial", "label_variance": "large",
         "budget": "comparisons", "shape": "root", "temperature": 1.0, "paired_ratio_res_independent": r,
         "paired_ratio_res_independent_se": 0.01, "pairs_res_independent": 128}
        for s, r in enumerate([0.70, 0.72, 0.77])
    ]  # fmt: skip
    t = paired_ratio_table(pd.DataFrame(rows)).iloc[0]
    half = stats.t.ppf(0.975, 2) * np.std([0.70, 0.72, 0.77], ddof=1) / np.sqrt(3)
    assert (t["lo"], t["hi"]) == pytest.approx((t["ratio"] - half, t["ratio"] + half))
    assert t["units"] == "seeds" and t["seeds"] == 3
    one = paired_ratio_table(pd.DataFrame(rows[:1])).iloc[0]
    assert one["hi"] - one["ratio"] == pytest.approx(stats.t.ppf(0.975, 127) * 0.01)
    assert one["units"] == "pairs of one seed"
    # a seed whose ratio is NaN (no pair reachable in both networks) is no unit
    nan = paired_ratio_table(pd.DataFrame([rows[0] | {"paired_ratio_res_independent": np.nan}, *rows[1:]])).iloc[0]
    assert nan["seeds"] == 2 and nan["ratio"] == pytest.approx(0.745)


def test_in_tree_ratio_by_shape_is_over_seeds_not_over_the_grid_of_cells():
    # The cells of a seed differ widely (a designed grid), but every seed averages to 1.2:
    # over seeds the interval is 0; over the 12 cells it would be about ±0.3.
    rows = _tree_rows({0: [0.6, 1.0, 1.4, 1.8], 1: [1.8, 1.4, 1.0, 0.6], 2: [1.0, 1.2, 1.2, 1.4]})
    rows += _tree_rows({0: [1.0, np.nan], 1: [1.1, 1.3], 2: [1.3, 1.3]}, shape="wide")
    out = scaling_study.in_tree_by_shape(pd.DataFrame(rows))
    assert out["root"]["ratio"] == pytest.approx(1.2)
    assert out["root"]["ci"] == pytest.approx(0.0, abs=1e-12)
    assert (out["root"]["seeds"], out["root"]["cells"]) == (3, 4)
    wide = out["wide"]
    assert wide["nan_cells"] == 1 and wide["seeds"] == 3
    assert wide["ratio"] == pytest.approx(np.mean([1.0, 1.2, 1.3]))


def _curve(path_of) -> pd.DataFrame:
    """Curve rows of two panels (label variances) × 2 seeds × 3 n × chain/tree; `path_of(lv, seed, n, topology)`."""
    rows = []
    for lv in ("large", "fisher"):
        for seed in (0, 1):
            for n in (64, 128, 256):
                for topology in ("chain", "tree"):
                    rows.append(
                        {"topology": topology, "n": n, "seed": seed, "geometry": "tree", "regime": "polynomial",
                         "label_variance": lv, "budget": "comparisons", "shape": "root", "temperature": 1.0,
                         "mean_d_res": 1.0 / n + (topology == "tree") * 0.1 / n,
                         "mean_d_path": path_of(lv, seed, n, topology)}
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_distance_figure_drops_a_flat_path_row_and_says_why():
    """The path distance of the tree geometry is the inductive-bias path alone (chain = tree at every
    n, per seed): the headline figure leaves that row out and says so; a row that moves stays."""
    import matplotlib.pyplot as plt

    from rm_theory.figures.ibn_scaling import distance_vs_n, flat_value

    flat = _curve(lambda lv, seed, n, t: 0.79 + 0.01 * seed)  # each seed its own world, its own value
    assert flat_value(flat, "mean_d_path") == pytest.approx(0.795)
    fig = distance_vs_n(flat)
    assert [ax.get_ylabel() for ax in fig.axes] == ["mean_d_res", "mean_d_res"]
    notes = " ".join(t.get_text() for t in fig.texts)
    assert "mean_d_path left out" in notes and "0.795" in notes and "shortest path" in notes
    plt.close(fig)

    moving = _curve(lambda lv, seed, n, t: 1.0 / n)
    assert flat_value(moving, "mean_d_path") is None
    fig = distance_vs_n(moving)
    assert sorted({ax.get_ylabel() for ax in fig.axes}) == ["mean_d_path", "mean_d_res"] and not fig.texts
    plt.close(fig)

    # flat in one panel only: kept, with a note on that panel
    fig = distance_vs_n(_curve(lambda lv, seed, n, t: 0.8 if lv == "large" else 1.0 / n))
    annotated = [ax for ax in fig.axes if any("flat" in t.get_text() for t in ax.texts)]
    assert len(fig.axes) == 4 and len(annotated) == 1 and annotated[0].get_ylabel() == "mean_d_path"
    plt.close(fig)


def test_an_empty_curve_axis_runs_the_map_alone(tmp_path):
    """`curve.n_values=[]` selects no curve rows: the map is measured and the curve's keys are NaN
    (it failed after all the work with KeyError: 'chain')."""
    s = run_smoke("ibn_scaling", scaling_study.run, tmp_path, ["curve.n_values=[]", "figures=false"])
    assert s["status"] == "ok" and s["map_cells"] > 0
    assert np.isnan(float(s["ratio_at_max_n"])) and np.isnan(float(s["ratio_fit_c"]))  # NaN is written as "NaN"
