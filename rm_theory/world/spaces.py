"""Response spaces, gold fields and reference policies (THEORY.md §2).

Two geometries share one interface (`ResponseSpace`):

* `PrefixTreeSpace`: a prompt's responses are the leaves of a V-ary tree of depth L; every node u at
  depth j carries an increment z_u ~ N(0, s_j²) and r*(y) = Σ_j z_{y[:j]}, so two responses whose
  longest common prefix has depth k differ with prior variance Δ(k) = 2 Σ_{j>k} s_j² and the
  structural function is F(V^k) = Δ(k).
* `MetricSpace`: responses are points of the unit cube [0,1]^K; the gold reward is a Gaussian field
  whose variogram is ≈ c·dist^γ, and inductive-bias edges join near neighbours with variance
  c·dist^γ, giving F(M) ∝ M^(−γ/K).

Every random quantity of a space is a counter-based function of (seed, stream, node path): the path
is folded into a 64-bit hash (splitmix64), which is turned into a normal deviate. Nothing is stored
per response, so r* is defined for all V^L responses without a table, and the same node always gets
the same value whichever batch it is evaluated in.

Legend: N responses, L depth, V vocabulary (branching), X prompts, G trees, D cube dimensions, F
features (Fourier), C harm categories.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, Protocol

import numpy as np
from scipy import special

Regime = Literal["polynomial", "logarithmic", "sublogarithmic"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# Independent random streams of one space.
STREAM_REWARD, STREAM_POLICY, STREAM_COST, STREAM_FEATURES = 1, 2, 3, 4


def mix64(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective avalanche hash on uint64 arrays."""
    h = np.asarray(h, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * _M1
        h = h ^ (h >> np.uint64(27))
        h = h * _M2
        return h ^ (h >> np.uint64(31))


def fold(h: np.ndarray, data) -> np.ndarray:
    """Folds integer data into hashes (order-sensitive, like `jax.random.fold_in`)."""
    with np.errstate(over="ignore"):
        d = (np.asarray(data).astype(np.int64).astype(np.uint64) + np.uint64(1)) * _GOLDEN
        return mix64(np.asarray(h, dtype=np.uint64) ^ mix64(d))


def hash_normal(h: np.ndarray) -> np.ndarray:
    """Standard normal deviates from hashes (inverse CDF of the top 53 bits)."""
    u = ((np.asarray(h, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    return special.ndtri(u)


def seed_hash(seed: int, stream: int) -> np.uint64:
    return fold(fold(np.uint64(0x5EED), seed), stream)


def delta_profile(regime: Regime, I: float, alpha: float, L: int, V: int) -> np.ndarray:
    """Δ(k) for k = 0..L: prior variance of r*(y1) − r*(y2) when the common prefix has depth k.

    Pinned to Δ(0) = I and Δ(L) = 0 (THEORY.md §2), with the shape of the requested regime of the
    structural function F(M), M = V^k: polynomial I·M^−α, logarithmic I·(1 + ln M)^−α,
    sub-logarithmic I·(1 + ln(1 + ln M))^−α.
    """
    if I <= 0 or alpha <= 0:
        raise ValueError(f"I and alpha must be positive, got I={I}, alpha={alpha}")
    log_m = np.arange(L + 1) * math.log(V)
    if regime == "polynomial":
        g = np.exp(-alpha * log_m)
    elif regime == "logarithmic":
        g = (1.0 + log_m) ** -alpha
    elif regime == "sublogarithmic":
        g = (1.0 + np.log1p(log_m)) ** -alpha
    else:
        raise ValueError(f"unknown regime {regime!r}; expected polynomial, logarithmic or sublogarithmic")
    return I * (g - g[-1]) / (g[0] - g[-1])


@dataclasses.dataclass(frozen=True)
class Responses:
    """A batch of responses (or prefixes) of one space.

    `data` is `tokens_NxL` (int64, −1 after the response's depth) in the prefix-tree space and
    `x_NxK` (float64 points) in the metric space.
    """

    prompt: np.ndarray
    data: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)

    def take(self, idx) -> Responses:
        return Responses(self.prompt[idx], self.data[idx])

    @staticmethod
    def concat(parts: list[Responses]) -> Responses:
        return Responses(np.concatenate([p.prompt for p in parts]), np.concatenate([p.data for p in parts]))


@dataclasses.dataclass(frozen=True)
class ResponseTrees:
    """T response trees drawn per THEORY.md §2 "Tree data".

    `leaves` holds T·S responses (S = B^D slots per tree, tree-major). `branch_GxL[t, j]` says
    whether tree t branches at the node of depth j.
    """

    leaves: Responses
    tree_G: np.ndarray
    branch_GxL: np.ndarray
    slots: int


@dataclasses.dataclass(frozen=True)
class TreeShape:
    """Shape of sampled response trees: B children at each of D branch points.

    `branch_depths` fixes the depths of the branching nodes (0 = the root); otherwise they are
    drawn per tree, with the root always among them when `root_branching`.
    """

    B: int = 2
    D: int = 3
    branch_depths: tuple[int, ...] | None = None
    root_branching: bool = True


class ResponseSpace(Protocol):
    """What topologies, labels and IBNs need from a geometry."""

    num_prompts: int

    def sample(self, rng: np.random.Generator, prompt_N: np.ndarray, temperature: float | None = None) -> Responses: ...

    def sample_trees(self, rng: np.random.Generator, prompt_G: np.ndarray, shape: TreeShape) -> ResponseTrees: ...

    def truncate(
        self, resp: Responses, rng: np.random.Generator, mask_N: np.ndarray, min_depth_N: np.ndarray | None = None
    ) -> Responses: ...

    def gold_reward(self, resp: Responses) -> np.ndarray: ...

    @property
    def field_variance(self) -> float: ...

    def gold_cost_components(self, resp: Responses, C: int) -> np.ndarray: ...

    def length(self, resp: Responses) -> np.ndarray: ...

    def shared_length(self, a: Responses, b: Responses) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Prefix-tree geometry
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PrefixTreeSpace:
    """V-ary depth-L response trees for `num_prompts` prompts with a Gaussian branching gold field.

    `policy_scale` is the spread of the reference policy's per-node logits (its concentration at
    temperature 1); `temperature` divides the logits when sampling.
    """

    V: int = 4
    L: int = 10
    num_prompts: int = 8
    regime: Regime = "polynomial"
    I: float = 1.0
    alpha: float = 0.5
    temperature: float = 1.0
    policy_scale: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.V < 2 or self.L < 1 or self.num_prompts < 1:
            raise ValueError(f"need V >= 2, L >= 1, num_prompts >= 1; got V={self.V}, L={self.L}, P={self.num_prompts}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @property
    def field_variance(self) -> float:
        """Prior variance of one response's gold reward, Σ_j s_j² = Δ(0)/2."""
        return float(self.delta_k[0] / 2)

    # ---- the field's variances ------------------------------------------------------------
    @property
    def delta_k(self) -> np.ndarray:
        """Δ(k), k = 0..L (F(V^k) = Δ(k))."""
        return delta_profile(self.regime, self.I, self.alpha, self.L, self.V)

    @property
    def s2_L(self) -> np.ndarray:
        """s_j² for depths j = 1..L (index j − 1): Δ(j − 1) − Δ(j) = 2 s_j²."""
        d = self.delta_k
        return (d[:-1] - d[1:]) / 2.0

    @property
    def cum_s2(self) -> np.ndarray:
        """Σ_{i<=j} s_i², j = 0..L: the IB variance between a depth-j node and its root."""
        return np.concatenate([[0.0], np.cumsum(self.s2_L)])

    # ---- node paths -----------------------------------------------------------------------
    def depth(self, resp: Responses) -> np.ndarray:
        return (resp.data >= 0).sum(axis=1)

    def length(self, resp: Responses) -> np.ndarray:
        return self.depth(resp)

    def path_hashes(self, resp: Responses, stream: int) -> np.ndarray:
        """Hash of every prefix of every response, `h_Nx(L+1)` (column j = the depth-j node)."""
        tokens = resp.data
        h = np.empty((len(resp), self.L + 1), dtype=np.uint64)
        h[:, 0] = fold(seed_hash(self.seed, stream), resp.prompt)
        for j in range(self.L):
            # Past a response's depth the hash is irrelevant (masked by callers); folding −1 keeps it defined.
            h[:, j + 1] = fold(h[:, j], tokens[:, j])
        return h

    def node_ids(self, resp: Responses) -> np.ndarray:
        """A unique int64 id for every prefix, `ids_Nx(L+1)`, −1 beyond a response's depth."""
        per_prompt = (self.V ** (self.L + 1) - 1) // (self.V - 1)
        if per_prompt * self.num_prompts >= 2**62:
            raise ValueError("space too large for int64 node ids; reduce V, L or num_prompts")
        offset = np.array([(self.V**j - 1) // (self.V - 1) for j in range(self.L + 1)], dtype=np.int64)
        ids = np.full((len(resp), self.L + 1), -1, dtype=np.int64)
        value = np.zeros(len(resp), dtype=np.int64)
        alive = np.ones(len(resp), dtype=bool)
        base = resp.prompt.astype(np.int64) * per_prompt
        ids[:, 0] = base
        for j in range(self.L):
            t = resp.data[:, j]
            alive &= t >= 0
            value = value * self.V + np.maximum(t, 0)
            ids[:, j + 1] = np.where(alive, base + offset[j + 1] + value, -1)
        return ids

    # ---- gold fields ----------------------------------------------------------------------
    def increments(self, resp: Responses, stream: int = STREAM_REWARD) -> np.ndarray:
        """z of every prefix node, `z_NxL` (column j − 1 = the depth-j node), 0 beyond the depth."""
        h = self.path_hashes(resp, stream)[:, 1:]
        z = hash_normal(h) * np.sqrt(self.s2_L)[None, :]
        return np.where(resp.data >= 0, z, 0.0)

    def gold_reward(self, resp: Responses) -> np.ndarray:
        """r*(y) = Σ_j z_{y[:j]}; an incomplete response (internal node) gets its partial sum."""
        return self.increments(resp).sum(axis=1)

    def gold_cost_components(self, resp: Responses, C: int) -> np.ndarray:
        """C independent unit-scale branching fields (one per harm category), `c_NxC`."""
        out = np.empty((len(resp), C))
        for c in range(C):
            out[:, c] = self.increments(resp, stream=STREAM_COST * 1000 + c).sum(axis=1)
        return out

    # ---- reference policy -----------------------------------------------------------------
    def _logits(self, h_N: np.ndarray) -> np.ndarray:
        """Per-node child logits at temperature 1, `logits_NxV`, a counter-based function of the node."""
        child = np.arange(self.V)
        return self.policy_scale * hash_normal(fold(h_N[:, None], child[None, :]))

    def log_prob(self, resp: Responses, temperature: float | None = None) -> np.ndarray:
        """log π_ref(y | prompt) of complete or incomplete responses (a prefix's marginal)."""
        tau = self.temperature if temperature is None else temperature
        h = self.path_hashes(resp, STREAM_POLICY)
        out = np.zeros(len(resp))
        for j in range(self.L):
            t = resp.data[:, j]
            logp = special.log_softmax(self._logits(h[:, j]) / tau, axis=1)
            out += np.where(t >= 0, np.take_along_axis(logp, np.maximum(t, 0)[:, None], 1)[:, 0], 0.0)
        return out

    def sample(self, rng: np.random.Generator, prompt_N: np.ndarray, temperature: float | None = None) -> Responses:
        """Complete responses from the autoregressive reference policy (Gumbel-max per depth)."""
        tau = self.temperature if temperature is None else temperature
        prompt_N = np.asarray(prompt_N, dtype=np.int64)
        tokens = np.empty((len(prompt_N), self.L), dtype=np.int64)
        h = fold(seed_hash(self.seed, STREAM_POLICY), prompt_N)
        for j in range(self.L):
            g = rng.gumbel(size=(len(prompt_N), self.V))
            tokens[:, j] = np.argmax(self._logits(h) / tau + g, axis=1)
            h = fold(h, tokens[:, j])
        return Responses(prompt_N, tokens)

    def sample_trees(self, rng: np.random.Generator, prompt_G: np.ndarray, shape: TreeShape) -> ResponseTrees:
        """T response trees: B distinct children (Gumbel top-B) at D branch depths, one child elsewhere.

        Every tree has S = B^D leaf slots; slots that share a node so far share its Gumbel noise, so
        they take the same child until the tree branches and they part (THEORY.md §2 "Tree data").
        """
        B, D, L, V = shape.B, shape.D, self.L, self.V
        if B > V or D > L or B < 2 or D < 1:
            raise ValueError(f"tree shape needs 2 <= B <= V and 1 <= D <= L; got B={B}, D={D}, V={V}, L={L}")
        prompt_G = np.asarray(prompt_G, dtype=np.int64)
        T, S = len(prompt_G), B**D
        branch = branch_depth_mask(rng, T, L, shape)
        tokens = np.empty((T, S, L), dtype=np.int64)
        h = np.repeat(fold(seed_hash(self.seed, STREAM_POLICY), prompt_G)[:, None], S, axis=1)
        slot = np.arange(S)
        made = np.zeros(T, dtype=np.int64)  # branch points passed so far, per tree
        for j in range(L):
            group_size = B ** (D - made)  # slots per node at this depth, per tree
            first = (slot[None, :] // group_size[:, None]) * group_size[:, None]
            g = rng.gumbel(size=(T, S, V))
            g = np.take_along_axis(g, first[:, :, None], axis=1)  # one noise draw per node
            scores = self._logits(h.reshape(-1)).reshape(T, S, V) / self.temperature + g
            order = np.argsort(-scores, axis=2)
            rank = np.where(branch[:, j, None], (slot[None, :] // np.maximum(group_size // B, 1)[:, None]) % B, 0)
            tokens[:, :, j] = np.take_along_axis(order, rank[:, :, None], axis=2)[:, :, 0]
            made = made + branch[:, j]
            h = fold(h, tokens[:, :, j])
        leaves = Responses(np.repeat(prompt_G, S), tokens.reshape(T * S, L))
        return ResponseTrees(leaves=leaves, tree_G=np.arange(T), branch_GxL=branch, slots=S)

    def truncate(
        self, resp: Responses, rng: np.random.Generator, mask_N: np.ndarray, min_depth_N: np.ndarray | None = None
    ) -> Responses:
        """Replaces the masked responses by a random proper prefix (an incomplete response).

        Its depth is uniform in [max(1, min_depth), L − 1]; a response that cannot be cut that deep
        stays complete (tree pairs pass their common depth + 1 so the two items stay distinct).
        """
        lo = np.ones(len(resp), dtype=np.int64) if min_depth_N is None else np.maximum(min_depth_N, 1)
        ok = mask_N & (lo <= self.L - 1)
        cut = lo + np.floor(rng.random(len(resp)) * np.maximum(self.L - lo, 1)).astype(np.int64)
        keep = np.arange(self.L)[None, :] < np.where(ok, cut, self.L)[:, None]
        return Responses(resp.prompt, np.where(keep, resp.data, -1))

    def shared_length(self, a: Responses, b: Responses) -> np.ndarray:
        """Depth of the longest common prefix (0 for different prompts or differing first tokens)."""
        same = (a.data == b.data) & (a.data >= 0)
        lcp = np.cumprod(same, axis=1).sum(axis=1)
        return np.where(a.prompt == b.prompt, lcp, 0)

    def sample_with_common_depth(
        self, rng: np.random.Generator, prompt_N: np.ndarray, k: int, temperature: float | None = None
    ) -> tuple[Responses, Responses]:
        """Pairs whose longest common prefix has depth exactly k (k < L): the query strata of §2."""
        if not 0 <= k < self.L:
            raise ValueError(f"common depth must be in [0, L), got {k}")
        tau = self.temperature if temperature is None else temperature
        a = self.sample(rng, prompt_N, tau)
        prefix = a.data[:, :k]
        h = fold(seed_hash(self.seed, STREAM_POLICY), a.prompt)
        for j in range(k):
            h = fold(h, prefix[:, j])
        tokens = np.empty_like(a.data)
        tokens[:, :k] = prefix
        # The (k+1)-th token must differ from a's: the policy conditioned on not repeating it.
        logits = self._logits(h) / tau + rng.gumbel(size=(len(a), self.V))
        logits[np.arange(len(a)), a.data[:, k]] = -np.inf
        tokens[:, k] = np.argmax(logits, axis=1)
        h = fold(h, tokens[:, k])
        for j in range(k + 1, self.L):
            tokens[:, j] = np.argmax(self._logits(h) / tau + rng.gumbel(size=(len(a), self.V)), axis=1)
            h = fold(h, tokens[:, j])
        return a, Responses(a.prompt, tokens)

    # ---- exact enumeration (small spaces) -------------------------------------------------
    def enumerate(self, prompt: int = 0) -> Responses:
        """All V^L complete responses of one prompt, in lexicographic order."""
        if self.V**self.L > 2_000_000:
            raise ValueError("space too large to enumerate")
        idx = np.arange(self.V**self.L)
        tokens = np.stack([(idx // self.V ** (self.L - 1 - j)) % self.V for j in range(self.L)], axis=1)
        return Responses(np.full(len(idx), prompt, dtype=np.int64), tokens.astype(np.int64))


def branch_depth_mask(rng: np.random.Generator, T: int, L: int, shape: TreeShape) -> np.ndarray:
    """`branch_GxL`: which node depths branch, per tree (fixed by the shape or drawn per tree)."""
    out = np.zeros((T, L), dtype=bool)
    if shape.branch_depths is not None:
        d = np.asarray(shape.branch_depths)
        if len(d) != shape.D or len(set(d.tolist())) != shape.D or d.min() < 0 or d.max() >= L:
            raise ValueError(f"branch_depths must be {shape.D} distinct depths in [0, {L}); got {shape.branch_depths}")
        out[:, d] = True
        return out
    # Without root branching, the branch points are drawn below the root.
    fixed = 1 if shape.root_branching else 0
    out[:, 0] = shape.root_branching
    for t in range(T):
        out[t, rng.choice(np.arange(1, L), size=shape.D - fixed, replace=False)] = True
    return out


# --------------------------------------------------------------------------------------------
# Metric geometry
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MetricSpace:
    """Responses as points of [0,1]^K with a Gaussian gold field of variogram ≈ c·dist^γ, the
    inductive-bias edge variance of the IBN (THEORY.md §2 "A second geometry").

    The field is a sum of F random Fourier features per prompt, with log-uniform frequencies
    between `freq_min` and `freq_max` and amplitudes ∝ ρ^(−γ/2): its variogram then scales as
    dist^γ between the two wavelengths (valid for 0 < γ < 2). It is normalised so that the
    variogram at distance 0.1 equals c·0.1^γ. With the default band (0.05 … 5000, 512 features),
    Var[r(x) − r(x+h)] = c·h^γ within 5% for 0.005 ≤ h ≤ 0.3 at γ = 1, and for 0.02 ≤ h ≤ 0.3 at
    γ ∈ [0.5, 1.5] (Monte Carlo over field seeds, tests/test_spaces.py); beyond h ≈ 0.3 the lowest
    frequencies saturate it. The reference policy is a Gaussian blob around a
    prompt-specific mode whose width grows with the temperature (clipped to the cube). Trees are
    clusters of nearby points: a root from the policy, children perturbed at `tree_scale`,
    shrinking by `tree_shrink` per level.
    """

    K: int = 2
    num_prompts: int = 8
    gamma: float = 1.0
    c: float = 1.0
    knn: int = 8
    num_features: int = 512
    freq_min: float = 0.05
    freq_max: float = 5000.0
    temperature: float = 1.0
    policy_width: float = 0.3
    tree_scale: float = 0.15
    tree_shrink: float = 0.5
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.gamma < 2:
            raise ValueError(f"gamma must be in (0, 2) for a valid variogram, got {self.gamma}")

    @property
    def alpha(self) -> float:
        """Exponent of the structural function F(M) ∝ M^(−γ/K)."""
        return self.gamma / self.K

    def length(self, resp: Responses) -> np.ndarray:
        return np.ones(len(resp), dtype=np.int64)

    def shared_length(self, a: Responses, b: Responses) -> np.ndarray:
        return np.zeros(len(a), dtype=np.int64)

    def _features(self, prompt_X: np.ndarray, stream: int):
        """Frequencies `w_PxFxK`, phases `phi_PxF` and amplitudes `a_PxF` of each prompt's field."""
        F, K = self.num_features, self.K
        h = fold(fold(seed_hash(self.seed, stream), prompt_X)[:, None], np.arange(F)[None, :])
        u = lambda salt: (((fold(h, salt) >> np.uint64(11)).astype(np.float64)) + 0.5) / 2.0**53
        radius = np.exp(np.log(self.freq_min) + u(1) * np.log(self.freq_max / self.freq_min))
        direction = np.stack([hash_normal(fold(h, 10 + k)) for k in range(K)], axis=-1)
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        w = 2 * np.pi * radius[..., None] * direction
        phi = 2 * np.pi * u(2)
        amp = radius ** (-self.gamma / 2) * hash_normal(fold(h, 3))
        return w, phi, amp

    def _scale(self) -> float:
        """Normalises the expected variogram E[Var(r(x) − r(x+h))] at |h| = 0.1 to c·0.1^γ."""
        h0 = 0.1
        rng = np.random.default_rng(12345)
        d = rng.normal(size=(64, self.K))
        d = h0 * d / np.linalg.norm(d, axis=1, keepdims=True)
        radius = np.exp(np.linspace(np.log(self.freq_min), np.log(self.freq_max), 512))
        dirs = rng.normal(size=(512, self.K))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        w = 2 * np.pi * radius[:, None] * dirs
        # Random phases make each feature contribute amp²·(1 − cos(w·h)); amp² averages ρ^−γ.
        vario = np.mean(radius[:, None] ** -self.gamma * (1 - np.cos(w @ d.T)))
        return math.sqrt(self.c * h0**self.gamma / (vario * self.num_features))

    @property
    def field_variance(self) -> float:
        """Prior variance of one response's field value, E[r(x)²] = scale²·F·E[ρ^−γ]/2 over the
        log-uniform frequencies ρ (what label scales must use; it is not c/2)."""
        lo, hi, g = self.freq_min, self.freq_max, self.gamma
        mean_rho = (lo**-g - hi**-g) / (g * math.log(hi / lo))
        return self._scale() ** 2 * self.num_features * mean_rho / 2

    def _field(self, resp: Responses, stream: int) -> np.ndarray:
        out = np.empty(len(resp))
        scale = self._scale()
        for p in np.unique(resp.prompt):
            m = resp.prompt == p
            w, phi, amp = self._features(np.array([p]), stream)
            # Random phases: Var[r(x) − r(x+h)] = scale²·Σ amp²·(1 − cos(w·h)), which `_scale` sets to c·h^γ.
            out[m] = scale * np.cos(resp.data[m] @ w[0].T + phi[0]) @ amp[0]
        return out

    def gold_reward(self, resp: Responses) -> np.ndarray:
        return self._field(resp, STREAM_REWARD)

    def gold_cost_components(self, resp: Responses, C: int) -> np.ndarray:
        return np.stack([self._field(resp, STREAM_COST * 1000 + c) for c in range(C)], axis=1)

    def _mode(self, prompt_N: np.ndarray) -> np.ndarray:
        h = fold(seed_hash(self.seed, STREAM_POLICY), prompt_N)
        return np.stack([(fold(h, k) >> np.uint64(11)).astype(np.float64) / 2.0**53 for k in range(self.K)], axis=1)

    def sample(self, rng: np.random.Generator, prompt_N: np.ndarray, temperature: float | None = None) -> Responses:
        tau = self.temperature if temperature is None else temperature
        prompt_N = np.asarray(prompt_N, dtype=np.int64)
        x = self._mode(prompt_N) + self.policy_width * tau * rng.normal(size=(len(prompt_N), self.K))
        return Responses(prompt_N, np.clip(x, 0.0, 1.0))

    def sample_trees(self, rng: np.random.Generator, prompt_G: np.ndarray, shape: TreeShape) -> ResponseTrees:
        B, D = shape.B, shape.D
        prompt_G = np.asarray(prompt_G, dtype=np.int64)
        T, S = len(prompt_G), B**D
        x = self.sample(rng, prompt_G).data[:, None, :]  # T x 1 x K roots
        for level in range(D):
            step = self.tree_scale * self.tree_shrink**level
            x = np.repeat(x, B, axis=1) + step * rng.normal(size=(T, x.shape[1] * B, self.K))
        leaves = Responses(np.repeat(prompt_G, S), np.clip(x.reshape(T * S, self.K), 0.0, 1.0))
        return ResponseTrees(leaves=leaves, tree_G=np.arange(T), branch_GxL=np.ones((T, D), bool), slots=S)

    def truncate(
        self, resp: Responses, rng: np.random.Generator, mask_N: np.ndarray, min_depth_N: np.ndarray | None = None
    ) -> Responses:
        # A point has no prefixes: incomplete responses do not exist in this geometry.
        return resp
