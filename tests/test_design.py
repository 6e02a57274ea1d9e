"""IBN-guided design of comparisons (rm_theory.ibn.design) against brute-force greedy."""

import numpy as np
import pytest

from rm_theory.ibn import Network, add_hp_edges, network_distance
from rm_theory.ibn.design import (
    DesignConfig,
    _Grounded,
    design_comparisons,
    mean_resistance,
    target_sums,
)


def _tree_pool(seed: int, prompts: int = 3, per: int = 7):
    """Random trees (one per prompt) as the IB network; candidates = all pairs within a prompt."""
    rng = np.random.default_rng(seed)
    u, v = [], []
    for p in range(prompts):
        base = p * per
        for i in range(1, per):
            u.append(base + rng.integers(0, i))
            v.append(base + i)
    net = Network(prompts * per, np.array(u), np.array(v), rng.uniform(0.2, 2.0, len(u)))
    cand = np.array([(p * per + i, p * per + j) for p in range(prompts) for i in range(per) for j in range(i + 1, per)])
    targets = cand[rng.choice(len(cand), 12, replace=False)]
    return net, cand, targets


def _brute_greedy(net, cand, targets, budget, xi2):
    chosen, cur = [], net
    for _ in range(budget):
        best, best_val = None, np.inf
        for c in range(len(cand)):
            if c in chosen:
                continue
            val = mean_resistance(add_hp_edges(cur, cand[c : c + 1, 0], cand[c : c + 1, 1], xi2), targets)
            if val < best_val - 1e-12:
                best, best_val = c, val
        chosen.append(best)
        cur = add_hp_edges(cur, cand[best : best + 1, 0], cand[best : best + 1, 1], xi2)
    return chosen, best_val


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_exact_greedy_matches_brute_force(batch):
    net, cand, targets = _tree_pool(0)
    cfg = DesignConfig(budget=8, batch=batch, xi2=0.7)
    d = design_comparisons(net, targets, cand, cfg)
    want, final = _brute_greedy(net, cand, targets, 8, 0.7)
    assert list(d.chosen_B) == want
    assert d.mean_resistance_R[-1] == pytest.approx(final, rel=1e-9)
    assert not d.approximate


def test_predicted_gains_are_the_exact_decreases():
    net, cand, targets = _tree_pool(1)
    d = design_comparisons(net, targets, cand, DesignConfig(budget=6, batch=6, xi2=1.3))
    assert d.gain_B.sum() == pytest.approx(d.mean_resistance_R[0] - d.mean_resistance_R[-1], rel=1e-9)
    assert np.all(np.diff(d.gain_B) <= 1e-12)  # submodular here: gains do not grow


def test_projected_targets_are_close_to_exact_greedy():
    net, cand, targets = _tree_pool(2, prompts=4, per=9)
    exact = design_comparisons(net, targets, cand, DesignConfig(budget=10, batch=5))
    approx = design_comparisons(net, targets, cand, DesignConfig(budget=10, batch=5, targets_dim=256, seed=3))
    assert approx.approximate
    before = exact.mean_resistance_R[0]
    # the projected design buys at least 90% of the exact design's reduction
    assert before - approx.mean_resistance_R[-1] >= 0.9 * (before - exact.mean_resistance_R[-1])


def _pinv_sums(net, targets, cand):
    lap = np.zeros((net.num_nodes, net.num_nodes))
    for u, v, var in zip(net.u_E, net.v_E, net.var_E, strict=True):
        lap[[u, v], [u, v]] += 1 / var
        lap[u, v] -= 1 / var
        lap[v, u] -= 1 / var
    lp = np.linalg.pinv(lap)
    inc = lambda pairs: np.eye(net.num_nodes)[pairs[:, 0]] - np.eye(net.num_nodes)[pairs[:, 1]]
    return ((inc(cand) @ lp @ inc(targets).T) ** 2).sum(1)


def test_target_sums_exact_and_projected():
    net, cand, targets = _tree_pool(4)
    want = _pinv_sums(net, targets, cand)
    assert target_sums(net, targets, cand) == pytest.approx(want, rel=1e-9, abs=1e-12)
    # E[projected] = exact; the mean over 200 independent projections is within a few percent
    proj = np.mean([target_sums(net, targets, cand, targets_dim=8, seed=s) for s in range(200)], axis=0)
    assert np.mean(np.abs(proj - want)) <= 0.05 * np.mean(want)


def test_sketched_resistance_and_subsampling_are_flagged_and_close():
    net, cand, targets = _tree_pool(5, prompts=4, per=9)
    exact = design_comparisons(net, targets, cand, DesignConfig(budget=12, batch=4))
    approx = design_comparisons(
        net, targets, cand, DesignConfig(budget=12, batch=4, resistance_dim=256, candidates=60, seed=1)
    )
    assert approx.approximate and not exact.approximate
    assert len(set(approx.chosen_B.tolist())) == 12
    before = exact.mean_resistance_R[0]
    assert before - approx.mean_resistance_R[-1] >= 0.8 * (before - exact.mean_resistance_R[-1])


