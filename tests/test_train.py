"""Fused ensemble training: learnability, determinism, exact resume, golden values, one trace."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rm_theory.rm import metrics
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.program import ensemble_scores, make_chunk_fn, setup_ensemble
from rm_theory.rm.step import TrainConfig
from rm_theory.rm.train import program_length, train_ensemble, train_reward_and_cost
from rm_theory.world.inputs import PrefData

L, V = 6, 6  # tokens 1..5 at 6 positions
N_TRAIN, N_TEST = 600, 200
MC = ModelConfig(family="mlp", vocab=V, max_len=8, hidden=(32,))
TC = TrainConfig(ensemble_size=3, steps=300, batch_size=64, lr=3e-3, warmup_steps=20,
                 log_every=100)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Toy:
    """Items whose gold reward is a sum of per-position token values, labelled pairs on the
    training items and held-out pairs on unseen items."""

    tok: np.ndarray
    gold: np.ndarray
    train: PrefData
    test_a: np.ndarray
    test_b: np.ndarray
    test_pref: np.ndarray


@pytest.fixture(scope="module")
def toy() -> Toy:
    rng = np.random.default_rng(0)
    N = N_TRAIN + N_TEST
    tok = rng.integers(1, V, size=(N, L)).astype(np.int32)
    gold = rng.normal(size=(L, V))[np.arange(L), tok].sum(1)
    a, b = rng.integers(0, N_TRAIN, 2000), rng.integers(0, N_TRAIN, 2000)
    ta, tb = N_TRAIN + rng.integers(0, N_TEST, (2, 500))
    pref = (gold[a] > gold[b]).astype(np.float32)
    # Safety: safe iff the gold cost (another token sum) is ≤ 0; harm categories are one-hot
    # flags of particular tokens at particular positions.
    cost = rng.normal(size=(L, V))[np.arange(L), tok].sum(1)
    harm = np.stack([tok[:, 0] == 1, tok[:, 1] == 2, tok[:, 2] >= 4], axis=1).astype(np.float32)
    # Tree-like groups: 5 training items ranked best first; some groups ragged (−1 padded).
    group = rng.choice(N_TRAIN, size=(300, 5))
    group = np.take_along_axis(group, np.argsort(-gold[group], axis=1), axis=1)
    group[::3, 3:] = -1
    data = PrefData(
        x=tok,
        a_P=a,
        b_P=b,
        pref_P=pref,
        safer_P=(cost[a] < cost[b]).astype(np.float32),
        safe_N=(cost <= 0).astype(np.float32),
        harm_NxC=harm,
        group_GxNg=group,
    )
    return Toy(tok, gold, data, ta, tb, (gold[ta] > gold[tb]).astype(np.float32))


@pytest.fixture(scope="module")
def trained(toy):
    rows = []
    ens, hist = train_ensemble(MC, TC, toy.train, jax.random.key(0), log_fn=lambda s, r: rows.append((s, r)))
    return ens, hist, rows


def test_learns_a_token_sum_reward(toy, trained):
    ens, hist, rows = trained
    s_KxN = ensemble_scores(ens, toy.tok)
    assert s_KxN.shape == (3, N_TRAIN + N_TEST)
    for s_N in s_KxN:
        assert metrics.pairwise_accuracy(s_N, toy.test_a, toy.test_b, toy.test_pref) > 0.9
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert [s for s, _ in rows] == [100, 200, 300] and rows[-1][1] == hist[-1]
    assert {"loss", "bt", "acc", "pl", "lr", "grad_norm"} <= set(hist[-1])


def test_members_differ(toy, trained):
    ens = trained[0]
    s_KxN = ens.score(toy.tok)
    assert not np.allclose(s_KxN[0], s_KxN[1], atol=1e-3)
    var, var_P = metrics.ensemble_diff_variance(s_KxN, toy.test_a, toy.test_b)
    assert var > 0 and var_P.shape == (500,)
    # Different init keys, and bootstrap resamples that differ between members.
    _, state_K, _, boot, _ = setup_ensemble(MC, TC, toy.train, jax.random.key(0))
    kernel_K = np.asarray(state_K[0]["head"]["kernel"][...])
    assert not np.allclose(kernel_K[0], kernel_K[1])
    pair_KxP = np.asarray(boot["pair"])[:, :2000]  # padded to batches.bucket(2000) = 4096
    assert boot["pair"].shape == (3, 4096) and not np.array_equal(pair_KxP[0], pair_KxP[1])
    assert 0.55 < len(np.unique(pair_KxP[0])) / 2000 < 0.7  # ≈ 1 − 1/e of a resample is unique


def test_same_seed_same_result_other_seed_other_result(toy, trained):
    ens0 = trained[0]
    ens1, _ = train_ensemble(MC, TC, toy.train, jax.random.key(0), progress=False)
    chex.assert_trees_all_equal(ens0.state_K, ens1.state_K)
    ens2, _ = train_ensemble(MC, TC, toy.train, jax.random.key(1), progress=False)
    assert not np.allclose(ens0.score(toy.tok[:50]), ens2.score(toy.tok[:50]))


def test_a_ragged_tail_reuses_the_one_compiled_chunk_and_changes_nothing(toy, trained, monkeypatch):
    from rm_theory.rm import train

    assert [program_length(250, 600), program_length(100, 300), program_length(250, 100)] == [50, 100, 100]
    assert program_length(250, 601) == 250  # a common divisor of 1 step: the tail compiles its own
    lengths = []
    real = train.run_chunk
    monkeypatch.setattr(train, "run_chunk", lambda mc, tc, n, *a: lengths.append(n) or real(mc, tc, n, *a))
    tc = dataclasses.replace(TC, log_every=120)  # 300 steps: rows at 120, 240, 300
    ens, hist = train_ensemble(MC, tc, toy.train, jax.random.key(0), progress=False)
    assert set(lengths) == {60} and [r["step"] for r in hist] == [120, 240, 300]
    chex.assert_trees_all_equal(ens.state_K, trained[0].state_K)  # the same steps as 100-step chunks


@pytest.mark.parametrize("partitionable", [True, False])  # False: the downstream studies' Threefry
def test_data_sets_of_other_sizes_share_one_program_and_padding_changes_no_number(
    toy, trained, monkeypatch, partitionable
):
    from rm_theory.rm import batches, train

    assert [batches.bucket(n) for n in (1, 4096, 4097, 10_000)] == [4096, 4096, 8192, 16384]
    d = toy.train
    smaller = dataclasses.replace(d, a_P=d.a_P[:1200], b_P=d.b_P[:1200], pref_P=d.pref_P[:1200],
                                  safer_P=d.safer_P[:1200], group_GxNg=d.group_GxNg[:250])  # fmt: skip
    tc = dataclasses.replace(TC, steps=100)
    with jax.threefry_partitionable(partitionable):
        train_ensemble(MC, tc, d, jax.random.key(0), progress=False)
        compiled = train.run_chunk._cache_size()
        train_ensemble(MC, tc, smaller, jax.random.key(0), progress=False)
        assert train.run_chunk._cache_size() == compiled
        # Padded to 4096 rows, or to 2048 (the items to 1024): draws stop at the true lengths, so
        # the runs are bit-identical, reward (pairs and groups) and cost (items) alike.
        for mc, tc_run in [(MC, tc), (dataclasses.replace(MC, harm_head=True, n_harm=3),
                                      dataclasses.replace(tc, objective="cost"))]:  # fmt: skip
            monkeypatch.setattr(batches, "MIN_BUCKET", 1)
            tight = train_ensemble(mc, tc_run, d, jax.random.key(1), progress=False)[0]
            monkeypatch.setattr(batches, "MIN_BUCKET", 4096)
            wide = train_ensemble(mc, tc_run, d, jax.random.key(1), progress=False)[0]
            chex.assert_trees_all_equal(tight.state_K, wide.state_K)


class Killed(Exception):
    pass


def test_resume_after_kill_is_exact(toy, trained, tmp_path):
    tc = dataclasses.replace(TC, checkpoint_every=100)

    def kill_at_200(step, row):
        if step == 200:
            raise Killed

    with pytest.raises(Killed):
        train_ensemble(MC, tc, toy.train, jax.random.key(0), checkpoint_dir=tmp_path,
                       log_fn=kill_at_200, progress=False)  # fmt: skip
    resumed_rows = []
    ens, hist = train_ensemble(
        MC,
        tc,
        toy.train,
        jax.random.key(0),
        checkpoint_dir=tmp_path,
        log_fn=lambda s, r: resumed_rows.append(s),
        progress=False,
    )
    assert resumed_rows == [300]  # only the chunk after the last checkpoint ran again
    chex.assert_trees_all_equal(ens.state_K, trained[0].state_K)
    drop = lambda h: [{k: v for k, v in r.items() if k != "comparisons_per_s"} for r in h]
    assert drop(hist) == drop(trained[1])
    with pytest.raises(ValueError, match="another config"):
        train_ensemble(MC, tc, toy.train, jax.random.key(7), checkpoint_dir=tmp_path,
                       progress=False)  # fmt: skip


def test_fused_chunk_traces_once_and_golden_losses(toy, trained):
    graphdef, state_K, d, boot, keys_K = setup_ensemble(MC, TC, toy.train, jax.random.key(0))
    fused = make_chunk_fn(graphdef, TC, 5)  # already vmapped, so chex wraps a plain caller
    chunk = jax.jit(chex.assert_max_traces(lambda *args: fused(*args), n=1))
    losses_KxS = []
    for step0 in range(0, 20, 5):  # four chunks, one trace
        state_K, aux = chunk(state_K, jnp.int32(step0), d, boot, keys_K)
        assert aux["loss"].shape == (3, 5)
        losses_KxS.append(np.asarray(aux["loss"]))
    losses_KxS = np.concatenate(losses_KxS, axis=1)
    assert losses_KxS[:, -5:].mean() < losses_KxS[:, :5].mean()
    # Golden values (jax 0.10.2, flax 0.12.8, optax 0.2.8, CPU): the loss of each member before
    # and after one step, and the first logged row of the fixture run. A change means the init,
    # the sampling, the loss or the optimizer step changed.
    np.testing.assert_allclose(losses_KxS[:, :2], GOLDEN_STEPS, rtol=1e-5)
    np.testing.assert_allclose(trained[1][0]["loss"], GOLDEN_ROW0, rtol=1e-5)


GOLDEN_STEPS = [
    [4.292929649353027, 3.9370627403259277],
    [4.335488319396973, 4.79209566116333],
    [4.687093734741211, 4.6509270668029785],
]
GOLDEN_ROW0 = 2.525359869003296


def test_cost_model_learns_signs_and_harm(toy):
    out = train_reward_and_cost(MC, TC, toy.train, jax.random.key(0), progress=False)
    assert set(out) == {"reward", "cost"}
    cost_ens, hist = out["cost"]
    assert cost_ens.cfg.harm_head and cost_ens.cfg.n_harm == 3
    c_KxN, h_KxNxC = cost_ens.score_and_harm(toy.tok)
    safe_N = np.asarray(toy.train.safe_N)
    held = slice(N_TRAIN, None)
    for c_N in c_KxN:
        assert metrics.cost_sign_accuracy(c_N[held], safe_N[held]) > 0.85
    harm_pred = h_KxNxC[:, held] > 0
    assert np.mean(harm_pred == (toy.train.harm_NxC[held] > 0.5)) > 0.9
    assert {"rank", "sign", "sign_acc", "harm"} <= set(hist[-1])


def test_listwise_groups_alone_train_a_reward(toy):
    data = dataclasses.replace(toy.train, a_P=None, b_P=None, pref_P=None)
    ens, hist = train_ensemble(MC, TC, data, jax.random.key(0), progress=False)
    assert "bt" not in hist[-1] and "pl" in hist[-1]
    s_N = ens.score(toy.tok).mean(0)
    assert metrics.pairwise_accuracy(s_N, toy.test_a, toy.test_b, toy.test_pref) > 0.85


@pytest.mark.slow
def test_transformer_learns_a_token_sum_reward(toy):
    mc = ModelConfig(family="transformer", vocab=V, max_len=8, d_model=32, heads=2, layers=2)
    ens, _ = train_ensemble(mc, dataclasses.replace(TC, steps=600), toy.train, jax.random.key(0),
                            progress=False)  # fmt: skip
    for s_N in ens.score(toy.tok):
        assert metrics.pairwise_accuracy(s_N, toy.test_a, toy.test_b, toy.test_pref) > 0.9


def test_metrics_by_hand():
    r = np.array([0.0, 1.0, 2.0, 2.0])
    a, b = np.array([1, 0, 2, 3]), np.array([0, 1, 3, 0])
    # pair 0 right, pair 1 wrong, pair 2 a score tie (1/2), pair 3 labelled a tie (skipped)
    assert metrics.pairwise_accuracy(r, a, b, np.array([1.0, 1.0, 1.0, 0.5])) == 0.5
    assert metrics.spearman(r[:3], np.array([5.0, 6.0, 9.0])) == pytest.approx(1.0)
    # Perfectly calibrated bins give 0; confident wrong predictions give their confidence.
    assert metrics.expected_calibration_error(np.full(10, 0.5), np.arange(10) % 2) == 0.0
    assert metrics.expected_calibration_error(np.full(4, 0.95), np.zeros(4)) == pytest.approx(0.95)
    assert metrics.cost_sign_accuracy(np.array([-1.0, 0.0, 2.0]), np.array([1, 0, 0])) == (2 / 3)
    s_KxN = np.array([[0.0, 1.0], [0.0, 3.0]])
    mean, var_P = metrics.ensemble_diff_variance(s_KxN, np.array([1]), np.array([0]))
    assert mean == pytest.approx(2.0) and var_P.shape == (1,)  # sample variance of {1, 3}
