"""Safe RLHF on tabulated spaces: maximise reward subject to E_π[cost] ≤ d by a Lagrangian
(Dai et al. 2023, arXiv 2310.12773, §3.3 eq. 10–11), next to fixed-penalty baselines.

The policy step is the PPO step of `policy.ppo` with the advantage (A_r − λ·A_c)/(1 + λ): A_r from
the KL-penalised reward r_RM − β·log(π/π_ref), A_c from the cost model. λ = exp(log λ) > 0 is
updated from the cost measured on the batch, Ĵ_c, by one of two dual steps (`dual`):

* "log": log λ ← log λ + η·(Ĵ_c − d), a multiplicative (mirror) ascent step on λ: the dual of eq. 10
  ascended in the log parametrisation with the λ factor of the chain rule dropped;
* "safe_rlhf": the step of the Safe RLHF reference trainer, gradient descent on the loss
  −(Ĵ_c − d)·λ with λ = exp(log λ) (eq. 11's dual ascent, parametrised by log λ), which gives
  log λ ← log λ + η·λ·(Ĵ_c − d): the same direction, slower when λ is small.

Either starts after `delay` steps and is clamped to [`lambda_min`, `lambda_max`]. A fixed penalty
is the same program with η = 0, so the Lagrangian run and every fixed-λ baseline are one vmapped,
jitted program.

Legend: X prompts, N nodes (internal, of each prompt's tree), V vocabulary (branching), Y responses
(leaves of a prompt), B samples drawn per prompt, S steps, K runs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rm_theory.policy.ppo import (
    PPOConfig,
    advantage,
    init_policy,
    policy_graphdef,
    policy_logits,
    ppo_loss,
    rollout,
)
from rm_theory.policy.tables import JaxTables, TreeTables, leaf_logp, leaf_logp_np, to_jax

Arrays = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class LagrangeConfig:
    threshold: float = 0.0  # d: the cost budget E_π[c] ≤ d
    lambda_init: float = 1.0
    lambda_lr: float = 0.05  # η of the log-λ ascent (0 = a fixed penalty)
    lambda_max: float | None = None  # clamp; None = no clamp
    lambda_min: float | None = None  # floor: keeps λ from collapsing while the cost is far below d
    delay: int = 0  # steps before λ starts to move
    dual: str = "log"  # log | safe_rlhf: the dual step (module docstring)

    def __post_init__(self):
        if self.dual not in ("log", "safe_rlhf"):
            raise ValueError(f"dual must be 'log' or 'safe_rlhf', got {self.dual!r}")


def safe_metrics(logits: jax.Array, jt: JaxTables, r_XxY, c_XxY, gold_cost_XxY) -> Arrays:
    lp = leaf_logp(logits, jt)
    p = jnp.exp(lp)
    e = lambda t: jnp.mean(jnp.sum(p * t, 1))
    return {
        "gold": e(jt.gold_XxY),
        "gold_cost": e(gold_cost_XxY),
        "rm": e(r_XxY),
        "cost": e(c_XxY),
        "kl": e(lp - jt.ref_logp_XxY),
    }


def make_safe_run(graphdef: nnx.GraphDef, cfg: PPOConfig, lag: LagrangeConfig):
    """run(state, jt, r_XxY, c_XxY, gold_cost_XxY, log_lam0, lam_lr, key) -> (state, metrics).

    Metrics (exact, at step 0 and every `log_every` steps) include `lambda` and the batch cost.
    """
    if cfg.steps % cfg.log_every:
        raise ValueError(f"steps ({cfg.steps}) must be a multiple of log_every ({cfg.log_every})")
    log_max = math.inf if lag.lambda_max is None else math.log(lag.lambda_max)
    log_min = -math.inf if lag.lambda_min is None else math.log(lag.lambda_min)

    def run(state, jt: JaxTables, r_XxY, c_XxY, gold_cost_XxY, log_lam0, lam_lr, key):
        def step(carry, t):
            state, log_lam, base_r, base_c, _ = carry
            model, opt = nnx.merge(graphdef, state)
            b = rollout(model, jt, jax.random.fold_in(key, t), cfg.batch)
            Rr = jnp.take_along_axis(r_XxY, b["leaf"], 1) - cfg.beta * b["kl_XxB"]
            Rc = jnp.take_along_axis(c_XxY, b["leaf"], 1)
            if cfg.baseline == "exact":
                lp = leaf_logp(jax.lax.stop_gradient(model.logits[...]), jt)
                p = jnp.exp(lp)
                ex_r = jnp.sum(p * (r_XxY - cfg.beta * (lp - jt.ref_logp_XxY)), 1)
                ex_c = jnp.sum(p * c_XxY, 1)
            else:
                ex_r, ex_c = base_r, base_c
            lam = jnp.exp(log_lam)
            adv = advantage(Rr, ex_r, base_r, cfg.baseline) - lam * advantage(Rc, ex_c, base_c, cfg.baseline)
            adv = adv / (1 + lam)
            for _ in range(cfg.epochs):
                grads = nnx.grad(ppo_loss)(model, b["nodes"], b["tokens"], b["lp_old"], adv, cfg.clip)
                opt.update(model, grads)
            J_c = jnp.mean(Rc)  # the cost the learner measures: the cost model on its own samples
            gap = J_c - lag.threshold
            step_size = lam_lr if lag.dual == "log" else lam_lr * lam  # d(−gap·λ)/d log λ = −gap·λ
            moved = jnp.clip(log_lam + step_size * gap, log_min, log_max)
            # A fixed penalty (λ-lr = 0) keeps its λ; the clamp applies to Lagrangian runs only.
            log_lam = jnp.where((t >= lag.delay) & (lam_lr > 0), moved, log_lam)
            base_r = base_r + cfg.baseline_lr * (Rr.mean(1) - base_r)
            base_c = base_c + cfg.baseline_lr * (Rc.mean(1) - base_c)
            return (nnx.state((model, opt)), log_lam, base_r, base_c, J_c), None

        def chunk(carry, c):
            carry, _ = jax.lax.scan(step, carry, c * cfg.log_every + jnp.arange(cfg.log_every))
            m = safe_metrics(nnx.merge(graphdef, carry[0])[0].logits[...], jt, r_XxY, c_XxY, gold_cost_XxY)
            return carry, m | {"lambda": jnp.exp(carry[1]), "batch_cost": carry[4]}

        m0 = safe_metrics(nnx.merge(graphdef, state)[0].logits[...], jt, r_XxY, c_XxY, gold_cost_XxY)
        m0 |= {"lambda": jnp.exp(log_lam0), "batch_cost": m0["cost"]}
        P = r_XxY.shape[0]
        carry = (
            state,
            jnp.asarray(log_lam0, jnp.float32),
            jnp.zeros(P),
            jnp.zeros(P),
            jnp.float32(0),
        )
        carry, m = jax.lax.scan(chunk, carry, jnp.arange(cfg.steps // cfg.log_every))
        return carry[0], {k: jnp.concatenate([m0[k][None], v]) for k, v in m.items()}

    return run


@functools.lru_cache(maxsize=16)
def _program(cfg: PPOConfig, lag: LagrangeConfig, shape_XxNxV: tuple[int, ...]) -> Callable:
    run = make_safe_run(policy_graphdef(shape_XxNxV, cfg.lr), cfg, lag)
    return jax.jit(jax.vmap(run, in_axes=(None, None, 0, 0, None, 0, 0, 0)))


def optimise_safe(
    tt: TreeTables,
    r_KxXxY: np.ndarray,
    c_KxXxY: np.ndarray,
    gold_cost_XxY: np.ndarray,
    lambda_init_K: np.ndarray,
    lambda_lr_K: np.ndarray,
    cfg: PPOConfig,
    lag: LagrangeConfig,
    key: jax.Array,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """K constrained runs at once (a Lagrangian run has λ-lr > 0; a fixed penalty has λ-lr = 0).

    Returns the final `logp_KxXxY` and the metric traces (K x (S/log_every + 1)).
    """
    jt = to_jax(tt)
    graphdef, state = init_policy(tt, cfg.lr)
    K = len(r_KxXxY)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    state_K, metrics = _program(cfg, lag, tt.ref_logits_XxNxV.shape)(
        state,
        jt,
        f32(r_KxXxY),
        f32(c_KxXxY),
        f32(gold_cost_XxY),
        f32(np.log(np.maximum(lambda_init_K, 1e-8))),
        f32(lambda_lr_K),
        jax.random.split(key, K),
    )
    logits_K = jax.vmap(lambda s: policy_logits(graphdef, s))(state_K)
    logp = np.stack([leaf_logp_np(np.asarray(lg), tt) for lg in logits_K])
    return logp, {k: np.asarray(v) for k, v in metrics.items()}
