"""Which real pairs to label: pool-based active preference learning on a trained model's
representation (THEORY.md §2, "Generalisation measure"; `ibn.design` for the A-optimal recipe).

A pool of unlabelled pairs (the training prompts' pairs); a pair's human label is revealed when it is
chosen. Every recipe starts from the same random seed set, then adds `batch` pairs per round up to
the budget; after each round the learner is refitted and scored on held-out prompts' pairs that no
recipe ever sees (their items are not even nodes of the design's network).

The learner (`fit_heads`): K linear Bradley–Terry heads r = w·h on the items' features h (the
fine-tuned model's pooled hidden states: the last-layer view of BAL-PM and of Fisher-information
active reward modelling, both of which fix the representation and refit the head). A head is a
logistic regression of the label on h_a − h_b without intercept (sklearn, L2 penalty ½‖w‖²/C);
member 0 is fitted on every labelled pair, members 1… on Poisson(1) bootstrap weights, so their
spread is epistemic. Ties count half a win each way.

Recipes (`RECIPES`), each choosing the round's `batch` pairs among the unlabelled pool:

* "random": uniformly;
* "ibn": the IBN's greedy A-optimal design (`ibn.design.design_comparisons`): minimise the mean
  inference distance of the unlabelled pool pairs (the targets) in the trained model's IBN over the
  pool items (`real.model_ibn.model_ibn`, variant `design_rep`), its IB scale re-fitted each round
  on the labelled items against the current heads' rewards, the labelled pairs as HP edges;
* "disagreement": the largest ensemble variance of r_a − r_b (BAL-PM's epistemic term, Melo et al.
  2024, arXiv 2402.10500, without its prompt-entropy term);
* "fisher": greedy D-optimal design of the head's Fisher information (as in active reward modelling
  by Fisher information, arXiv 2502.04354): maximise log det(I/C + Σ σ'(Δ_p) d_p d_pᵀ), d = h_a − h_b,
  Δ at the current head, by rank-one updates within the round;
* "same_prompt" (tree-like: whole prompts' pairs, prompt after prompt) and "one_per_prompt"
  (chain-like: disjoint pairs, one per prompt per pass), `real.topology.choose_pairs`.

Legend: N items, D feature width, P comparisons (the pool's pairs), Q query pairs (held out), K
ensemble members, R rounds.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

from rm_theory.ibn.design import DesignConfig, design_comparisons
from rm_theory.real.features import Items
from rm_theory.real.model_ibn import ModelIBNConfig, ensemble_variance, model_ibn
from rm_theory.real.topology import choose_pairs
from rm_theory.rm import metrics

RECIPES = ("random", "ibn", "disagreement", "fisher", "same_prompt", "one_per_prompt")


@dataclasses.dataclass(frozen=True)
class ActiveConfig:
    recipes: tuple[str, ...] = RECIPES
    init_pairs: int = 64  # the random seed set every recipe starts from
    batch: int = 64  # pairs labelled per round
    budget: int = 512  # labelled pairs at the end
    members: int = 8  # heads of the ensemble
    C: float = 1.0  # inverse L2 strength of each head (prior precision 1/C)
    targets: int = 512  # "ibn": at most this many unlabelled pool pairs as targets (sampled each round)
    targets_dim: int = 64  # "ibn": Gaussian projection of the targets (ibn.design)
    ibn: ModelIBNConfig = dataclasses.field(default_factory=ModelIBNConfig)

    def sizes(self) -> list[int]:
        """Labelled pairs after each round: init_pairs, +batch, …, budget."""
        return sorted({*range(self.init_pairs, self.budget, self.batch), self.budget})


# ---------------------------------------------------------------------------- the learner


def fit_heads(
    h_NxD: np.ndarray, it: Items, lab_P: np.ndarray, members: int, C: float, rng: np.random.Generator
) -> np.ndarray:
    """w_KxD: K Bradley–Terry linear heads on the labelled pairs `lab_P` (indices); member 0 on all of
    them, the others on Poisson(1) bootstrap weights."""
    d_PxD = h_NxD[it.a_P[lab_P]] - h_NxD[it.b_P[lab_P]]
    y_P = it.pref_P[lab_P]
    # a tie is half a win each way: the pair twice, each side winning, at weight ½
    X = np.r_[d_PxD, d_PxD]
    y = np.r_[np.ones(len(y_P)), np.zeros(len(y_P))]
    base = np.r_[y_P, 1.0 - y_P]
    out = []
    for k in range(members):
        boot = np.ones(len(y_P)) if k == 0 else rng.poisson(1.0, len(y_P)).astype(float)
        sw = base * np.r_[boot, boot]
        keep = sw > 0
        if len(np.unique(y[keep])) < 2:  # one class only (a tiny resample): the prior mean
            out.append(np.zeros(h_NxD.shape[1]))
            continue
        lr = LogisticRegression(C=C, fit_intercept=False, max_iter=1000, tol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a rare lbfgs iteration warning on separable resamples
            lr.fit(X[keep], y[keep], sample_weight=sw[keep])
        out.append(lr.coef_[0])
    return np.stack(out)


def heldout_accuracy(s_KxN: np.ndarray, it: Items, test_Q: np.ndarray) -> float:
    """Accuracy of the ensemble mean on the held-out pairs (ties left out)."""
    r_N = s_KxN.mean(0)
    return metrics.hit_rate(metrics.pair_hits(r_N[it.a_P[test_Q]] - r_N[it.b_P[test_Q]], it.pref_P[test_Q]))


# ---------------------------------------------------------------------------- recipes


def fisher_d_optimal(
    h_NxD: np.ndarray, it: Items, lab_P: np.ndarray, cand_P: np.ndarray, w_D: np.ndarray, C: float, m: int
) -> np.ndarray:
    """m candidates chosen greedily to maximise log det of the head's Fisher information."""

    def fisher_weights(d_PxD):
        s = 1.0 / (1.0 + np.exp(-(d_PxD @ w_D)))
        return s * (1.0 - s)

    d_lab = h_NxD[it.a_P[lab_P]] - h_NxD[it.b_P[lab_P]]
    F_DxD = np.eye(h_NxD.shape[1]) / C + (d_lab * fisher_weights(d_lab)[:, None]).T @ d_lab
    Finv = np.linalg.inv(F_DxD)
    d_PxD = h_NxD[it.a_P[cand_P]] - h_NxD[it.b_P[cand_P]]
    w_P = fisher_weights(d_PxD)
    Z_PxD = d_PxD @ Finv
    q_P = np.einsum("pd,pd->p", Z_PxD, d_PxD)  # dᵀ F⁻¹ d
    live = np.ones(len(cand_P), bool)
    chosen = []
    for _ in range(min(m, len(cand_P))):
        gain = np.where(live, np.log1p(w_P * q_P), -np.inf)
        j = int(np.argmax(gain))
        chosen.append(j)
        live[j] = False
        # Sherman–Morrison: F⁻¹ ← F⁻¹ − w u uᵀ / (1 + w q), u = F⁻¹ d_j
        u_D = Z_PxD[j].copy()
        a = w_P[j] / (1.0 + w_P[j] * q_P[j])
        c_P = d_PxD @ u_D
        Z_PxD -= a * c_P[:, None] * u_D[None, :]
        q_P -= a * c_P**2
    return cand_P[np.array(chosen, np.int64)]


