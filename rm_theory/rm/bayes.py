"""The exact ("ideal") Bayesian reward learner of the prefix-tree world (THEORY.md §2).

Model. A response y has one-hot features of its prefix nodes u = y[:1], …, y[:depth(y)]; the
weights θ_u ~ N(0, s_j²) (j = depth of u) are independent and r(y) = Σ_u θ_u — exactly the gold
field's prior, so this learner's inductive bias is the one the IBN assumes. Observations:

* Gaussian differences: d_p = r(a_p) − r(b_p) + ε_p, ε_p ~ N(0, ξ²_p). The posterior is Gaussian.
* Bradley–Terry labels: y_p ∈ [0, 1] with P(a ≻ b) = σ(β (r(a) − r(b))). Laplace approximation: the
  MAP by Newton's method and the posterior precision Λ = Λ_prior + Σ_p β² p̂_p (1 − p̂_p) x_p x_pᵀ,
  p̂_p = σ(β x_pᵀ θ̂), x_p = x(a_p) − x(b_p).

Computation in node-value coordinates. Let v_u = Σ_{w ⪯ u} θ_w be the reward of prefix u (v = 0 at a
prompt root). v = A θ with A the unit-triangular ancestor matrix, so θ_u = v_u − v_parent(u) and
θᵀ D⁻¹ θ = Σ_u (v_u − v_parent(u))² / s²_u: the prior precision of v is the tree Laplacian with
conductance 1/s_j² on each parent→child edge, grounded at the prompt roots, and each observation adds
w_p (e_a − e_b)(e_a − e_b)ᵀ. The posterior precision of v is therefore the grounded Laplacian of the IBN
whose preference edges have variance 1/w_p (ξ² for Gaussian observations, 1/(β² p̂(1 − p̂)) at the MAP
for Bradley–Terry), and Var[r(a) − r(b) | data] = (e_a − e_b)ᵀ Λ⁻¹ (e_a − e_b) is that IBN's effective
resistance between a and b — the identity THEORY.md §2 states, here made exact and testable.

The system is sparse (two entries per tree edge and per comparison, no V^L table). A unary chain of
prefixes (a node with one child, no item on it) is marginalised exactly into one series edge
(`compress=True`); the item-level posterior is unchanged, only the weights of the dropped nodes are
not carried (use `compress=False` for the full θ).

A prompt root is fixed at 0 (r* has no root increment), so two prompts never exchange information
through a root; the IBN keeps each prompt's root as its own node, which agrees as long as no
comparison joins two prompts (none does in the chain and tree designs).

Legend: N items, F prefix nodes (the unknowns: one-hot features of the items), P comparisons, Q query
pairs, K columns (of a block solve), L depth, E edges.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy import special, stats

from rm_theory.common.linalg import CHOLESPY_MAX_UNKNOWNS, MAX_COLUMNS, SOLVE_COLUMNS, LDLFactor, SPDFactor
from rm_theory.ibn.cg import CG_RTOL, ForestSolver, block_pcg
from rm_theory.ibn.distance import network_distance
from rm_theory.ibn.graph import Network
from rm_theory.ibn.resistance import has_cholmod
from rm_theory.world.spaces import PrefixTreeSpace, Responses
from rm_theory.world.trie import prefix_trie

# Grounded systems up to this size are factorised once by a sparse Cholesky (`common.linalg`); larger
# ones are solved by block CG preconditioned with the exact spanning-forest solve the IBN uses (an IBN
# is a shallow trie plus random preference edges, expander-like: fill grows fast with size).
DIRECT_MAX_UNKNOWNS = 400_000
# Where CHOLMOD is installed, pair variances of systems above this size go through the IBN's
# resistance solver on the network whose grounded Laplacian the precision is (the identity THEORY.md
# §2 states): it orders the queried nodes last and solves on their Schur complement, where the plain
# factor solves through the whole system per pair (2^16 chain comparisons: 2.5 s against 37 s with
# SuperLU). Without scikit-sparse the plain factor stays: the IBN's dense fallback is slower on this
# network, whose ground node joins every prompt.
NETWORK_MIN_UNKNOWNS = 20_000


# --------------------------------------------------------------------------------------------
# Features: prefix nodes of a set of items
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PrefixNodes:
    """The unknowns of the learner: prefix nodes of `items` (node-value form).

    `node_id_F` are the space's node ids (sorted), `parent_F` the index of each node's nearest kept
    ancestor (−1: the prompt root, fixed at 0), `var_F` the prior variance of the edge to it (s_j², or
    a series sum over a marginalised unary chain), `depth_F` the node depth, `item_N` each item's node.
    """

    node_id_F: np.ndarray
    parent_F: np.ndarray
    var_F: np.ndarray
    depth_F: np.ndarray
    item_N: np.ndarray
    compressed: bool

    @property
    def F(self) -> int:
        return len(self.node_id_F)


def prefix_nodes(space: PrefixTreeSpace, items: Responses, compress: bool = True) -> PrefixNodes:
    """Prefix nodes of `items` with their tree edges (THEORY.md §2 "Induced Bayesian network"): the
    trie below the prompt roots (`world.trie`, the IBN's too), roots fixed at 0 and left out."""
    if not isinstance(space, PrefixTreeSpace):
        raise TypeError(f"the exact prefix-node learner needs a PrefixTreeSpace, got {type(space).__name__}")
    if (space.depth(items) < 1).any():
        raise ValueError("every item needs depth >= 1 (a prompt root carries no reward)")
    trie = prefix_trie(space, items, compress)
    parent_F = np.where(trie.parent_depth_F > 0, np.searchsorted(trie.node_id_F, trie.parent_id_F), -1)
    return PrefixNodes(
        node_id_F=trie.node_id_F,
        parent_F=parent_F.astype(np.int64),
        var_F=trie.var_F,
        depth_F=trie.depth_F,
        item_N=np.searchsorted(trie.node_id_F, trie.item_id_N).astype(np.int64),
        compressed=compress,
    )


def feature_matrix(space: PrefixTreeSpace, items: Responses, nodes: PrefixNodes) -> sp.csr_matrix:
    """`x_NxF`: one-hot prefix-node features of `items` over uncompressed `nodes` (r = x θ)."""
    if nodes.compressed:
        raise ValueError("features need every prefix node: build the nodes with compress=False")
    ids_NxL1 = space.node_ids(items)[:, 1:]
    rows, cols = np.nonzero(ids_NxL1 >= 0)
    f = np.searchsorted(nodes.node_id_F, ids_NxL1[rows, cols])
    if (f >= nodes.F).any() or (nodes.node_id_F[np.minimum(f, nodes.F - 1)] != ids_NxL1[rows, cols]).any():
        raise ValueError("an item has a prefix outside `nodes`")
    return sp.csr_matrix((np.ones(len(rows)), (rows, f)), shape=(len(items), nodes.F))


def prior_variance(nodes: PrefixNodes) -> np.ndarray:
    """`s2_F`: prior variance of each weight θ_u (uncompressed nodes: s²_{depth(u)})."""
    return nodes.var_F


def prior_precision(nodes: PrefixNodes) -> sp.csc_matrix:
    """Λ_prior of node values v: the tree Laplacian (conductance 1/var) grounded at the roots."""
    F = nodes.F
    has_p = nodes.parent_F >= 0
    # Incidence E_FxF: row u is e_u − e_parent(u) (the parent term vanishes at a root).
    rows = np.r_[np.arange(F), np.flatnonzero(has_p)]
    cols = np.r_[np.arange(F), nodes.parent_F[has_p]]
    vals = np.r_[np.ones(F), -np.ones(int(has_p.sum()))]
    inc = sp.csr_matrix((vals, (rows, cols)), shape=(F, F))
    return (inc.T @ sp.diags(1.0 / nodes.var_F) @ inc).tocsc()


def difference_matrix(nodes: PrefixNodes, a_P: np.ndarray, b_P: np.ndarray) -> sp.csr_matrix:
    """`B_PxF`: row p is e_{node(a_p)} − e_{node(b_p)}, so B v = r(a) − r(b)."""
    P = len(a_P)
    rows = np.r_[np.arange(P), np.arange(P)]
    cols = np.r_[nodes.item_N[a_P], nodes.item_N[b_P]]
    vals = np.r_[np.ones(P), -np.ones(P)]
    return sp.csr_matrix((vals, (rows, cols)), shape=(P, nodes.F))  # duplicates sum: a = b gives a 0 row


# --------------------------------------------------------------------------------------------
# Solving the grounded system
# --------------------------------------------------------------------------------------------


def grounded_network(prec_FxF: sp.spmatrix):
    """The network (`ibn.graph.Network`, F + 1 nodes) whose Laplacian grounded at node F is
    `prec_FxF`: each off-diagonal −g_ij is an edge of variance 1/g_ij, each row's surplus g_i an
    edge of variance 1/g_i to node F, the merged prompt roots where r = 0. A row's surplus is a sum
    that should cancel for nodes away from the roots; what is left of it below 1e-12 of the row's
    diagonal is rounding, not an edge."""
    prec = sp.csr_matrix(prec_FxF)
    F = prec.shape[0]
    g_ground_F = np.asarray(prec.sum(axis=1)).ravel()
    off = sp.triu(-prec, k=1).tocoo()
    edge = off.data > 0  # sparse products can store cancelled entries as explicit zeros
    to_root = np.flatnonzero(g_ground_F > 1e-12 * prec.diagonal())
    u = np.r_[off.row[edge], to_root]
    v = np.r_[off.col[edge], np.full(len(to_root), F)]
    g = np.r_[off.data[edge], g_ground_F[to_root]]
    return Network(F + 1, u, v, 1.0 / g)


class SPDSolver:
    """Λ⁻¹ b for one sparse SPD grounded Laplacian, factorised (or preconditioned) once."""

    def __init__(self, prec_FxF: sp.spmatrix, method: Literal["auto", "direct", "cg"] = "auto"):
        prec = sp.csr_matrix(prec_FxF)
        self.method = self.resolve(method, prec.shape[0])
        if self.method == "direct":
            self._factor = SPDFactor(prec)
        elif self.method == "cg":
            self._init_cg(prec)
        else:
            raise ValueError(f"unknown solver {method!r} (auto, direct, cg)")

    @property
    def columns(self) -> int:
        """Right-hand sides to solve at once: a few for the factor, a wide block for block CG."""
        return SOLVE_COLUMNS if self.method == "direct" else 2 * MAX_COLUMNS

    @staticmethod
    def resolve(method: str, F: int) -> str:
        """The method "auto" stands for at F unknowns."""
        return ("direct" if F <= DIRECT_MAX_UNKNOWNS else "cg") if method == "auto" else method

    def _init_cg(self, prec: sp.csr_matrix) -> None:
        # The IBN's own preconditioner: the exact solve on the maximum-conductance spanning forest,
        # grounded through a virtual node that stands for the prompt roots.
        F = prec.shape[0]
        net = grounded_network(prec)
        self._forest = ForestSolver(F + 1, net.u_E, net.v_E, net.var_E, np.array([F]))
        self._perm = self._forest.perm_M
        self._lap = prec[self._perm][:, self._perm].tocsr()
        self._pcg = block_pcg
        self._max_iter = 10 * F + 100

    def solve(self, b_FxK: np.ndarray) -> np.ndarray:
        b = np.asarray(b_FxK, dtype=np.float64)
        vec = b.ndim == 1
        b = b[:, None] if vec else b
        if self.method == "direct":
            x = self._factor.solve(b)
        else:
            x = np.empty_like(b)
            for lo in range(0, b.shape[1], MAX_COLUMNS):
                blk = np.ascontiguousarray(b[self._perm, lo : lo + MAX_COLUMNS])
                y = self._pcg(self._lap, blk, self._forest.solve_into, CG_RTOL, self._max_iter)
                x[self._perm, lo : lo + MAX_COLUMNS] = y
        return x[:, 0] if vec else x


# --------------------------------------------------------------------------------------------
# Posteriors
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Posterior:
    """Gaussian posterior (exact, or Laplace) of the node values v of `nodes`.

    `mean_F` is the posterior mean (the MAP for Laplace), `prec` the posterior precision, `w_P` the
    precision each comparison contributed (the IBN edge variance is 1 / w_P), `solver` Λ⁻¹ (an
    `SPDSolver` of `method`, built when a variance first needs it: a fit that only reads means never
    factorises Λ for many solves).
    """

    nodes: PrefixNodes
    mean_F: np.ndarray
    prec: sp.csc_matrix
    w_P: np.ndarray
    newton_steps: int = 0
    method: str = "auto"
    _solver: SPDSolver | None = dataclasses.field(default=None, repr=False)

    @property
    def solver(self) -> SPDSolver:
        if self._solver is None:
            self._solver = SPDSolver(self.prec, self.method)
        return self._solver

    def item_mean(self, idx_N: np.ndarray) -> np.ndarray:
        return self.mean_F[self.nodes.item_N[np.asarray(idx_N)]]

    def pair_mean(self, pairs_Qx2: np.ndarray) -> np.ndarray:
        pairs_Qx2 = np.asarray(pairs_Qx2).reshape(-1, 2)
        return self.item_mean(pairs_Qx2[:, 0]) - self.item_mean(pairs_Qx2[:, 1])

    def pair_variance(self, pairs_Qx2: np.ndarray) -> np.ndarray:
        """Var[r(a) − r(b) | data] per pair of item indices: (e_a − e_b)ᵀ Λ⁻¹ (e_a − e_b)."""
        pairs_Qx2 = np.asarray(pairs_Qx2).reshape(-1, 2)
        fa, fb = self.nodes.item_N[pairs_Qx2[:, 0]], self.nodes.item_N[pairs_Qx2[:, 1]]
        if self.nodes.F > NETWORK_MIN_UNKNOWNS and has_cholmod():
            return network_distance(grounded_network(self.prec), np.stack([fa, fb], 1), "resistance", "cholmod")
        out = np.zeros(len(pairs_Qx2))
        todo = np.flatnonzero(fa != fb)
        block = self.solver.columns
        for lo in range(0, len(todo), block):
            q = todo[lo : lo + block]
            rhs_FxK = np.zeros((self.nodes.F, len(q)))
            rhs_FxK[fa[q], np.arange(len(q))] += 1.0
            rhs_FxK[fb[q], np.arange(len(q))] -= 1.0
            x_FxK = self.solver.solve(rhs_FxK)
            out[q] = x_FxK[fa[q], np.arange(len(q))] - x_FxK[fb[q], np.arange(len(q))]
        return np.maximum(out, 0.0)

    def item_variance(self, idx_N: np.ndarray) -> np.ndarray:
        """Var[r(y) | data] of single items (relative to the prompt root, where r = 0)."""
        f = self.nodes.item_N[np.asarray(idx_N)]
        uniq, inv = np.unique(f, return_inverse=True)
        out = np.empty(len(uniq))
        block = self.solver.columns
        for lo in range(0, len(uniq), block):
            u = uniq[lo : lo + block]
            rhs_FxK = np.zeros((self.nodes.F, len(u)))
            rhs_FxK[u, np.arange(len(u))] = 1.0
            out[lo : lo + len(u)] = self.solver.solve(rhs_FxK)[u, np.arange(len(u))]
        return out[inv]

    def theta(self) -> np.ndarray:
        """`theta_F`: posterior mean of the per-prefix weights θ_u = v_u − v_parent(u)."""
        if self.nodes.compressed:
            raise ValueError("weights of marginalised prefixes are not carried: fit with compress=False")
        has_p = self.nodes.parent_F >= 0
        parent_v = np.where(has_p, self.mean_F[np.maximum(self.nodes.parent_F, 0)], 0.0)
        return self.mean_F - parent_v


def gaussian_posterior(
    nodes: PrefixNodes,
    a_P: np.ndarray,
    b_P: np.ndarray,
    d_P: np.ndarray,
    xi2_P: np.ndarray | float,
    solver: str = "auto",
) -> Posterior:
    """Exact posterior from Gaussian difference observations d_p = r(a_p) − r(b_p) + N(0, ξ²_p)."""
    B = difference_matrix(nodes, a_P, b_P)
    w_P = np.broadcast_to(1.0 / np.asarray(xi2_P, dtype=np.float64), (len(a_P),)).copy()
    prec = (prior_precision(nodes) + B.T @ sp.diags(w_P) @ B).tocsc()
    s = SPDSolver(prec, solver)
    mean = s.solve(B.T @ (w_P * np.asarray(d_P, dtype=np.float64)))
    return Posterior(nodes, mean, prec, w_P, method=solver, _solver=s)


def bt_objective(
    v_F: np.ndarray,
    prior: sp.spmatrix,
    B: sp.spmatrix,
    y_P: np.ndarray,
    beta: float | np.ndarray,
    anchor_F: np.ndarray | None = None,
    c_P: np.ndarray | None = None,
) -> float:
    """Negative log posterior (up to a constant) of node values v under Bradley–Terry labels.

    `anchor_F` centres the prior on a draw instead of 0 and `c_P` weights the comparisons (bootstrap
    counts): the objective of one randomised-prior ensemble member. `beta` is one slope, or one per
    comparison (`beta_P`: labels of several kinds, each with its own noise level, `rm.mixed_labels`).
    """
    z_P = beta * (B @ v_F)
    nll_P = -(y_P * special.log_expit(z_P) + (1 - y_P) * special.log_expit(-z_P))
    dv = v_F if anchor_F is None else v_F - anchor_F
    return float(0.5 * dv @ (prior @ dv) + (nll_P if c_P is None else c_P * nll_P).sum())


def _newton_bt(prior, B, y_P, beta, solver, tol, max_steps, anchor_F=None, c_P=None):
    """Damped Newton on the convex `bt_objective`; returns (v, H, w_P, steps, the cg solver of H or
    None) at the MAP.

    A direct step factorises each Hessian for one solve: `LDLFactor`, whose later factorisations
    reuse the first one's analysis (every Hessian has the pattern of prior + BᵀB), up to
    `CHOLESPY_MAX_UNKNOWNS`; above it `SPDFactor`'s SuperLU, whose supernodes suit the fill there.
    """
    direct = SPDSolver.resolve(solver, B.shape[1]) == "direct"
    ldl = LDLFactor() if direct and B.shape[1] <= CHOLESPY_MAX_UNKNOWNS else None
    c = np.ones(B.shape[0]) if c_P is None else np.asarray(c_P, dtype=np.float64)
    v = np.zeros(B.shape[1]) if anchor_F is None else anchor_F.copy()
    f = bt_objective(v, prior, B, y_P, beta, anchor_F, c_P)
    steps, decrement = 0, np.inf
    while True:
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"Newton did not converge in {max_steps} steps (decrement {decrement:.3g})")
        p_P = special.expit(beta * (B @ v))
        dv = v if anchor_F is None else v - anchor_F
        if np.ndim(beta) == 0:
            grad = prior @ dv - beta * (B.T @ (c * (y_P - p_P)))
        else:  # one slope per comparison
            grad = prior @ dv - B.T @ (beta * c * (y_P - p_P))
        w_P = beta**2 * p_P * (1 - p_P)
        H = (prior + B.T @ sp.diags(c * w_P) @ B).tocsc()
        lin = None
        if ldl is not None:
            ldl.factor(H)
            step = ldl.solve(grad)
        else:
            lin = SPDSolver(H, solver)
            step = lin.solve(grad)
        decrement = float(grad @ step) / 2
        if decrement < tol:
            # The loop stops at the MAP right after building H there: H is the posterior's precision.
            return v, H, w_P, steps, lin
        t = 1.0
        while True:
            f_new = bt_objective(v - t * step, prior, B, y_P, beta, anchor_F, c_P)
            if f_new <= f - 0.25 * t * 2 * decrement or t < 1e-8:  # Armijo with c = 1/4
                break
            t /= 2
        v, f = v - t * step, f_new


