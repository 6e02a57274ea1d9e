"""Real-data heads, bootstrap intervals, the IBN of real data and the chain/tree choice, on
tiny fixtures (no real data, no encoder wheel)."""

import jax
import numpy as np
import pytest

from rm_theory.ibn import add_hp_edges, network_distance
from rm_theory.ibn.real import (
    HP,
    IBNConfig,
    heldout_distance,
    ib_network,
    ib_variance,
    knn_edges,
    measure_structural,
    topology,
)
from rm_theory.lm.encoders import load_encoder
from rm_theory.real import load
from rm_theory.real.evaluation import bootstrap_mean, reward_eval
from rm_theory.real.features import FeatureConfig, featurize, items_of
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.heads import feature_model, pref_data, train_heads
from rm_theory.real.selection import cap_by_prompt, dedupe
from rm_theory.real.topology import choice_stats, choose_pairs
from rm_theory.rm.metrics import pair_hits
from rm_theory.rm.train import TrainConfig
from rm_theory.world import PreferenceRecord, prompt_hash


def rec(p, a, b, better=0, safe=None):
    kw = {} if safe is None else dict(safer=0, safe_a=safe[0], safe_b=safe[1])
    return PreferenceRecord(p, prompt_hash(p), a, b, better=better, **kw)


def groups(n_prompts=10, per=3):
    """Prompt i has responses g0..g{per-1} (good) and b0..b{per-1} (bad): all good-bad pairs."""
    return [
        rec(f"p{i}", f"p{i} g{j}", f"p{i} b{k}", safe=(True, False))
        for i in range(n_prompts)
        for j in range(per)
        for k in range(per)
    ]


def test_dedupe_drops_reversed_copies_and_cap_keeps_whole_prompts():
    r = groups(6, 2)
    assert dedupe(r + [x.swapped() for x in r]) == r
    capped = cap_by_prompt(r, 9, np.random.default_rng(0))
    assert len(capped) == 8  # two whole prompts of 4 pairs; a third would exceed the cap
    ids = {x.prompt_id for x in capped}
    assert all(sum(x.prompt_id == i for x in capped) == 4 for i in ids)
    assert capped == cap_by_prompt(r, 9, np.random.default_rng(0))
    assert cap_by_prompt(r, 0, np.random.default_rng(0)) == r


