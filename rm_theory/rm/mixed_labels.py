"""Reward and cost models of the prefix-tree world from labels of several kinds, by the exact learner
(`rm.bayes`): each comparison read with its own labeller's slope β_p (humans β_H, an AI judge β_J),
so the learner is the one whose posterior the mixed-label IBN describes (`ibn.mixed_labels`,
docs/ai_labels_theory.md).

A posterior mean is wanted at every leaf (for Best-of-N and the constrained policy), not only at the
data's items. Under the gold field's prior the increments of a node's subtree below the data's trie
are independent of the data and have mean 0, so the posterior mean of any response is that of its
deepest prefix in the trie of the data (`ExactModel.mean`): the learner is fitted on the data's
prefixes alone (uncompressed), and a table of all V^L leaves costs one lookup.

Cost. The gold cost is c* = ρ·r̃* + √(1 − ρ²)·h̃ − offset (`world.labels`), each term a branching field
of node variances s_j²/σ² (σ² the space's `field_variance`), so f = σ·(c* + offset) has the learner's
prior exactly; a "safer" label of slope β_c, P(a safer) = σ(β_c(c*_b − c*_a)), is a Bradley–Terry
label of b over a in f of slope β_c/σ. The cost model is μ_f/σ − offset: the learner knows the
cost's prior mean, as it knows the reward's. Comparisons inform differences only: how harmful a
prompt's responses are overall stays the prior's guess (Safe RLHF's cost model adds a sign term on
per-response safety labels for that, Dai et al. §3.2; this learner has none).

Legend: N responses, P comparisons, F prefix nodes, X prompts, Y responses (leaves of a prompt), L depth (L1:
a response's L + 1 node ids, its prompt root first), K copies computed side by side (draws from the prior), Q query
pairs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rm_theory.rm import bayes
from rm_theory.world.spaces import PrefixTreeSpace, Responses


@dataclasses.dataclass
class ExactModel:
    """The exact learner's posterior mean as a model: `mean(resp)` anywhere in the space, in the
    units of the field it learnt (`scale`, `shift`: value = μ/scale + shift)."""

    space: PrefixTreeSpace
    posterior: bayes.Posterior
    scale: float = 1.0
    shift: float = 0.0

    def mean(self, resp: Responses) -> np.ndarray:
        """Posterior mean of every response: the mean of its deepest prefix in the data's trie (0 at a
        prompt root the data never reached)."""
        ids_NxL1 = self.space.node_ids(resp)[:, 1:]
        node_F = self.posterior.nodes.node_id_F
        if not len(node_F):
            return np.full(len(resp), self.shift)
        pos = np.minimum(np.searchsorted(node_F, ids_NxL1), len(node_F) - 1)
        known = (ids_NxL1 >= 0) & (node_F[pos] == ids_NxL1)
        depth_N = np.cumprod(known, axis=1).sum(axis=1)  # a trie: a known prefix has known ancestors
        deepest = pos[np.arange(len(resp)), np.maximum(depth_N - 1, 0)]
        mu_N = np.where(depth_N > 0, self.posterior.mean_F[deepest], 0.0)
        return mu_N / self.scale + self.shift

    def table(self, leaves_Y: np.ndarray) -> np.ndarray:
        """`v_XxY`: the mean of every leaf (`leaves_Y` the tokens of `enumerate`) of every prompt."""
        X, Y = self.space.num_prompts, len(leaves_Y)
        items = Responses(np.repeat(np.arange(X), Y), np.tile(leaves_Y, (X, 1)))
        return self.mean(items).reshape(X, Y)


def fit_reward(space: PrefixTreeSpace, a: Responses, b: Responses, better_P: np.ndarray, beta_P) -> ExactModel:
    """The reward model: Bradley–Terry labels (1 = a better) of slope `beta_P` (one or per comparison)."""
    fit = bayes.fit(space, a, b, better_P, beta=beta_P, compress=False)
    return ExactModel(space, fit.posterior)


def fit_cost(
    space: PrefixTreeSpace, a: Responses, b: Responses, safer_P: np.ndarray, beta_P, offset: float
) -> ExactModel:
    """The cost model from "safer" labels (1 = a safer) of slope `beta_P` on the gold cost, whose
    prior mean is −`offset` (module docstring)."""
    sigma = float(np.sqrt(space.field_variance))
    fit = bayes.fit(space, b, a, safer_P, beta=np.asarray(beta_P, np.float64) / sigma, compress=False)
    return ExactModel(space, fit.posterior, scale=sigma, shift=-offset)


def fit_gaussian(space: PrefixTreeSpace, a: Responses, b: Responses, d_P: np.ndarray, xi2_P) -> ExactModel:
    """The exact posterior of Gaussian gap readings d_p = r(a) − r(b) + noise of variance ξ²_p (the
    linear model in which the mixed IBN is exact: docs/ai_labels_theory.md §1)."""
    fit = bayes.fit(space, a, b, d_P, likelihood="gaussian", xi2=xi2_P, compress=False)
    return ExactModel(space, fit.posterior)


def prior_readings_error(
    space: PrefixTreeSpace,
    a: Responses,
    b: Responses,
    var_P: np.ndarray,
    bias_P: np.ndarray,
    qa: Responses,
    qb: Responses,
    draws: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The mixed IBN's claim by Monte Carlo (docs/ai_labels_theory.md §1): `draws` fields from the
    prior, each read through the design with Gaussian noise of variance `var_P` and shift `bias_P`;
    the exact posterior mean of every query pair (qa, qb) against the draw's truth. Returns the mean
    squared error `mse_Q` and the frequency of the right sign `acc_Q` (ties 1/2), over the draws.

    The posterior precision does not depend on the readings, so one factorisation serves every draw."""
    P, Q = len(a), len(qa)
    items = Responses.concat([a, b, qa, qb])
    nodes = bayes.prefix_nodes(space, items, compress=False)
    v_KxF = bayes.prior_draws(nodes, draws, rng)
    r_KxN = v_KxF[:, nodes.item_N]
    a_P, b_P = np.arange(P), P + np.arange(P)
    d_KxP = r_KxN[:, a_P] - r_KxN[:, b_P] + np.asarray(bias_P)[None, :]
    d_KxP += rng.normal(size=d_KxP.shape) * np.sqrt(np.asarray(var_P))[None, :]
    post = bayes.gaussian_posterior(nodes, a_P, b_P, d_KxP[0], var_P)
    B = bayes.difference_matrix(nodes, a_P, b_P)
    mean_FxK = post.solver.solve(np.asarray(B.T @ (post.w_P[:, None] * d_KxP.T)))
    qa_Q, qb_Q = nodes.item_N[2 * P + np.arange(Q)], nodes.item_N[2 * P + Q + np.arange(Q)]
    est_KxQ = (mean_FxK[qa_Q] - mean_FxK[qb_Q]).T
    true_KxQ = r_KxN[:, 2 * P + np.arange(Q)] - r_KxN[:, 2 * P + Q + np.arange(Q)]
    hit_KxQ = np.where(np.abs(est_KxQ) <= 1e-12, 0.5, np.sign(est_KxQ) == np.sign(true_KxQ))
    return np.mean((est_KxQ - true_KxQ) ** 2, axis=0), np.mean(hit_KxQ, axis=0)