def laplace_posterior(
    nodes: PrefixNodes,
    a_P: np.ndarray,
    b_P: np.ndarray,
    y_P: np.ndarray,
    beta: float | np.ndarray,
    solver: str = "auto",
    tol: float = 1e-14,
    max_steps: int = 50,
) -> Posterior:
    """Laplace posterior of Bradley–Terry labels y_p (1 = a preferred; soft labels allowed), of slope
    `beta` (or one slope per comparison, `beta_P`).

    MAP by damped Newton on the convex negative log posterior (backtracking keeps every step a
    descent step); converged when the Newton decrement gᵀ H⁻¹ g / 2 falls below `tol`. The precision at
    the MAP is Λ_prior + β² Bᵀ diag(p̂(1 − p̂)) B.
    """
    prior = prior_precision(nodes)
    B = difference_matrix(nodes, a_P, b_P)
    y = np.asarray(y_P, dtype=np.float64)
    if np.ndim(beta) != 0:
        beta = np.asarray(beta, dtype=np.float64)
        if beta.shape != y.shape or not (np.isfinite(beta).all() and (beta > 0).all()):
            raise ValueError(f"beta per comparison must be {y.shape} finite positive slopes, got shape {beta.shape}")
    v, H, w_P, steps, lin = _newton_bt(prior, B, y, beta, solver, tol, max_steps)
    return Posterior(nodes, v, H, w_P, newton_steps=steps, method=solver, _solver=lin)


