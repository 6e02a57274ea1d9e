"""The IBN of a trained reward model, and whether it predicts what the model gets wrong (THEORY.md §2,
"Inference distance" and "Semantic response space"; the paper's §4, and its closing question of how
to find a real model's IBN experimentally).

Three IBNs over the items of a data set, each with one HP edge per training comparison (variance ξ²)
and IB edges from one representation of the items (`ibn.real.ib_network`):

* "frozen": the frozen sentence encoder's item embeddings (cosine k-NN): the real-data study's IBN;
* "hidden": the trained model's own pooled hidden states, the vector its score head reads (cosine k-NN);
* "gradient": the score head's gradient features g(x) = ∂r(x)/∂θ_head (the last-layer NTK view).
  Under the linearised model's Gaussian prior θ_head ~ N(0, I), Var(r(x) − r(x')) = ‖g(x) − g(x')‖²,
  so the IB edges are the squared-Euclidean k-NN with variance c·‖g_u − g_v‖².

Scales, fitted on training items only (`fit_ib_scale`; held-out items never enter a fit): ξ² = 4, the
inverse of one Bradley–Terry label's Fisher information about r_a − r_b at even odds (1/σ'(0)); the IB
scale c makes an IB edge between two training items carry, in the median, the squared difference of
the trained ensemble's mean rewards across it, c = median (r̄_u − r̄_v)² / δ_uv^γ, in the same logit
units as ξ².

Predictors of a held-out pair's uncertainty and error (`predictors`): each IBN's inference distance
(effective resistance), the last-layer Laplace variance ("fisher": dᵀ(λI + Σ_p σ'(Δ_p) d_p d_pᵀ)⁻¹d
with d = g_a − g_b over the training pairs p, the quantity that Fisher-information active learning
works with), and the ensemble's own variance of r_a − r_b ("ensemble", the baseline). Scores
(`predictor_scores`): per-pair Spearman of each predictor against the ensemble's variance, AUROC of
each for a wrong prediction of the ensemble mean, and accuracy by the predictor's quantile. A
variance alone says how unsure the posterior is of r_a − r_b, not which side it favours: a pair of
very different responses is far apart in every IBN and also easy. So each is also scored as the
Gaussian posterior's probability of a wrong sign, Φ(−|Δ̂|/√v) with Δ̂ the ensemble's mean
difference ("auroc_pwrong"; the fitted scales put v and Δ̂ in the same logit units), beside the
model's confidence |Δ̂| alone ("margin").

Legend: N items, H hidden width, D feature width (gradient features), F features: the head's
parameters, flattened (the gradient before its projection), B block of rows, P comparisons (training
pairs), Q query pairs (held out), E edges, K ensemble members.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy import stats
from sklearn.metrics import roc_auc_score

from rm_theory.ibn.graph import IB, Network, add_hp_edges
from rm_theory.ibn.real import IBNConfig, heldout_distance, ib_edges
from rm_theory.lm.score import ScoreModel
from rm_theory.real.features import Items, prompt_text

VARIANTS = ("frozen", "hidden", "gradient")
PREDICTORS = (*(f"ibn_{v}" for v in VARIANTS), "fisher", "ensemble", "margin")
XI2_BT = 4.0  # 1 / σ'(0): the variance of one Bradley–Terry label about r_a − r_b at even odds


@dataclasses.dataclass(frozen=True)
class ModelIBNConfig:
    k: int = 10  # nearest neighbours per item
    gamma: float = 1.0  # IB variance c·δ^γ
    xi2: float = XI2_BT  # HP edge variance
    mst: bool = True  # add the spanning tree (every held-out pair reachable)
    grad_dim: int = 512  # gradient features wider than this are projected to this width (Johnson–Lindenstrauss)
    fisher_prior: float = 1.0  # λ of the Laplace predictor (prior precision of the head's parameters)
    quantiles: int = 5  # accuracy by predictor quantile


# ---------------------------------------------------------------------------- representations


def head_gradients(model: ScoreModel, h_NxH: np.ndarray, dim: int = 512, seed: int = 0, block: int = 256) -> np.ndarray:
    """g_NxD: ∂r/∂θ_head of each item, from its pooled vector h (the head is the only function of h
    and θ_head between them), flattened over the head's parameters. A head wider than `dim` (BERT's
    dense + tanh + linear pooler) is projected by a seeded Gaussian map of `dim` columns scaled by
    1/√dim, which keeps squared distances in expectation (Johnson–Lindenstrauss)."""
    graphdef, params, rest = nnx.split(model.net.head, nnx.Param, ...)

    def score(p, h_H):
        return nnx.merge(graphdef, p, rest)(h_H[None])[0, 0]

    grad_fn = jax.jit(jax.vmap(jax.grad(score), in_axes=(None, 0)))
    width = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
    proj_FxD = None
    if width > dim:
        rng = np.random.default_rng(seed)
        proj_FxD = (rng.standard_normal((width, dim)) / np.sqrt(dim)).astype(np.float32)
    out = []
    h_NxH = np.asarray(h_NxH, np.float32)
    for lo in range(0, len(h_NxH), block):
        g = grad_fn(params, jnp.asarray(h_NxH[lo : lo + block]))
        g_BxF = np.concatenate([np.asarray(x).reshape(len(x), -1) for x in jax.tree.leaves(g)], axis=1)
        out.append(g_BxF if proj_FxD is None else g_BxF @ proj_FxD)
    return np.concatenate(out) if out else np.zeros((0, min(width, dim)), np.float32)


def item_vectors(
    model: ScoreModel, items: Items, prompt_chars: int = 400, batch_size: int = 32
) -> tuple[np.ndarray, int]:
    """(h_NxH, cut): the model's pooled vector of each item's (prompt, response) text pair (the
    prompt's last `prompt_chars` characters, as the features'), and how many inputs were longer than
    the model's positions and lost the end of their response."""
    prompts = [prompt_text(p, prompt_chars) for p in items.prompt]
    ids, types, _ = model.tokenizer.encode_pairs(prompts, items.response)
    L = model.max_len
    cut = sum(len(x) > L for x in ids)
    return model.pooled_ids([x[:L] for x in ids], [t[:L] for t in types], batch_size=batch_size), int(cut)


