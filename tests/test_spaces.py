"""The response spaces: lazy fields against exact enumeration, the prior's variances, the policy."""

import numpy as np
import pytest

from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses, TreeShape, delta_profile


@pytest.mark.parametrize("regime", ["polynomial", "logarithmic", "sublogarithmic"])
def test_delta_profile_is_pinned_and_decreasing(regime):
    d = delta_profile(regime, I=2.0, alpha=0.7, L=6, V=3)
    assert d[0] == pytest.approx(2.0) and d[-1] == 0.0
    assert np.all(np.diff(d) < 0)


def test_polynomial_profile_has_the_structural_exponent():
    V, L, alpha = 4, 8, 0.6
    d = delta_profile("polynomial", 1.0, alpha, L, V)
    g = V ** (-alpha * np.arange(L + 1))
    # Δ(k) = I (g(k) − g(L)) / (g(0) − g(L)): an affine image of M^−α, M = V^k
    np.testing.assert_allclose(d, (g - g[-1]) / (g[0] - g[-1]), rtol=1e-12)


def test_lazy_reward_equals_enumerated_sum_of_node_increments():
    space = PrefixTreeSpace(V=3, L=4, num_prompts=2, seed=7)
    leaves = space.enumerate(prompt=1)
    r = space.gold_reward(leaves)
    # Increment of each node from partial sums of truncated responses (internal nodes).
    total = np.zeros(len(leaves))
    for j in range(1, space.L + 1):
        upto = lambda k: Responses(leaves.prompt, np.where(np.arange(space.L) < k, leaves.data, -1))
        total += space.gold_reward(upto(j)) - space.gold_reward(upto(j - 1))
    np.testing.assert_allclose(total, r, atol=1e-12)
    # No table: any subset, in any order and batch, gets the same values.
    idx = np.random.default_rng(0).permutation(len(leaves))[:17]
    np.testing.assert_array_equal(space.gold_reward(leaves.take(idx)), r[idx])
    # Siblings share their parent's partial sum exactly.
    parent = lambda resp: Responses(resp.prompt, np.where(np.arange(space.L) < space.L - 1, resp.data, -1))
    first, second = (space.gold_reward(parent(leaves.take([i]))) for i in (0, 1))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("k", [0, 2, 4])
def test_difference_variance_matches_delta(k):
    space = PrefixTreeSpace(V=4, L=6, num_prompts=6000, regime="logarithmic", alpha=0.8, seed=3)
    rng = np.random.default_rng(1)
    a, b = space.sample_with_common_depth(rng, np.arange(6000), k)
    np.testing.assert_array_equal(space.shared_length(a, b), k)
    diff = space.gold_reward(a) - space.gold_reward(b)
    # 6000 independent prompts: the sample variance is within ~4 s.e. (s.e. ≈ √(2/6000) ≈ 1.8%)
    assert np.var(diff) == pytest.approx(space.delta_k[k], rel=0.08)


def test_policy_is_a_distribution_and_sampling_follows_it():
    space = PrefixTreeSpace(V=2, L=3, num_prompts=1, seed=2)
    leaves = space.enumerate()
    p = np.exp(space.log_prob(leaves))
    assert p.sum() == pytest.approx(1.0)
    draws = space.sample(np.random.default_rng(0), np.zeros(40000, dtype=np.int64))
    codes = draws.data @ (2 ** np.arange(space.L)[::-1])
    freq = np.bincount(codes, minlength=8) / 40000
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_lower_temperature_concentrates_the_policy():
    space = PrefixTreeSpace(V=4, L=3, num_prompts=1, seed=5)
    leaves = space.enumerate()
    entropy = lambda tau: -(np.exp(lp := space.log_prob(leaves, tau)) * lp).sum()
    assert entropy(0.3) < entropy(1.0) < entropy(3.0)


