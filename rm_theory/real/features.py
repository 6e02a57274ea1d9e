"""Reward and cost heads on frozen encoder features of real preference data.

Pipeline: load (`rm_theory.real`) → drop duplicate comparisons → cap the number of pairs by
whole prompts → encode prompt and response texts once each (`encoders.cached_encode`) → one item
per (prompt, response) → `train.PrefData` over the items → reward (and, with safety labels, cost)
ensembles trained by the same fused loop and losses as the synthetic world (THEORY.md §2,
"Theory against practice"), only the input is a frozen sentence embedding instead of tokens.

Features of an item: "concat" = [e(prompt), e(response)] (the head may learn prompt-dependent
rewards), or "response" = e(response). Prompts are encoded from their last `prompt_chars`
characters, since the encoder truncates from the end and a transcript's last turn matters most.

Accuracy carries a percentile bootstrap interval over prompts (pairs of one prompt are not
independent, so resampling whole prompts keeps the interval honest).

Legend: N items (distinct prompt+response), P pairs, U unique texts, H encoder width (384),
D = feature width (H or 2H), K ensemble members, R bootstrap resamples, G prompts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from rm_theory.common.rng import str_hash
from rm_theory.real.encoders import cached_encode
from rm_theory.real.loaders import load
from rm_theory.rm import metrics
from rm_theory.rm.models import ModelConfig
from rm_theory.rm.train import Ensemble, PrefData, TrainConfig, train_ensemble
from rm_theory.world.records import LoadReport, PreferenceRecord

# ---------------------------------------------------------------------------- data selection


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """One data set: loader name (a key of `data.LOADERS`), path, cap on pairs (0 = all)."""

    name: str
    loader: str
    path: str
    max_pairs: int = 0


def dedupe(records: Sequence[PreferenceRecord]) -> list[PreferenceRecord]:
    """First copy of each comparison (a reversed or conflicting copy is dropped too: the
    first label wins, so no pair is trained on twice or against itself)."""
    seen, out = set(), []
    for r in records:
        k = r.pair_key()
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def cap_by_prompt(
    records: Sequence[PreferenceRecord], max_pairs: int, rng: np.random.Generator
) -> list[PreferenceRecord]:
    """Records of whole prompts in a random prompt order, up to `max_pairs` pairs (0: all).

    Whole prompts keep every response group intact (the topology experiment needs them);
    source order is kept inside the selection."""
    if max_pairs <= 0 or len(records) <= max_pairs:
        return list(records)
    ids = sorted({r.prompt_id for r in records})
    count: dict[str, int] = {}
    for r in records:
        count[r.prompt_id] = count.get(r.prompt_id, 0) + 1
    keep, total = set(), 0
    for i in rng.permutation(len(ids)):
        pid = ids[i]
        if total + count[pid] > max_pairs and keep:
            continue
        keep.add(pid)
        total += count[pid]
        if total >= max_pairs:
            break
    return [r for r in records if r.prompt_id in keep]


def data_rng(name: str, seed: int) -> np.random.Generator:
    """Generator of a data set's selection: stable per name, so caches are reused across runs."""
    return np.random.default_rng([str_hash(name), seed])


def load_selection(spec: DataSpec, seed: int = 0) -> tuple[list[PreferenceRecord], LoadReport]:
    """Load, dedupe and cap one data set (the report is the loader's, before selection)."""
    records, report = load(spec.loader, spec.path)
    records = cap_by_prompt(dedupe(records), spec.max_pairs, data_rng(spec.name, seed))
    return records, report


# ---------------------------------------------------------------------------- featurisation


def prompt_text(prompt: str, prompt_chars: int) -> str:
    """The part of a prompt that is encoded: its last `prompt_chars` characters (0: all)."""
    p = prompt.strip()
    return p[-prompt_chars:] if prompt_chars > 0 else p


def record_texts(records: Sequence[PreferenceRecord], prompt_chars: int) -> list[str]:
    """Every text the features of `records` need (prompts and responses), each once."""
    out: dict[str, None] = {}
    for r in records:
        out[prompt_text(r.prompt, prompt_chars)] = None
        out[str(r.response_a)] = None
        out[str(r.response_b)] = None
    return list(out)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    mode: str = "concat"  # concat | response
    prompt_chars: int = 400
    batch_size: int = 32
    cache_dir: str = "outputs/feature_cache"