def test_items_and_pref_data_reindex_only_with_safety():
    r = groups(4, 2)
    r[1] = r[1].swapped()
    it = items_of(r)
    assert it.n == 16 and len(it.a_P) == 16
    for p, x in enumerate(r):
        assert it.response[it.a_P[p]] == x.response_a and it.response[it.b_P[p]] == x.response_b
        assert it.pref_P[p] == 1.0 - x.better and it.safer_P[p] == 1.0 - x.safer
    assert it.safe_N[it.a_P[1]] == 0.0  # the swapped record: a is the unsafe response
    x_NxD = np.arange(it.n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    train = it.group_P < 2
    d, used = pref_data(x_NxD, it, train)
    assert len(used) == 8 and d.safe_N is not None
    np.testing.assert_array_equal(d.x[d.a_P, 0], it.a_P[train])  # rows are the items' rows
    np.testing.assert_array_equal(d.safe_N, it.safe_N[used])
    d2, used2 = pref_data(x_NxD, it, train, with_safety=False)
    assert d2.safe_N is None and len(d2.x) == it.n and d2.safer_P is None


def test_pair_hits_antisymmetric_and_ties():
    d = np.array([1.0, -2.0, 0.0, 3.0])
    pref = np.array([1.0, 1.0, 1.0, 0.5])
    h = pair_hits(d, pref)
    np.testing.assert_array_equal(h[:3], [1.0, 0.0, 0.5])
    assert np.isnan(h[3])
    np.testing.assert_array_equal(pair_hits(-d, 1 - pref)[:3], h[:3])


def test_bootstrap_mean_value_and_intervals():
    rng = np.random.default_rng(0)
    v = rng.random(200)
    g = np.repeat(np.arange(20), 10)
    e = bootstrap_mean(v, g, rng, 500)
    assert e.value == pytest.approx(v.mean()) and e.lo < e.value < e.hi and e.n == 200
    # One group: every resample is the whole data, so the interval collapses to the value.
    one = bootstrap_mean(v, np.zeros(200), rng, 100)
    assert one.lo == pytest.approx(one.value) and one.hi == pytest.approx(one.value)
    # Constant clusters carry less information than independent pairs: a wider interval.
    vc = np.repeat(rng.random(20) > 0.5, 10).astype(float)
    wide = bootstrap_mean(vc, g, np.random.default_rng(1), 1000)
    narrow = bootstrap_mean(vc, np.arange(200), np.random.default_rng(1), 1000)
    assert wide.hi - wide.lo > 2 * (narrow.hi - narrow.lo)
    assert np.isnan(bootstrap_mean(np.full(3, np.nan), np.zeros(3), rng).value)


@pytest.mark.slow
def test_heads_learn_a_planted_reward_and_cost_sign():
    rng = np.random.default_rng(0)
    recs = [rec(f"p{i}", f"p{i} r{j}", f"p{i} r{j + 1}") for i in range(60) for j in range(3)]
    it = items_of(recs)
    x = rng.normal(size=(it.n, 8)).astype(np.float32)
    w = rng.normal(size=8)
    r = x @ w
    # Gold labels from the planted reward; safety: safe iff r > 0; safer = higher r.
    pref = (r[it.a_P] > r[it.b_P]).astype(np.float32)
    it = type(it)(**{**it.__dict__, "pref_P": pref, "safer_P": pref, "safe_N": (r > 0).astype(np.float32)})
    test = it.group_P >= 45
    tc = TrainConfig(ensemble_size=2, steps=300, batch_size=32, lr=1e-2, warmup_steps=10, log_every=300)
    heads = train_heads(x, it, ~test, feature_model([16], 8), tc, jax.random.key(0))
    ev = reward_eval(heads["reward"].score(x), it, test, np.random.default_rng(0), 200)
    assert ev["accuracy"] > 0.85 and ev["accuracy_lo"] <= ev["accuracy"] <= ev["accuracy_hi"]
    c_N = heads["cost"].score(x).mean(0)
    items = np.unique(np.r_[it.a_P[test], it.b_P[test]])
    assert np.mean((c_N[items] <= 0) == (r[items] > 0)) > 0.75


def test_knn_and_ib_variance():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(30, 5))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    u, v, cos = knn_edges(e, 4, block=7)
    assert (u < v).all() and len(set(zip(u, v, strict=True))) == len(u)
    assert np.all(np.bincount(np.r_[u, v], minlength=30) >= 4)
    np.testing.assert_allclose(cos, np.sum(e[u] * e[v], 1), atol=1e-6)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    top = np.argsort(-sim[0])[:4]
    nb0 = set(v[u == 0]) | set(u[v == 0])
    assert set(top) <= nb0
    c = np.linspace(-1, 1, 9)
    assert np.all(np.diff(ib_variance(c, 2.0, 1.5)) < 0)  # closer embeddings, smaller variance
    assert ib_variance(np.array([1.0 + 1e-7]), 1.0, 1.0)[0] == 0.0


def test_ibn_parallel_law_and_topology():
    e = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    cfg = IBNConfig(k=1, c=2.0, gamma=1.0, xi2=0.5, mst=True)
    ib = ib_network(e, cfg)
    assert topology(ib, np.zeros(4))["components"] == 1  # the spanning tree connects all
    d_ib = network_distance(ib, np.array([[0, 1]]), "resistance")[0]
    assert d_ib == pytest.approx(2.0 * (1 - 0.6))  # a single IB edge: no other 0–1 path
    net = add_hp_edges(ib, np.array([0]), np.array([1]), cfg.xi2)
    d, out = heldout_distance(net, np.array([0]), np.array([1]))
    assert d[0] == pytest.approx(1.0 / (1 / 0.8 + 1 / 0.5))  # parallel law
    assert out["unreachable_resistance"] == 0.0
    # Chain-like HP edges (disjoint pairs) make components of size 2.
    chain = add_hp_edges(ib_network(e, IBNConfig(k=0, mst=False)), np.array([0, 2]), np.array([1, 3]), 1.0)
    t = topology(chain, np.array(["a", "a", "b", "b"]))
    assert t["hp_components"] == 2 and t["hp_component_size_max"] == 2 and t["components"] == 2
    assert (chain.kind_E == HP).sum() == 2


def test_structural_function_is_measured_and_fitted():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(120, 6))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sr = measure_structural(e, [2, 4, 8, 16, 500], IBNConfig(k=5), rng, num_pairs=64)
    assert list(sr.M_K) == [2, 4, 8, 16]  # M above N/2 is dropped
    assert np.all(np.isfinite(sr.F_K)) and sr.leading in sr.fits and sr.regime in (*sr.fits, "indeterminate")
    assert sr.F_K[-1] < sr.F_K[0]  # finer clusters: closer same-cluster pairs


