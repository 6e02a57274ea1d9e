"""Reward (and cost) scorers trained on one real data set and tested on the held-out splits of others:
each test split's accuracy, with 95% percentile bootstrap intervals over its held-out prompts
(`real.evaluation`), and every other scorer's paired difference against the split's own scorer on the
same pairs (the AI-label study's real part: Safer-Instruct's automatic pairs against PKU-SafeRLHF's
human pairs, `studies.ai_labels`).

`finetuned_scorers` makes the same scorers from a fine-tuned score model (`rm_theory.lm`) instead of
heads on frozen features.

Legend: N items, P pairs, D feature width, K ensemble members.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import jax
import numpy as np

from rm_theory.common.rng import named_rng
from rm_theory.lm import finetune, load_score_model
from rm_theory.real import tokens
from rm_theory.real.evaluation import Estimate, bootstrap_mean, cost_eval
from rm_theory.real.features import FeatureConfig, Items, featurize, items_of
from rm_theory.real.loaders import load, randomize_sides
from rm_theory.real.safer_instruct import refusal_counts, refusal_mask
from rm_theory.real.selection import DataSpec, cap_by_prompt, data_rng, dedupe, load_selection, test_mask
from rm_theory.rm.metrics import pair_hits
from rm_theory.world.records import PreferenceRecord

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RealSet:
    """A real data set ready for training: records (sides randomised), items, features, split, and
    which records' chosen response is a canned refusal (`real.safer_instruct.refusal_mask`)."""

    name: str
    records: list[PreferenceRecord]
    items: Items
    x_NxD: np.ndarray
    test_P: np.ndarray
    refusal_P: np.ndarray


def prepare_sets(
    specs: dict[str, DataSpec], encoder, fc: FeatureConfig, data_seed: int, test_frac: float
) -> tuple[dict[str, RealSet], dict[str, dict[str, int]]]:
    """Each data set of `specs` capped by whole prompts (`real.selection`), sides randomised, encoded and
    split by prompt. `safer_instruct` (a Safer-Instruct folder, `real.safer_instruct`) is read whole once:
    its refusal counts (returned beside the sets) need every row, the models a selection."""
    everything, report = load("safer-instruct", specs["safer_instruct"].path)
    counts = refusal_counts(everything)
    log.info("%s; canned refusals chosen: %s", report.summary(), counts)
    sets = {}
    for name, spec in specs.items():
        if name == "safer_instruct":
            records = cap_by_prompt(dedupe(everything), spec.max_pairs, data_rng(name, data_seed))
        else:
            records, _ = load_selection(spec, data_seed)
        records = randomize_sides(records, data_rng(name, data_seed + 1))
        it = items_of(records)
        sets[name] = RealSet(
            name,
            records,
            it,
            featurize(encoder, it, fc, progress=False),
            test_mask(records, test_frac, data_seed),
            refusal_mask(records),
        )
    return sets, counts


# A trained model of one data set, by what it scores ("reward", "cost"): data set → `s_KxN` of its items.
Scorers = dict[str, Callable[[RealSet], np.ndarray]]


@dataclasses.dataclass(frozen=True)
class LMSettings:
    """A score model fine-tuned on a data set's text pairs (`finetuned_scorers`): the Hugging Face
    folder, its pooling ("" for the folder's), the window in tokens and what becomes of longer pairs,
    the prompt's characters kept, and the batch of texts when scoring."""

    folder: str
    pooling: str = ""
    max_len: int = 128
    length_rule: str = "truncate"
    prompt_chars: int = 400
    batch_size: int = 32