def prior_draws(nodes: PrefixNodes, K: int, rng: np.random.Generator) -> np.ndarray:
    """`v_KxF`: K draws of the node values from the prior (θ_u ~ N(0, var_u), v = cumulative sums)."""
    theta_KxF = rng.normal(size=(K, nodes.F)) * np.sqrt(nodes.var_F)[None, :]
    v_KxF = theta_KxF.copy()
    # Parents come before children in depth order: one pass per depth adds the parent's value.
    for j in np.unique(nodes.depth_F):
        m = (nodes.depth_F == j) & (nodes.parent_F >= 0)
        v_KxF[:, m] += v_KxF[:, nodes.parent_F[m]]
    return v_KxF


def anchored_gaussian_ensemble(
    post: Posterior, a_P: np.ndarray, b_P: np.ndarray, d_P: np.ndarray, K: int, rng: np.random.Generator
) -> np.ndarray:
    """`v_KxF`: K randomised-prior members for Gaussian observations (Osband et al. 2018, "randomized
    prior functions"): member k is the MAP with its prior centred on its own draw v0_k and its targets
    perturbed by the observation noise, d + ε_k with ε_k ~ N(0, 1/w). In this linear-Gaussian model
    each member is an exact posterior sample, so the ensemble variance converges to the posterior's.
    """
    nodes = post.nodes
    B = difference_matrix(nodes, a_P, b_P)
    prior = prior_precision(nodes)
    v0_KxF = prior_draws(nodes, K, rng)
    eps_KxP = rng.normal(size=(K, len(a_P))) / np.sqrt(post.w_P)[None, :]
    rhs_FxK = prior @ v0_KxF.T + B.T @ (post.w_P[:, None] * (np.asarray(d_P)[:, None] + eps_KxP.T))
    return post.solver.solve(rhs_FxK).T  # the same precision for every member: one factorisation


