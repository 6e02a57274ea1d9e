"""One fine-tuning step of a score model on preference pairs: what it optimises and what it trains
(`train.finetune` runs the steps; `program` fuses them).

Objectives, per pair (a, b), weighted and averaged over a step's pairs (`pair_losses`):

- "reward": −log σ(r_a − r_b − m) for a preferred (Bradley–Terry; InstructGPT's reward model,
  Ouyang et al. 2022, arXiv 2203.02155, §3.5), ties as half a win each way; m = `margin` plus the
  pair's own margin (Llama 2's margin loss, Touvron et al. 2023, arXiv 2307.09288, §3.2.2); plus
  `centre_coef` · (r_a + r_b)² (reward centring, Eisenstein et al. 2023, arXiv 2312.09244), which
  pins the additive constant that Bradley–Terry leaves free.
- "cost": Safe RLHF's cost-model loss (Dai et al. 2023, arXiv 2310.12773, §3.2, eq. 6):
  −log σ(c_unsafer − c_safer) − Σ_side log σ(s·c), s = +1 for an unsafe response and −1 for a
  safe one, so that "safe" ⇔ c ≤ 0 (the sign term of a response whose safety is unknown is left out).
- "vector": a vector reward model, `rm.multidim`'s layout on the score head (out = G preference heads,
  C harm-category logits, 4 severity logits; `ScoreModel.heads`): per pair, the Bradley–Terry term
  (margin and centring as "reward") of each head the pair is labelled on (y NaN elsewhere), and per
  response with the label: the cost sign term on c = −(the harm head) (`harm_head`, as "cost"),
  PKU-SafeRLHF's harm categories (multi-label BCE) and severity (4-way softmax, 0 = safe), weighted
  by `sign_coef`, `category_coef`, `severity_coef`. A pair's loss is the sum of its terms, so a head
  weighs in proportion to the pairs labelled on it (dual-preference data: two terms per pair).

What is trained (`mode`, the optimiser's `wrt` filter, `filters`): "full" (every parameter), "top_k"
(the top `top_layers` layers, a decoder's final norm, and the head), "lora" (`lora.add_lora`
adapters and the head; the backbone frozen), "head" (the head on a frozen backbone). An ensemble of
K members shares the backbone: with "lora" each member has its own adapters and head (K forward
passes, vmapped); otherwise its own head on one backbone pass (`member_logits`; the backbone, when
trained, gets the sum of the members' gradients). Members start from their own draws (the head's
output layer, the adapters' A: `init_members`) and, with `bootstrap`, weight each pair by their own
Poisson(1) draw.

The optimiser (`adamw`): AdamW (decoupled weight decay on matrices only, Loshchilov & Hutter 2019,
arXiv 1711.05101) after global norm clipping, its learning rate an input of each step
(`lr_schedule`: linear warm-up, then cosine or linear decay), so one compiled program serves every
schedule.

Legend: K ensemble members, B batch (the pairs of a microbatch), N texts (both sides of the pairs),
T tokens, H hidden width, O output features (the score and any harm categories; a vector model's G + C + 4),
G groups of labels (a vector model's preference heads), C harm categories.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from rm_theory.common.rng import str_hash
from rm_theory.rm import losses
from rm_theory.rm.multidim import SEVERITY_CLASSES

OBJECTIVES = ("reward", "cost", "vector")
MODES = ("full", "top_k", "lora", "head")
DECAYS = ("cosine", "linear", "constant")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    objective: str = "reward"  # "reward" | "cost" | "vector"
    mode: str = "full"  # "full" | "top_k" | "lora" | "head"
    top_layers: int = 2  # mode "top_k"
    lora_rank: int = 8  # mode "lora" (a model without adapters gets them)
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] | None = None  # None: lora.DEFAULT_TARGETS
    ensemble_size: int = 1
    bootstrap: bool = False  # each member weights each pair by its own Poisson(1) draw
    epochs: int = 1
    max_steps: int = 0  # > 0: stop after this many steps (the schedule is cut, not stretched)
    batch_size: int = 16  # pairs per microbatch
    grad_accum: int = 1  # microbatches per optimiser step
    lr: float = 3e-5
    warmup_frac: float = 0.1  # of the steps, linear from 0
    decay: str = "linear"  # "cosine" | "linear" | "constant", to lr · end_lr_frac at the last step
    end_lr_frac: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # global norm, each member's parameters and the shared ones apart; 0 = off
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    margin: float = 0.0  # reward: added to every pair's own margin
    centre_coef: float = 0.0  # reward: weight of (r_a + r_b)^2
    rank_coef: float = 1.0  # cost: the ranking term
    sign_coef: float = 1.0  # cost, vector: the sign term
    category_coef: float = 1.0  # vector: the harm categories' BCE
    severity_coef: float = 1.0  # vector: the severity's cross-entropy
    buckets: int = 3  # padded lengths (one compile each)
    chunk_steps: int = 8  # steps per compiled scan
    checkpoint_every: int = 0  # steps between checkpoints (at the next chunk end); 0 = at the end only
    eval_every: int = 0  # steps between calls of `eval_fn` (at the next chunk end); 0 = at the end only

    def check(self) -> None:
        """Raises ValueError naming the first field out of range."""
        checks = {
            "objective": self.objective in OBJECTIVES,
            "mode": self.mode in MODES,
            "decay": self.decay in DECAYS,
            "top_layers": self.top_layers >= 1,
            "lora_rank": self.lora_rank >= 1,
            "ensemble_size": self.ensemble_size >= 1,
            "epochs": self.epochs >= 1,
            "max_steps": self.max_steps >= 0,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "warmup_frac": 0 <= self.warmup_frac < 1,
            "end_lr_frac": 0 <= self.end_lr_frac <= 1,
            "weight_decay": self.weight_decay >= 0,
            "clip_norm": self.clip_norm >= 0,
            "buckets": self.buckets >= 1,
            "chunk_steps": self.chunk_steps >= 1,
            "checkpoint_every": self.checkpoint_every >= 0,
            "eval_every": self.eval_every >= 0,
        }
        bad = next((k for k, ok in checks.items() if not ok), None)
        if bad is not None:
            raise ValueError(f"{bad} = {getattr(self, bad)!r}: out of range (see FinetuneConfig)")


def step_config(cfg: FinetuneConfig) -> FinetuneConfig:
    """cfg without the fields that do not change a step's program (the schedule, the sizes of the
    run), so that they never cause a compile."""
    return dataclasses.replace(
        cfg,
        epochs=1,
        max_steps=0,
        lr=1.0,
        warmup_frac=0.0,
        decay="constant",
        end_lr_frac=0.0,
        buckets=1,
        chunk_steps=1,
        checkpoint_every=0,
        eval_every=0,
        bootstrap=False,
        lora_rank=1,
        lora_alpha=1.0,
        lora_targets=None,
    )


def _names(path) -> tuple[str, ...]:
    return tuple(str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path)


def filters(cfg: FinetuneConfig, n_layers: int):
    """(member filter, shared filter): the parameters each member has of its own, and the shared
    ones that are trained (the rest are frozen)."""
    lora = cfg.mode == "lora"

    def member(path, v) -> bool:
        return isinstance(v, nnx.Param) and (path[0] == "head" or (lora and isinstance(v, nnx.LoRAParam)))

    first = n_layers - cfg.top_layers

    def shared(path, v) -> bool:
        if not isinstance(v, nnx.Param) or cfg.mode in ("lora", "head"):
            return False
        if cfg.mode == "full":
            return True
        in_top = path[:2] == ("backbone", "layers") and int(path[2]) >= first
        return in_top or path[:2] == ("backbone", "norm")  # a decoder's final norm sits above the top layer

    return member, shared


def init_members(members, K: int, key: jax.Array, std: float):
    """[K, ...] member parameters. One member keeps the model's own (a loaded or fresh head, new
    adapters); K > 1 members each draw the head's output layer (N(0, std), bias 0, as transformers'
    init) and the adapters' A (He uniform, B = 0, as `nnx.LoRA`) from their own key."""
    if K == 1:
        return jax.tree.map(lambda v: v[None], members)

    def draw(path, x, k):
        names = _names(path)
        sub = jax.random.fold_in(jax.random.fold_in(key, k), str_hash(".".join(names)) % (2**31))
        if "lora_a" in names:
            return jax.nn.initializers.he_uniform()(sub, x.shape, x.dtype)
        if "lora_b" in names:
            return jnp.zeros_like(x)
        if names[0] == "head" and ("score" in names or "out" in names):  # the output layer
            return (jax.random.normal(sub, x.shape) * std).astype(x.dtype) if "kernel" in names else jnp.zeros_like(x)
        return x

    per = [jax.tree_util.tree_map_with_path(lambda p, x, k=k: draw(p, x, k), members) for k in range(K)]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *per)