def test_candidates_across_components_are_never_chosen():
    net, cand, targets = _tree_pool(6)  # one component per prompt
    across = np.array([[0, 7], [1, 15], [8, 20]])
    both = np.r_[across, cand]
    d = design_comparisons(net, targets, both, DesignConfig(budget=5, batch=2))
    assert np.all(d.chosen_B >= len(across))
    assert list(d.chosen_B - len(across)) == list(design_comparisons(net, targets, cand, DesignConfig(5, 2)).chosen_B)


def test_per_component_resistances_match_the_library():
    net, cand, targets = _tree_pool(7)  # three components
    net = add_hp_edges(net, cand[::5, 0], cand[::5, 1], 0.9)
    pairs = np.r_[targets, [[0, 8], [3, 3], [14, 20]]]  # one pair across components, one node with itself
    got = _Grounded(net).resistance(pairs)
    want = network_distance(net, pairs, "resistance")
    assert np.isinf(got[-3]) and np.isinf(want[-3]) and got[-2] == 0.0
    fin = np.isfinite(want)
    assert got[fin] == pytest.approx(want[fin], rel=1e-9)


def _path_with_a_zero_edge():
    """Path 0–1–2–3–4 whose edge 1–2 has variance 0 (perfect information: 1 and 2 are one node)."""
    return Network(5, np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), np.array([1.0, 0.0, 1.0, 1.0]))


def test_zero_variance_edges_are_merged_as_in_the_solver():
    net = _path_with_a_zero_edge()
    targets, cand = np.array([[0, 4], [0, 3], [1, 2]]), np.array([[0, 2], [0, 4], [1, 4], [2, 4]])
    d = design_comparisons(net, targets, cand, DesignConfig(budget=2, batch=1, xi2=0.5))
    assert len(d.chosen_B) == 2 and np.isfinite(d.mean_resistance_R).all()
    want, final = _brute_greedy(net, cand, targets, 2, 0.5)
    assert list(d.chosen_B) == want
    assert d.mean_resistance_R[0] == pytest.approx(mean_resistance(net, targets), rel=1e-12)
    assert d.mean_resistance_R[-1] == pytest.approx(final, rel=1e-9)
    assert d.gain_B.sum() == pytest.approx(d.mean_resistance_R[0] - d.mean_resistance_R[-1], rel=1e-9)
    # a zero variance is the limit of small ones
    tiny = Network(5, net.u_E, net.v_E, np.where(net.var_E == 0, 1e-9, net.var_E))
    assert target_sums(net, targets, cand) == pytest.approx(target_sums(tiny, targets, cand), rel=1e-6)
    assert _Grounded(net).resistance(targets) == pytest.approx(network_distance(net, targets, "resistance"))
    # the sketched resistances run on the merged network too
    sk = design_comparisons(net, targets, cand, DesignConfig(budget=2, batch=1, xi2=0.5, resistance_dim=64))
    assert np.isfinite(sk.mean_resistance_R).all() and len(sk.chosen_B) == 2


@pytest.mark.parametrize(
    ("net", "targets", "message"),
    [
        (Network(5, [0, 1], [1, 7], [1.0, 1.0]), [[0, 1]], r"edge 1 \(1, 7\) has an endpoint outside \[0, 5\)"),
        (Network(5, [0, 1], [1, 2], [1.0, -1.0]), [[0, 1]], r"edge 1 \(1, 2\) has invalid variance .*finite and >= 0"),
        (Network(5, [0, 1], [1, 2], [1.0, 1.0]), [[0, 9]], r"target pair 0 .* names a node outside \[0, 5\)"),
        (Network(5, [0, 1], [1, 2], [1.0, 1.0]), np.zeros((0, 2)), "no target pairs"),
    ],
)
def test_a_bad_network_or_target_gets_the_solvers_error(net, targets, message):
    cand = np.array([[0, 2]])
    for call in (
        lambda: design_comparisons(net, targets, cand, DesignConfig(budget=1, batch=1)),
        lambda: target_sums(net, targets, cand),
        lambda: mean_resistance(net, targets),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    if len(targets) and "target" not in message:  # the same words as the solver's own check
        with pytest.raises(ValueError, match=message):
            network_distance(net, targets, "resistance")


def test_a_candidate_outside_the_network_is_named():
    net = _path_with_a_zero_edge()
    with pytest.raises(ValueError, match=r"candidate pair 1 .* names a node outside \[0, 5\)"):
        design_comparisons(net, [[0, 4]], [[0, 2], [3, 5]], DesignConfig(budget=1, batch=1))