def anchored_bt_ensemble(
    nodes: PrefixNodes,
    a_P: np.ndarray,
    b_P: np.ndarray,
    y_P: np.ndarray,
    beta: float,
    K: int,
    rng: np.random.Generator,
    bootstrap: bool = True,
    solver: str = "auto",
) -> np.ndarray:
    """`v_KxF`: K randomised-prior members for Bradley–Terry labels, each the MAP of its own anchored
    prior and (with `bootstrap`) Poisson(1) bootstrap weights on the comparisons — approximate
    posterior samples, measured against the Laplace posterior (not exact: the likelihood is not
    Gaussian)."""
    prior = prior_precision(nodes)
    B = difference_matrix(nodes, a_P, b_P)
    v0_KxF = prior_draws(nodes, K, rng)
    y = np.asarray(y_P, dtype=np.float64)
    out = np.empty((K, nodes.F))
    for k in range(K):
        c_P = rng.poisson(1.0, size=len(a_P)).astype(np.float64) if bootstrap else None
        out[k] = _newton_bt(prior, B, y, beta, solver, 1e-12, 50, v0_KxF[k], c_P)[0]
    return out


def ensemble_pair_variance(v_KxF: np.ndarray, nodes: PrefixNodes, pairs_Qx2: np.ndarray) -> np.ndarray:
    """Across-member variance (ddof = 1) of r(a) − r(b) for item-index pairs."""
    pairs_Qx2 = np.asarray(pairs_Qx2).reshape(-1, 2)
    d_KxQ = v_KxF[:, nodes.item_N[pairs_Qx2[:, 0]]] - v_KxF[:, nodes.item_N[pairs_Qx2[:, 1]]]
    return d_KxQ.var(axis=0, ddof=1)