def ibn_a_optimal(
    e_NxD: np.ndarray,
    metric: str,
    it: Items,
    pool_P: np.ndarray,
    lab_P: np.ndarray,
    cand_P: np.ndarray,
    r_N: np.ndarray,
    cfg: ActiveConfig,
    m: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """m candidates by the IBN's A-optimal design over the pool's items (re-fitted on this round's
    labels and rewards), targets the unlabelled pool pairs."""
    items = np.unique(np.r_[it.a_P[pool_P], it.b_P[pool_P]])
    local = np.full(it.n, -1, np.int64)
    local[items] = np.arange(len(items))
    fit = np.zeros(len(items), bool)
    fit[local[it.a_P[lab_P]]], fit[local[it.b_P[lab_P]]] = True, True
    net, _ = model_ibn(e_NxD[items], metric, local[it.a_P[lab_P]], local[it.b_P[lab_P]], r_N[items], fit, cfg.ibn)
    tgt = cand_P if len(cand_P) <= cfg.targets else rng.choice(cand_P, cfg.targets, replace=False)
    pairs = lambda p: np.stack([local[it.a_P[p]], local[it.b_P[p]]], 1)  # noqa: E731
    dc = DesignConfig(
        budget=m, batch=m, xi2=cfg.ibn.xi2, targets_dim=min(cfg.targets_dim, len(tgt)), seed=int(rng.integers(2**31))
    )
    design = design_comparisons(net, pairs(tgt), pairs(cand_P), dc)
    return cand_P[design.chosen_B]


# ---------------------------------------------------------------------------- the loop


def run_recipe(
    recipe: str,
    h_NxD: np.ndarray,
    design_rep: tuple[np.ndarray, str],
    it: Items,
    pool_P: np.ndarray,
    test_Q: np.ndarray,
    seed_P: np.ndarray,
    cfg: ActiveConfig,
    seed: int,
) -> list[dict]:
    """Rows (labelled pairs, held-out accuracy, prompts used) of one recipe's rounds. `pool_P`,
    `seed_P`: pair indices (the seed set inside the pool); `test_Q`: held-out pair indices."""
    rng = np.random.default_rng([seed, RECIPES.index(recipe)])
    order = None
    if recipe in ("same_prompt", "one_per_prompt"):
        mask = np.zeros(len(it.a_P), bool)
        mask[pool_P] = True
        mask[seed_P] = False
        strategy = "tree" if recipe == "same_prompt" else "chain"
        order = choose_pairs(it, mask, cfg.budget, strategy, np.random.default_rng([seed, 7]), ordered=True)
    lab = list(seed_P)
    rows = []
    for n in cfg.sizes():
        m = n - len(lab)
        free = np.setdiff1d(pool_P, lab)
        if m > 0 and len(free):
            lab_P = np.array(lab, np.int64)
            if recipe == "random":
                new = rng.choice(free, min(m, len(free)), replace=False)
            elif order is not None:
                new = order[~np.isin(order, lab)][:m]
            else:
                w_KxD = fit_heads(h_NxD, it, lab_P, cfg.members, cfg.C, np.random.default_rng([seed, n, 1]))
                s_KxN = w_KxD @ h_NxD.T
                if recipe == "disagreement":
                    v = ensemble_variance(s_KxN, it.a_P[free], it.b_P[free])
                    new = free[np.argsort(-v, kind="stable")[:m]]
                elif recipe == "fisher":
                    new = fisher_d_optimal(h_NxD, it, lab_P, free, w_KxD.mean(0), cfg.C, m)
                elif recipe == "ibn":
                    e, metric = design_rep
                    new = ibn_a_optimal(e, metric, it, pool_P, lab_P, free, s_KxN.mean(0), cfg, m, rng)
                else:
                    raise ValueError(f"recipe = {recipe!r}: one of {RECIPES}")
            lab += [int(p) for p in new]
        lab_P = np.array(lab, np.int64)
        w_KxD = fit_heads(h_NxD, it, lab_P, cfg.members, cfg.C, np.random.default_rng([seed, n, 2]))
        s_KxN = w_KxD @ h_NxD.T
        rows.append(
            {
                "recipe": recipe,
                "labelled": len(lab_P),
                "accuracy": heldout_accuracy(s_KxN, it, test_Q),
                "prompts_used": int(len(np.unique(it.group_P[lab_P]))),
                "responses_used": int(len(np.unique(np.r_[it.a_P[lab_P], it.b_P[lab_P]]))),
            }
        )
    return rows


def labels_to_reach(n_R: np.ndarray, acc_R: np.ndarray, target: float) -> float:
    """The labelled pairs at which the curve first reaches `target` (linear between rounds; the first
    size if it starts there; NaN if it never does)."""
    n_R, acc_R = np.asarray(n_R, float), np.asarray(acc_R, float)
    for i in range(len(n_R)):
        if acc_R[i] >= target:
            if i == 0:
                return float(n_R[0])
            f = (target - acc_R[i - 1]) / (acc_R[i] - acc_R[i - 1])
            return float(n_R[i - 1] + f * (n_R[i] - n_R[i - 1]))
    return float("nan")
