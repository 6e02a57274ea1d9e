"""The induced Bayesian network of a real data set (THEORY.md §2, "Inference distance" and
"Semantic response space"; paper §4).

Nodes are items (a response to a prompt). Two kinds of edges:

* HP edges: one per training comparison, variance ξ² (the label variance of a human preference);
* IB edges: each item to its k nearest neighbours under the encoder's cosine similarity, variance
  c·(1 − cos)^γ, increasing in the cosine distance (the encoder's inductive bias: close
  embeddings, close rewards). Optionally the edges of a minimum spanning tree of the cosine
  distance are added, so that the IB graph is connected and every distance is finite.

Reported: the topology (components, degrees, responses per prompt), the mean inference
distance of held-out pairs, and the structural function F(M) measured by k-means clustering of
the embeddings (`structural.structural_function_by_clustering`) with its fitted regime
(polynomial, logarithmic, sub-logarithmic or indeterminate): the paper assumed a regime per task;
this measures it. Two estimates of F: resistance on the k-NN network (nearly flat by construction,
see `measure_structural`) and the within-cluster IB edge variance of the encoder distance.

Legend: N items, H hidden width (of the sentence encoder: the embeddings), B block of rows, E edges, P
comparisons, K runs (one per value of M), X prompts.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg

from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import HP, IB, Network, add_hp_edges
from rm_theory.ibn.structural import fit_regime, structural_function_by_clustering


@dataclasses.dataclass(frozen=True)
class IBNConfig:
    k: int = 10  # nearest neighbours per item
    c: float = 1.0  # IB variance c·(1 − cos)^γ
    gamma: float = 1.0
    xi2: float = 1.0  # HP edge variance
    mst: bool = True  # add the minimum spanning tree of cosine distance (connects the IB graph)
    block: int = 2048  # rows of the similarity matrix computed at once


def ib_variance(cos_E: np.ndarray, c: float, gamma: float) -> np.ndarray:
    """c·(1 − cos)^γ, with 1 − cos clipped at 0 (rounding can push cos above 1)."""
    return c * np.maximum(1.0 - np.asarray(cos_E, np.float64), 0.0) ** gamma


def knn_edges(e_NxH: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u_E, v_E, cos_E): each item's k most similar other items, each undirected edge once."""
    e_NxH = np.asarray(e_NxH, np.float32)
    N = len(e_NxH)
    k = min(k, N - 1)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    us, vs = [], []
    for lo in range(0, N, block):
        sim_BxN = e_NxH[lo : lo + block] @ e_NxH.T
        rows = np.arange(lo, min(lo + block, N))
        sim_BxN[rows - lo, rows] = -np.inf  # no self edge
        nn_Bxk = np.argpartition(-sim_BxN, k - 1, axis=1)[:, :k]
        us.append(np.repeat(rows, k))
        vs.append(nn_Bxk.reshape(-1))
    u, v = np.concatenate(us), np.concatenate(vs)
    lo_E, hi_E = np.minimum(u, v), np.maximum(u, v)
    uv = np.unique(np.stack([lo_E, hi_E], 1), axis=0)
    cos_E = np.einsum("eh,eh->e", e_NxH[uv[:, 0]], e_NxH[uv[:, 1]]).astype(np.float64)
    return uv[:, 0], uv[:, 1], cos_E


