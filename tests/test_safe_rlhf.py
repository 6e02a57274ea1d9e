"""The Lagrangian of Safe RLHF meets its cost budget; a fixed penalty is a run with a frozen λ."""

import jax
import numpy as np
import pytest

from rm_theory.policy import exact, ppo, tables
from rm_theory.policy import safe_rlhf as srl
from rm_theory.world.labels import LabelConfig, gold_cost
from rm_theory.world.spaces import PrefixTreeSpace, Responses


@pytest.fixture(scope="module")
def world():
    space = PrefixTreeSpace(V=3, L=4, num_prompts=3, seed=2)
    tt = tables.tabulate(space)
    leaves = space.enumerate(0).data
    cost = np.stack(
        [gold_cost(space, Responses(np.full(tt.Y, p), leaves), LabelConfig(rho=0.6)).cost_N for p in range(tt.P)]
    )
    return tt, cost


def test_lagrangian_meets_the_budget_and_fixed_runs_keep_lambda(world):
    tt, cost = world
    ref = tt.ref_logp()
    exp = lambda lp, t: float((np.exp(lp) * t).sum(1).mean())
    # The unconstrained optimum is costlier than the budget, so the constraint binds.
    d = -0.3
    assert exp(exact.optimal_logp(ref, tt.gold_XxY, 0.1), cost) > d + 0.2
    cfg = ppo.PPOConfig(beta=0.1, steps=300, batch=32, lr=0.05, baseline="exact", log_every=30)
    lag = srl.LagrangeConfig(threshold=d, lambda_init=1.0, lambda_lr=0.05)
    K = 3
    with jax.threefry_partitionable(False):
        logp, m = srl.optimise_safe(
            tt,
            np.stack([tt.gold_XxY] * K),
            np.stack([cost] * K),
            cost,
            np.array([1.0, 0.0, 4.0]),
            np.array([0.05, 0.0, 0.0]),
            cfg,
            lag,
            jax.random.key(0),
        )
    final_cost = [exp(lp, cost) for lp in logp]
    assert final_cost[0] <= d + 0.05  # the Lagrangian run satisfies E[c] ≤ d within tolerance
    assert final_cost[1] > d + 0.1  # λ = 0: plain RLHF overshoots the budget
    assert m["lambda"][1, -1] == pytest.approx(0.0, abs=1e-6)
    assert m["lambda"][2, -1] == pytest.approx(4.0, rel=1e-5)
    assert m["gold_cost"][0, -1] == pytest.approx(final_cost[0], abs=1e-3)
    # The constrained run still gains reward over π_ref.
    assert exp(logp[0], tt.gold_XxY) > exp(ref, tt.gold_XxY) + 0.1


def test_lambda_clamp_and_delay(world):
    tt, cost = world
    cfg = ppo.PPOConfig(beta=0.1, steps=40, batch=16, lr=0.05, baseline="loo", log_every=10)
    # A budget no policy can meet drives λ up until the clamp; the delay freezes it at first.
    lag = srl.LagrangeConfig(threshold=-10.0, lambda_init=1.0, lambda_lr=1.0, lambda_max=3.0, delay=20)
    with jax.threefry_partitionable(False):
        _, m = srl.optimise_safe(
            tt,
            tt.gold_XxY[None],
            cost[None],
            cost,
            np.array([1.0]),
            np.array([1.0]),
            cfg,
            lag,
            jax.random.key(1),
        )
    lam = m["lambda"][0]
    np.testing.assert_allclose(lam[:2], 1.0, rtol=1e-6)  # steps 0, 10 < delay
    assert lam[-1] == pytest.approx(3.0, rel=1e-5)
    assert np.all(lam <= 3.0 + 1e-5)


@pytest.mark.parametrize("dual", ["log", "safe_rlhf"])
def test_the_two_dual_updates_follow_their_equations(world, dual):
    """With a cost the policy cannot change (the same on every leaf), Ĵ_c − d is a constant g and
    λ follows log λ ← log λ + η·g ("log") or log λ ← log λ + η·λ·g ("safe_rlhf") exactly."""
    tt, _ = world
    g, d, eta, lam0 = 0.5, -1.0, 0.2, 0.1
    flat = np.full((tt.P, tt.Y), d + g)
    cfg = ppo.PPOConfig(beta=0.1, steps=10, batch=8, lr=0.05, baseline="exact", log_every=1)
    lag = srl.LagrangeConfig(threshold=d, lambda_init=lam0, lambda_lr=eta, dual=dual)
    with jax.threefry_partitionable(False):
        _, m = srl.optimise_safe(
            tt, tt.gold_XxY[None], flat[None], flat, np.array([lam0]), np.array([eta]), cfg, lag, jax.random.key(0)
        )
    want, log_lam = [lam0], np.log(lam0)
    for _ in range(cfg.steps):
        log_lam += eta * g * (1.0 if dual == "log" else np.exp(log_lam))
        want.append(np.exp(log_lam))
    np.testing.assert_allclose(m["lambda"][0], want, rtol=1e-5)


def test_an_unknown_dual_update_is_refused():
    with pytest.raises(ValueError, match="dual"):
        srl.LagrangeConfig(dual="adam")


def test_frontier_gap_interval_is_over_the_seeds_inside_the_frontier():
    """A seed whose Lagrangian ends outside the fixed-λ cost range is counted, not a NaN interval."""
    import pandas as pd
    from scipy import stats

    from rm_theory.studies.safe_rlhf import summarize

    rows = []
    for seed, (lag_cost, lag_gold) in enumerate([(0.5, 1.1), (0.5, 0.9), (0.5, 1.3), (5.0, 1.0)]):
        rows += [
            {"seed": seed, "run": "lagrangian", "gold": lag_gold, "cost": lag_cost, "gold_cost": 0.0, "lambda": 0.1,
             "kl": 0.0},
            {"seed": seed, "run": "fixed_0", "gold": 2.0, "cost": 1.0, "gold_cost": 0.0, "lambda": 0.0, "kl": 0.0},
            {"seed": seed, "run": "fixed_1", "gold": 0.0, "cost": 0.0, "gold_cost": 0.0, "lambda": 1.0, "kl": 0.0},
        ]  # fmt: skip
    out = summarize(pd.DataFrame(rows), threshold=0.5)
    gaps = [0.1, -0.1, 0.3]  # the frontier's gold at cost 0.5 is 1.0
    assert out["frontier_gap"] == pytest.approx(np.mean(gaps))
    assert out["frontier_gap_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(gaps, ddof=1) / np.sqrt(3))
    assert (out["frontier_gap_seeds"], out["frontier_gap_outside"], out["seeds"]) == (3, 1, 4)