def unit_rows(x_NxD: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero): what a cosine k-NN compares."""
    x_NxD = np.asarray(x_NxD, np.float32)
    return x_NxD / np.maximum(np.linalg.norm(x_NxD, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------- the IBNs


def fit_ib_scale(
    delta_E: np.ndarray, u_E: np.ndarray, v_E: np.ndarray, r_N: np.ndarray, fit_N: np.ndarray, gamma: float
) -> tuple[float, int]:
    """(c, edges used): the median of (r_u − r_v)² / δ^γ over the IB edges whose two ends are both in
    `fit_N` (training items) and whose distance is positive. Raises when no such edge exists."""
    fit_N = np.asarray(fit_N, bool)
    use = fit_N[u_E] & fit_N[v_E] & (delta_E > 0)
    if not use.any():
        raise ValueError("no IB edge joins two training items: the IB scale cannot be fitted on training items")
    ratio = np.square(r_N[u_E[use]] - r_N[v_E[use]]) / delta_E[use] ** gamma
    return float(max(np.median(ratio), 1e-12)), int(use.sum())


def model_ibn(
    e_NxD: np.ndarray,
    metric: str,
    a_P: np.ndarray,
    b_P: np.ndarray,
    r_N: np.ndarray,
    fit_N: np.ndarray,
    cfg: ModelIBNConfig,
) -> tuple[Network, dict[str, float]]:
    """The IBN of one representation: IB edges of `e_NxD` (cosine or squared Euclidean) with the
    scale fitted on the items `fit_N` against the rewards `r_N`, plus the HP edges (a_P, b_P)."""
    icfg = IBNConfig(k=cfg.k, c=1.0, gamma=cfg.gamma, xi2=cfg.xi2, mst=cfg.mst, metric=metric)
    u, v, delta = ib_edges(e_NxD, icfg)
    c, used = fit_ib_scale(delta, u, v, r_N, fit_N, cfg.gamma)
    net = Network(len(e_NxD), u, v, c * delta**cfg.gamma, np.full(len(u), IB, np.int8))
    return add_hp_edges(net, a_P, b_P, cfg.xi2), {"ib_scale": c, "ib_scale_edges": used, "ib_edges": len(u)}


# ---------------------------------------------------------------------------- predictors


def laplace_variance(
    g_NxD: np.ndarray, a_P: np.ndarray, b_P: np.ndarray, r_N: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray, prior: float
) -> np.ndarray:
    """[Q] dᵀ Σ d, d = g_a − g_b, Σ = (λI + Σ_p σ'(Δ_p) d_p d_pᵀ)⁻¹ over the training pairs p, Δ_p the
    trained reward difference: the last-layer Laplace posterior variance of r_a − r_b under
    Bradley–Terry labels (a Gaussian prior of precision λ on the head)."""
    g = np.asarray(g_NxD, np.float64)
    d_PxD = g[a_P] - g[b_P]
    s = 1.0 / (1.0 + np.exp(-(r_N[a_P] - r_N[b_P])))
    F_DxD = prior * np.eye(g.shape[1]) + (d_PxD * (s * (1 - s))[:, None]).T @ d_PxD
    d_QxD = g[a_Q] - g[b_Q]
    return np.einsum("qd,dq->q", d_QxD, np.linalg.solve(F_DxD, d_QxD.T))


def ensemble_variance(s_KxN: np.ndarray, a_Q: np.ndarray, b_Q: np.ndarray) -> np.ndarray:
    """[Q] the members' variance of r_a − r_b (ddof 0; zero for one member)."""
    return np.var(s_KxN[:, a_Q] - s_KxN[:, b_Q], axis=0)


def predictors(
    reps: dict[str, tuple[np.ndarray, str]],
    g_NxD: np.ndarray,
    s_KxN: np.ndarray,
    a_P: np.ndarray,
    b_P: np.ndarray,
    a_Q: np.ndarray,
    b_Q: np.ndarray,
    cfg: ModelIBNConfig,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Each predictor's value on the held-out pairs (a_Q, b_Q), and the fitted scales.

    reps: variant -> (representation, metric) for the IBNs; the IB scale of each is fitted on the
    items of the training pairs (a_P, b_P) only."""
    r_N = s_KxN.mean(0)
    fit_N = np.zeros(len(r_N), bool)
    fit_N[a_P], fit_N[b_P] = True, True
    out, info = {}, {}
    for name, (e_NxD, metric) in reps.items():
        net, i = model_ibn(e_NxD, metric, a_P, b_P, r_N, fit_N, cfg)
        d_Q, di = heldout_distance(net, a_Q, b_Q)
        out[f"ibn_{name}"] = d_Q
        info |= {f"{k}_{name}": v for k, v in (i | di).items()}
    out["fisher"] = laplace_variance(g_NxD, a_P, b_P, r_N, a_Q, b_Q, cfg.fisher_prior)
    out["ensemble"] = ensemble_variance(s_KxN, a_Q, b_Q)
    return out, info


def quantile_accuracy(v_Q: np.ndarray, hit_Q: np.ndarray, q: int) -> np.ndarray:
    """[q] accuracy of the pairs in each quantile of v (lowest first; ranks break ties by order, so
    every bin holds ⌊Q/q⌋ or ⌈Q/q⌉ pairs)."""
    ok = np.isfinite(v_Q) & np.isfinite(hit_Q)
    v, h = v_Q[ok], hit_Q[ok]
    if len(v) < q:
        return np.full(q, np.nan)
    bin_Q = (stats.rankdata(v, method="ordinal") - 1) * q // len(v)
    return np.array([h[bin_Q == j].mean() for j in range(q)])


def auroc(v_Q: np.ndarray, wrong_Q: np.ndarray) -> float:
    """P(v of a wrong pair > v of a right one), ties half (NaN when either class is empty)."""
    ok = np.isfinite(v_Q) & np.isfinite(wrong_Q)
    y = wrong_Q[ok] > 0.5
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, v_Q[ok]))


def spearman(x_Q: np.ndarray, y_Q: np.ndarray) -> float:
    ok = np.isfinite(x_Q) & np.isfinite(y_Q)
    if ok.sum() < 3 or np.ptp(x_Q[ok]) == 0 or np.ptp(y_Q[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(x_Q[ok], y_Q[ok])[0])


def p_wrong(margin_Q: np.ndarray, var_Q: np.ndarray) -> np.ndarray:
    """Φ(−|Δ̂| / √v): the Gaussian posterior's probability that the sign of the predicted reward
    difference Δ̂ is wrong, when its variance is v (an inference distance, or the ensemble's)."""
    return stats.norm.cdf(-np.abs(margin_Q) / np.sqrt(np.maximum(var_Q, 1e-300)))


def predictor_scores(pred: dict[str, np.ndarray], hit_Q: np.ndarray, margin_Q: np.ndarray, q: int) -> list[dict]:
    """One row per predictor: Spearman against the ensemble's variance; AUROC for an error of the
    variance alone (`auroc`) and of the posterior's probability of a wrong sign, which weighs it
    against the predicted margin (`auroc_pwrong`, `p_wrong`); and the accuracy of each quantile of the
    variance (`acc_q1` lowest ... `acc_q<q>` highest). A last row, "margin", scores the model's own
    confidence −|Δ̂| alone. hit_Q: 1 right, 0 wrong, NaN a labelled tie (left out)."""
    wrong_Q = 1.0 - hit_Q
    rows = []
    for name, v_Q in pred.items():
        row = {"predictor": name, "auroc": auroc(v_Q, wrong_Q), "auroc_pwrong": auroc(p_wrong(margin_Q, v_Q), wrong_Q)}
        row["spearman"] = spearman(v_Q, pred["ensemble"]) if name != "ensemble" else float("nan")
        row["mean"] = float(np.nanmean(v_Q))
        row |= {f"acc_q{j + 1}": a for j, a in enumerate(quantile_accuracy(v_Q, hit_Q, q))}
        rows.append(row)
    conf_Q = -np.abs(margin_Q)
    row = {"predictor": "margin", "auroc": auroc(conf_Q, wrong_Q), "auroc_pwrong": float("nan")}
    row |= {"spearman": spearman(conf_Q, pred["ensemble"]), "mean": float(np.nanmean(np.abs(margin_Q)))}
    row |= {f"acc_q{j + 1}": a for j, a in enumerate(quantile_accuracy(conf_Q, hit_Q, q))}
    return rows + [row]