def mst_edges(e_NxH: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges of a minimum spanning tree of the cosine distance (dense: N up to a few 10^4)."""
    e_NxH = np.asarray(e_NxH, np.float64)
    if len(e_NxH) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    # csgraph treats 0 as "no edge": a tiny floor keeps identical responses joined.
    d_NxN = np.maximum(1.0 - e_NxH @ e_NxH.T, 1e-12)
    np.fill_diagonal(d_NxN, 0.0)
    t = csg.minimum_spanning_tree(d_NxN).tocoo()
    cos_E = np.einsum("eh,eh->e", e_NxH[t.row], e_NxH[t.col])
    return t.row.astype(np.int64), t.col.astype(np.int64), cos_E


def ib_network(e_NxH: np.ndarray, cfg: IBNConfig) -> Network:
    """The IB edges alone over N items."""
    u, v, cos = knn_edges(e_NxH, cfg.k, cfg.block)
    if cfg.mst:
        mu, mv, mcos = mst_edges(e_NxH)
        u, v, cos = np.r_[u, mu], np.r_[v, mv], np.r_[cos, mcos]
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        # A tree edge that is also a k-NN edge must not count twice (parallel edges add).
        _, first = np.unique(np.stack([lo, hi], 1), axis=0, return_index=True)
        u, v, cos = lo[first], hi[first], cos[first]
    var = ib_variance(cos, cfg.c, cfg.gamma)
    return Network(len(e_NxH), u, v, var, np.full(len(u), IB, np.int8))


def real_ibn(e_NxH: np.ndarray, a_P: np.ndarray, b_P: np.ndarray, cfg: IBNConfig) -> Network:
    """IB edges over all items plus HP edges of the (training) comparisons."""
    return add_hp_edges(ib_network(e_NxH, cfg), a_P, b_P, cfg.xi2)


# ---------------------------------------------------------------------------- topology


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    adj = sp.coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n))
    return csg.connected_components(adj, directed=False)[1]


def topology(net: Network, prompt_N: np.ndarray) -> dict[str, float]:
    """Components (HP edges alone, and all edges), degrees, responses and comparisons per
    prompt. A chain-like data set has HP components of size 2; a tree-like one, one large
    component per prompt."""
    n = net.num_nodes
    hp = net.kind_E == HP if net.kind_E is not None else np.ones(net.num_edges, bool)
    u_hp, v_hp = net.u_E[hp], net.v_E[hp]
    deg_hp = np.bincount(np.r_[u_hp, v_hp], minlength=n)
    deg = np.bincount(np.r_[net.u_E, net.v_E], minlength=n)
    touched = deg_hp > 0
    comp_hp = components(n, u_hp, v_hp)
    sizes_hp = np.bincount(comp_hp[touched]) if touched.any() else np.zeros(1, int)
    sizes_hp = sizes_hp[sizes_hp > 0] if touched.any() else np.zeros(1, int)
    comp = components(n, net.u_E, net.v_E)
    sizes = np.bincount(comp)
    _, per_prompt = np.unique(np.asarray(prompt_N), return_counts=True)
    pid_hp = np.asarray(prompt_N)[u_hp]
    _, cmp_per_prompt = np.unique(pid_hp, return_counts=True) if len(pid_hp) else (0, np.zeros(1))
    return {
        "items": n,
        "hp_edges": int(hp.sum()),
        "ib_edges": int((~hp).sum()),
        "prompts": int(len(per_prompt)),
        "responses_per_prompt_mean": float(per_prompt.mean()),
        "responses_per_prompt_max": int(per_prompt.max()),
        "comparisons_per_prompt_mean": float(np.mean(cmp_per_prompt)),
        "hp_degree_mean": float(deg_hp[touched].mean()) if touched.any() else 0.0,
        "hp_degree_max": int(deg_hp.max(initial=0)),
        "hp_components": int(len(sizes_hp)) if touched.any() else 0,
        "hp_component_size_mean": float(sizes_hp.mean()),
        "hp_component_size_max": int(sizes_hp.max()),
        "degree_mean": float(deg.mean()),
        "degree_max": int(deg.max(initial=0)),
        "components": int(len(sizes)),
        "giant_component_frac": float(sizes.max() / n),
    }


def heldout_distance(
    net: Network, a_P: np.ndarray, b_P: np.ndarray, method: str = "resistance"
) -> tuple[np.ndarray, dict[str, float]]:
    """d_P of held-out pairs, with their mean over finite values and the unreachable share."""
    d_P = network_distance(net, np.stack([a_P, b_P], 1), method)
    ok = np.isfinite(d_P)
    return d_P, {
        f"distance_{method}": float(d_P[ok].mean()) if ok.any() else float("inf"),
        f"unreachable_{method}": float(1.0 - ok.mean()) if len(ok) else 0.0,
    }


# ---------------------------------------------------------------------------- F(M)


@dataclasses.dataclass(frozen=True)
class StructuralResult:
    M_K: np.ndarray
    F_K: np.ndarray
    sem_K: np.ndarray
    regime: str  # a regime, "indeterminate" (fits within noise) or "none" (too few points)
    fits: dict[str, dict[str, float]]
    leading: str = "none"  # the best-fitting regime, even when indistinguishable


def measure_structural(
    e_NxH: np.ndarray,
    M_values: list[int],
    cfg: IBNConfig,
    rng: np.random.Generator,
    method: str = "resistance",
    num_pairs: int = 256,
) -> StructuralResult:
    """F(M) of same-cluster pairs, M k-means clusters of the embeddings, for every M < N/2; then the
    three regime fits (weighted by the points' standard errors; "indeterminate" within noise).

    method "resistance" or "path": the distance on the k-NN IB network. Its resistance is dominated
    by each node's local degree terms (≈ the sum of 1/conductance at the two ends), so it is nearly
    flat in M by construction. method "edge_variance": the IB variance function of the encoder
    distance itself, c·(1 − cos)^γ, averaged over the same pairs (the prior variance the IBN would
    give the pair with a direct edge), which has no such bias.
    """
    N = len(e_NxH)
    M_K = [m for m in M_values if 1 <= m <= N // 2]
    if method == "edge_variance":
        pair = lambda x_PxH, y_PxH: ib_variance(np.sum(x_PxH * y_PxH, axis=1), cfg.c, cfg.gamma)
        curve = structural_function_by_clustering(M_K, rng, X_NxD=e_NxH, pair_distance=pair, num_pairs=num_pairs)
    else:
        net = ib_network(e_NxH, cfg)
        curve = structural_function_by_clustering(M_K, rng, X_NxD=e_NxH, net=net, method=method, num_pairs=num_pairs)
    ok = np.isfinite(curve.F_K) & (curve.F_K > 0)
    regime, fits, leading = "none", {}, "none"
    if np.unique(curve.M_K[ok]).size >= 3:  # two points fit every regime exactly
        fit = fit_regime(curve.M_K[ok], curve.F_K[ok], curve.sem_K[ok])
        regime, leading = fit.best, fit.leading
        fits = {k: dataclasses.asdict(v) for k, v in fit.fits.items()}
    return StructuralResult(curve.M_K, curve.F_K, curve.sem_K, regime, fits, leading)
