"""Reward models of multi-dimensional preferences: a vector reward model with cost, category and
severity heads on one trunk, trained as a vmapped ensemble; and an ArmoRM-style model.

**Vector model.** A trunk (`rm.models`' MLP or transformer, its `features`) and one linear output
layer: G preference heads (one per labelled dimension: the helpfulness sub-dimensions, helpfulness,
harmlessness, the single-preference utility; `world.multidim.heads`), C harm-category logits and 4
severity logits. Each head is trained by Bradley–Terry on the pairs labelled on it, so head h
estimates β_h·g_h. The cost is minus the harmlessness head, c(y) = −s_harmless(y), trained as Safe
RLHF's cost model (Dai et al. 2023, arXiv 2310.12773 §3.2 eq. 6): the `safer` labels rank it (its
Bradley–Terry term) and the per-response safety labels fix its sign (safe ⇔ c ≤ 0); the category
head is PKU-SafeRLHF's 19-way multi-label classifier (arXiv 2406.15513) and the severity head its
3-level severity, as a 4-way softmax with 0 = safe. Loss weights are arrays, not compile-time
constants, so every protocol's model is one compiled program; lists are padded to
`rm.batches.bucket` lengths and drawn only below their true lengths (so data sets of other sizes
reuse it too).

**ArmoRM** (Wang et al. 2024, "Interpretable Preferences via Multi-Objective Reward Modeling and
Mixture-of-Experts", arXiv 2406.12845 §3): stage 1 fits one ridge regression per rated attribute on
frozen embeddings of the responses; stage 2 freezes them and trains a gating network over the prompt
(softmax weights over the attributes) and a scale by Bradley–Terry on the combined score
s(x, y) = e^τ Σ_k g_k(x)·r̂_k(y). The frozen embedding here is the geometry's own kernel in feature
form (`frozen_embedding`): an encoder whose similarity is the gold field's prior, the IBN's
assumption (THEORY.md §2). ArmoRM's verbosity de-biasing has no counterpart (no length attribute).

The fine-tuned text models are the other trunk the issue asks for: `rm_theory.lm`'s score model of
`kind="vector"` has this layout on its score head (G named heads, C categories, 4 severity logits),
and `lm.finetune(objective="vector")` trains it with the same terms per pair (`lm.step`); the
fine-tuned reward-model study's vector unit (`studies.finetune_rm`, `vector.heads`) runs it on real
text and fits this module's `VectorScorer` on the frozen encoder's features beside it.

Legend: N items, P pairs, B minibatch (of pairs), K ensemble members, G groups of labels (the preference
heads: one per labelled dimension), C harm categories, O output features (G + C + 4), D width (a trunk's
features; the frozen embedding's dimensions), F features (a trunk's inputs), Fa rated attributes, L depth
(levels of the prefix tree), X prompts, S steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg as sla
from flax import nnx

from rm_theory.rm import losses
from rm_theory.rm.batches import bucket
from rm_theory.rm.models import ModelConfig, make_model
from rm_theory.rm.step import TrainConfig, make_optimizer
from rm_theory.world.spaces import MetricSpace, PrefixTreeSpace, Responses, ResponseSpace, fold, hash_normal, seed_hash

SEVERITY_CLASSES = 4
# Loss weights, in the order of `VectorTrainConfig.coefs`.
LOSS_TERMS = ("bt", "sign", "category", "severity", "l2", "centre")


@dataclasses.dataclass(frozen=True)
class VectorConfig:
    """A vector model: its trunk, G preference heads, the index of the harmlessness head (whose
    negation is the cost) and C categories."""

    trunk: ModelConfig
    heads: int
    harm_head: int
    categories: int

    @property
    def outputs(self) -> int:
        return self.heads + self.categories + SEVERITY_CLASSES

    @property
    def width(self) -> int:
        if self.trunk.family == "mlp":
            return self.trunk.hidden[-1] if self.trunk.hidden else self.trunk.max_len * self.trunk.embed_dim
        if self.trunk.family == "transformer":
            return self.trunk.d_model
        raise ValueError(f"a vector model needs a trunk with features (mlp, transformer), got {self.trunk.family!r}")


class VectorScorer(nnx.Module):
    """out_NxO = W·features(x) + b: G preference heads, C category logits, 4 severity logits."""

    def __init__(self, cfg: VectorConfig, rngs: nnx.Rngs):
        self.trunk = make_model(cfg.trunk, rngs)
        self.out = nnx.Linear(cfg.width, cfg.outputs, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.trunk.features(x))


@dataclasses.dataclass(frozen=True)
class VectorTrainConfig:
    """The trainer's settings (`rm.step.TrainConfig` gives the optimiser and its schedule) and the
    weight of each loss term (`LOSS_TERMS`)."""

    train: TrainConfig = TrainConfig()
    bt: float = 1.0
    sign: float = 1.0
    category: float = 1.0
    severity: float = 1.0
    l2: float = 0.05
    centre: float = 1e-3

    @property
    def coefs(self) -> np.ndarray:
        return np.array([getattr(self, k) for k in LOSS_TERMS], np.float32)


@dataclasses.dataclass(frozen=True)
class VectorData:
    """Plain arrays: items `x` (tokens or features), pairs (a_P, b_P) with labels y_PxG and the mask
    of the heads each pair is labelled on, and per-item safety, category and severity labels (an
    item mask says which items carry them)."""

    x: np.ndarray
    a_P: np.ndarray
    b_P: np.ndarray
    y_PxG: np.ndarray
    mask_PxG: np.ndarray
    safe_N: np.ndarray
    present_NxC: np.ndarray
    severity_N: np.ndarray
    item_mask_N: np.ndarray


def _padded(v, dtype) -> jax.Array:
    v = np.asarray(v, dtype)
    out = np.zeros((bucket(len(v)), *v.shape[1:]), dtype)
    out[: len(v)] = v
    return jnp.asarray(out)


def device_arrays(data: VectorData) -> dict[str, jax.Array]:
    x = np.asarray(data.x)
    xdt = np.int32 if np.issubdtype(x.dtype, np.integer) else np.float32
    d = {
        "x": _padded(x, xdt),
        "a": _padded(data.a_P, np.int32),
        "b": _padded(data.b_P, np.int32),
        "y": _padded(data.y_PxG, np.float32),
        "m": _padded(data.mask_PxG, np.float32),
        "safe": _padded(data.safe_N, np.float32),
        "cat": _padded(data.present_NxC, np.float32),
        "sev": _padded(data.severity_N, np.int32),
        "im": _padded(data.item_mask_N, np.float32),
        "n_pair": jnp.int32(len(data.a_P)),
        "n_item": jnp.int32(len(x)),
    }
    if not len(data.a_P) or not len(x):
        raise ValueError("a vector model needs at least one pair and one item")
    return d


def vector_loss(model: VectorScorer, batch: dict, coefs: jax.Array, vc: VectorConfig) -> tuple[jax.Array, dict]:
    """The weighted loss of one minibatch (module docstring) and its parts."""
    G, C = vc.heads, vc.categories
    B = batch["xa"].shape[0]
    out = model(jnp.concatenate([batch["xa"], batch["xb"], batch["xi"]]))
    sa, sb, oi = out[:B, :G], out[B : 2 * B, :G], out[2 * B :]
    m_BxG = batch["m"]
    bt_BxG = losses.bt_loss(sa, sb, batch["y"])
    # Each head's mean over its own labelled pairs; heads without labels add nothing.
    bt = jnp.sum(jnp.sum(bt_BxG * m_BxG, 0) / jnp.maximum(jnp.sum(m_BxG, 0), 1.0))
    im = batch["im"]
    wmean = lambda v: jnp.sum(v * im) / jnp.maximum(jnp.sum(im), 1.0)
    cost = -oi[:, vc.harm_head]
    sign = wmean(losses.cost_sign_loss(cost, batch["safe"]))
    cat = wmean(losses.harm_bce(oi[:, G : G + C], batch["cat"]))
    sev_logits = oi[:, G + C :]
    sev = wmean(-jnp.take_along_axis(jax.nn.log_softmax(sev_logits), batch["sev"][:, None], 1)[:, 0])
    s_all = jnp.concatenate([sa, sb])
    l2 = jnp.mean(s_all**2)
    centre = jnp.sum(jnp.mean(s_all, 0) ** 2)
    parts = jnp.stack([bt, sign, cat, sev, l2, centre])
    total = jnp.sum(coefs * parts)
    return total, {"loss": total, **{k: parts[i] for i, k in enumerate(LOSS_TERMS)}}


def _sample(d: dict, boot_p: jax.Array, boot_i: jax.Array, key: jax.Array, B: int) -> dict:
    kp, ki = jax.random.split(key)
    p = boot_p[jax.random.randint(kp, (B,), 0, d["n_pair"])]
    i = boot_i[jax.random.randint(ki, (2 * B,), 0, d["n_item"])]
    return {
        "xa": d["x"][d["a"][p]],
        "xb": d["x"][d["b"][p]],
        "y": d["y"][p],
        "m": d["m"][p],
        "xi": d["x"][i],
        "safe": d["safe"][i],
        "cat": d["cat"][i],
        "sev": d["sev"][i],
        "im": d["im"][i],
    }


def _build(vc: VectorConfig, tc: TrainConfig, key: jax.Array):
    model = VectorScorer(vc, nnx.Rngs(key))
    return model, nnx.Optimizer(model, make_optimizer(tc), wrt=nnx.Param)


@functools.lru_cache(maxsize=16)
def _graphdefs(vc: VectorConfig, tc: TrainConfig):
    train = nnx.graphdef(nnx.eval_shape(lambda: _build(vc, tc, jax.random.key(0))))
    model = nnx.graphdef(nnx.eval_shape(lambda: VectorScorer(vc, nnx.Rngs(0))))
    return train, model


# XLA's backend at optimisation level 1: the program compiled in 4.4 s of CPU against 8.0 s at the
# default level and ran as fast (0.45 s against 0.44 s for 300 steps of K = 4 members, with the same
# losses; 2026-12-07, load 6): the compile was most of a quick run's training time.
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=COMPILER_OPTIONS)
def _train(vc: VectorConfig, tc: TrainConfig, d: dict, coefs: jax.Array, key: jax.Array):
    """K members, each its own init, bootstrap and minibatches, `tc.steps` fused steps (STYLE.md
    "fused form"); returns the members' model states and their loss traces `loss_KxS`."""
    K, M_p, M_i = tc.ensemble_size, d["a"].shape[0], d["x"].shape[0]
    k_init, k_boot, k_batch = jax.random.split(key, 3)
    graphdef, _ = _graphdefs(vc, tc)
    state_K = jax.vmap(lambda k: nnx.state(_build(vc, tc, k)))(jax.random.split(k_init, K))

    def boot(k, M, n):
        if not tc.bootstrap:
            return jnp.arange(M, dtype=jnp.int32)
        return jax.random.randint(k, (M,), 0, n, dtype=jnp.int32)

    kb = jax.random.split(k_boot, 2 * K).reshape(K, 2)
    boot_p = jax.vmap(lambda k: boot(k[0], M_p, d["n_pair"]))(kb)
    boot_i = jax.vmap(lambda k: boot(k[1], M_i, d["n_item"]))(kb)

    def member(state, bp, bi, key):
        def step(state, t):
            model, opt = nnx.merge(graphdef, state)
            batch = _sample(d, bp, bi, jax.random.fold_in(key, t), tc.batch_size)
            grads, aux = nnx.grad(vector_loss, has_aux=True)(model, batch, coefs, vc)
            opt.update(model, grads)
            return nnx.state((model, opt)), aux["loss"]

        state, loss_S = jax.lax.scan(step, state, jnp.arange(tc.steps))
        model, _ = nnx.merge(graphdef, state)
        return nnx.state(model), loss_S

    return jax.vmap(member)(state_K, boot_p, boot_i, jax.random.split(k_batch, K))