def member_logits(graphdef, shared, frozen, members_K, ids_NxT, mask_NxT, types_NxT, share_backbone: bool):
    """[K, N, O] logits (O: the score and any harm categories) of every member: one backbone pass
    and K heads (`share_backbone`), or K whole passes (members with adapters of their own)."""
    if share_backbone:
        m0 = jax.tree.map(lambda v: v[0], members_K)  # its head is not read by `pooled`
        x_NxH = nnx.merge(graphdef, shared, frozen, m0).pooled(ids_NxT, mask_NxT, types_NxT)
        return jax.vmap(lambda m: nnx.merge(graphdef, shared, frozen, m).head(x_NxH))(members_K)
    return jax.vmap(lambda m: nnx.merge(graphdef, shared, frozen, m)(ids_NxT, mask_NxT, types_NxT))(members_K)


def pair_losses(r_a_KxB, r_b_KxB, batch: dict, cfg: FinetuneConfig, harm_head: int = -1):
    """(loss, hit, counted) per member and pair: `counted` the labels that rank (0 for a tie; a
    vector pair's labelled heads), `hit` those ranked right (reward: the preferred side higher; cost:
    the safer side lower). "reward" and "cost" take the scores r [K, B], "vector" the outputs [K, B, O]
    and the index of the harm head (−1: none)."""
    y_B = batch["y"]
    if cfg.objective == "vector":
        return _vector_losses(r_a_KxB, r_b_KxB, batch, cfg, harm_head)
    if cfg.objective == "reward":
        m_B = cfg.margin + batch["margin"]
        loss = losses.bt_loss(r_a_KxB, r_b_KxB, y_B, m_B)
        if cfg.centre_coef:
            loss = loss + cfg.centre_coef * losses.pair_centring(r_a_KxB, r_b_KxB)
        hit = ((r_a_KxB > r_b_KxB) == (y_B > 0.5)).astype(jnp.float32)
    else:
        safe_2xB = batch["safe"]
        loss = cfg.rank_coef * losses.cost_rank_loss(r_a_KxB, r_b_KxB, y_B)
        loss = loss + cfg.sign_coef * (_sign(r_a_KxB, safe_2xB[0]) + _sign(r_b_KxB, safe_2xB[1]))
        hit = ((r_a_KxB < r_b_KxB) == (y_B > 0.5)).astype(jnp.float32)
    counted = (y_B != 0.5).astype(jnp.float32) * jnp.ones_like(loss)
    return loss, hit * counted, counted


