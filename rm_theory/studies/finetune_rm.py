"""Fine-tuned reward and cost models on real preference data: a pretrained transformer (all-MiniLM-L6-v2,
or any Hugging Face folder) fine-tuned end to end (`rm_theory.lm.finetune`), beside the real-data study's
frozen-feature heads and a bag-of-words logistic regression on the same splits. See
conf/experiment/finetune_*.yaml.

Per in-domain set (`in_domain`): the real-data study's selection, sides randomised and split by prompt
(`real.selection.load_selection`, `test_mask`: the same held-out prompts for the same `data_seed` and
`test_frac`); a validation split of `val_frac` of the training prompts, the only pairs a learning
curve or any tuning sees; training pairs capped by whole prompts (`train.max_train_pairs`). Each
item is the text pair (prompt, response) (the prompt's last `model.prompt_chars` characters, as the
features'); training pairs longer than `model.max_len` are dropped or truncated (`model.length_rule`,
`lm.fit_pairs`), held-out items longer than it are truncated, and all are counted. Sets in `cost`
with safety labels also get a Safe RLHF cost model (sign accuracy: safe ⇔ c ≤ 0). A set in
`transfer_from` lends its model (trained on its training split, or on all its pairs when it is not
in-domain) to every set of `transfer_to`, scored on all their pairs.

Intervals: percentile bootstrap over held-out prompts within the run (`real.evaluation.bootstrap_mean`,
`n_boot` resamples; pairs of one prompt are not independent), one training seed. Differences
between methods are paired (the same held-out pairs, the same resampled prompts' pairs).

Outputs: results.csv (one row per train set, test set and method: accuracy with its interval and
pair count, and the paired differences), curves.csv (training loss and validation accuracy against
pairs seen), figures/, summary.json (the real-data study's keys `test_accuracy_<set>`,
`test_accuracy_<set>_ci`, `test_pairs_<set>`, `test_prompts_<set>`, and `finetuned_minus_<baseline>_<set>[_ci]`,
`cost_sign_accuracy_<set>[_ci]`, length counts, times), models/<set>/ with `model.save`.

A unit of work is one in-domain or source set with its transfers: a finished unit's row in
metrics.jsonl is reused by a rerun into the same folder, and a model killed mid-training resumes
from its Orbax checkpoint to the same bits.

Legend: P pairs, N items, K ensemble members, D feature width, G groups of labels (a vector model's heads),
C harm categories, O output features (a vector model's G + C + 4).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from rm_theory.common.distributed import maybe_initialize
from rm_theory.common.rng import named_key, named_rng
from rm_theory.config.common import make_train
from rm_theory.config.finetune_rm import FinetuneRMSchema, make_finetune, model_folder
from rm_theory.figures import finetune_rm as plots
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.lm import Finetuned, Pairs, finetune, load_score_model, make_mesh, save_score_model
from rm_theory.lm.encoders import load_encoder
from rm_theory.real import tokens
from rm_theory.real.baselines import fit_bow_logistic, response_length
from rm_theory.real.evaluation import bootstrap_mean, category_eval, cost_eval, reward_eval
from rm_theory.real.features import FeatureConfig, Items, featurize, items_of
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.heads import feature_model, train_heads, train_vector_heads
from rm_theory.real.loaders import randomize_sides
from rm_theory.real.selection import DataSpec, cap_by_prompt, data_rng, load_selection, test_mask
from rm_theory.rm import metrics
from rm_theory.runs.log import RunLog
from rm_theory.world.records import HARM_CATEGORIES, PreferenceRecord

log = logging.getLogger(__name__)
BASELINES = ("frozen", "bow", "longer")


@dataclasses.dataclass
class Prepared:
    """One data set ready to train and score: the records in use (training, validation and held-out
    pairs; sides randomised), their items, masks over the records, and each item's tokens."""

    name: str
    records: list[PreferenceRecord]
    items: Items
    train_P: np.ndarray
    val_P: np.ndarray
    test_P: np.ndarray
    ids: list[list[int]]
    types: list[list[int]]
    plen_N: np.ndarray
    prepare_s: float

    def subset(self, mask_P: np.ndarray) -> list[PreferenceRecord]:
        return [r for r, m in zip(self.records, mask_P, strict=True) if m]


