"""The exact Bayesian reward learner of the metric geometry: a Gaussian process with the field's own
covariance (THEORY.md §2 "A second geometry").

The gold field of `MetricSpace` is r(x) = scale·√2 Σ_f a_f cos(w_f·x + φ_f) with a_f of variance ρ_f^−γ
(ρ_f = |w_f|/2π): with random phases its covariance is the stationary kernel

    k(x, x') = scale² Σ_f ρ_f^−γ cos(w_f·(x − x')),

whose variogram is ≈ c·dist^γ between the feature wavelengths; different prompts are independent.
Observations are Gaussian differences d_p = r(a_p) − r(b_p) + N(0, ξ²). The posterior of the
difference u = e_a − e_b of any two items is exact by one Cholesky factorisation of the P×P matrix
S = D K Dᵀ + ξ² I (D the comparisons' difference operator):

    Var[uᵀ r | d] = uᵀ K u − ‖L⁻¹ D K u‖²,   S = L Lᵀ.

This measures the IBN's k-nearest-neighbour approximation of the prior (inductive-bias edges of
variance c·dist^γ) against the exact posterior variance on small sets.

Legend: N items, Np items of one prompt, P comparisons, Q query pairs, F Fourier features per prompt, D
cube dimensions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import linalg

from rm_theory.world.spaces import STREAM_REWARD, MetricSpace, Responses


def field_features(space: MetricSpace, items: Responses) -> np.ndarray:
    """`phi_NxG`: a feature map with k(x, x') = φ(x)·φ(x') (G = 2F per prompt, zero off the item's prompt)."""
    prompts = np.unique(items.prompt)
    F = space.num_features
    scale = space._scale()  # the field's own normalisation (THEORY.md §2)
    out = np.zeros((len(items), 2 * F * len(prompts)))
    for i, p in enumerate(prompts):
        m = items.prompt == p
        w_FxD = space._features(np.array([p]), STREAM_REWARD)[0][0]
        rho_F = np.linalg.norm(w_FxD, axis=1) / (2 * np.pi)
        sd_F = scale * rho_F ** (-space.gamma / 2)
        z_NpxF = items.data[m] @ w_FxD.T
        out[np.ix_(m, np.arange(2 * F * i, 2 * F * (i + 1)))] = np.concatenate(
            [sd_F * np.cos(z_NpxF), sd_F * np.sin(z_NpxF)], axis=1
        )
    return out


def kernel(space: MetricSpace, items: Responses) -> np.ndarray:
    """`k_NxN`: the field's covariance between items (0 across prompts)."""
    phi = field_features(space, items)
    return phi @ phi.T


@dataclasses.dataclass
class GPPosterior:
    """Exact GP posterior of the items' rewards given Gaussian difference observations."""

    k_NxN: np.ndarray
    kd_NxP: np.ndarray  # K Dᵀ
    chol_PxP: np.ndarray  # lower Cholesky factor of D K Dᵀ + ξ² I
    alpha_P: np.ndarray  # S⁻¹ d

    def pair_mean(self, pairs_Qx2: np.ndarray) -> np.ndarray:
        m_N = self.kd_NxP @ self.alpha_P
        return m_N[pairs_Qx2[:, 0]] - m_N[pairs_Qx2[:, 1]]

    def pair_variance(self, pairs_Qx2: np.ndarray) -> np.ndarray:
        a, b = pairs_Qx2[:, 0], pairs_Qx2[:, 1]
        k = self.k_NxN
        prior_Q = k[a, a] + k[b, b] - 2 * k[a, b]
        v_PxQ = linalg.solve_triangular(self.chol_PxP, (self.kd_NxP[a] - self.kd_NxP[b]).T, lower=True)
        return np.maximum(prior_Q - np.sum(v_PxQ**2, axis=0), 0.0)


def gp_posterior(
    space: MetricSpace, items: Responses, a_P: np.ndarray, b_P: np.ndarray, d_P: np.ndarray, xi2: float
) -> GPPosterior:
    """The exact posterior (Cholesky of the P×P system; small sets only)."""
    k = kernel(space, items)
    kd = k[:, a_P] - k[:, b_P]
    s = kd[a_P] - kd[b_P] + xi2 * np.eye(len(a_P))
    chol = linalg.cholesky(s, lower=True)
    alpha = linalg.cho_solve((chol, True), np.asarray(d_P, dtype=np.float64))
    return GPPosterior(k, kd, chol, alpha)
