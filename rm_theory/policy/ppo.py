"""PPO-style clipped policy gradient on a tabular policy (THEORY.md §1: the last stage of RLHF is
entropy-regularised RL; paper §5 PPO).

Per-token clipped ratio, sequence reward r_RM(y) − β·log(π_old/π_ref)(y), advantage against an exact
baseline (E_π of that reward, by enumeration), a learned per-prompt baseline, or the leave-one-out
mean of the batch. One run is a pure function of (tables, key): `nnx.split` once, `lax.scan` over
steps inside `jax.jit`, `vmap` over seeds / reward tables. Every step logs the exact gold reward
E_π[r*] and KL(π‖π_ref): the over-optimisation curve.

Legend: X prompts, N nodes (internal, of each prompt's tree), V vocabulary (branching), L depth, Y
responses (leaves of a prompt), B samples drawn per prompt, S steps, K runs (seeds or reward tables).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from rm_theory.policy.tables import (
    Arrays,
    JaxTables,
    TabularPolicy,
    TreeTables,
    leaf_logp,
    leaf_logp_np,
    leaf_of,
    sample,
    to_jax,
    token_logp,
)


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
    adv_XxB: jax.Array,
    clip: float,
) -> jax.Array:
    """Per-token clipped surrogate with a sequence-level advantage (γ = λ = 1)."""
    ratio = jnp.exp(token_logp(model.logits[...], nodes, tokens) - lp_old)
    a = adv_XxB[..., None]
    surr = jnp.minimum(ratio * a, jnp.clip(ratio, 1 - clip, 1 + clip) * a)
    return -jnp.mean(jnp.sum(surr, axis=-1))


def exact_metrics(logits_XxNxV: jax.Array, jt: JaxTables, r_XxY: jax.Array) -> Arrays:
    lp = leaf_logp(logits_XxNxV, jt)
    p = jnp.exp(lp)
    return {
        "gold": jnp.mean(jnp.sum(p * jt.gold_XxY, 1)),
        "rm": jnp.mean(jnp.sum(p * r_XxY, 1)),
        "kl": jnp.mean(jnp.sum(p * (lp - jt.ref_logp_XxY), 1)),
    }


def rollout(model: TabularPolicy, jt: JaxTables, key: jax.Array, B: int) -> Arrays:
    """A batch from the current policy with its (frozen) token log-probs and the sequence KL."""
    logits = jax.lax.stop_gradient(model.logits[...])
    nodes, tokens = sample(logits, jt, key, B)
    lp_old = token_logp(logits, nodes, tokens)
    lp_ref = jt.ref_lsm_XxNxV[jnp.arange(logits.shape[0])[:, None, None], nodes, tokens]
    return {
        "nodes": nodes,
        "tokens": tokens,
        "lp_old": lp_old,
        "leaf": leaf_of(tokens, jt.V),
        "kl_XxB": jnp.sum(lp_old - lp_ref, -1),
    }


def advantage(R_PxB: jax.Array, exact_X: jax.Array, learned_X: jax.Array, kind: str) -> jax.Array:
    if kind == "exact":
        return R_PxB - exact_X[:, None]
    if kind == "learned":
        return R_PxB - learned_X[:, None]
    if kind == "loo":  # leave-one-out mean of the other samples of the prompt
        B = R_PxB.shape[1]
        return R_PxB - (R_PxB.sum(1, keepdims=True) - R_PxB) / (B - 1)
    raise ValueError(f"unknown baseline {kind!r}; expected exact, learned or loo")


def ppo_step(
    model: TabularPolicy,
    opt: nnx.Optimizer,
    jt: JaxTables,
    cfg: PPOConfig,
    r_XxY: jax.Array,
    base_X: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """One PPO step in place (rollout, advantages, `epochs` clipped updates); new baseline out."""
    b = rollout(model, jt, key, cfg.batch)
    R_PxB = jnp.take_along_axis(r_XxY, b["leaf"], axis=1) - cfg.beta * b["kl_XxB"]
    if cfg.baseline == "exact":  # E_π[r − β log(π/π_ref)] per prompt, by enumeration
        lp = leaf_logp(jax.lax.stop_gradient(model.logits[...]), jt)
        exact_X = jnp.sum(jnp.exp(lp) * (r_XxY - cfg.beta * (lp - jt.ref_logp_XxY)), 1)
    else:
        exact_X = base_X
    adv = advantage(R_PxB, exact_X, base_X, cfg.baseline)
    for _ in range(cfg.epochs):
        grads = nnx.grad(ppo_loss)(model, b["nodes"], b["tokens"], b["lp_old"], adv, cfg.clip)
        opt.update(model, grads)
    return base_X + cfg.baseline_lr * (R_PxB.mean(1) - base_X)


def make_ppo_run(graphdef: nnx.GraphDef, cfg: PPOConfig) -> Callable:
    """run(state, jt, r_XxY, key) -> (state, metrics): `cfg.steps` fused PPO steps against r_XxY.

    Steps run in chunks of `log_every` (an inner `lax.scan`); the exact metrics are taken at
    step 0 and after every chunk, so `metrics[k]` has S/log_every + 1 entries. Not jitted, so
    callers can `jax.jit(jax.vmap(run, in_axes=(None, None, 0, 0)))` over seeds or reward tables.
    The tables are an argument, not constants of the program: one compile serves every world of
    the same shape.
    """
    if cfg.steps % cfg.log_every:
        raise ValueError(f"steps ({cfg.steps}) must be a multiple of log_every ({cfg.log_every})")

    def run(state: nnx.State, jt: JaxTables, r_XxY: jax.Array, key: jax.Array):
        def step(carry, t):
            state, base_X = carry
            model, opt = nnx.merge(graphdef, state)
            base_X = ppo_step(model, opt, jt, cfg, r_XxY, base_X, jax.random.fold_in(key, t))
            return (nnx.state((model, opt)), base_X), None

        def chunk(carry, c):
            carry, _ = jax.lax.scan(step, carry, c * cfg.log_every + jnp.arange(cfg.log_every))
            return carry, exact_metrics(nnx.merge(graphdef, carry[0])[0].logits[...], jt, r_XxY)

        m0 = exact_metrics(nnx.merge(graphdef, state)[0].logits[...], jt, r_XxY)
        carry = (state, jnp.zeros(r_XxY.shape[0]))
        (state, _), m = jax.lax.scan(chunk, carry, jnp.arange(cfg.steps // cfg.log_every))
        return state, {k: jnp.concatenate([m0[k][None], v]) for k, v in m.items()}

    return run


def init_policy(tt: TreeTables, lr: float) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, state) of a tabular policy at π_ref and its Adam optimiser."""
    return _split_policy(tt.ref_logits_XxNxV, lr)