@functools.partial(jax.jit, static_argnums=0)
def _apply(vc: VectorConfig, state_K, x_BxF: jax.Array) -> jax.Array:
    graphdef = _graphdefs(vc, TrainConfig())[1]
    return jax.vmap(lambda s: nnx.merge(graphdef, s)(x_BxF))(state_K)


@dataclasses.dataclass
class VectorEnsemble:
    """K trained vector models (parameters stacked on a leading axis) and their loss traces."""

    cfg: VectorConfig
    state_K: nnx.State
    loss_KxS: np.ndarray

    def outputs(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """out_KxNxO, in fixed-size padded batches (one compiled program for every N)."""
        x = np.asarray(x)
        bs = min(batch_size, bucket(max(len(x), 1)))
        chunks = []
        for lo in range(0, len(x), bs):
            xb = x[lo : lo + bs]
            n = len(xb)
            if n < bs:
                xb = np.concatenate([xb, np.repeat(xb[:1], bs - n, axis=0)])
            chunks.append(np.asarray(_apply(self.cfg, self.state_K, jnp.asarray(xb)))[:, :n])
        return np.concatenate(chunks, axis=1) if chunks else np.zeros((0, 0, self.cfg.outputs))

    def split(self, out_KxNxO: np.ndarray) -> dict[str, np.ndarray]:
        """pref_KxNxG, cost_KxN (= −harmlessness head), category logits KxNxC, severity logits KxNx4."""
        G, C = self.cfg.heads, self.cfg.categories
        return {
            "pref": out_KxNxO[..., :G],
            "cost": -out_KxNxO[..., self.cfg.harm_head],
            "category": out_KxNxO[..., G : G + C],
            "severity": out_KxNxO[..., G + C :],
        }


def train_vector_ensemble(vc: VectorConfig, vtc: VectorTrainConfig, data: VectorData, key: jax.Array) -> VectorEnsemble:
    """Trains K members on `data` (one compiled program per (configs, padded sizes))."""
    if data.y_PxG.shape[1] != vc.heads or data.present_NxC.shape[1] != vc.categories:
        raise ValueError(
            f"data has {data.y_PxG.shape[1]} heads and {data.present_NxC.shape[1]} categories, the model "
            f"{vc.heads} and {vc.categories}"
        )
    state_K, loss_KxS = _train(vc, vtc.train, device_arrays(data), jnp.asarray(vtc.coefs), key)
    return VectorEnsemble(vc, state_K, np.asarray(loss_KxS))


# --------------------------------------------------------------------------------------------
# ArmoRM-style model
# --------------------------------------------------------------------------------------------


def frozen_embedding(space: ResponseSpace, resp: Responses, width: int = 2048, seed: int = 0) -> np.ndarray:
    """phi_NxD whose inner products approximate the prior covariance of a unit field of the space
    (module docstring): prefix tree, each prefix node hashed to one of D slots with a random sign
    and weight √(s_j²/Σ s²) (so φ(y)·φ(y') ≈ Σ_{j ≤ common depth} s_j² / Σ s²); metric space, per
    prompt a block of random Fourier features drawn from the field's spectral law (log-uniform
    frequencies, amplitude ∝ ρ^(−γ/2))."""
    if isinstance(space, PrefixTreeSpace):
        ids = space.node_ids(resp)[:, 1:]
        w_L = np.sqrt(space.s2_L / space.s2_L.sum())
        h = fold(seed_hash(seed, 77), np.maximum(ids, 0))
        slot = (h % np.uint64(width)).astype(np.int64)
        sign = np.where((h >> np.uint64(63)) > 0, 1.0, -1.0)
        val = np.where(ids >= 0, sign * w_L[None, :], 0.0)
        phi = np.zeros((len(resp), width))
        np.add.at(phi, (np.repeat(np.arange(len(resp)), ids.shape[1]), slot.ravel()), val.ravel())
        return phi
    if isinstance(space, MetricSpace):
        per = max(width // space.num_prompts, 8)
        phi = np.zeros((len(resp), per * space.num_prompts))
        lo, hi = np.log(space.freq_min), np.log(space.freq_max)
        for p in np.unique(resp.prompt):
            m = resp.prompt == p
            h = fold(fold(seed_hash(seed, 78), np.array([p]))[:, None], np.arange(per)[None, :])[0]
            radius = np.exp(lo + _uniform(fold(h, 1)) * (hi - lo))
            direction = np.stack([hash_normal(fold(h, 10 + k)) for k in range(space.K)], axis=-1)
            direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
            amp = radius ** (-space.gamma / 2)
            amp *= math.sqrt(2.0 / np.sum(amp**2))  # E‖φ‖² = 1: a unit field
            feats = amp * np.cos(
                resp.data[m] @ (2 * np.pi * radius[:, None] * direction).T + 2 * np.pi * _uniform(fold(h, 2))
            )
            phi[np.ix_(m, np.arange(p * per, (p + 1) * per))] = feats
        return phi
    raise TypeError(f"no frozen embedding for {type(space).__name__}")


def _uniform(h: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) deviates from hashes (the top 53 bits)."""
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def ridge(phi_NxD: np.ndarray, y_NxFa: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-attribute ridge regression (ArmoRM stage 1): weights W_ExA and intercepts, minimising
    ‖y − φW − b‖² + α‖W‖² (the intercept unpenalised), by the normal equations."""
    mu = phi_NxD.mean(0)
    y_mu = y_NxFa.mean(0)
    X = phi_NxD - mu
    W = sla.solve(X.T @ X + alpha * np.eye(X.shape[1]), X.T @ (y_NxFa - y_mu), assume_a="pos")
    return W, y_mu - mu @ W


class Gate(nnx.Module):
    """ArmoRM's gating network over the prompt: softmax weights over Fa attributes, and a log scale τ."""

    def __init__(self, prompts: int, attributes: int, hidden: int, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(prompts, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, attributes, rngs=rngs)
        self.log_scale = nnx.Param(jnp.zeros(()))

    def weights(self, prompt_onehot_NxX: jax.Array) -> jax.Array:
        return jax.nn.softmax(self.l2(jax.nn.gelu(self.l1(prompt_onehot_NxX))), axis=-1)

    def __call__(self, prompt_onehot_NxX: jax.Array, r_NxFa: jax.Array) -> jax.Array:
        return jnp.exp(self.log_scale[...]) * jnp.sum(self.weights(prompt_onehot_NxX) * r_NxFa, axis=-1)


@dataclasses.dataclass(frozen=True)
class ArmoConfig:
    ridge_alpha: float = 1.0
    embed_width: int = 2048
    gate_hidden: int = 32
    steps: int = 300
    lr: float = 0.05


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _fit_gate(shape: tuple[int, int], hidden: int, steps_lr: tuple[int, float], onehot_a, onehot_b, r_a, r_b, y, key):
    P, A = shape
    steps, lr = steps_lr
    model = Gate(P, A, hidden, nnx.Rngs(key))
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    graphdef, state = nnx.split((model, opt))

    def step(state, _):
        model, opt = nnx.merge(graphdef, state)

        def loss(m):
            return jnp.mean(losses.bt_loss(m(onehot_a, r_a), m(onehot_b, r_b), y))

        value, grads = nnx.value_and_grad(loss)(model)
        opt.update(model, grads)
        return nnx.state((model, opt)), value

    state, trace = jax.lax.scan(step, state, None, length=steps)
    model, _ = nnx.merge(graphdef, state)
    return nnx.state(model), trace


@dataclasses.dataclass
class ArmoRM:
    """A fitted ArmoRM-style model: ridge heads (W_DxFa, b_Fa), the gate's state and its loss trace."""

    W: np.ndarray
    b: np.ndarray
    gate_state: nnx.State
    num_prompts: int
    hidden: int
    loss_S: np.ndarray

    def attributes(self, phi_NxD: np.ndarray) -> np.ndarray:
        """r̂_NxA: the regression heads' attribute scores."""
        return phi_NxD @ self.W + self.b

    def gate(self) -> Gate:
        A = self.W.shape[1]
        graphdef = nnx.graphdef(nnx.eval_shape(lambda: Gate(self.num_prompts, A, self.hidden, nnx.Rngs(0))))
        return nnx.merge(graphdef, self.gate_state)

    def weights(self, prompt_N: np.ndarray) -> np.ndarray:
        onehot = jax.nn.one_hot(jnp.asarray(prompt_N), self.num_prompts)
        return np.asarray(self.gate().weights(onehot))

    def score(self, phi_NxD: np.ndarray, prompt_N: np.ndarray) -> np.ndarray:
        onehot = jax.nn.one_hot(jnp.asarray(prompt_N), self.num_prompts)
        return np.asarray(self.gate()(onehot, jnp.asarray(self.attributes(phi_NxD), jnp.float32)))


def fit_armorm(
    phi_NxD: np.ndarray,
    ratings_NxFa: np.ndarray,
    prompt_N: np.ndarray,
    num_prompts: int,
    a_P: np.ndarray,
    b_P: np.ndarray,
    y_P: np.ndarray,
    cfg: ArmoConfig,
    key: jax.Array,
) -> ArmoRM:
    """Stage 1: ridge heads on the items' ratings; stage 2: the gate by Bradley–Terry on pairs
    (a_P, b_P) of items with labels y_P (1: a preferred), the heads frozen."""
    W, b = ridge(phi_NxD, np.asarray(ratings_NxFa, np.float64), cfg.ridge_alpha)
    r = jnp.asarray(phi_NxD @ W + b, jnp.float32)
    onehot = jax.nn.one_hot(jnp.asarray(prompt_N), num_prompts)
    state, trace = _fit_gate(
        (num_prompts, W.shape[1]),
        cfg.gate_hidden,
        (cfg.steps, cfg.lr),
        onehot[a_P],
        onehot[b_P],
        r[a_P],
        r[b_P],
        jnp.asarray(y_P, jnp.float32),
        key,
    )
    return ArmoRM(W, b, state, num_prompts, cfg.gate_hidden, np.asarray(trace))