class Study:
    """What the units of a run share: the model folder, the tokenizer, the frozen encoder, the mesh,
    and each data set prepared once."""

    def __init__(self, cfg: FinetuneRMSchema, out_dir: Path):
        self.cfg, self.out = cfg, out_dir
        paths = {k: v.path for k, v in cfg.datasets.items()}
        fc = cfg.baselines.features
        self.encoder_dir, cache_dir = fc.encoder_dir or None, fc.cache_dir
        self.model_dir = model_folder(cfg.model.path)
        if cfg.fixture:
            fx = write_fixture(out_dir / "fixture", cfg.seed)
            paths = {k: fx.get(k, v) for k, v in paths.items()}
            self.encoder_dir, cache_dir = fx["encoder_dir"], str(out_dir / "feature_cache")
            self.model_dir = Path(cfg.model.path or fx["encoder_dir"])
        self.specs = {k: DataSpec(k, v.loader, paths[k], v.max_pairs) for k, v in cfg.datasets.items()}
        self.fc = FeatureConfig(fc.mode, fc.prompt_chars, fc.batch_size, cache_dir)
        # The model first: a folder that cannot be read fails before any data is loaded.
        t = time.perf_counter()
        base = self.load_model()
        self.load_s = time.perf_counter() - t
        self.tokenizer = base.tokenizer
        self.max_len = min(cfg.model.max_len, base.max_len)
        self.n_params = int(sum(x.size for x in jax.tree.leaves(nnx.state(base.net))))
        maybe_initialize(cfg.distributed)  # multi-host: before any other JAX work
        self.mesh = make_mesh(cfg.distributed.devices, cfg.distributed.fsdp)
        self.eval_batch = 32 if self.mesh is None else -(-32 // self.mesh.size) * self.mesh.size
        self._encoder = None
        self._prepared: dict[str, Prepared] = {}

    def load_model(self, **kw):
        m = self.cfg.model
        dtype = jnp.bfloat16 if m.precision == "bfloat16" else jnp.float32
        return load_score_model(
            self.model_dir, pooling=m.pooling or None, dtype=dtype, remat=m.remat, seed=self.cfg.seed, **kw
        )

    @property
    def encoder(self):
        if self._encoder is None:
            fc = self.cfg.baselines.features
            self._encoder = load_encoder(self.encoder_dir, fc.max_len)
        return self._encoder

    def key(self, *tags: str) -> jax.Array:
        return named_key(self.cfg.seed, *tags)

    def rng(self, *tags: str) -> np.random.Generator:
        return named_rng(self.cfg.seed, *tags)

    def get(self, name: str, role: str = "in_domain") -> Prepared:
        """The set's records and tokens. `role`: "in_domain" (held-out, validation and training
        prompts), "source" (every pair trains: a transfer source that is not in-domain) or "target"
        (every pair is scored: a transfer target)."""
        tag = f"{name}:{role}"
        if tag in self._prepared:
            return self._prepared[tag]
        cfg, spec = self.cfg, self.specs[name]
        t = time.perf_counter()
        records, report = load_selection(spec, cfg.data_seed)
        log.info("%s; selected %d pairs", report.summary(), len(records))
        records = randomize_sides(records, data_rng(name, cfg.data_seed + 1))
        n = len(records)
        test_P, val_P = np.zeros(n, bool), np.zeros(n, bool)
        if role == "in_domain":
            test_P = test_mask(records, cfg.test_frac, cfg.data_seed)
            if cfg.val_frac > 0:  # prompts of the training side only
                train = [r for r, m in zip(records, test_P, strict=True) if not m]
                val = {
                    r.prompt_id
                    for r, m in zip(train, test_mask(train, cfg.val_frac, cfg.data_seed + 2), strict=True)
                    if m
                }
                val_P = np.array([r.prompt_id in val for r in records], bool) & ~test_P
        if role == "target":
            test_P[:] = True
            train_P = np.zeros(n, bool)
        else:
            rest = [r for r, m in zip(records, ~test_P & ~val_P, strict=True) if m]
            keep = {id(r) for r in cap_by_prompt(rest, cfg.train.max_train_pairs, data_rng(name, cfg.data_seed + 3))}
            train_P = np.array([id(r) in keep for r in records], bool)
        used = train_P | val_P | test_P
        records = [r for r, m in zip(records, used, strict=True) if m]
        train_P, val_P, test_P = train_P[used], val_P[used], test_P[used]
        items = items_of(records)
        ids, types, plen_N = tokens.encode_items(self.tokenizer, items, cfg.model.prompt_chars)
        p = Prepared(name, records, items, train_P, val_P, test_P, ids, types, plen_N, time.perf_counter() - t)
        log.info(
            "%s (%s): %d pairs in use (%d train, %d validation, %d held out), %d items, tokenised in %.1fs",
            name,
            role,
            len(records),
            train_P.sum(),
            val_P.sum(),
            test_P.sum(),
            items.n,
            p.prepare_s,
        )
        self._prepared[tag] = p
        return p


# ---------------------------------------------------------------------------- tokens


def training_pairs(st: Study, p: Prepared, objective: str) -> tuple[Pairs, dict]:
    """The training pairs as token ids (fitted to `max_len` by the config's rule) and the counts."""
    rule = st.cfg.model.length_rule
    return tokens.training_pairs(p.ids, p.types, p.plen_N, p.items, p.train_P, objective, st.max_len, rule, p.name)


def item_tokens(st: Study, p: Prepared, item_N: np.ndarray) -> tuple[list, list, int, int]:
    """Tokens of the items to score, each cut to `max_len` (the end of a long response goes),
    the number cut and the number whose prompt part alone fills the window."""
    return tokens.windowed(p.ids, p.types, p.plen_N, item_N, st.max_len)


def score_items(
    st: Study, res: Finetuned, p: Prepared, mask_P: np.ndarray, col: int | None = 0
) -> tuple[np.ndarray, dict]:
    """s_KxN: every member's score (output `col`; None: every output, [K, N, O]) of the items of the
    pairs `mask_P` (NaN for the other items)."""
    item_N = np.unique(np.r_[p.items.a_P[mask_P], p.items.b_P[mask_P]])
    ids, types, cut, prompt_long = item_tokens(st, p, item_N)
    s_KxNxO = np.full((res.size, p.items.n, res.model.net.num_labels), np.nan, np.float32)
    if len(item_N):
        s_KxNxO[:, item_N] = res.logits_ids(ids, types, batch_size=st.eval_batch)
    s_KxN = s_KxNxO if col is None else s_KxNxO[..., col]
    long_P = np.isin(p.items.a_P, item_N[[len(p.ids[i]) > st.max_len for i in item_N]]) | np.isin(
        p.items.b_P, item_N[[len(p.ids[i]) > st.max_len for i in item_N]]
    )
    return s_KxN, {
        "items_truncated": cut,
        "pairs_truncated": int((long_P & mask_P).sum()),
        "prompt_too_long": prompt_long,
    }


def hits_of(r_N: np.ndarray, p: Prepared, mask_P: np.ndarray, objective: str = "reward") -> np.ndarray:
    """[P] 1 where the score r ranks the pair by its label (the preference; the safer side for
    "cost": pass minus a cost), NaN for a labelled tie (`metrics.pair_hits`)."""
    it = p.items
    y_P = it.pref_P if objective == "reward" else np.nan_to_num(it.safer_P, nan=0.5)
    return metrics.pair_hits(r_N[it.a_P[mask_P]] - r_N[it.b_P[mask_P]], y_P[mask_P])


# ---------------------------------------------------------------------------- one unit


def train_model(st: Study, p: Prepared, objective: str, runlog: RunLog) -> tuple[Finetuned, dict]:
    pairs, counts = training_pairs(st, p, objective)

    def eval_fn(res: Finetuned) -> dict:
        if not p.val_P.any():
            return {}
        s_KxN, _ = score_items(st, res, p, p.val_P)
        sign = -1.0 if objective == "cost" else 1.0  # the safer side should have the lower cost
        return {"val_accuracy": metrics.hit_rate(hits_of(sign * s_KxN.mean(0), p, p.val_P, objective))}

    tag = p.name if objective == "reward" else f"{p.name}_cost"
    return fit(st, st.load_model(), pairs, counts, objective, p.name, tag, eval_fn, runlog)


def fit(st: Study, model, pairs: Pairs, counts: dict, objective: str, name: str, tag: str, eval_fn, runlog: RunLog):
    """`model` fine-tuned on `pairs` (checkpointed under <run>/checkpoints/<tag>, saved under
    <run>/models/<tag>), and its training's counts and times."""
    cfg = st.cfg
    ckpt_dir = runlog.dir / "checkpoints" / tag if cfg.checkpoint else None

    def log_fn(step: int, row: dict) -> None:
        runlog.metric({"kind": "train", "set": name, "objective": objective, **row})

    t = time.perf_counter()
    res, history = finetune(
        model,
        pairs,
        make_finetune(cfg.train, objective),
        st.key("finetune", name, objective),
        mesh=st.mesh,
        checkpoint_dir=ckpt_dir,
        log_fn=log_fn,
        eval_fn=eval_fn,
        progress=True,
    )
    info = {f"length_{k}": v for k, v in counts.items()} | {
        "train_s": time.perf_counter() - t,
        "steps": history[-1]["step"] if history else 0,
        "final_loss": history[-1]["loss"] if history else float("nan"),
        "final_val_accuracy": history[-1].get("val_accuracy", float("nan")) if history else float("nan"),
    }
    if cfg.model.save:
        save_score_model(res.model, runlog.dir / "models" / tag, overwrite=True)
    if ckpt_dir is not None:  # the unit's results are what a rerun keeps
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        if not any(ckpt_dir.parent.iterdir()):
            ckpt_dir.parent.rmdir()
    return res, info


def frozen_heads(st: Study, p: Prepared, cost: bool) -> tuple[dict, np.ndarray]:
    """The real-data study's heads on frozen encoder features, trained on `p.train_P`; their item features."""
    x_NxD = featurize(st.encoder, p.items, st.fc, progress=False)
    heads = train_heads(
        x_NxD,
        p.items,
        p.train_P,
        feature_model(st.cfg.baselines.model.hidden, x_NxD.shape[1]),
        make_train(st.cfg.baselines.train),
        st.key("frozen", p.name),
        cost=cost,
    )
    return heads, x_NxD


def estimate_row(prefix: str, v_P: np.ndarray, group_P: np.ndarray, rng, cfg) -> dict:
    return bootstrap_mean(v_P, group_P, rng, cfg.n_boot, cfg.level).row(prefix)


def evaluate(st: Study, src: Prepared, dst: Prepared, mask_P: np.ndarray, res: Finetuned, frozen, bow):
    """One row per method of the pairs `mask_P` of `dst` (the model trained on `src`), each with the
    paired difference fine-tuned − method on the same pairs and resampled prompts; and each method's
    hits per pair (for the vector unit's paired differences)."""
    cfg, it = st.cfg, dst.items
    rng = st.rng("evaluate", src.name, dst.name)
    t = time.perf_counter()
    s_KxN, trunc = score_items(st, res, dst, mask_P)
    eval_s = time.perf_counter() - t
    ev = reward_eval(s_KxN, it, mask_P, rng, cfg.n_boot, cfg.level)
    group_P = it.group_P[mask_P]
    hits = {"finetuned": hits_of(s_KxN.mean(0), dst, mask_P)}
    if frozen is not None:
        heads, x_NxD = frozen
        xs = x_NxD if dst is src else featurize(st.encoder, it, st.fc, progress=False)
        hits["frozen"] = hits_of(heads["reward"].score(xs).mean(0), dst, mask_P)
    records = dst.subset(mask_P)
    if bow is not None:
        d_P = bow.score([r.response_a for r in records]) - bow.score([r.response_b for r in records])
        hits["bow"] = metrics.pair_hits(d_P, it.pref_P[mask_P])
    la = np.array([response_length(r.response_a) for r in records], float)
    lb = np.array([response_length(r.response_b) for r in records], float)
    hits["longer"] = metrics.pair_hits(la - lb, it.pref_P[mask_P])
    base = {
        "train_set": src.name,
        "test_set": dst.name,
        "train_pairs": int(src.train_P.sum()),
        "test_pairs": int(mask_P.sum()),
        "test_prompts": int(len(np.unique(group_P))),
        "test_pairs_truncated": trunc["pairs_truncated"],
        "test_prompt_too_long": trunc["prompt_too_long"],
        "eval_s": eval_s,
    }
    rows = [base | {"method": "finetuned", **ev}]
    for m in [m for m in BASELINES if m in hits]:
        row = base | {"method": m, **estimate_row("accuracy", hits[m], group_P, rng, cfg)}
        # paired: the same pairs, and the bootstrap resamples the same prompts' pairs
        row |= estimate_row("finetuned_minus", hits["finetuned"] - hits[m], group_P, rng, cfg)
        rows.append(row)
    return rows, hits


def run_unit(st: Study, name: str, runlog: RunLog) -> dict:
    """In-domain training and evaluation of `name` (if in-domain), its cost model (if in `cost`),
    and its transfers (if in `transfer_from`); returns the unit's rows and summary values."""
    cfg = st.cfg
    in_domain = name in cfg.in_domain
    src = st.get(name, "in_domain" if in_domain else "source")
    t0 = time.perf_counter()
    res, info = train_model(st, src, "reward", runlog)
    safety = bool(np.isfinite(src.items.safer_P[src.train_P]).all()) and src.train_P.any()
    t = time.perf_counter()
    frozen = frozen_heads(st, src, cost=name in cfg.cost and safety) if cfg.baselines.frozen else None
    info["frozen_s"] = time.perf_counter() - t
    bow, t = None, time.perf_counter()
    if cfg.baselines.bow:
        bow = fit_bow_logistic(src.subset(src.train_P), dim=cfg.baselines.bow_dim, l2=cfg.baselines.bow_l2)
    info["bow_s"] = time.perf_counter() - t
    rows, summ = [], {}
    hits = {}
    if in_domain:
        new, hits = evaluate(st, src, src, src.test_P, res, frozen, bow)
        rows += new
    for dst_name in cfg.transfer_to if name in cfg.transfer_from else []:
        dst = st.get(dst_name, "target")
        rows += evaluate(st, src, dst, dst.test_P, res, frozen, bow)[0]
    if name in cfg.cost and safety:
        cost, cinfo = train_model(st, src, "cost", runlog)
        rng = st.rng("cost", name)
        c_KxN, _ = score_items(st, cost, src, src.test_P)
        c = cost_eval(c_KxN, src.items, src.test_P, rng, cfg.n_boot, cfg.level)
        hits["cost"] = hits_of(-c_KxN.mean(0), src, src.test_P, "cost")  # the safer side's cost lower
        summ |= {f"cost_{k}_{name}": v for k, v in cinfo.items() if k in ("train_s", "steps")}
        summ[f"cost_sign_accuracy_{name}"] = c["cost_sign_accuracy"]
        summ[f"cost_sign_accuracy_{name}_ci"] = [c["cost_sign_accuracy_lo"], c["cost_sign_accuracy_hi"]]
        summ[f"cost_sign_items_{name}"] = c["cost_sign_accuracy_n"]
        summ[f"cost_safer_accuracy_{name}"] = c["cost_safer_accuracy"]
        if frozen is not None and "cost" in frozen[0]:
            f = cost_eval(frozen[0]["cost"].score(frozen[1]), src.items, src.test_P, rng, cfg.n_boot, cfg.level)
            summ[f"cost_sign_accuracy_frozen_{name}"] = f["cost_sign_accuracy"]
            summ[f"cost_sign_accuracy_frozen_{name}_ci"] = [f["cost_sign_accuracy_lo"], f["cost_sign_accuracy_hi"]]
    for r in rows:
        key = r["test_set"] if r["train_set"] == r["test_set"] else f"{r['train_set']}_to_{r['test_set']}"
        if r["method"] == "finetuned":
            summ[f"test_accuracy_{key}"] = r["accuracy"]
            summ[f"test_accuracy_{key}_ci"] = [r["accuracy_lo"], r["accuracy_hi"]]
            summ[f"test_pairs_{key}"] = r["test_pairs"]
            summ[f"test_prompts_{key}"] = r["test_prompts"]
            summ[f"test_pairs_truncated_{key}"] = r["test_pairs_truncated"]
        else:
            summ[f"test_accuracy_{r['method']}_{key}"] = r["accuracy"]
            summ[f"finetuned_minus_{r['method']}_{key}"] = r["finetuned_minus"]
            summ[f"finetuned_minus_{r['method']}_{key}_ci"] = [r["finetuned_minus_lo"], r["finetuned_minus_hi"]]
    summ |= {f"{k}_{name}": v for k, v in info.items()}
    summ[f"unit_s_{name}"] = time.perf_counter() - t0
    hits = {m: np.asarray(h, float).tolist() for m, h in hits.items() if m in ("finetuned", "frozen", "cost")}
    return {"kind": "unit", "unit": name, "rows": rows, "summary": summ, "hits": hits}


# ---------------------------------------------------------------------------- the vector unit


def head_labels(head: str, it: Items) -> np.ndarray:
    """[P] a head's label of each pair of its set: the preference ("<set>") or the safer side
    ("<set>:safer"; NaN where unlabelled)."""
    return it.safer_P if head.endswith(":safer") else it.pref_P


def vector_pairs(st: Study, preps: dict[str, Prepared]) -> tuple[Pairs, dict]:
    """The training pairs of every set of `vector.heads`, each labelled on its own set's heads only
    (NaN on the others: a mixture of data sets), with the harm head's set's safety (and, with
    `vector.categories`, its harm categories and severity; the other sets' are unknown)."""
    vc = st.cfg.vector
    rule = st.cfg.model.length_rule
    parts, counts = [], {}
    for name, p in preps.items():
        pairs, c = tokens.training_pairs(p.ids, p.types, p.plen_N, p.items, p.train_P, "vector", st.max_len, rule, name)
        y_PxG = np.full((len(pairs), len(vc.heads)), np.nan, np.float32)
        for g, h in enumerate(vc.heads):
            if h.split(":")[0] == name:
                y_PxG[:, g] = pairs.y_P[:, 1 if h.endswith(":safer") else 0]
        parts.append((pairs, y_PxG, vc.harm_head.split(":")[0] == name))
        counts = {k: counts.get(k, 0) + v for k, v in c.items()}
    join = lambda attr: [x for q, _, _ in parts for x in getattr(q, attr)]

    def side(attr: str, fill) -> np.ndarray:  # the harm head's set's labels; the other sets' unknown
        v = [np.asarray(getattr(q, attr), np.float32) for q, _, _ in parts]
        return np.concatenate([x if harm else np.full_like(x, fill) for x, (_, _, harm) in zip(v, parts, strict=True)])

    labelled_G = sum(np.isfinite(y).sum(0) for _, y, _ in parts)
    if (labelled_G == 0).any():  # a head with no label would train on nothing and report NaN
        g = int(np.argmin(labelled_G))
        raise ValueError(f"vector.heads[{g}] = {vc.heads[g]!r}: no training pair of its set has that label")
    C = len(HARM_CATEGORIES) if vc.categories else 0
    pairs = Pairs(
        join("ids_a"),
        join("ids_b"),
        np.concatenate([y for _, y, _ in parts]),
        join("types_a"),
        join("types_b"),
        side("safe_a_P", np.nan),
        side("safe_b_P", np.nan),
        category_a_PxC=side("category_a_PxC", np.nan)[:, :C],
        category_b_PxC=side("category_b_PxC", np.nan)[:, :C],
        severity_a_P=side("severity_a_P", -1) if C else None,
        severity_b_P=side("severity_b_P", -1) if C else None,
    )
    return pairs, counts


def run_vector(st: Study, runlog: RunLog, separate: dict) -> dict:
    """One vector reward model (a head per entry of `vector.heads`, one shared fine-tuned trunk) on
    the union of its sets' training pairs, the same epochs as each set's own model; per head, its
    held-out accuracy on its set's pairs and the paired difference against that head's own model
    (`separate`: the set's reward model for "<set>", its cost model for "<set>:safer"; hits per
    held-out pair), and the same for the frozen-feature vector heads."""
    cfg, vc = st.cfg, st.cfg.vector
    preps = {n: st.get(n, "in_domain") for n in vc.sets()}
    head_sets = [h.split(":")[0] for h in vc.heads]
    pairs, counts = vector_pairs(st, preps)
    cats = HARM_CATEGORIES if vc.categories else ()
    model = st.load_model(kind="vector", heads=vc.heads, harm_head=vc.harm_head or None, harm_categories=cats)

    def hits(s_N: np.ndarray, h: str, p: Prepared, mask_P: np.ndarray) -> np.ndarray:
        # a head scores the preferred (or the safer) side higher
        return hits_of(s_N, p, mask_P, "cost" if h.endswith(":safer") else "reward")

    def outputs(res: Finetuned, split: str) -> dict[str, np.ndarray]:
        """Each set's [N, O] ensemble-mean outputs of the items of its `split` pairs: one pass per set."""
        return {n: score_items(st, res, p, getattr(p, split), None)[0].mean(0) for n, p in preps.items()}

    def eval_fn(res: Finetuned) -> dict:
        out = outputs(res, "val_P")
        accs = [
            metrics.hit_rate(hits(out[n][:, g], h, preps[n], preps[n].val_P))
            for g, (h, n) in enumerate(zip(vc.heads, head_sets, strict=True))
            if preps[n].val_P.any()
        ]
        return {"val_accuracy": float(np.nanmean(accs))} if accs else {}

    res, info = fit(st, model, pairs, counts, "vector", "vector", "vector", eval_fn, runlog)
    frozen = None
    if cfg.baselines.frozen:  # rm.multidim's vector model on the frozen encoder's features, the same heads
        xs = [featurize(st.encoder, p.items, st.fc, progress=False) for p in preps.values()]
        y = {n: np.full((len(p.items.a_P), len(vc.heads)), np.nan, np.float32) for n, p in preps.items()}
        for g, (h, n) in enumerate(zip(vc.heads, head_sets, strict=True)):
            y[n][:, g] = head_labels(h, preps[n].items)
        mc = feature_model(cfg.baselines.model.hidden, xs[0].shape[1])
        its, train = [p.items for p in preps.values()], [p.train_P for p in preps.values()]
        s = train_vector_heads(
            xs, its, train, list(y.values()), mc, make_train(cfg.baselines.train), st.key("vector_frozen")
        )
        s_NxG = dict(zip(preps, s, strict=True))
        frozen = {h: s_NxG[n][:, g] for g, (h, n) in enumerate(zip(vc.heads, head_sets, strict=True))}
    rows, summ = [], {f"vector_{k}": v for k, v in info.items()}
    out = outputs(res, "test_P")
    for g, (h, name) in enumerate(zip(vc.heads, head_sets, strict=True)):
        p, key, safer = preps[name], h.replace(":", "_"), h.endswith(":safer")
        rng = st.rng("vector", h)
        group_P = p.items.group_P[p.test_P]
        theirs = separate.get(name, {})
        own = {
            "vector": theirs.get("cost" if safer else "finetuned"),
            "vector_frozen": None if safer else theirs.get("frozen"),
        }
        methods = {"vector": hits(out[name][:, g], h, p, p.test_P)}
        if frozen is not None:
            methods["vector_frozen"] = hits(frozen[h], h, p, p.test_P)
        for m, h_P in methods.items():
            row = {"train_set": key, "test_set": key, "method": m, "test_pairs": int(p.test_P.sum())}
            row |= estimate_row("accuracy", h_P, group_P, rng, cfg)
            if not row["accuracy_n"]:
                raise ValueError(f"vector.heads[{g}] = {h!r}: no held-out pair of its set has that label")
            summ[f"{m}_accuracy_{key}"] = row["accuracy"]
            summ[f"{m}_accuracy_{key}_ci"] = [row["accuracy_lo"], row["accuracy_hi"]]
            if own[m] is not None:  # paired: the same pairs, the same resampled prompts
                row |= estimate_row("minus_separate", h_P - np.asarray(own[m], float), group_P, rng, cfg)
                summ[f"{m}_minus_separate_{key}"] = row["minus_separate"]
                summ[f"{m}_minus_separate_{key}_ci"] = [row["minus_separate_lo"], row["minus_separate_hi"]]
            rows.append(row)
        if h == vc.harm_head:  # the harm head's negation is the cost: safe ⇔ −s ≤ 0
            c = cost_eval(-out[name][None, :, g], p.items, p.test_P, rng, cfg.n_boot, cfg.level)
            summ[f"vector_cost_sign_accuracy_{key}"] = c["cost_sign_accuracy"]
            summ[f"vector_cost_sign_accuracy_{key}_ci"] = [c["cost_sign_accuracy_lo"], c["cost_sign_accuracy_hi"]]
            summ[f"vector_cost_sign_items_{key}"] = c["cost_sign_accuracy_n"]
    if vc.categories:  # on the held-out responses that have the labels
        p, G, C = preps[vc.harm_head.split(":")[0]], len(vc.heads), len(HARM_CATEGORIES)
        item_N = np.unique(np.r_[p.items.a_P[p.test_P], p.items.b_P[p.test_P]])
        item_N = item_N[p.items.severity_N[item_N] >= 0]
        summ["vector_category_items"] = int(len(item_N))
        if len(item_N):  # the held-out items' outputs, scored above
            o = out[vc.harm_head.split(":")[0]][item_N]
            c = category_eval(
                o[:, G : G + C], o[:, G + C :], p.items, item_N, st.rng("categories"), cfg.n_boot, cfg.level
            )
            for k in ("category", "severity"):
                summ[f"vector_{k}_accuracy"] = c[f"{k}_accuracy"]
                summ[f"vector_{k}_accuracy_ci"] = [c[f"{k}_accuracy_lo"], c[f"{k}_accuracy_hi"]]
    return {"kind": "unit", "unit": "vector", "rows": rows, "summary": summ, "hits": {}}


def from_json(x):
    """A metrics row as written: non-finite floats come back from their JSON strings."""
    if isinstance(x, dict):
        return {k: from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json(v) for v in x]
    return float(x) if x in ("nan", "inf", "-inf") else x


def run(cfg: FinetuneRMSchema, runlog: RunLog) -> dict:
    t0 = time.perf_counter()
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every save at INFO
    st = Study(cfg, runlog.dir)
    done = {r["unit"]: from_json(r) for r in runlog.rows() if r.get("kind") == "unit"}
    units = list(dict.fromkeys([*cfg.in_domain, *cfg.transfer_from]))
    if cfg.vector.heads:
        units.append("vector")  # after the sets' own models: its differences are paired with theirs
    rows, summ, hits = [], {}, {}
    for name in units:
        if name in done:
            log.info("unit %s: done in an earlier run of this folder, reused", name)
            out = done[name]
        else:
            out = run_vector(st, runlog, hits) if name == "vector" else run_unit(st, name, runlog)
            runlog.metric(out)
        rows += out["rows"]
        summ |= out["summary"]
        hits[name] = out.get("hits", {})
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    train_rows = [r for r in runlog.rows() if r.get("kind") == "train"]
    curves = plots.curves_table(train_rows)
    curves.to_csv(runlog.dir / "curves.csv", index=False)
    if cfg.figures and len(df):
        save_figures(plots.figures(RunTables(df, {"curves": curves}, cfg)), runlog.dir / "figures")
    if not len(df) or not np.isfinite(df.loc[df["method"] == "finetuned", "accuracy"]).any():
        raise ValueError("no held-out pair was scored: every accuracy is NaN (check the data sets and test_frac)")
    return {
        **summ,
        "model": str(st.model_dir),
        "model_parameters": st.n_params,
        "max_len": st.max_len,
        "length_rule": cfg.model.length_rule,
        "interval": f"{cfg.level:.0%} percentile bootstrap over held-out prompts ({cfg.n_boot} resamples), one seed",
        "model_load_s": st.load_s,
        "total_s": time.perf_counter() - t0,
    }