@dataclasses.dataclass(frozen=True)
class Items:
    """Distinct (prompt, response) items of a record list and the pairs over them.

    a_P, b_P index items; pref_P = 1 when a is preferred (0.5 tie); safer_P likewise (nan
    where unlabelled); safe_N 1 safe / 0 unsafe / nan unknown (first label seen wins).
    """

    prompt_id: np.ndarray  # [N] object
    prompt: list[str]
    response: list[str]
    a_P: np.ndarray
    b_P: np.ndarray
    pref_P: np.ndarray
    safer_P: np.ndarray
    safe_N: np.ndarray
    group_P: np.ndarray  # [P] prompt index 0..G-1 (bootstrap clusters)

    @property
    def n(self) -> int:
        return len(self.response)


def items_of(records: Sequence[PreferenceRecord]) -> Items:
    """Items and pairs of `records` (a response seen under two prompts is two items)."""
    index: dict[tuple[str, str], int] = {}
    pid, prompts, resps, safe = [], [], [], []
    groups: dict[str, int] = {}

    def item(r: PreferenceRecord, y, s) -> int:
        k = (r.prompt_id, str(y))
        if k not in index:
            index[k] = len(resps)
            pid.append(r.prompt_id)
            prompts.append(r.prompt)
            resps.append(str(y))
            safe.append(np.nan if s is None else float(s))
        elif np.isnan(safe[index[k]]) and s is not None:
            safe[index[k]] = float(s)
        return index[k]

    a, b, pref, safer, grp = [], [], [], [], []
    for r in records:
        a.append(item(r, r.response_a, r.safe_a))
        b.append(item(r, r.response_b, r.safe_b))
        pref.append(0.5 if r.better is None else 1.0 - r.better)
        safer.append(np.nan if r.safer is None else 1.0 - r.safer)
        grp.append(groups.setdefault(r.prompt_id, len(groups)))
    return Items(
        np.array(pid, dtype=object),
        prompts,
        resps,
        np.array(a, np.int64),
        np.array(b, np.int64),
        np.array(pref, np.float32),
        np.array(safer, np.float32),
        np.array(safe, np.float32),
        np.array(grp, np.int64),
    )


def featurize(encoder, items: Items, fc: FeatureConfig, progress: bool = True) -> np.ndarray:
    """x_NxD float32 features of the items (through the on-disk feature cache)."""
    p_text = [prompt_text(p, fc.prompt_chars) for p in items.prompt]
    texts = list(dict.fromkeys(items.response + (p_text if fc.mode == "concat" else [])))
    e_UxH = encode_texts(encoder, texts, fc, progress)
    row = {t: i for i, t in enumerate(texts)}
    e_resp_NxH = e_UxH[[row[t] for t in items.response]]
    if fc.mode == "response":
        return e_resp_NxH
    if fc.mode == "concat":
        return np.concatenate([e_UxH[[row[t] for t in p_text]], e_resp_NxH], axis=1)
    raise ValueError(f"unknown feature mode {fc.mode!r} (concat, response)")


def encode_texts(encoder, texts: Sequence[str], fc: FeatureConfig, progress: bool = True) -> np.ndarray:
    if not texts:
        return np.zeros((0, encoder.dim), np.float32)
    return cached_encode(encoder, list(texts), fc.cache_dir, batch_size=fc.batch_size, progress=progress, bucket=True)


