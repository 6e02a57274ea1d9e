"""IBN-guided design of comparisons (rm_theory.ibn.design) against brute-force greedy."""

import numpy as np
import pytest

from rm_theory.ibn.design import DesignConfig, _with_edges, design_comparisons, mean_resistance
from rm_theory.ibn.distance import Network


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
            val = mean_resistance(_with_edges(cur, cand[c : c + 1, 0], cand[c : c + 1, 1], xi2), targets)
            if val < best_val - 1e-12:
                best, best_val = c, val
        chosen.append(best)
        cur = _with_edges(cur, cand[best : best + 1, 0], cand[best : best + 1, 1], xi2)
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
