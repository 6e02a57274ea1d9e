"""Synthetic data → trainer arrays and JSONL records: indices, groups, round trip, bad input, inconsistent rows."""

import json

import numpy as np
import pytest

from rm_theory.world.labels import LabelConfig, label_comparisons, model_tokens
from rm_theory.world.records import RecordError, read_jsonl, write_jsonl
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, TreeShape
from rm_theory.world.synthetic import from_records, item_ids, to_pref_data, to_records
from rm_theory.world.topology import TreeSampling, make_dataset

SPACE = PrefixTreeSpace(V=3, L=5, num_prompts=12, seed=3)
TREE = TreeSampling(TreeShape(B=2, D=2), incomplete_frac=0.3)


NOISY = LabelConfig(cost_beta=0.3, rho=0.5)


def labelled(topology="tree", n=200, space=SPACE, cfg=NOISY, seed=0):
    rng = np.random.default_rng(seed)
    comps = make_dataset(space, topology, n, rng, tree=TREE)
    return comps, label_comparisons(space, comps, cfg, rng)


def test_pairs_index_their_own_items_and_keep_labels():
    comps, lab = labelled()
    syn = to_pref_data(SPACE, comps, lab)
    d = syn.data
    np.testing.assert_array_equal(d.x[d.a_P], model_tokens(SPACE, comps.a))
    np.testing.assert_array_equal(d.x[d.b_P], model_tokens(SPACE, comps.b))
    np.testing.assert_array_equal(d.pref_P, lab.better_P)
    np.testing.assert_array_equal(d.safe_N[d.b_P], lab.safe_b)
    np.testing.assert_array_equal(d.harm_NxC[d.a_P], lab.harm_a)
    np.testing.assert_array_equal(d.severity_N[d.a_P], lab.severity_a)
    assert syn.n_inconsistent == int(lab.inconsistent().sum())


def test_metric_features_are_prompt_onehot_and_point():
    space = MetricSpace(K=2, num_prompts=3)
    comps, lab = labelled("chain", 50, space)
    x = to_pref_data(space, comps, lab).data.x
    assert x.shape == (100, 3 + 2)
    np.testing.assert_array_equal(x[:50, :3].argmax(1), comps.a.prompt)
    np.testing.assert_allclose(x[:50, 3:], comps.a.data, rtol=1e-6)


def test_groups_rank_each_trees_distinct_items_by_gold_reward_at_high_beta():
    comps, lab = labelled(n=120)
    syn = to_pref_data(SPACE, comps, lab, groups=True, beta=1e6, rng=np.random.default_rng(1))
    d = syn.data
    assert d.a_P is None  # every comparison is a tree comparison, replaced by its group
    items_tree = np.concatenate([comps.tree_P, comps.tree_P])
    ids = item_ids(SPACE, syn.items)
    gold = SPACE.gold_reward(syn.items)
    assert syn.n_groups == len(np.unique(comps.tree_P))
    for g in d.group_GxNg:
        g = g[g >= 0]
        assert len(np.unique(items_tree[g])) == 1
        t = items_tree[g[0]]
        assert len(g) == len(np.unique(ids[items_tree == t]))  # all distinct items, once each
        assert np.all(np.diff(gold[g]) <= 0)  # best first


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz"])
def test_jsonl_round_trip_gives_the_same_training_arrays(tmp_path, name):
    comps, lab = labelled(n=150)
    recs = to_records(SPACE, comps, lab)
    write_jsonl(tmp_path / name, recs)
    back, report = read_jsonl(tmp_path / name)
    assert back == recs
    rd = from_records(back, L=SPACE.L, num_prompts=SPACE.num_prompts)
    mine = to_pref_data(SPACE, comps, lab).data
    np.testing.assert_array_equal(rd.data.x, mine.x)
    for f in ("a_P", "b_P", "pref_P", "safer_P", "safe_N", "severity_N"):
        np.testing.assert_array_equal(getattr(rd.data, f), getattr(mine, f))
    np.testing.assert_array_equal(rd.data.harm_NxC[:, : mine.harm_NxC.shape[1]], mine.harm_NxC)
    np.testing.assert_array_equal(rd.comps.a.data, comps.a.data)
    np.testing.assert_array_equal(rd.comps.tree_P, comps.tree_P)
    assert [r.node_a for r in back] == item_ids(SPACE, comps.a).tolist()
    assert rd.vocab <= 1 + SPACE.num_prompts + SPACE.V


def test_inconsistent_rows_are_counted_not_dropped():
    comps, lab = labelled(n=400)
    n_bad = int(lab.inconsistent().sum())
    assert n_bad > 0  # noisy safer labels against exact safety labels
    rd = from_records(to_records(SPACE, comps, lab))
    assert len(rd.data.a_P) == 400
    assert rd.report.inconsistent.get("safer_is_unsafe_other_safe", 0) == n_bad
    assert rd.report.n_inconsistent >= n_bad


def test_malformed_line_names_file_and_line(tmp_path):
    comps, lab = labelled(n=3)
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, to_records(SPACE, comps, lab))
    lines = path.read_text().splitlines()
    d = json.loads(lines[1])
    d["better"] = 2
    lines[1] = json.dumps(d)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: field 'better'"):
        read_jsonl(path)


def test_from_records_rejects_text_and_overlong_responses():
    comps, lab = labelled(n=4)
    recs = to_records(SPACE, comps, lab)
    with pytest.raises(ValueError, match="more than L"):
        from_records(recs, L=2)
    import dataclasses

    text = [dataclasses.replace(recs[0], response_a="hi", response_b="yo")]
    with pytest.raises(ValueError, match="token lists"):
        from_records(text)


def test_chain_records_have_no_tree_and_ties_become_half():
    import dataclasses

    comps, lab = labelled("chain", 10)
    recs = to_records(SPACE, comps, lab)
    assert all(r.tree_id is None for r in recs)
    recs[0] = dataclasses.replace(recs[0], better=None)
    rd = from_records(recs)
    assert rd.data.pref_P[0] == 0.5
    assert np.all(rd.comps.tree_P == -1)
