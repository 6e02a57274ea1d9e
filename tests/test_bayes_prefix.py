"""The Flax prefix-embedding reward model against the exact learner (rm.bayes): with the per-depth prior
as its L2 penalty it is the same objective, so training reaches the exact MAP (THEORY.md §2)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from rm_theory.rm import bayes
from rm_theory.rm.models import ModelConfig, init_model
from rm_theory.rm.step import TrainConfig
from rm_theory.rm.train import train_ensemble
from rm_theory.world.labels import LabelConfig, label_comparisons, model_tokens, vocab_size
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.synthetic import to_pref_data
from rm_theory.world.topology import make_dataset

SPACE = PrefixTreeSpace(V=3, L=4, num_prompts=2, seed=1)


def prefix_config(space, **kw) -> ModelConfig:
    # vocab^(L+1) = 6^5 = 7776 <= 8192: every prefix has its own slot (no hashing).
    return ModelConfig(
        family="prefix", vocab=vocab_size(space), max_len=space.L + 1, table_size=8192,
        prior_var=tuple(space.s2_L), **kw,
    )  # fmt: skip


def map_config(P: int, **kw) -> TrainConfig:
    """Adam on the negative log posterior / P: no score L2, centring or weight decay besides the prior."""
    base = TrainConfig(
        ensemble_size=2, steps=3000, batch_size=16 * P, lr=0.05, warmup_steps=10, end_lr_frac=0.002,
        weight_decay=0.0, clip_norm=1e9, bootstrap=False, l2_coef=0.0, centre_coef=0.0, prior_coef=1.0 / P,
        log_every=3000,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def test_prefix_model_sums_per_prefix_values_and_ignores_padding():
    mc = prefix_config(SPACE, anchored=True)
    graphdef, state = init_model(mc, jax.random.key(0))
    from flax import nnx

    model = nnx.merge(graphdef, state)
    rng = np.random.default_rng(0)
    resp = SPACE.truncate(SPACE.sample(rng, np.array([0, 1, 1])), rng, np.array([False, True, False]))
    tok = model_tokens(SPACE, resp)
    r = np.asarray(model(tok))
    table = np.asarray(model.table[...])
    depth, slot, ok = (np.asarray(v) for v in model.slots(tok))
    np.testing.assert_allclose(r, np.where(ok, table[depth, slot], 0).sum(1), rtol=1e-6)
    # Left padding gives the same scores.
    left = np.stack([np.r_[np.zeros((row == 0).sum(), int), row[row > 0]] for row in tok])
    np.testing.assert_allclose(np.asarray(model(left)), r, rtol=1e-6)
    # Distinct prefixes of one depth get distinct slots (exact indexing in this small space).
    ids, depth, slot, ok = SPACE.node_ids(resp)[:, 1:], depth[:, 1:], slot[:, 1:], ok[:, 1:]  # column 0: prompt
    assert np.array_equal(ok, ids >= 0)
    seen = {(int(d), int(s)): int(i) for i, d, s in zip(ids[ok], depth[ok], slot[ok], strict=True)}
    assert len(seen) == len(np.unique(ids[ok]))
    assert float(model.prior_penalty()) == 0.0  # it starts at its anchor


def test_trained_prefix_model_matches_the_exact_map():
    rng = np.random.default_rng(2)
    comps = make_dataset(SPACE, "chain", 80, rng)
    labels = label_comparisons(SPACE, comps, LabelConfig(beta=1.0), rng)
    syn = to_pref_data(SPACE, comps, labels)
    P = len(comps)
    qa = SPACE.sample(rng, rng.integers(0, 2, 50))
    fit = bayes.fit(SPACE, comps.a, comps.b, labels.better_P, queries=qa, beta=1.0)
    exact_N = fit.posterior.item_mean(np.r_[np.arange(2 * P), fit.query_index(np.arange(50))])
    ens, _ = train_ensemble(prefix_config(SPACE), map_config(P), syn.data, jax.random.key(0), progress=False)
    items = Responses.concat([comps.a, comps.b, qa])
    s_KxN = ens.score(model_tokens(SPACE, items))
    err = np.abs(s_KxN - exact_N[None]).max()
    assert err < 0.02, err
    assert np.corrcoef(s_KxN[0], exact_N)[0, 1] > 0.999
