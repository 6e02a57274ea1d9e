"""Policies on tabulated prefix-tree spaces: Best-of-N, the exact KL-regularised optimum, and
PPO-style clipped policy gradient (THEORY.md §1 "Macro level": RLHF as an autoencoder whose last
stage is entropy-regularised RL; paper §5 Best-of-N and PPO).

A small `PrefixTreeSpace` (V^L leaves per prompt up to ~1e5) is tabulated once in numpy: the
reference policy's child logits at every internal node and the gold reward of every leaf. JAX then
works on arrays only, so the jitted optimisation never returns to the host.

* `TabularPolicy` holds one logit vector per internal node, initialised at π_ref (the "SFT" model);
  it samples autoregressively (`jax.random.categorical` per depth inside `lax.scan`).
* The KL-regularised optimum π*(y) ∝ π_ref(y)·exp(r(y)/β) is computed by enumeration, and also as
  per-node logits by the soft-value recursion Q(u, c) = logit_ref(u, c) + V(uc), V(leaf) = r/β.
* PPO: per-token clipped ratio, sequence reward r_RM(y) − β·log(π_old/π_ref)(y), advantage against
  an exact baseline (E_π of that reward, by enumeration), a learned per-prompt baseline, or the
  leave-one-out mean of the batch. One run is a pure function of (tables, key): `nnx.split` once,
  `lax.scan` over steps inside `jax.jit`, `vmap` over seeds / reward tables.
* Every step logs the exact gold reward E_π[r*] and KL(π‖π_ref): the over-optimisation curve.

Legend: P prompts, V branching, L depth, N internal nodes per prompt ((V^L − 1)/(V − 1)),
Y leaves per prompt (V^L), B samples per prompt, S steps, K seeds or tables, Q comparison items.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import special

from rm_theory.spaces import STREAM_POLICY, PrefixTreeSpace, Responses

Arrays = dict[str, jax.Array]


# --------------------------------------------------------------------------------------------
# Tabulation (numpy, once)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TreeTables:
    """A tabulated prefix-tree space: node indexing, reference logits, gold reward of every leaf.

    Node of depth j with prefix value v (the first j tokens read as a base-V number) has index
    offset_j + v, offset_j = (V^j − 1)/(V − 1); leaves are in `PrefixTreeSpace.enumerate` order.
    """

    V: int
    L: int
    P: int
    offset_L: np.ndarray  # offset of each depth 0..L−1
    ref_logits_PxNxV: np.ndarray  # reference child logits divided by the temperature
    leaf_tokens_YxL: np.ndarray
    leaf_nodes_YxL: np.ndarray  # internal node visited at each depth on the way to each leaf
    gold_PxY: np.ndarray

    @property
    def Y(self) -> int:
        return self.V**self.L

    @property
    def N(self) -> int:
        return (self.V**self.L - 1) // (self.V - 1)

    def ref_logp(self) -> np.ndarray:
        """log π_ref of every leaf, `logp_PxY` (float64)."""
        return leaf_logp_np(self.ref_logits_PxNxV, self)


def tabulate(space: PrefixTreeSpace, prompts: np.ndarray | None = None) -> TreeTables:
    """Tables of `prompts` (default: all) of a small prefix-tree space."""
    V, L = space.V, space.L
    if V**L > 200_000:
        raise ValueError(f"V^L = {V**L} leaves per prompt is too many to tabulate")
    prompts = np.arange(space.num_prompts) if prompts is None else np.asarray(prompts)
    P, Y = len(prompts), V**L
    offset_L = np.array([(V**j - 1) // (V - 1) for j in range(L)], dtype=np.int64)
    logits = []
    for j in range(L):  # every depth-j node of every prompt, as a prefix padded with −1
        idx = np.arange(V**j)
        pre = (
            np.stack([(idx // V ** (j - 1 - i)) % V for i in range(j)], axis=1)
            if j
            else np.zeros((1, 0), int)
        )
        data = np.full((P * V**j, L), -1, dtype=np.int64)
        data[:, :j] = np.tile(pre, (P, 1))
        h = space.path_hashes(Responses(np.repeat(prompts, V**j), data), STREAM_POLICY)[:, j]
        logits.append((space._logits(h) / space.temperature).reshape(P, V**j, V))
    leaves = space.enumerate(0).data
    value_YxL = np.zeros((Y, L), dtype=np.int64)
    for j in range(1, L):
        value_YxL[:, j] = value_YxL[:, j - 1] * V + leaves[:, j - 1]
    gold = np.stack([space.gold_reward(Responses(np.full(Y, p), leaves)) for p in prompts])
    return TreeTables(
        V,
        L,
        P,
        offset_L,
        np.concatenate(logits, axis=1).astype(np.float32),
        leaves.astype(np.int32),
        (offset_L[None, :] + value_YxL).astype(np.int32),
        gold,
    )


def leaf_logp_np(logits_PxNxV: np.ndarray, tt: TreeTables) -> np.ndarray:
    lsm = special.log_softmax(np.asarray(logits_PxNxV, np.float64), axis=-1)
    return lsm[:, tt.leaf_nodes_YxL, tt.leaf_tokens_YxL].sum(-1)


def item_nodes(tokens_QxL: np.ndarray, tt: TreeTables) -> tuple[np.ndarray, np.ndarray]:
    """Internal node of each present token of complete or incomplete responses, and the mask."""
    mask = tokens_QxL >= 0
    t = np.maximum(tokens_QxL, 0)
    value = np.zeros(len(t), dtype=np.int64)
    nodes = np.zeros(t.shape, dtype=np.int64)
    for j in range(tt.L):
        nodes[:, j] = tt.offset_L[j] + value
        value = value * tt.V + t[:, j]
    return nodes.astype(np.int32), mask


def leaf_index(tokens_QxL: np.ndarray, V: int) -> np.ndarray:
    """Position of complete responses in `enumerate` order."""
    L = tokens_QxL.shape[1]
    return (tokens_QxL * V ** np.arange(L - 1, -1, -1)).sum(1)


# --------------------------------------------------------------------------------------------
# Exact quantities by enumeration
# --------------------------------------------------------------------------------------------


def optimal_logp(ref_logp_PxY: np.ndarray, r_PxY: np.ndarray, beta: float) -> np.ndarray:
    """log π*(y) for π* ∝ π_ref·exp(r/β): the maximiser of E_π[r] − β·KL(π‖π_ref)."""
    z = np.asarray(ref_logp_PxY, np.float64) + np.asarray(r_PxY, np.float64) / beta
    return z - special.logsumexp(z, axis=1, keepdims=True)


def optimal_logits(tt: TreeTables, r_PxY: np.ndarray, beta: float) -> np.ndarray:
    """Per-node logits of π* (soft-value recursion from the leaves up), `logits_PxNxV`."""
    V, L = tt.V, tt.L
    ref = special.log_softmax(np.asarray(tt.ref_logits_PxNxV, np.float64), axis=-1)
    out = np.empty_like(ref)
    value = np.asarray(r_PxY, np.float64) / beta  # soft values of the depth-(j+1) nodes
    for j in range(L - 1, -1, -1):
        lo, n = tt.offset_L[j], V**j
        q = ref[:, lo : lo + n] + value.reshape(tt.P, n, V)
        out[:, lo : lo + n] = q
        value = special.logsumexp(q, axis=-1)
    return out


def kl(logp_PxY: np.ndarray, logq_PxY: np.ndarray) -> np.ndarray:
    """KL(p‖q) per prompt."""
    return np.sum(np.exp(logp_PxY) * (logp_PxY - logq_PxY), axis=1)


def best_of_n(
    ref_logp_PxY: np.ndarray, score_PxY: np.ndarray, gold_PxY: np.ndarray, n: int
) -> np.ndarray:
    """Exact E[r*(argmax of the score among n draws from π_ref)] per prompt.

    With leaves in ascending score order and F the CDF of π_ref, the kept leaf is i with
    probability F_i^n − F_{i−1}^n (score ties have probability 0 for continuous scores).
    """
    order = np.argsort(score_PxY, axis=1, kind="stable")
    p = np.take_along_axis(np.exp(ref_logp_PxY), order, axis=1)
    F = np.minimum(np.cumsum(p, axis=1), 1.0)
    F_prev = np.concatenate([np.zeros((len(F), 1)), F[:, :-1]], axis=1)
    w = F**n - F_prev**n
    return np.sum(w * np.take_along_axis(gold_PxY, order, axis=1), axis=1) / np.sum(w, axis=1)


def best_of_n_sampled(
    rng: np.random.Generator,
    ref_logp_PxY: np.ndarray,
    score_PxY: np.ndarray,
    gold_PxY: np.ndarray,
    n: int,
    trials: int,
) -> np.ndarray:
    """Monte-Carlo Best-of-N (checks `best_of_n`): mean gold reward of the kept leaf per prompt."""
    out = np.empty(len(score_PxY))
    for p in range(len(score_PxY)):
        probs = np.exp(ref_logp_PxY[p] - special.logsumexp(ref_logp_PxY[p]))
        y = rng.choice(len(probs), size=(trials, n), p=probs)
        kept = np.take_along_axis(y, np.argmax(score_PxY[p][y], axis=1)[:, None], 1)[:, 0]
        out[p] = gold_PxY[p][kept].mean()
    return out


def win_rates(
    logp1_PxY: np.ndarray, logp2_PxY: np.ndarray, gold_PxY: np.ndarray
) -> dict[str, np.ndarray]:
    """Exact per-prompt P(win), P(lose), P(tie) of Y1 ~ π1 against Y2 ~ π2 judged by r*.

    The limit of comparing infinitely many sample pairs per prompt; ties are equal gold rewards
    (the same leaf, in practice).
    """
    out = {"win": [], "lose": [], "tie": []}
    for p in range(len(gold_PxY)):
        g = gold_PxY[p]
        order = np.argsort(g, kind="stable")
        gs, p1, p2 = g[order], np.exp(logp1_PxY[p][order]), np.exp(logp2_PxY[p][order])
        lo = np.searchsorted(gs, gs, side="left")
        hi = np.searchsorted(gs, gs, side="right")
        C2 = np.concatenate([[0.0], np.cumsum(p2)])
        below, equal = C2[lo], C2[hi] - C2[lo]
        out["win"].append(np.sum(p1 * below))
        out["tie"].append(np.sum(p1 * equal))
        out["lose"].append(max(0.0, 1.0 - out["win"][-1] - out["tie"][-1]))
    return {k: np.asarray(v) for k, v in out.items()}


def win_rates_sampled(
    rng: np.random.Generator,
    logp1_PxY: np.ndarray,
    logp2_PxY: np.ndarray,
    gold_PxY: np.ndarray,
    samples: int,
) -> dict[str, np.ndarray]:
    """Win/lose/tie frequencies of `samples` sample pairs per prompt (a judge that sees samples)."""
    out = {"win": [], "lose": [], "tie": []}
    for p in range(len(gold_PxY)):
        draw = lambda lp: rng.choice(len(lp), size=samples, p=np.exp(lp - special.logsumexp(lp)))
        g1, g2 = gold_PxY[p][draw(logp1_PxY[p])], gold_PxY[p][draw(logp2_PxY[p])]
        out["win"].append(np.mean(g1 > g2))
        out["lose"].append(np.mean(g1 < g2))
        out["tie"].append(np.mean(g1 == g2))
    return {k: np.asarray(v) for k, v in out.items()}


def accuracy(
    logp_PxY: np.ndarray, ref_logp_PxY: np.ndarray, gold_PxY: np.ndarray, ref_acc: float = 0.36
) -> np.ndarray:
    """P_π(r* above the per-prompt threshold that π_ref passes with probability `ref_acc`).

    A stand-in for GSM-8K accuracy: "correct" is a gold reward in π_ref's top `ref_acc` mass.
    """
    out = np.empty(len(gold_PxY))
    for p in range(len(gold_PxY)):
        order = np.argsort(gold_PxY[p])[::-1]
        mass = np.cumsum(np.exp(ref_logp_PxY[p][order]))
        correct = order[: int(np.searchsorted(mass, ref_acc)) + 1]
        out[p] = np.exp(logp_PxY[p][correct]).sum()
    return out


# --------------------------------------------------------------------------------------------
# The tabular policy (Flax NNX)
# --------------------------------------------------------------------------------------------


class TabularPolicy(nnx.Module):
    """Autoregressive policy with one logit vector per internal node of every prompt."""

    def __init__(self, init_logits_PxNxV: jax.Array):
        self.logits = nnx.Param(jnp.asarray(init_logits_PxNxV, jnp.float32))


@dataclasses.dataclass(frozen=True)
class JaxTables:
    """The device arrays a jitted policy program needs (a pytree; V and L are static)."""

    offset_L: jax.Array
    ref_lsm_PxNxV: jax.Array
    gold_PxY: jax.Array
    ref_logp_PxY: jax.Array
    V: int = dataclasses.field(metadata={"static": True}, default=2)
    L: int = dataclasses.field(metadata={"static": True}, default=1)


jax.tree_util.register_dataclass(
    JaxTables,
    data_fields=["offset_L", "ref_lsm_PxNxV", "gold_PxY", "ref_logp_PxY"],
    meta_fields=["V", "L"],
)


def to_jax(tt: TreeTables) -> JaxTables:
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    lsm = special.log_softmax(tt.ref_logits_PxNxV.astype(np.float64), axis=-1)
    return JaxTables(
        jnp.asarray(tt.offset_L, jnp.int32),
        f32(lsm),
        f32(tt.gold_PxY),
        f32(tt.ref_logp()),
        tt.V,
        tt.L,
    )


def leaf_logp(logits_PxNxV: jax.Array, jt: JaxTables) -> jax.Array:
    """log π of every leaf, `logp_PxY`, depth by depth (static slices, no gathers)."""
    lsm = jax.nn.log_softmax(logits_PxNxV, axis=-1)
    P, V = lsm.shape[0], jt.V
    lp = jnp.zeros((P, 1))
    for j in range(jt.L):
        lo = (V**j - 1) // (V - 1)
        lp = (lp[:, :, None] + lsm[:, lo : lo + V**j]).reshape(P, -1)
    return lp


def sample(
    logits_PxNxV: jax.Array, jt: JaxTables, key: jax.Array, B: int
) -> tuple[jax.Array, jax.Array]:
    """B responses per prompt, token by token: `nodes_PxBxL` (visited nodes) and `tokens_PxBxL`."""
    P, V, L = logits_PxNxV.shape[0], jt.V, jt.L

    def depth(value_PxB, xs):
        j, k = xs
        node_PxB = jt.offset_L[j] + value_PxB
        logit_PxBxV = jnp.take_along_axis(logits_PxNxV, node_PxB[..., None], axis=1)
        t_PxB = jax.random.categorical(k, logit_PxBxV, axis=-1)
        return value_PxB * V + t_PxB, (node_PxB, t_PxB)

    keys = jax.random.split(key, L)
    _, (nodes, tokens) = jax.lax.scan(
        depth, jnp.zeros((P, B), jnp.int32), (jnp.arange(L), keys), unroll=True
    )
    return jnp.moveaxis(nodes, 0, -1), jnp.moveaxis(tokens, 0, -1)


def token_logp(
    logits_PxNxV: jax.Array, nodes_PxBxL: jax.Array, tokens_PxBxL: jax.Array
) -> jax.Array:
    """log π(t_j | node_j) of every sampled token (normalised only at the visited nodes)."""
    P = logits_PxNxV.shape[0]
    rows_PxBxLxV = logits_PxNxV[jnp.arange(P)[:, None, None], nodes_PxBxL]
    lsm = jax.nn.log_softmax(rows_PxBxLxV, axis=-1)
    return jnp.take_along_axis(lsm, tokens_PxBxL[..., None], axis=-1)[..., 0]


def leaf_of(tokens_PxBxL: jax.Array, V: int) -> jax.Array:
    L = tokens_PxBxL.shape[-1]
    return jnp.sum(tokens_PxBxL * (V ** jnp.arange(L - 1, -1, -1)), axis=-1)


# --------------------------------------------------------------------------------------------
# PPO-style KL-regularised policy optimisation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    beta: float = 0.1  # β_KL: the KL coefficient (π* ∝ π_ref·exp(r/β))
    steps: int = 200
    batch: int = 32  # samples per prompt per step
    epochs: int = 2  # clipped-surrogate updates per batch
    clip: float = 0.2
    lr: float = 0.05
    baseline: str = "exact"  # exact | learned | loo
    baseline_lr: float = 0.1  # step of the learned per-prompt baseline
    log_every: int = 10  # exact metrics (gold, RM reward, KL) every this many steps


def ppo_loss(
    model: TabularPolicy,
    nodes: jax.Array,
    tokens: jax.Array,
    lp_old: jax.Array,
    adv_PxB: jax.Array,
    clip: float,
) -> jax.Array:
    """Per-token clipped surrogate with a sequence-level advantage (γ = λ = 1)."""
    ratio = jnp.exp(token_logp(model.logits[...], nodes, tokens) - lp_old)
    a = adv_PxB[..., None]
    surr = jnp.minimum(ratio * a, jnp.clip(ratio, 1 - clip, 1 + clip) * a)
    return -jnp.mean(jnp.sum(surr, axis=-1))


def exact_metrics(logits_PxNxV: jax.Array, jt: JaxTables, r_PxY: jax.Array) -> Arrays:
    lp = leaf_logp(logits_PxNxV, jt)
    p = jnp.exp(lp)
    return {
        "gold": jnp.mean(jnp.sum(p * jt.gold_PxY, 1)),
        "rm": jnp.mean(jnp.sum(p * r_PxY, 1)),
        "kl": jnp.mean(jnp.sum(p * (lp - jt.ref_logp_PxY), 1)),
    }


def rollout(model: TabularPolicy, jt: JaxTables, key: jax.Array, B: int) -> Arrays:
    """A batch from the current policy with its (frozen) token log-probs and the sequence KL."""
    logits = jax.lax.stop_gradient(model.logits[...])
    nodes, tokens = sample(logits, jt, key, B)
    lp_old = token_logp(logits, nodes, tokens)
    lp_ref = jt.ref_lsm_PxNxV[jnp.arange(logits.shape[0])[:, None, None], nodes, tokens]
    return {
        "nodes": nodes,
        "tokens": tokens,
        "lp_old": lp_old,
        "leaf": leaf_of(tokens, jt.V),
        "kl_PxB": jnp.sum(lp_old - lp_ref, -1),
    }


def advantage(R_PxB: jax.Array, exact_P: jax.Array, learned_P: jax.Array, kind: str) -> jax.Array:
    if kind == "exact":
        return R_PxB - exact_P[:, None]
    if kind == "learned":
        return R_PxB - learned_P[:, None]
    if kind == "loo":  # leave-one-out mean of the other samples of the prompt
        B = R_PxB.shape[1]
        return R_PxB - (R_PxB.sum(1, keepdims=True) - R_PxB) / (B - 1)
    raise ValueError(f"unknown baseline {kind!r}; expected exact, learned or loo")


def ppo_step(
    model: TabularPolicy,
    opt: nnx.Optimizer,
    jt: JaxTables,
    cfg: PPOConfig,
    r_PxY: jax.Array,
    base_P: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """One PPO step in place (rollout, advantages, `epochs` clipped updates); new baseline out."""
    b = rollout(model, jt, key, cfg.batch)
    R_PxB = jnp.take_along_axis(r_PxY, b["leaf"], axis=1) - cfg.beta * b["kl_PxB"]
    if cfg.baseline == "exact":  # E_π[r − β log(π/π_ref)] per prompt, by enumeration
        lp = leaf_logp(jax.lax.stop_gradient(model.logits[...]), jt)
        exact_P = jnp.sum(jnp.exp(lp) * (r_PxY - cfg.beta * (lp - jt.ref_logp_PxY)), 1)
    else:
        exact_P = base_P
    adv = advantage(R_PxB, exact_P, base_P, cfg.baseline)
    for _ in range(cfg.epochs):
        grads = nnx.grad(ppo_loss)(model, b["nodes"], b["tokens"], b["lp_old"], adv, cfg.clip)
        opt.update(model, grads)
    return base_P + cfg.baseline_lr * (R_PxB.mean(1) - base_P)


def make_ppo_run(graphdef: nnx.GraphDef, jt: JaxTables, cfg: PPOConfig) -> Callable:
    """run(state, r_PxY, key) -> (state, metrics): `cfg.steps` fused PPO steps against r_PxY.

    Steps run in chunks of `log_every` (an inner `lax.scan`); the exact metrics are taken at
    step 0 and after every chunk, so `metrics[k]` has S/log_every + 1 entries. Not jitted, so
    callers can `jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))` over seeds or reward tables.
    """
    if cfg.steps % cfg.log_every:
        raise ValueError(f"steps ({cfg.steps}) must be a multiple of log_every ({cfg.log_every})")

    def run(state: nnx.State, r_PxY: jax.Array, key: jax.Array):
        def step(carry, t):
            state, base_P = carry
            model, opt = nnx.merge(graphdef, state)
            base_P = ppo_step(model, opt, jt, cfg, r_PxY, base_P, jax.random.fold_in(key, t))
            return (nnx.state((model, opt)), base_P), None

        def chunk(carry, c):
            carry, _ = jax.lax.scan(step, carry, c * cfg.log_every + jnp.arange(cfg.log_every))
            return carry, exact_metrics(nnx.merge(graphdef, carry[0])[0].logits[...], jt, r_PxY)

        m0 = exact_metrics(nnx.merge(graphdef, state)[0].logits[...], jt, r_PxY)
        carry = (state, jnp.zeros(r_PxY.shape[0]))
        (state, _), m = jax.lax.scan(chunk, carry, jnp.arange(cfg.steps // cfg.log_every))
        return state, {k: jnp.concatenate([m0[k][None], v]) for k, v in m.items()}

    return run


def init_policy(tt: TreeTables, lr: float) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, state) of a tabular policy at π_ref and its Adam optimiser."""
    model = TabularPolicy(tt.ref_logits_PxNxV)
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    return nnx.split((model, opt))


def policy_logits(graphdef: nnx.GraphDef, state: nnx.State) -> jax.Array:
    model, _ = nnx.merge(graphdef, state)
    return model.logits[...]


def optimise(
    tt: TreeTables, r_KxPxY: np.ndarray, cfg: PPOConfig, key: jax.Array
) -> tuple[np.ndarray, dict]:
    """PPO against K reward tables at once (vmapped, one compiled program).

    Returns the final per-leaf log-probs `logp_KxPxY` (float64) and the exact metric traces
    (`gold`, `rm`, `kl`: K x (S/log_every + 1) arrays, at steps 0, log_every, …, S).
    """
    jt = to_jax(tt)
    graphdef, state = init_policy(tt, cfg.lr)
    run = make_ppo_run(graphdef, jt, cfg)
    K = len(r_KxPxY)
    fn = jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))
    state_K, metrics = fn(state, jnp.asarray(r_KxPxY, jnp.float32), jax.random.split(key, K))
    logits_K = jax.vmap(lambda s: policy_logits(graphdef, s))(state_K)
    logp = np.stack([leaf_logp_np(np.asarray(lg), tt) for lg in logits_K])
    return logp, {k: np.asarray(v) for k, v in metrics.items()}