# --------------------------------------------------------------------------------------------
# The learner on a data set, and its evaluation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExactLearner:
    """The exact learner fitted on comparisons (items 0..P−1 = a, P..2P−1 = b), plus query items
    (indices from 2P) whose prefixes join the system so their posterior is exact."""

    posterior: Posterior
    P: int

    def query_index(self, q_N: np.ndarray) -> np.ndarray:
        return 2 * self.P + np.asarray(q_N)


def fit(
    space: PrefixTreeSpace,
    a: Responses,
    b: Responses,
    y_P: np.ndarray,
    *,
    queries: Responses | None = None,
    likelihood: Literal["bradley_terry", "gaussian"] = "bradley_terry",
    beta: float | np.ndarray = 1.0,
    xi2: float | np.ndarray = 4.0,
    compress: bool = True,
    solver: str = "auto",
) -> ExactLearner:
    """Fits the exact learner: `y_P` are BT labels (likelihood="bradley_terry", slope `beta`: one, or
    one per comparison) or observed gaps."""
    P = len(a)
    items = Responses.concat([a, b] + ([queries] if queries is not None and len(queries) else []))
    nodes = prefix_nodes(space, items, compress)
    a_P, b_P = np.arange(P), P + np.arange(P)
    if likelihood == "bradley_terry":
        post = laplace_posterior(nodes, a_P, b_P, y_P, beta, solver)
    elif likelihood == "gaussian":
        post = gaussian_posterior(nodes, a_P, b_P, y_P, xi2, solver)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected bradley_terry or gaussian")
    return ExactLearner(post, P)


def gold_accuracy(mu_Q: np.ndarray, gold_gap_Q: np.ndarray, tie: float = 1e-12) -> float:
    """Fraction of pairs whose posterior-mean sign matches the gold sign (gold ties left out).

    A pair the data say nothing about has μ = 0 exactly (its nodes never meet a comparison): like a
    score tie in `rm.metrics.pairwise_accuracy`, it counts 1/2 (a coin flip), not as an error.
    """
    ok = gold_gap_Q != 0
    hit_Q = np.where(np.abs(mu_Q) <= tie, 0.5, np.sign(mu_Q) == np.sign(gold_gap_Q))
    return float(np.mean(hit_Q[ok])) if ok.any() else float("nan")


def expected_accuracy(mu_Q: np.ndarray, var_Q: np.ndarray) -> float:
    """The accuracy the posterior itself predicts: mean Φ(|μ|/σ) (a calibration check of the theory)."""
    sd = np.sqrt(np.maximum(var_Q, 1e-300))
    return float(np.mean(stats.norm.cdf(np.abs(mu_Q) / sd)))