def _split_policy(ref_logits_XxNxV: np.ndarray, lr: float) -> tuple[nnx.GraphDef, nnx.State]:
    model = TabularPolicy(ref_logits_XxNxV)
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
    return nnx.split((model, opt))


def policy_logits(graphdef: nnx.GraphDef, state: nnx.State) -> jax.Array:
    model, _ = nnx.merge(graphdef, state)
    return model.logits[...]


@functools.lru_cache(maxsize=16)
def policy_graphdef(shape_XxNxV: tuple[int, ...], lr: float) -> nnx.GraphDef:
    """The graphdef of (policy, Adam) for one table shape and learning rate, built once. Compiled
    programs are keyed on it: each `init_policy` puts a fresh optax object into its own graphdef,
    which would make every call a new program (the states of all of them share one structure)."""
    return _split_policy(np.zeros(shape_XxNxV, np.float32), lr)[0]


@functools.lru_cache(maxsize=16)
def _program(cfg: PPOConfig, shape_XxNxV: tuple[int, ...]) -> Callable:
    run = make_ppo_run(policy_graphdef(shape_XxNxV, cfg.lr), cfg)
    return jax.jit(jax.vmap(run, in_axes=(None, None, 0, 0)))


def optimise(tt: TreeTables, r_KxXxY: np.ndarray, cfg: PPOConfig, key: jax.Array) -> tuple[np.ndarray, dict]:
    """PPO against K reward tables at once (vmapped, one compiled program).

    Returns the final per-leaf log-probs `logp_KxXxY` (float64) and the exact metric traces
    (`gold`, `rm`, `kl`: K x (S/log_every + 1) arrays, at steps 0, log_every, …, S).
    """
    jt = to_jax(tt)
    graphdef, state = init_policy(tt, cfg.lr)
    fn = _program(cfg, tt.ref_logits_XxNxV.shape)
    state_K, metrics = fn(state, jt, jnp.asarray(r_KxXxY, jnp.float32), jax.random.split(key, len(r_KxXxY)))
    logits_K = jax.vmap(lambda s: policy_logits(graphdef, s))(state_K)
    logp = np.stack([leaf_logp_np(np.asarray(lg), tt) for lg in logits_K])
    return logp, {k: np.asarray(v) for k, v in metrics.items()}