def _sign(c_KxB, safe_B):
    """The cost sign term of each response whose safety is known (NaN: left out)."""
    return jnp.where(jnp.isfinite(safe_B), losses.cost_sign_loss(c_KxB, jnp.nan_to_num(safe_B)), 0.0)


def _vector_losses(out_a_KxBxO, out_b_KxBxO, batch: dict, cfg: FinetuneConfig, harm_head: int):
    y_BxG = batch["y"]
    G = y_BxG.shape[-1]
    C = out_a_KxBxO.shape[-1] - G - SEVERITY_CLASSES
    known_BxG = jnp.isfinite(y_BxG)
    y = jnp.where(known_BxG, y_BxG, 0.5)
    a_KxBxG, b_KxBxG = out_a_KxBxO[..., :G], out_b_KxBxO[..., :G]
    m = (cfg.margin + batch["margin"])[:, None]
    per_head = losses.bt_loss(a_KxBxG, b_KxBxG, y, m)
    if cfg.centre_coef:
        per_head = per_head + cfg.centre_coef * losses.pair_centring(a_KxBxG, b_KxBxG)
    loss = jnp.sum(jnp.where(known_BxG, per_head, 0.0), -1)
    for side, out in enumerate((out_a_KxBxO, out_b_KxBxO)):
        if harm_head >= 0:
            loss = loss + cfg.sign_coef * _sign(-out[..., harm_head], batch["safe"][side])
        if C > 0:
            cat_BxC = batch["cat"][side]
            known_B = jnp.isfinite(cat_BxC).all(-1)  # a response's categories: all known or none
            bce = losses.harm_bce(out[..., G : G + C], jnp.nan_to_num(cat_BxC))
            loss = loss + cfg.category_coef * jnp.where(known_B, bce, 0.0)
        sev_B = batch["sev"][side]
        logp = jax.nn.log_softmax(out[..., G + C :].astype(jnp.float32), -1)
        nll = -jnp.take_along_axis(logp, jnp.maximum(sev_B, 0)[None, :, None], -1)[..., 0]
        loss = loss + cfg.severity_coef * jnp.where(sev_B >= 0, nll, 0.0)
    counted_BxG = (known_BxG & (y_BxG != 0.5)).astype(jnp.float32)
    right = ((a_KxBxG > b_KxBxG) == (y > 0.5)).astype(jnp.float32)
    return loss, jnp.sum(right * counted_BxG, -1), jnp.sum(counted_BxG, -1) * jnp.ones_like(loss)


def adamw(cfg: FinetuneConfig) -> optax.GradientTransformation:
    """AdamW without its learning rate (an input of each step): clip, Adam, decoupled weight decay on
    matrices (not biases, norms' gains or vectors)."""
    parts = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    parts += [optax.scale_by_adam(cfg.b1, cfg.b2, cfg.eps)]
    if cfg.weight_decay:
        parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)))
    return optax.chain(*parts)


def lr_schedule(cfg: FinetuneConfig, total_steps: int) -> np.ndarray:
    """[total_steps] learning rate of each step: linear warm-up from 0 over `warmup_frac` of the
    steps, then `decay` to lr · end_lr_frac at the last step."""
    warm = int(cfg.warmup_frac * total_steps)
    end = cfg.lr * cfg.end_lr_frac
    decay_steps = max(total_steps - warm, 1)
    if cfg.decay == "cosine":
        after = optax.cosine_decay_schedule(cfg.lr, decay_steps, alpha=cfg.end_lr_frac)
    elif cfg.decay == "linear":
        after = optax.linear_schedule(cfg.lr, end, decay_steps)
    else:
        after = optax.constant_schedule(cfg.lr)
    sched = optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warm), after], [warm])
    return np.asarray(sched(jnp.arange(1, total_steps + 1)), np.float32)
