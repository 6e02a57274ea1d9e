"""Chain-like vs tree-like comparison data on real response groups (paper §4–5 on real data).

GSM8K model solutions (several solutions per question, correct over incorrect) and the
PKU-SafeRLHF subset (several responses per prompt, safer over less safe) give a pool of valid
comparisons per prompt. Under a fixed budget of n comparisons from the training prompts:

* chain: disjoint pairs: every response in at most one comparison, spread over as many prompts
  as possible (one pair per prompt per round);
* tree: many comparisons within each prompt: whole prompts' pools, prompt after prompt.

Each choice trains a reward ensemble on frozen features; on the held-out prompts' pairs we
compare its accuracy, the ensemble's variance of r(a) − r(b), and the IBN's prediction, the
mean effective resistance of the held-out pairs in the IBN of the chosen comparisons plus the
encoder's IB edges (`real_ibn`), with their per-pair rank correlation.

Legend: N items, P pairs (the pool), Q query pairs (held out), H hidden width of the encoder, D feature
width, K ensemble members, G clusters (prompts).
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import stats

from rm_theory.ibn.graph import Network, add_hp_edges
from rm_theory.ibn.real import IBNConfig, heldout_distance
from rm_theory.real.evaluation import reward_eval
from rm_theory.real.features import Items
from rm_theory.real.heads import train_heads
from rm_theory.rm.models import ModelConfig

STRATEGIES = ("chain", "tree")


def _pools(it: Items, pool_P: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Pair indices of each prompt in the pool (shuffled), prompts in a random order."""
    idx = np.flatnonzero(pool_P)
    groups = [idx[it.group_P[idx] == g] for g in np.unique(it.group_P[idx])]
    return [rng.permutation(groups[i]) for i in rng.permutation(len(groups))]


def choose_pairs(it: Items, pool_P: np.ndarray, budget: int, strategy: str, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most `budget` pairs of the pool chosen by `strategy` (chain | tree)."""
    pools = _pools(it, np.asarray(pool_P, bool), rng)
    chosen: list[int] = []
    if strategy == "tree":
        for g in pools:
            chosen.extend(g[: budget - len(chosen)].tolist())
            if len(chosen) >= budget:
                break
    elif strategy == "chain":
        used: set[int] = set()
        added = True
        while added and len(chosen) < budget:
            added = False  # one more round: at most one new disjoint pair per prompt
            for g in pools:
                for p in g:
                    a, b = int(it.a_P[p]), int(it.b_P[p])
                    if a not in used and b not in used:
                        chosen.append(int(p))
                        used.update((a, b))
                        added = True
                        break
                if len(chosen) >= budget:
                    break
    else:
        raise ValueError(f"unknown strategy {strategy!r} (chain, tree)")
    return np.array(sorted(chosen), np.int64)


def choice_stats(it: Items, chosen: np.ndarray) -> dict[str, float]:
    """Comparisons, prompts and distinct responses a choice touches."""
    items = np.unique(np.r_[it.a_P[chosen], it.b_P[chosen]])
    return {
        "comparisons": int(len(chosen)),
        "prompts_used": int(len(np.unique(it.group_P[chosen]))),
        "responses_used": int(len(items)),
        "comparisons_per_response": float(2 * len(chosen) / max(len(items), 1)),
    }


def run_topology(
    x_NxD: np.ndarray,
    e_NxH: np.ndarray,
    it: Items,
    test_P: np.ndarray,
    ib_net: Network,
    budgets: list[int],
    seeds: int,
    mc: ModelConfig,
    tc,
    ibn_cfg: IBNConfig,
    key: jax.Array,
    rng: np.random.Generator,
    n_boot: int = 1000,
    seed: int = 0,
    log_fn=None,
) -> list[dict]:
    """One row per (budget, seed, strategy): choice stats, held-out accuracy with interval,
    ensemble variance, IBN distance of the held-out pairs and its correlation with variance."""
    test_P = np.asarray(test_P, bool)
    pool_P = ~test_P
    a_Q, b_Q = it.a_P[test_P], it.b_P[test_P]
    rows = []
    for n in budgets:
        for s in range(seeds):
            # Both strategies draw from the same prompt order of this seed: only the choice rule
            # differs.
            for strat in STRATEGIES:
                chosen = choose_pairs(it, pool_P, n, strat, np.random.default_rng([seed, n, s]))
                m_P = np.zeros(len(it.a_P), bool)
                m_P[chosen] = True
                k = jax.random.fold_in(jax.random.fold_in(key, n), s)
                ens = train_heads(x_NxD, it, m_P, mc, tc, k, cost=False)["reward"]
                s_KxN = ens.score(x_NxD)
                ev = reward_eval(s_KxN, it, test_P, rng, n_boot)
                net = add_hp_edges(ib_net, it.a_P[chosen], it.b_P[chosen], ibn_cfg.xi2)
                d_Q, dist = heldout_distance(net, a_Q, b_Q, "resistance")
                var_Q = np.var(s_KxN[:, a_Q] - s_KxN[:, b_Q], axis=0, ddof=1)
                ok = np.isfinite(d_Q)
                rho = stats.spearmanr(var_Q[ok], d_Q[ok]).statistic if ok.sum() >= 3 else float("nan")
                row = {
                    "budget": n,
                    "seed": s,
                    "strategy": strat,
                    **choice_stats(it, chosen),
                    **ev,
                    **dist,
                    "var_distance_spearman": float(rho),
                }
                rows.append(row)
                if log_fn is not None:
                    log_fn(row)
    return rows


def summarize(rows: list[dict]) -> dict[str, float]:
    """Per strategy means over budgets and seeds, and the share of (budget, seed) cells where
    tree beats chain in accuracy and where the IBN predicts it (lower distance)."""
    out: dict[str, float] = {}
    for strat in STRATEGIES:
        rs = [r for r in rows if r["strategy"] == strat]
        for k in ("accuracy", "ensemble_variance", "distance_resistance"):
            out[f"{strat}_{k}"] = float(np.mean([r[k] for r in rs])) if rs else float("nan")
    cells = {(r["budget"], r["seed"]) for r in rows}
    pick = {(r["budget"], r["seed"], r["strategy"]): r for r in rows}
    acc_win, ibn_win, agree = [], [], []
    for c in cells:
        t, ch = pick.get((*c, "tree")), pick.get((*c, "chain"))
        if t is None or ch is None:
            continue
        acc_win.append(t["accuracy"] > ch["accuracy"])
        ibn_win.append(t["distance_resistance"] < ch["distance_resistance"])
        agree.append(acc_win[-1] == ibn_win[-1])
    out["tree_wins_accuracy_frac"] = float(np.mean(acc_win)) if acc_win else float("nan")
    out["tree_wins_ibn_frac"] = float(np.mean(ibn_win)) if ibn_win else float("nan")
    out["ibn_agrees_frac"] = float(np.mean(agree)) if agree else float("nan")
    return out
