"""The IBN of multi-dimensional preference data: one network per dimension, the joint network of a
gold vector, and the information a single-preference label carries about each dimension
(`docs/multi_dim_theory.md`).

The gold vector's dimensions are projections g = aᵀv of F fields with the separable prior
Cov(v_i(y), v_j(y')) = R_ij·k(y, y') (`world.multidim`), k the geometry's kernel, which the IBN's
inductive-bias (IB) edges encode (THEORY.md §2). Whitening the fields, v = L z with R = L Lᵀ, makes
the F fields of z independent IBN fields, and a label on the projection aᵀv is a preference (HP)
edge on the whitened direction t = Lᵀa. The theory's model is the IBN's: each label is a Gaussian
edge of variance σ² (4/β² at a tie; 1/(β² p(1 − p)) at the true gap, its inverse Fisher information).

* `dimension_network`: the IBN of one dimension's own comparisons (its IB edges, and one HP edge
  per comparison labelled on that dimension with that dimension's label variance). Exact for the
  dimension when the protocol's label directions are orthogonal in the whitened space; otherwise
  an upper bound (it leaves out what the other dimensions' labels say through the correlation).
* `JointPosterior`: the exact posterior covariance of a pair's gap in every labelled direction at
  once (the precision I_m ⊗ L_IB + Σ_l c_l c_lᵀ ⊗ b_l b_lᵀ / σ_l² over the m-dimensional span of the
  label directions); any dimension's inference distance follows, labelled or not.
* A single-preference label is an edge on one projection: the posterior variance of dimension d is
  κ_d·R_proj + (1 − κ_d)·R_IB exactly (`projection_distance`), κ_d its squared correlation with the
  label's direction, so single data leave a floor of (1 − κ_d)·R_IB and cap the accuracy on d at
  ½ + arcsin(√κ_d)/π (`accuracy_ceiling`).

Legend: N nodes, E edges, P comparisons (labels), Pl labels kept by the joint posterior (every group's,
stacked), Q query pairs, F features (the gold vector's fields, whitened), m dimension of the span of the
label directions.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
from scipy import integrate, special, stats

from rm_theory.common.linalg import SPDFactor
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import Network, ib_subnetwork
from rm_theory.ibn.network import HP, IB, ibn_network
from rm_theory.ibn.reduction import merge_zero_edges
from rm_theory.world.spaces import Responses, ResponseSpace
from rm_theory.world.topology import Comparisons

# Blocks of right-hand sides solved at once by the joint posterior (pairs × m columns).
_PAIR_BLOCK = 32


# --------------------------------------------------------------------------------------------
# Label variances (theory §2–3)
# --------------------------------------------------------------------------------------------


def bt_edge_variance(beta: float, gap=None) -> np.ndarray | float:
    """σ² of a Bradley–Terry label as an IBN edge: 4/β² at a tie (gap None), else the inverse Fisher
    information at the true gap, 1/(β² p(1 − p)) = (2 + 2 cosh(β·gap))/β²."""
    if gap is None:
        return 4.0 / beta**2
    x = np.clip(beta * np.asarray(gap, np.float64), -700.0, 700.0)
    return (2.0 + 2.0 * np.cosh(x)) / beta**2


def weight_spread_beta(beta: float, weight_var: float, spread_gap) -> np.ndarray | float:
    """The effective β of a single-preference label whose annotator's weight λ is unknown, with
    Var(λ) = `weight_var` and `spread_gap` = Δhelp − Δharmless (theory §3, the probit approximation
    E σ(a + bZ) ≈ σ(a / √(1 + πb²/8))): β / √(1 + π β² Var(λ) (Δhelp − Δharmless)² / 8)."""
    s = np.asarray(spread_gap, np.float64)
    return beta / np.sqrt(1.0 + math.pi * beta**2 * weight_var * s**2 / 8.0)


def single_edge_variance(beta: float, weight_var: float, spread_var) -> np.ndarray | float:
    """σ² at a tie of a single-preference label on the mean trade-off when each annotator's weight
    is unknown: 4/β_eff² = 4/β² + (π/2)·Var(λ)·E(Δhelp − Δharmless)² (theory §3), `spread_var` the
    prior variance of Δhelp − Δharmless for the pair."""
    return 4.0 / beta**2 + 0.5 * math.pi * weight_var * np.asarray(spread_var, np.float64)


def single_label_information(beta: float, help_gap: float, harm_gap: float, a: float, b: float) -> dict:
    """The label law and Fisher information of one single-preference label, λ ~ Beta(a, b) unknown
    (theory §3): P = E_λ σ(β wᵀΔ), the score direction g = β E_λ[σ'(β wᵀΔ)·(λ, 1 − λ)], and the
    2×2 Fisher matrix I = g gᵀ / (P(1 − P)) about (Δhelp, Δharmless), by quadrature. `info[d, d]` is
    what the label tells about dimension d when the other is known."""
    law = stats.beta(a, b)

    def mean(f):
        return integrate.quad(lambda lam: f(lam) * law.pdf(lam), 0.0, 1.0, epsabs=1e-13, epsrel=1e-11)[0]

    z = lambda lam: beta * (lam * help_gap + (1 - lam) * harm_gap)
    dsig = lambda lam: special.expit(z(lam)) * special.expit(-z(lam))
    P = mean(lambda lam: special.expit(z(lam)))
    g = beta * np.array([mean(lambda lam: dsig(lam) * lam), mean(lambda lam: dsig(lam) * (1 - lam))])
    return {"p": P, "score": g, "info": np.outer(g, g) / (P * (1 - P))}


# --------------------------------------------------------------------------------------------
# Directions
# --------------------------------------------------------------------------------------------


def whitened(a_F: np.ndarray, L_FxF: np.ndarray) -> np.ndarray:
    """t = Lᵀa: the direction of the projection aᵀv in the whitened fields z (v = L z)."""
    return np.asarray(a_F, np.float64) @ np.asarray(L_FxF, np.float64)


def kappa(label_t: np.ndarray, eval_t: np.ndarray) -> float:
    """κ = (tᵀe)² / (|t|²|e|²): the squared prior correlation of a dimension (e) with a label's
    direction (t); the share of the dimension that labels on t can ever learn."""
    t, e = np.asarray(label_t, np.float64), np.asarray(eval_t, np.float64)
    return float((t @ e) ** 2 / ((t @ t) * (e @ e)))


def projection_distance(kappa_d: float, r_proj_Q: np.ndarray, r_ib_Q: np.ndarray) -> np.ndarray:
    """Posterior variance of a unit-variance dimension's gap from labels on one direction (theory §4):
    κ·R_proj + (1 − κ)·R_IB, R_proj the resistance of the IBN whose HP edges carry σ²/|t|², R_IB the
    prior (IB-only) resistance."""
    return kappa_d * np.asarray(r_proj_Q) + (1.0 - kappa_d) * np.asarray(r_ib_Q)


def predicted_accuracy(var_Q: np.ndarray, prior_Q: np.ndarray) -> np.ndarray:
    """P(sign of the posterior mean = sign of the gap) per pair in the Gaussian model (theory §5):
    ½ + arcsin(√(1 − V/R0))/π; NaN where the prior variance is 0 (identical items) or infinite."""
    v, r0 = np.asarray(var_Q, np.float64), np.asarray(prior_Q, np.float64)
    ok = np.isfinite(r0) & (r0 > 0) & np.isfinite(v)
    rho2 = np.clip(1.0 - np.where(ok, v, 0.0) / np.where(ok, r0, 1.0), 0.0, 1.0)
    return np.where(ok, 0.5 + np.arcsin(np.sqrt(rho2)) / math.pi, np.nan)


def accuracy_ceiling(kappa_d: float) -> float:
    """The accuracy on a dimension of infinitely many labels on one direction: ½ + arcsin(√κ)/π."""
    return 0.5 + math.asin(math.sqrt(min(max(kappa_d, 0.0), 1.0))) / math.pi


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VectorIBN:
    """The shared IB part of every dimension's network: IB edges of unit-variance fields (the
    space's edges over its field variance), zero-variance edges merged, and the node of every
    comparison item and query item."""

    ib: Network
    node_a_P: np.ndarray
    node_b_P: np.ndarray
    node_q: np.ndarray

    def prior_distance(self, pairs_Qx2: np.ndarray) -> np.ndarray:
        """R_IB: the prior variance of a unit dimension's gap (IB edges only)."""
        return network_distance(self.ib, pairs_Qx2, "resistance")


def vector_ibn(space: ResponseSpace, comps: Comparisons, queries: Responses | None = None) -> VectorIBN:
    """The IB edges and item nodes of a data set's IBN (`ibn.network.ibn_network`), for unit fields."""
    ibn = ibn_network(space, comps, queries)
    ib = ib_subnetwork(ibn.network)
    ib = Network(ib.num_nodes, ib.u_E, ib.v_E, ib.var_E / space.field_variance, ib.kind_E)
    merged, map_N = merge_zero_edges(ib)
    return VectorIBN(merged, map_N[ibn.node_a_P], map_N[ibn.node_b_P], map_N[ibn.node_q])


def dimension_network(vibn: VectorIBN, labelled_P: np.ndarray, var_P: np.ndarray) -> Network:
    """One dimension's IBN: the IB edges, and an HP edge of variance var_P[p] for each comparison p
    labelled on the dimension (a response compared with itself adds nothing)."""
    a, b = vibn.node_a_P, vibn.node_b_P
    m = np.asarray(labelled_P, bool) & (a != b)
    var = np.broadcast_to(np.asarray(var_P, np.float64), a.shape)[m]
    ib = vibn.ib
    return Network(
        ib.num_nodes,
        np.r_[ib.u_E, a[m]],
        np.r_[ib.v_E, b[m]],
        np.r_[ib.var_E, var],
        np.r_[np.full(ib.num_edges, IB), np.full(int(m.sum()), HP)].astype(np.int8),
    )


def label_basis(t_PlxF: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """U_Fxm: an orthonormal basis of the span of the label directions (rows of t), from the
    eigenvectors of tᵀt with eigenvalues above `tol` of the largest."""
    t = np.asarray(t_PlxF, np.float64)
    lam, vec = np.linalg.eigh(t.T @ t)
    return vec[:, lam > tol * max(lam.max(initial=0.0), 1e-300)][:, ::-1]


class JointPosterior:
    """The exact posterior covariance (Gaussian-edge model) of the whitened gap of query pairs in
    the span of the label directions: precision I_m ⊗ L_IB + Σ_l c_l c_lᵀ ⊗ b_l b_lᵀ / σ_l², with
    c_l = Uᵀt_l and b_l = e_a − e_b.

    `labels` is a list of label groups (labelled_P, t, var_P), one per labelled dimension: which of
    the P comparisons carry that label, its whitened direction (t_F, or one t_PxF per comparison)
    and variance. The prior of each whitened field is defined up to a constant per IB component (a
    prompt's tree or point cloud), which is grounded at one node: pairs in different IB components
    have no common prior (`variance` is inf there), and a label joining two IB components would pin
    only its own direction of their offsets, so such labels are left out and counted
    (`dropped_labels`)."""

    def __init__(self, vibn: VectorIBN, labels: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
        N, P = vibn.ib.num_nodes, len(vibn.node_a_P)
        _, self.comp_N = csg.connected_components(_adjacency(N, vibn.ib.u_E, vibn.ib.v_E), directed=False)
        a_all, b_all = vibn.node_a_P, vibn.node_b_P
        a, b, t, w = [], [], [], []
        self.dropped_labels = 0
        for labelled_P, t_F, var_P in labels:
            t_PxF = np.broadcast_to(np.asarray(t_F, np.float64), (P, np.shape(t_F)[-1]))
            lab = np.asarray(labelled_P, bool) & (a_all != b_all)
            keep = lab & (self.comp_N[a_all] == self.comp_N[b_all])
            self.dropped_labels += int((lab & ~keep).sum())
            a.append(a_all[keep])
            b.append(b_all[keep])
            t.append(t_PxF[keep])
            w.append(1.0 / np.broadcast_to(np.asarray(var_P, np.float64), (P,))[keep])
        self.F = int(np.shape(labels[0][1])[-1]) if labels else 0
        a, b = np.concatenate(a or [[]]).astype(np.int64), np.concatenate(b or [[]]).astype(np.int64)
        t_PlxF, w_Pl = np.concatenate(t or [np.zeros((0, self.F))]), np.concatenate(w or [[]])
        self.vibn = vibn
        self.U = label_basis(t_PlxF) if len(t_PlxF) else np.zeros((self.F, 0))
        m = self.m = self.U.shape[1]
        c_Plxm = t_PlxF @ self.U
        ib = vibn.ib
        lap = _laplacian(N, ib.u_E, ib.v_E, 1.0 / ib.var_E)
        rows, cols, vals = [], [], []
        for k in range(m):  # the HP blocks: c_k c_k' w (e_a − e_b)(e_a − e_b)ᵀ
            for k2 in range(m):
                cw = c_Plxm[:, k] * c_Plxm[:, k2] * w_Pl
                for u, v, sign in ((a, a, 1.0), (b, b, 1.0), (a, b, -1.0), (b, a, -1.0)):
                    rows.append(k * N + u)
                    cols.append(k2 * N + v)
                    vals.append(sign * cw)
        hp = sp.coo_matrix(
            (np.concatenate(vals or [[]]), (np.concatenate(rows or [[]]), np.concatenate(cols or [[]]))),
            shape=(m * N, m * N),
        )
        Q = (sp.kron(sp.identity(m), lap) + hp).tocsr()
        ground = np.zeros(N, bool)
        ground[np.unique(self.comp_N, return_index=True)[1]] = True
        self.free = np.flatnonzero(~np.tile(ground, m))
        self.index = np.full(m * N, -1)
        self.index[self.free] = np.arange(len(self.free))
        self.factor = SPDFactor(Q[self.free][:, self.free]) if m else None
        self.N = N

    def covariance(self, pairs_Qx2: np.ndarray) -> np.ndarray:
        """Σ_Qxmxm: posterior covariance of the pair's whitened gap in the basis U (inf across IB
        components), solved `_PAIR_BLOCK` pairs (m columns each) at a time."""
        pairs_Qx2 = np.asarray(pairs_Qx2, np.int64).reshape(-1, 2)
        Q, m, N = len(pairs_Qx2), self.m, self.N
        out = np.zeros((Q, m, m))
        same = self.comp_N[pairs_Qx2[:, 0]] == self.comp_N[pairs_Qx2[:, 1]]
        out[~same] = np.inf
        todo = np.flatnonzero(same & (pairs_Qx2[:, 0] != pairs_Qx2[:, 1])) if m else np.zeros(0, np.int64)
        k_m = np.arange(m)
        for lo in range(0, len(todo), _PAIR_BLOCK):
            qs = todo[lo : lo + _PAIR_BLOCK]
            B = len(qs)
            rhs = np.zeros((len(self.free), B * m))
            col = (np.arange(B)[:, None] * m + k_m[None, :]).ravel()
            for end, sign in ((0, 1.0), (1, -1.0)):  # +e_a, −e_b in every component k
                row = self.index[(k_m[None, :] * N + pairs_Qx2[qs, end][:, None]).ravel()]
                ok = row >= 0  # a grounded node contributes nothing
                np.add.at(rhs, (row[ok], col[ok]), sign)
            x = self.factor.solve(rhs)
            # Σ_q = R_qᵀ Q⁻¹ R_q for each pair's m columns (its own block of the Gram matrix).
            r3, x3 = rhs.reshape(-1, B, m), x.reshape(-1, B, m)
            out[qs] = np.einsum("nbk,nbl->bkl", r3, x3)
        return out

    def variances(
        self, pairs_Qx2: np.ndarray, eval_t: dict[str, np.ndarray], prior_Q: np.ndarray | None = None
    ) -> dict:
        """`variance` of several dimensions at once (one solve)."""
        if prior_Q is None:
            prior_Q = self.vibn.prior_distance(pairs_Qx2)
        cov = self.covariance(pairs_Qx2)
        finite = np.isfinite(cov).all(axis=(1, 2))
        cov = np.where(finite[:, None, None], cov, 0.0)
        out = {}
        for name, e in eval_t.items():
            e = np.asarray(e, np.float64)
            c = self.U.T @ e
            rest = max(float(e @ e - c @ c), 0.0)
            inside = np.where(finite, np.einsum("k,qkl,l->q", c, cov, c), np.inf)
            # The part no label reaches keeps its prior (none when e lies in the labels' span).
            out[name] = inside + (rest * np.asarray(prior_Q) if rest > 0 else 0.0)
        return out

    def variance(self, pairs_Qx2: np.ndarray, eval_t: np.ndarray, prior_Q: np.ndarray | None = None) -> np.ndarray:
        """Posterior variance of the gap of the dimension with whitened direction e: (Uᵀe)ᵀΣ(Uᵀe)
        plus |e − UUᵀe|²·R_IB (the part no label reaches keeps its prior)."""
        return self.variances(pairs_Qx2, {"e": eval_t}, prior_Q)["e"]


# --------------------------------------------------------------------------------------------
# One data set's labels and what they tell about each dimension
# --------------------------------------------------------------------------------------------


def label_variances(
    betas: dict[str, float],
    gap_P: dict[str, np.ndarray],
    weight_var: float,
    r_hs: float,
    prior_P: np.ndarray,
    constant: bool = False,
) -> dict[str, np.ndarray]:
    """σ² of each labelled dimension's label (`betas`: dimension → β) on each comparison (theory §2–3):
    4/β² at a tie (`constant`), or the inverse Fisher information at the true gap (`gap_P`, per
    dimension); a single label's (dimension "utility") with the annotators' weight spread, of variance
    `weight_var`, over the helpfulness − harmlessness gap (`constant`: over its prior variance, from the
    pair's prior `prior_P` and the two dimensions' correlation `r_hs`)."""
    out = {}
    for dim, beta in betas.items():
        if dim == "utility" and constant:
            out[dim] = single_edge_variance(beta, weight_var, (2 - 2 * r_hs) * prior_P)
        elif dim == "utility":
            b_eff = weight_spread_beta(beta, weight_var, gap_P["helpfulness"] - gap_P["harmlessness"])
            out[dim] = (2.0 + 2.0 * np.cosh(np.clip(b_eff * gap_P[dim], -700, 700))) / b_eff**2
        elif constant:
            out[dim] = np.full(len(prior_P), bt_edge_variance(beta))
        else:
            out[dim] = bt_edge_variance(beta, gap_P[dim])
    return out


def dimension_distances(
    vibn: VectorIBN, pairs_Qx2: np.ndarray, directions: dict[str, np.ndarray], L_FxF: np.ndarray, var_P: dict
) -> dict:
    """Per dimension (`directions`: its a over the fields, v = L z) and query pair: the prior variance R_IB
    (`prior`), the exact joint posterior variance of the dimension standardised to unit prior variance
    (`dist_<dim>`), and that of its own network (`dist_own_<dim>`, the labelled dimensions of `var_P`:
    dimension → σ² of its label on each comparison). For a single preference (`var_P` of "utility"
    alone) `dist_own_<dim>` is the closed form of theory §4 for every dimension, checked against the
    joint solve (`theory_check_rel_err`: the largest relative difference)."""
    prior = vibn.prior_distance(pairs_Qx2)
    # Labels act on their own directions (a single label's trade-off has variance < 1); distances
    # are those of each dimension standardised to unit prior variance.
    t = {g: whitened(a, L_FxF) for g, a in directions.items()}
    unit = {g: v / np.linalg.norm(v) for g, v in t.items()}
    every = np.ones(len(vibn.node_a_P), bool)
    joint = JointPosterior(vibn, [(every, t[d], v) for d, v in var_P.items()])
    out = {"prior": prior, "dropped_labels": joint.dropped_labels, "theory_check_rel_err": float("nan")}
    out |= {f"dist_{g}": v for g, v in joint.variances(pairs_Qx2, unit, prior).items()}
    for g in t:
        if g in var_P:
            out[f"dist_own_{g}"] = network_distance(dimension_network(vibn, every, var_P[g]), pairs_Qx2, "resistance")
    if list(var_P) == ["utility"]:
        tu = t["utility"]
        own = dimension_network(vibn, every, var_P["utility"] / (tu @ tu))
        r_proj = network_distance(own, pairs_Qx2, "resistance")
        errs = []
        for g in t:
            closed = projection_distance(kappa(tu, unit[g]), r_proj, prior)
            out[f"dist_own_{g}"] = closed
            ok = np.isfinite(closed) & (closed > 0)
            errs.append(np.max(np.abs(closed[ok] - out[f"dist_{g}"][ok]) / closed[ok], initial=0.0))
        out["theory_check_rel_err"] = float(max(errs))
    return out


def _adjacency(n: int, u_E: np.ndarray, v_E: np.ndarray) -> sp.csr_matrix:
    return sp.coo_matrix((np.ones(len(u_E)), (u_E, v_E)), shape=(n, n)).tocsr()


def _laplacian(n: int, u_E: np.ndarray, v_E: np.ndarray, w_E: np.ndarray) -> sp.csr_matrix:
    w = sp.coo_matrix((w_E, (u_E, v_E)), shape=(n, n)).tocsr()
    w = w + w.T
    return (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr()