def item_embeddings(x_NxD: np.ndarray, mode: str) -> np.ndarray:
    """Unit vectors of whole items, prompt and response together: what the IBN's k-NN compares.

    With `concat` features [e(prompt), e(response)] the cosine of two items is the mean of their
    prompts' and responses' cosines, so one response under two prompts stays two nodes with a
    positive IB variance between them (with response-only features it would get variance 0 and
    merge). `response` features carry no prompt: the items are compared by response alone.
    """
    x_NxD = np.asarray(x_NxD, np.float64)
    if mode == "response":
        return x_NxD
    return x_NxD / np.maximum(np.linalg.norm(x_NxD, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------- training


def pref_data(
    x_NxD: np.ndarray, it: Items, mask_P: np.ndarray | None = None, with_safety: bool = True
) -> tuple[PrefData, np.ndarray]:
    """The trainer's `PrefData` for the pairs selected by `mask_P`, and the item index of each
    of its rows.

    Safety, when every selected pair has a safer label: the pairs train the cost's ranking
    term, and the items' safe labels (when all known) its sign term (Safe RLHF, §3.2). The
    trainer samples sign-term items from all its rows, so with safe labels the rows are
    reindexed to the selected pairs' items (held-out items never leak); without them all N
    rows are kept, so that data sets of equal size share one compiled training program."""
    m_P = np.ones(len(it.a_P), bool) if mask_P is None else np.asarray(mask_P, bool)
    a_P, b_P, P = it.a_P[m_P], it.b_P[m_P], int(m_P.sum())
    safer_P = it.safer_P[m_P]
    safety = with_safety and P > 0 and bool(np.isfinite(safer_P).all())
    x_NxD = np.asarray(x_NxD, np.float32)
    used_M, inv = np.unique(np.r_[a_P, b_P], return_inverse=True)
    if safety and np.isfinite(it.safe_N[used_M]).all():
        data = PrefData(
            x=x_NxD[used_M], a_P=inv[:P], b_P=inv[P:], pref_P=it.pref_P[m_P], safer_P=safer_P, safe_N=it.safe_N[used_M]
        )
        return data, used_M
    data = PrefData(x=x_NxD, a_P=a_P, b_P=b_P, pref_P=it.pref_P[m_P], safer_P=safer_P if safety else None)
    return data, np.arange(len(x_NxD))


def feature_model(hidden: Sequence[int], feature_dim: int) -> ModelConfig:
    """The MLP head on frozen features (the synthetic world's `MLPScorer`)."""
    return ModelConfig(family="mlp", input="features", feature_dim=feature_dim, hidden=tuple(hidden))


def train_heads(
    x_NxD: np.ndarray,
    it: Items,
    train_P: np.ndarray,
    mc: ModelConfig,
    tc: TrainConfig,
    key: jax.Array,
    cost: bool = True,
    progress: bool = False,
) -> dict[str, Ensemble]:
    """A reward ensemble on the pairs `train_P` (and a cost ensemble when `cost` and every
    training pair has a safer label). Scores are of items: `ens.score(x_NxD)`."""
    data, _ = pref_data(x_NxD, it, train_P, with_safety=cost)
    out = {
        "reward": train_ensemble(
            mc, dataclasses.replace(tc, objective="reward"), data, jax.random.fold_in(key, 0), progress=progress
        )[0]
    }
    if cost and data.has_safety:
        out["cost"] = train_ensemble(
            mc, dataclasses.replace(tc, objective="cost"), data, jax.random.fold_in(key, 1), progress=progress
        )[0]
    return out


# ---------------------------------------------------------------------------- evaluation


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with a percentile bootstrap interval (resampling whole groups)."""

    value: float
    lo: float
    hi: float
    n: int

    def row(self, prefix: str) -> dict[str, float]:
        return {prefix: self.value, f"{prefix}_lo": self.lo, f"{prefix}_hi": self.hi, f"{prefix}_n": self.n}


def bootstrap_mean(
    v_P: np.ndarray, group_P: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> Estimate:
    """Mean of the finite entries of v_P with a cluster-bootstrap interval: resample the G
    groups with replacement, the statistic being Σ(sums of drawn groups) / Σ(their sizes)."""
    v_P = np.asarray(v_P, np.float64)
    ok_P = np.isfinite(v_P)
    if not ok_P.any():
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    _, g_P = np.unique(np.asarray(group_P)[ok_P], return_inverse=True)
    G = int(g_P.max()) + 1
    sum_G = np.bincount(g_P, weights=v_P[ok_P], minlength=G)
    cnt_G = np.bincount(g_P, minlength=G).astype(float)
    w_RxG = rng.multinomial(G, np.full(G, 1.0 / G), size=n_boot).astype(float)
    m_R = (w_RxG @ sum_G) / np.maximum(w_RxG @ cnt_G, 1.0)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(m_R, [q, 1.0 - q])
    return Estimate(float(sum_G.sum() / cnt_G.sum()), float(lo), float(hi), int(ok_P.sum()))


def reward_eval(
    s_KxN: np.ndarray, it: Items, test_P: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> dict[str, float]:
    """Accuracy of the ensemble mean (with interval), mean member accuracy, and the mean
    across-member variance of r(a) − r(b) on the pairs `test_P`."""
    m_P = np.asarray(test_P, bool)
    a_P, b_P, pref_P = it.a_P[m_P], it.b_P[m_P], it.pref_P[m_P]
    r_N = s_KxN.mean(axis=0)
    acc = bootstrap_mean(metrics.pair_hits(r_N[a_P] - r_N[b_P], pref_P), it.group_P[m_P], rng, n_boot, level)
    member = [metrics.pairwise_accuracy(s_N, a_P, b_P, pref_P) for s_N in s_KxN]
    var, _ = metrics.ensemble_diff_variance(s_KxN, a_P, b_P) if len(a_P) else (np.nan, None)
    return {**acc.row("accuracy"), "member_accuracy": float(np.mean(member)), "ensemble_variance": var}


def cost_eval(
    c_KxN: np.ndarray, it: Items, test_P: np.ndarray, rng: np.random.Generator, n_boot: int = 1000, level: float = 0.95
) -> dict[str, float]:
    """Sign accuracy (safe ⇔ c ≤ 0) on the items of the test pairs with a safe label, and
    the accuracy of ranking the safer response as less costly."""
    m_P = np.asarray(test_P, bool)
    c_N = c_KxN.mean(axis=0)
    items = np.unique(np.r_[it.a_P[m_P], it.b_P[m_P]])
    items = items[np.isfinite(it.safe_N[items])]
    g_N = np.zeros(it.n, np.int64)
    g_N[it.a_P], g_N[it.b_P] = it.group_P, it.group_P
    hit = ((c_N[items] <= 0) == (it.safe_N[items] > 0.5)).astype(float)
    sign = bootstrap_mean(hit, g_N[items], rng, n_boot, level)
    safer_P = it.safer_P[m_P]
    a_P, b_P = it.a_P[m_P], it.b_P[m_P]
    # The safer side should have the lower cost: a "preference" for −c.
    rank = bootstrap_mean(
        metrics.pair_hits(c_N[b_P] - c_N[a_P], np.nan_to_num(safer_P, nan=0.5)), it.group_P[m_P], rng, n_boot, level
    )
    return {**sign.row("cost_sign_accuracy"), **rank.row("cost_safer_accuracy")}


def baseline_eval(
    train: Sequence[PreferenceRecord],
    test: Sequence[PreferenceRecord],
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
    bow_dim: int = 2**16,
    bow_l2: float = 1e-3,
) -> dict[str, float]:
    """Prefer-longer and bag-of-words logistic (fitted on `train`) accuracy on `test`."""
    from rm_theory.real.baselines import fit_bow_logistic, response_length

    pref_P = np.array([0.5 if r.better is None else 1.0 - r.better for r in test])
    group_P = np.array([r.prompt_id for r in test], dtype=object)
    la = np.array([response_length(r.response_a) for r in test], float)
    lb = np.array([response_length(r.response_b) for r in test], float)
    out = bootstrap_mean(metrics.pair_hits(la - lb, pref_P), group_P, rng, n_boot, level).row("longer_accuracy")
    if train:
        bow = fit_bow_logistic(train, dim=bow_dim, l2=bow_l2)
        d_P = bow.score([r.response_a for r in test]) - bow.score([r.response_b for r in test])
        out |= bootstrap_mean(metrics.pair_hits(d_P, pref_P), group_P, rng, n_boot, level).row("bow_accuracy")
    return out


def test_mask(records: Sequence[PreferenceRecord], test_frac: float, seed: int) -> np.ndarray:
    """[P] True for records whose prompt `split_by_prompt` puts on the test side."""
    from rm_theory.real.loaders import split_by_prompt

    _, test = split_by_prompt(records, test_frac, seed)
    ids = {r.prompt_id for r in test}
    return np.array([r.prompt_id in ids for r in records], bool)