def test_trees_branch_into_distinct_siblings_at_their_branch_depths():
    space = PrefixTreeSpace(V=4, L=6, num_prompts=3, seed=1)
    rng = np.random.default_rng(0)
    trees = space.sample_trees(rng, np.array([0, 1, 2, 0]), TreeShape(B=3, D=2, root_branching=True))
    S = trees.slots
    assert S == 9 and len(trees.leaves) == 4 * 9
    tok = trees.leaves.data.reshape(4, S, space.L)
    for t in range(4):
        depths = np.flatnonzero(trees.branch_GxL[t])
        assert depths[0] == 0 and len(depths) == 2
        assert len({tuple(x) for x in tok[t]}) == S  # all leaves distinct
        lcp = space.shared_length(trees.leaves.take(np.repeat(t * S, S)), trees.leaves.take(t * S + np.arange(S)))
        # leaf 0 shares a prefix of a branch depth with every other leaf
        assert set(lcp[1:].tolist()) <= set(depths.tolist())


def test_fixed_branch_depths_and_determinism():
    space = PrefixTreeSpace(V=3, L=5, num_prompts=2)
    shape = TreeShape(B=2, D=2, branch_depths=(1, 3))
    a = space.sample_trees(np.random.default_rng(4), np.array([0, 1]), shape)
    b = space.sample_trees(np.random.default_rng(4), np.array([0, 1]), shape)
    np.testing.assert_array_equal(a.leaves.data, b.leaves.data)
    assert a.branch_GxL[:, [1, 3]].all() and a.branch_GxL.sum() == 4
    with pytest.raises(ValueError, match="branch_depths"):
        space.sample_trees(np.random.default_rng(0), np.array([0]), TreeShape(B=2, D=2, branch_depths=(1, 9)))


def test_metric_field_variogram_scales_like_distance_to_gamma():
    space = MetricSpace(K=2, num_prompts=1, gamma=1.0, c=1.0, num_features=512, seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 0.8, size=(4000, 2))
    vario = {}
    for h in (0.02, 0.08):
        d = rng.normal(size=(4000, 2))
        y = x + h * d / np.linalg.norm(d, axis=1, keepdims=True)
        r = lambda z: space.gold_reward(Responses(np.zeros(len(z), dtype=np.int64), z))
        vario[h] = np.mean((r(x) - r(y)) ** 2)
    # Quadrupling the distance multiplies the variogram by about 4^γ = 4.
    assert vario[0.08] / vario[0.02] == pytest.approx(4.0, rel=0.35)


def _metric_moments(gamma: float, hs: tuple[float, ...], seeds: int = 300, points: int = 20):
    """Monte Carlo over field seeds: E[r(x)²] and Var[r(x) − r(x+h)] of the metric gold field."""
    rng = np.random.default_rng(1)
    sq, vario = [], {h: [] for h in hs}
    for seed in range(seeds):
        space = MetricSpace(K=2, num_prompts=1, gamma=gamma, c=1.0, seed=seed)
        x = rng.uniform(0.2, 0.5, (points, 2))
        d = rng.normal(size=(points, 2))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        r = lambda z, sp=space: sp.gold_reward(Responses(np.zeros(len(z), dtype=np.int64), z))
        r0 = r(x)
        sq.append(r0**2)
        for h in hs:
            vario[h].append((r0 - r(x + h * d)) ** 2)
    return space, float(np.mean(sq)), {h: float(np.mean(v)) for h, v in vario.items()}


def test_metric_field_variogram_equals_the_ib_edge_variance():
    """THEORY.md §2: the IBN's IB edge variance c·dist^γ is the field's own variogram (not twice it),
    over the documented range of distances."""
    space, _, vario = _metric_moments(1.0, (0.01, 0.05, 0.2))
    for h, v in vario.items():
        assert v == pytest.approx(space.c * h**space.gamma, rel=0.05), h


def test_metric_field_variance_is_what_the_labels_scale_by():
    from rm_theory.world.labels import _field_scale

    space, mean_sq, _ = _metric_moments(1.0, ())
    assert mean_sq == pytest.approx(space.field_variance, rel=0.05)
    assert _field_scale(space) ** 2 == pytest.approx(space.field_variance)