def test_chain_and_tree_choices():
    it = items_of(groups(12, 3))  # 9 pairs per prompt, 6 responses
    pool = it.group_P < 10
    for budget in (5, 15):
        ch = choose_pairs(it, pool, budget, "chain", np.random.default_rng(0))
        tr = choose_pairs(it, pool, budget, "tree", np.random.default_rng(0))
        assert len(ch) == len(tr) == budget and pool[ch].all() and pool[tr].all()
        resp = np.r_[it.a_P[ch], it.b_P[ch]]
        assert len(np.unique(resp)) == len(resp)  # chain: disjoint pairs
        assert choice_stats(it, tr)["prompts_used"] == -(-budget // 9)  # tree: whole prompts
        assert choice_stats(it, ch)["prompts_used"] == min(budget, 10)
    # chain capacity: 3 disjoint pairs per prompt of 3 good + 3 bad
    assert len(choose_pairs(it, pool, 1000, "chain", np.random.default_rng(0))) == 30
    with pytest.raises(ValueError, match="strategy"):
        choose_pairs(it, pool, 3, "star", np.random.default_rng(0))


def test_fixture_loads_and_featurizes_through_the_cache(tmp_path):
    paths = write_fixture(tmp_path / "fx", seed=0, prompts=6)
    loaders = {
        "hh": "hh-rlhf",
        "pku": "pku-saferlhf",
        "gsm8k": "gsm8k",
        "pandalm": "pandalm",
        "llmbar": "llmbar",
        "ultrafeedback": "ultrafeedback",
        "ultrafeedback_eval": "ultrafeedback",
    }
    for name, loader in loaders.items():
        recs, rep = load(loader, paths[name])
        assert len(recs) > 0 and not rep.skipped, name
    recs, _ = load("pku-saferlhf", paths["pku"])
    it = items_of(recs)
    enc = load_encoder(paths["encoder_dir"], max_len=32)
    fc = FeatureConfig(mode="concat", cache_dir=str(tmp_path / "cache"))
    x = featurize(enc, it, fc, progress=False)
    assert x.shape == (it.n, 2 * enc.dim)
    np.testing.assert_allclose(np.linalg.norm(x[:, enc.dim :], axis=1), 1.0, atol=1e-5)
    same_prompt = it.prompt_id == it.prompt_id[0]
    assert np.allclose(x[same_prompt, : enc.dim], x[0, : enc.dim])  # one prompt, one embedding
    n = enc.n_batches
    x2 = featurize(enc, it, fc, progress=False)
    assert enc.n_batches == n  # everything came from the cache
    np.testing.assert_array_equal(x, x2)
    xr = featurize(enc, it, FeatureConfig(mode="response", cache_dir=fc.cache_dir), False)
    np.testing.assert_array_equal(xr, x[:, enc.dim :])


def test_one_response_under_two_prompts_stays_two_nodes_of_the_ibn():
    """The IBN compares items by prompt and response together: identical responses to different
    prompts keep a positive inference distance instead of merging at variance 0."""
    from rm_theory.ibn.real import IBNConfig, real_ibn
    from rm_theory.real.features import item_embeddings

    rng = np.random.default_rng(0)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)
    prompts, resp = unit(rng.normal(size=(2, 8))), unit(rng.normal(size=(1, 8)))
    others = unit(rng.normal(size=(6, 16)))
    x = np.concatenate([np.concatenate([prompts, np.repeat(resp, 2, 0)], axis=1), others])  # items 0, 1
    e = item_embeddings(x, "concat")
    net = real_ibn(e, np.array([2, 4]), np.array([3, 5]), IBNConfig(k=3))
    d = network_distance(net, np.array([[0, 1]]), "resistance")[0]
    assert net.num_nodes == len(x) and d > 0
    # with response-only embeddings the two items coincide
    e_resp = item_embeddings(x[:, 8:] / np.linalg.norm(x[:, 8:], axis=1, keepdims=True), "response")
    net_resp = real_ibn(e_resp, np.array([2, 4]), np.array([3, 5]), IBNConfig(k=3))
    assert network_distance(net_resp, np.array([[0, 1]]), "resistance")[0] == pytest.approx(0.0, abs=1e-12)