def finetuned_scorers(lm: LMSettings, train: RealSet, train_P: np.ndarray, cfg, key) -> Scorers:
    """Reward (and, where every training pair has a safer label, Safe RLHF cost) score models fine-tuned
    from `lm.folder` on the pairs `train_P` of `train` (`rm_theory.lm.finetune` with the settings `cfg`,
    an `lm.FinetuneConfig`); each scores the items of a data set's held-out pairs as text pairs, cut to the
    window (the test splits of `cross_accuracy` are subsets of them)."""
    it = train.items
    objectives = ["reward"] + (["cost"] if np.isfinite(it.safer_P[train_P]).all() else [])
    out: Scorers = {}
    for j, objective in enumerate(objectives):
        model = load_score_model(lm.folder, pooling=lm.pooling or None)
        L = min(lm.max_len, model.max_len)
        ids, types, plen_N = tokens.encode_items(model.tokenizer, it, lm.prompt_chars)
        pairs, counts = tokens.training_pairs(ids, types, plen_N, it, train_P, objective, L, lm.length_rule, train.name)
        log.info("%s %s: %s", train.name, objective, counts)
        res, _ = finetune(
            model, pairs, dataclasses.replace(cfg, objective=objective), jax.random.fold_in(key, j), progress=False
        )

        seen: dict[str, np.ndarray] = {}  # every test split of a data set reads the same items: scored once

        def score(ds: RealSet, res=res, model=model, L=L, seen=seen) -> np.ndarray:
            # only the items of the held-out pairs, the only ones a test split reads (NaN elsewhere)
            if ds.name not in seen:
                it_ = ds.items
                item_N = np.unique(np.r_[it_.a_P[ds.test_P], it_.b_P[ds.test_P]])
                d_ids, d_types, d_plen = tokens.encode_items(model.tokenizer, it_, lm.prompt_chars)
                w_ids, w_types, _, _ = tokens.windowed(d_ids, d_types, d_plen, item_N, L)
                s_KxN = np.full((res.size, it_.n), np.nan, np.float32)
                s_KxN[:, item_N] = res.scores(w_ids, w_types, batch_size=lm.batch_size)
                seen[ds.name] = s_KxN
            return seen[ds.name]

        out[objective] = score
    return out


def cross_accuracy(
    scorers: dict[str, Scorers],
    tests: dict[str, tuple[RealSet, np.ndarray]],
    own: dict[str, str],
    seed: int,
    n_boot: int,
) -> tuple[list[dict], dict]:
    """Every scorer (by the name of what it was trained on) on every test split (a data set and its pairs
    to test): the reward's pair accuracy and, where it has a cost model, the accuracy of ranking the safer
    response as less costly; then, on each split `test` of `own` (test → the scorer trained on its own
    train split), each other scorer's accuracy minus the own scorer's, pair by pair. Intervals are
    percentile bootstraps over held-out prompts (`n_boot` resamples), each from a generator named by
    `seed` and its estimate's tags.

    Returns rows (`train_set`, `test_set`, `metric`, `value`, `lo`, `hi`, `n`; a difference's
    `train_set` is "<train>_minus_<own>") and summary keys `real_<metric>_<train>_on_<test>` (with
    `_lo`, `_hi`, `_n`)."""
    rng = lambda *tags: named_rng(seed, *tags)
    rows, out, hits = [], {}, {}

    def add(train: str, test: str, metric: str, est: Estimate) -> None:
        rows.append(
            {
                "train_set": train,
                "test_set": test,
                "metric": metric,
                "value": est.value,
                "lo": est.lo,
                "hi": est.hi,
                "n": est.n,
            }
        )
        key_ = f"real_{metric}_{train}_on_{test}"
        out[key_], out[f"{key_}_lo"], out[f"{key_}_hi"], out[f"{key_}_n"] = est.value, est.lo, est.hi, est.n

    for train, sc in scorers.items():
        for test, (ds, m) in tests.items():
            if not m.any():
                continue
            it = ds.items
            r_N = sc["reward"](ds).mean(axis=0)
            hit = pair_hits(r_N[it.a_P[m]] - r_N[it.b_P[m]], it.pref_P[m])
            hits[(train, test)] = hit
            add(train, test, "accuracy", bootstrap_mean(hit, it.group_P[m], rng(train, test), n_boot))
            if "cost" in sc:
                c = cost_eval(sc["cost"](ds), it, m, rng("cost", train, test), n_boot)
                est = Estimate(
                    c["cost_safer_accuracy"],
                    c["cost_safer_accuracy_lo"],
                    c["cost_safer_accuracy_hi"],
                    int(c["cost_safer_accuracy_n"]),
                )
                add(train, test, "cost_safer_accuracy", est)
    # paired: on each test split, another set's scorer against the split's own, the same pairs
    for test, mine in own.items():
        ds, m = tests[test]
        for train in scorers:
            if train != mine and (train, test) in hits:
                d = hits[(train, test)] - hits[(mine, test)]
                add(
                    f"{train}_minus_{mine}",
                    test,
                    "accuracy_diff",
                    bootstrap_mean(d, ds.items.group_P[m], rng("diff", train, test), n_boot),
                )
    return rows, out
