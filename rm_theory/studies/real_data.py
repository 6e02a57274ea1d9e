"""The real-data study: reward and cost heads on frozen encoder features, the IBN of
each real data set with its measured F(M) regime, and chain-like vs tree-like comparisons on real
response groups. See conf/experiment/real_*.yaml.

Parts (`cfg.parts`):
* accuracy: in-domain held-out accuracy (split by prompt) with cluster-bootstrap intervals, the
  cost head's sign accuracy where safety labels exist, cross-data-set transfer, and the
  prefer-longer and bag-of-words baselines;
* ibn: topology, mean inference distance of held-out pairs, F(M) and its regime per data set;
* topology: `real_topology` on GSM8K and PKU.

Outputs: results.csv (tidy, a `part` column), figures/, summary.json (`test_accuracy_<name>`,
`test_accuracy` dict, `cost_sign_accuracy[_<name>]`, `fm_regime_<name>`, ...).

`real.fixtures.write_fixture` writes a tiny data set in every source format plus a tiny random-weight encoder:
the smoke run (`fixture=true`) and the tests use it, so neither needs the real data or wheel.

Legend: N items, P pairs, Q query pairs (held out), D feature width, K ensemble members.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from rm_theory.common.rng import named_key, named_rng
from rm_theory.config.common import make_train
from rm_theory.config.real_data import RealDataSchema
from rm_theory.figures import real_data as plots_real
from rm_theory.figures.common import RunTables, save_figures
from rm_theory.ibn import real as real_ibn
from rm_theory.lm.encoders import load_encoder
from rm_theory.real import topology as real_topology
from rm_theory.real.baselines import baseline_eval
from rm_theory.real.evaluation import cost_eval, reward_eval
from rm_theory.real.features import FeatureConfig, Items, featurize, item_embeddings, items_of
from rm_theory.real.fixtures import write_fixture
from rm_theory.real.heads import feature_model, train_heads
from rm_theory.real.loaders import randomize_sides
from rm_theory.real.selection import DataSpec, data_rng, load_selection, test_mask
from rm_theory.rm.train import Ensemble
from rm_theory.runs.log import RunLog
from rm_theory.world.records import PreferenceRecord

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Prepared:
    """A data set ready for training: records (sides randomised), items, features, split."""

    name: str
    records: list[PreferenceRecord]
    items: Items
    x_NxD: np.ndarray
    test_P: np.ndarray
    load_s: float
    s_KxN: np.ndarray | None = None  # the in-domain reward ensemble's scores, once trained
    reward: Ensemble | None = None  # that ensemble (trained on the train split)

    def embeddings(self, mode: str) -> np.ndarray:
        """Item embeddings for the IBN: prompt and response together (`item_embeddings`)."""
        return item_embeddings(self.x_NxD, mode)


class Study:
    """Lazy per-data-set preparation shared by the parts of one run."""

    def __init__(self, cfg: RealDataSchema, out_dir: Path):
        self.cfg = cfg
        paths = {k: v.path for k, v in cfg.datasets.items()}
        fc = cfg.features
        cache_dir, encoder_dir = fc.cache_dir, fc.encoder_dir or None
        if cfg.fixture:
            fx = write_fixture(out_dir / "fixture", cfg.seed)
            paths = {k: fx.get(k, v) for k, v in paths.items()}
            encoder_dir, cache_dir = fx["encoder_dir"], str(out_dir / "feature_cache")
        self.specs = {k: DataSpec(k, v.loader, paths[k], v.max_pairs) for k, v in cfg.datasets.items()}
        self.fc = FeatureConfig(fc.mode, fc.prompt_chars, fc.batch_size, cache_dir)
        t = time.perf_counter()
        self.encoder = load_encoder(encoder_dir, fc.max_len if not cfg.fixture else 32)
        self.encoder_load_s = time.perf_counter() - t
        self._prepared: dict[str, Prepared] = {}
        self.tc = make_train(cfg.train)

    def model(self, d: int):
        return feature_model(self.cfg.model.hidden, d)

    def get(self, name: str) -> Prepared:
        if name not in self._prepared:
            spec = self.specs[name]
            # set and present: `RealDataSchema.cross_checks` and `inputs` were checked before the run
            t = time.perf_counter()
            records, report = load_selection(spec, self.cfg.data_seed)
            log.info("%s; selected %d pairs", report.summary(), len(records))
            records = randomize_sides(records, data_rng(name, self.cfg.data_seed + 1))
            it = items_of(records)
            x = featurize(self.encoder, it, self.fc)
            self._prepared[name] = Prepared(
                name,
                records,
                it,
                x,
                test_mask(records, self.cfg.test_frac, self.cfg.data_seed),
                time.perf_counter() - t,
            )
            log.info(
                "%s: %d pairs, %d items, features %s in %.1fs",
                name,
                len(records),
                it.n,
                x.shape,
                self._prepared[name].load_s,
            )
        return self._prepared[name]

    def key(self, *tags: str) -> jax.Array:
        return named_key(self.cfg.seed, *tags)

    def rng(self, *tags: str) -> np.random.Generator:
        return named_rng(self.cfg.seed, *tags)


# ---------------------------------------------------------------------------- parts


def accuracy_part(st: Study, runlog: RunLog) -> tuple[list[dict], dict]:
    cfg, rows, summ = st.cfg, [], {}
    nb, lv = cfg.n_boot, cfg.level
    for name in cfg.accuracy.in_domain:
        p = st.get(name)
        t = time.perf_counter()
        heads = train_heads(
            p.x_NxD, p.items, ~p.test_P, st.model(p.x_NxD.shape[1]), st.tc, st.key("accuracy", name), cost=True
        )
        train_s = time.perf_counter() - t
        rng = st.rng("accuracy", name)
        p.reward = heads["reward"]
        p.s_KxN = p.reward.score(p.x_NxD)
        ev = reward_eval(p.s_KxN, p.items, p.test_P, rng, nb, lv)
        base = {
            "part": "accuracy",
            "train_set": name,
            "test_set": name,
            "train_pairs": int((~p.test_P).sum()),
            "test_pairs": int(p.test_P.sum()),
            "train_s": train_s,
            "featurize_s": p.load_s,
        }
        row = {**base, "method": "encoder", **ev}
        if "cost" in heads:
            c = cost_eval(heads["cost"].score(p.x_NxD), p.items, p.test_P, rng, nb, lv)
            row |= c
            summ[f"cost_sign_accuracy_{name}"] = c["cost_sign_accuracy"]
            summ[f"cost_sign_accuracy_{name}_ci"] = [c["cost_sign_accuracy_lo"], c["cost_sign_accuracy_hi"]]
            summ.setdefault("cost_sign_accuracy", c["cost_sign_accuracy"])
        rows.append(row)
        train = [r for r, m in zip(p.records, p.test_P, strict=True) if not m]
        test = [r for r, m in zip(p.records, p.test_P, strict=True) if m]
        rows += _baseline_rows(base, baseline_eval(train, test, rng, nb, lv, cfg.accuracy.bow_dim, cfg.accuracy.bow_l2))
        summ[f"test_accuracy_{name}"] = ev["accuracy"]
        summ[f"test_accuracy_{name}_ci"] = [ev["accuracy_lo"], ev["accuracy_hi"]]
        summ[f"test_pairs_{name}"] = base["test_pairs"]
        summ[f"test_prompts_{name}"] = int(len(np.unique(p.items.group_P[p.test_P])))
        runlog.metric({k: v for k, v in row.items()})
    for src in cfg.accuracy.transfer_from:
        ps = st.get(src)
        # A source trained in-domain is reused (its train split); otherwise all its pairs.
        train_P = ~ps.test_P if ps.reward is not None else np.ones(len(ps.items.a_P), bool)
        reward = (
            ps.reward
            or train_heads(
                ps.x_NxD, ps.items, train_P, st.model(ps.x_NxD.shape[1]), st.tc, st.key("transfer", src), cost=False
            )["reward"]
        )
        src_train = [r for r, m in zip(ps.records, train_P, strict=True) if m]
        for dst in cfg.accuracy.transfer_to:
            pd_ = st.get(dst)
            rng = st.rng("transfer", src, dst)
            s_KxN = reward.score(pd_.x_NxD)
            ev = reward_eval(s_KxN, pd_.items, np.ones(len(pd_.items.a_P), bool), rng, cfg.n_boot, cfg.level)
            base = {
                "part": "accuracy",
                "train_set": src,
                "test_set": dst,
                "train_pairs": len(src_train),
                "test_pairs": len(pd_.records),
            }
            enc_row = {**base, "method": "encoder", **ev}
            rows.append(enc_row)
            runlog.metric(enc_row)
            rows += _baseline_rows(
                base, baseline_eval(src_train, pd_.records, rng, nb, lv, cfg.accuracy.bow_dim, cfg.accuracy.bow_l2)
            )
            summ[f"test_accuracy_{src}_to_{dst}"] = ev["accuracy"]
            summ[f"test_accuracy_{src}_to_{dst}_ci"] = [ev["accuracy_lo"], ev["accuracy_hi"]]
            summ[f"test_pairs_{src}_to_{dst}"] = base["test_pairs"]
    summ["test_accuracy"] = {
        r["test_set"] if r["train_set"] == r["test_set"] else f"{r['train_set']}_to_{r['test_set']}": r["accuracy"]
        for r in rows
        if r["method"] == "encoder"
    }
    return rows, summ


def _baseline_rows(base: dict, b: dict) -> list[dict]:
    out = []
    for m in ("longer", "bow"):
        if f"{m}_accuracy" in b:
            out.append(
                {
                    **base,
                    "method": m,
                    "accuracy": b[f"{m}_accuracy"],
                    "accuracy_lo": b[f"{m}_accuracy_lo"],
                    "accuracy_hi": b[f"{m}_accuracy_hi"],
                    "accuracy_n": b[f"{m}_accuracy_n"],
                }
            )
    return out


def _ibn_cfg(cfg: RealDataSchema) -> real_ibn.IBNConfig:
    i = cfg.ibn
    return real_ibn.IBNConfig(k=i.k, c=i.c, gamma=i.gamma, xi2=i.xi2, mst=i.mst)


def ibn_part(st: Study, runlog: RunLog) -> tuple[list[dict], dict]:
    cfg, rows, summ = st.cfg, [], {}
    icfg = _ibn_cfg(cfg)
    for name in cfg.ibn.datasets:
        p = st.get(name)
        it = p.items
        e = p.embeddings(cfg.features.mode)
        t = time.perf_counter()
        train = ~p.test_P
        net = real_ibn.real_ibn(e, it.a_P[train], it.b_P[train], icfg)
        row = {"part": "ibn", "dataset": name, **real_ibn.topology(net, it.prompt_id)}
        a_Q, b_Q = it.a_P[p.test_P], it.b_P[p.test_P]
        for method in cfg.ibn.methods:
            d_Q, dist = real_ibn.heldout_distance(net, a_Q, b_Q, method)
            row |= dist
            if p.s_KxN is not None and method == "resistance" and len(a_Q) >= 3:
                from scipy import stats

                var_Q = np.var(p.s_KxN[:, a_Q] - p.s_KxN[:, b_Q], axis=0, ddof=1)
                ok = np.isfinite(d_Q)
                row["var_distance_spearman"] = float(stats.spearmanr(var_Q[ok], d_Q[ok]).statistic)
        # F(M) two ways: the configured network distance, and the unbiased edge-variance estimate
        for method in dict.fromkeys([cfg.ibn.f_method, "edge_variance"]):
            sr = real_ibn.measure_structural(
                e, cfg.ibn.M_values, icfg, st.rng("structural", name), method, cfg.ibn.f_pairs
            )
            best = sr.fits.get(sr.leading, {})
            suffix = "" if method == cfg.ibn.f_method else f"_{method}"
            row |= {
                f"regime{suffix}": sr.regime,
                f"fit_regime{suffix}": sr.leading,
                **{f"r2_{k}{suffix}": v["r2"] for k, v in sr.fits.items()},
                **{f"alpha_{k}{suffix}": v["alpha"] for k, v in sr.fits.items()},
            }
            for M, F, sem in zip(sr.M_K, sr.F_K, sr.sem_K, strict=True):
                rows.append(
                    {
                        "part": "structural" if not suffix else "structural" + suffix,
                        "dataset": name,
                        "method": method,
                        "M": int(M),
                        "F": F,
                        "F_sem": sem,
                        "regime": sr.regime,
                        "fit_regime": sr.leading,
                        "fit_I": best.get("I", np.nan),
                        "fit_alpha": best.get("alpha", np.nan),
                    }
                )
            summ[f"fm_regime{suffix}_{name}"] = sr.regime
        row["ibn_s"] = time.perf_counter() - t
        rows.append(row)
        runlog.metric(row)
        summ[f"ibn_distance_{name}"] = row.get("distance_resistance", np.nan)
        summ[f"ibn_components_{name}"] = row["components"]
    return rows, summ


def topology_part(st: Study, runlog: RunLog) -> tuple[list[dict], dict]:
    cfg, rows, summ = st.cfg, [], {}
    icfg = _ibn_cfg(cfg)
    for name in cfg.topology.datasets:
        p = st.get(name)
        e = p.embeddings(cfg.features.mode)
        ib = real_ibn.ib_network(e, icfg)
        out = real_topology.run_topology(
            p.x_NxD,
            e,
            p.items,
            p.test_P,
            ib,
            list(cfg.topology.budgets),
            cfg.topology.seeds,
            st.model(p.x_NxD.shape[1]),
            st.tc,
            icfg,
            st.key("topology", name),
            st.rng("topology", name),
            cfg.n_boot,
            seed=cfg.seed,
            log_fn=lambda r, name=name: runlog.metric({"part": "topology", "dataset": name, **r}),
        )
        rows += [{"part": "topology", "dataset": name, **r} for r in out]
        summ |= {f"topology_{name}_{k}": v for k, v in real_topology.summarize(out).items()}
    return rows, summ


PARTS = {"accuracy": accuracy_part, "ibn": ibn_part, "topology": topology_part}


def run(cfg: RealDataSchema, runlog: RunLog) -> dict:
    st = Study(cfg, runlog.dir)
    rows, summ, times = [], {}, {"encoder_load_s": st.encoder_load_s}
    for part in cfg.parts:
        t = time.perf_counter()
        r, s = PARTS[part](st, runlog)
        rows += r
        summ |= s
        times[f"{part}_s"] = time.perf_counter() - t
        log.info("part %s done in %.1fs", part, times[f"{part}_s"])
    times |= {f"featurize_{k}_s": v.load_s for k, v in st._prepared.items()}
    df = pd.DataFrame(rows)
    df.to_csv(runlog.dir / "results.csv", index=False)
    if cfg.figures and len(df):
        save_figures(plots_real.figures(RunTables(df, config=cfg)), runlog.dir / "figures")
    return {
        **summ,
        **times,
        "datasets": {k: {"pairs": len(v.records), "items": v.items.n} for k, v in st._prepared.items()},
    }
