"""Fine-tuning score models (`rm_theory.lm.finetune`): the losses' mathematics, one training step against
its closed form, the fused program against plain AdamW steps, what each mode trains, a K-member
ensemble against K separate runs, and a resumed run against an uninterrupted one.

All on one 2-layer random Llama written by transformers (`tests/lm_tiny.py`); the runs share their
compiled programs (same shapes and step config), the costly part of this file.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from rm_theory.lm import FinetuneConfig, Pairs, finetune, init_members, load_score_model, pair_losses
from tests.lm_tiny import WORDS, write_tiny

P = 8  # pairs
BASE = FinetuneConfig(
    batch_size=4, chunk_steps=2, buckets=1, lr=1e-2, warmup_frac=0.0, decay="constant", clip_norm=0.0, weight_decay=0.01
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("llama"), "llama", num_key_value_heads=2)


def make_pairs(model, n: int = P, seed: int = 0) -> Pairs:
    rng = np.random.default_rng(seed)
    a, b = ([" ".join(rng.choice(WORDS, int(rng.integers(1, 12)))) for _ in range(n)] for _ in range(2))
    ids_a, _ = model.encode(a)
    ids_b, _ = model.encode(b)
    return Pairs(ids_a, ids_b, rng.integers(0, 2, n).astype(np.float32))


def params(net, f=nnx.Param) -> dict:
    return {k: np.asarray(v) for k, v in nnx.to_flat_state(nnx.state(net, f))}


# ---------------------------------------------------------------------------- losses


def test_bradley_terry_is_shift_invariant_and_the_margin_and_centring_terms_are_as_written():
    rng = np.random.default_rng(0)
    r_a, r_b = jnp.asarray(rng.normal(size=(2, 5))), jnp.asarray(rng.normal(size=(2, 5)))
    batch = {"y": jnp.asarray([1.0, 0.0, 0.5, 1.0, 0.0]), "margin": jnp.zeros(5)}
    loss, hit, counted = pair_losses(r_a, r_b, batch, FinetuneConfig())
    shifted, _, _ = pair_losses(r_a + 3.7, r_b + 3.7, batch, FinetuneConfig())
    np.testing.assert_allclose(shifted, loss, rtol=1e-6)
    d = np.asarray(r_a - r_b)
    want = -np.log(1 / (1 + np.exp(-d)))  # y = 1
    np.testing.assert_allclose(loss[:, 0], want[:, 0], rtol=1e-6)
    assert counted[:, 2].sum() == 0 and (hit[:, 0] == (d[:, 0] > 0)).all()  # a tie is not counted
    m = {"y": batch["y"], "margin": jnp.full(5, 0.5)}
    with_margin, _, _ = pair_losses(r_a, r_b, m, FinetuneConfig(margin=0.25))
    np.testing.assert_allclose(with_margin[:, 0], -np.log(1 / (1 + np.exp(-(d[:, 0] - 0.75)))), rtol=1e-6)
    centred, _, _ = pair_losses(r_a + 3.7, r_b + 3.7, batch, FinetuneConfig(centre_coef=0.1))
    np.testing.assert_allclose(centred - shifted, 0.1 * np.asarray(r_a + r_b + 7.4) ** 2, rtol=1e-5)


def test_cost_loss_against_a_hand_computation():
    """Safe RLHF eq. 6 on one pair: a safe (cost 0.3) and safer, b unsafe (cost -0.2);
    -log s(c_b - c_a) - log s(-c_a) - log s(+c_b), and a pair whose b's safety is unknown."""
    sig = lambda x: 1 / (1 + math.exp(-x))
    batch = {"y": jnp.asarray([1.0, 1.0]), "safe": jnp.asarray([[1.0, 1.0], [0.0, np.nan]])}
    c_a, c_b = jnp.asarray([[0.3, 0.3]]), jnp.asarray([[-0.2, -0.2]])
    loss, hit, _ = pair_losses(c_a, c_b, batch, FinetuneConfig(objective="cost"))
    rank = -math.log(sig(-0.2 - 0.3))
    assert loss[0, 0] == pytest.approx(rank - math.log(sig(-0.3)) - math.log(sig(-0.2)), rel=1e-6)
    assert loss[0, 1] == pytest.approx(rank - math.log(sig(-0.3)), rel=1e-6)  # no sign term for b
    assert hit[0, 0] == 0  # the safer side (a) has the higher cost: ranked wrong
    weighted, _, _ = pair_losses(c_a, c_b, batch, FinetuneConfig(objective="cost", rank_coef=0.0, sign_coef=2.0))
    assert weighted[0, 0] == pytest.approx(-2 * (math.log(sig(-0.3)) + math.log(sig(-0.2))), rel=1e-6)


# ---------------------------------------------------------------------------- training steps


def test_one_step_from_a_zero_head_is_the_closed_form(folder):
    """With the head's weights at 0 every score is 0: the loss is log 2, the head's gradient is
    -mean((y - 1/2)(x_a - x_b)) over the pooled vectors x, the backbone's is 0. One AdamW step
    then moves the head by -lr·sign(gradient) and shrinks each backbone matrix by (1 - lr·wd)."""
    model = load_score_model(folder)
    pairs = make_pairs(model)
    model.net.head.score.kernel.set_value(jnp.zeros_like(model.net.head.score.kernel[...]))
    before = params(model.net)
    x = []
    for ids in (pairs.ids_a, pairs.ids_b):
        T = 16
        ids_NxT = np.full((P, T), model.tokenizer.pad_id, np.int32)
        mask = np.zeros((P, T), np.int32)
        for i, s in enumerate(ids):
            ids_NxT[i, : len(s)], mask[i, : len(s)] = s, 1
        x.append(np.asarray(nnx.jit(lambda n, i, m: n.pooled(i, m))(model.net, ids_NxT, mask)))
    g_H = -((pairs.y_P - 0.5)[:, None] * (x[0] - x[1])).mean(0)
    cfg = dataclasses_replace(BASE, batch_size=P, max_steps=1)
    _, history = finetune(model, pairs, cfg, jax.random.key(0), progress=False)
    assert history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    after = params(model.net)
    np.testing.assert_allclose(after[("head", "score", "kernel")][:, 0], -cfg.lr * np.sign(g_H), rtol=1e-4)
    for k, w in before.items():
        if k[0] == "backbone":
            shrink = 1 - cfg.lr * cfg.weight_decay if w.ndim >= 2 else 1.0
            np.testing.assert_allclose(after[k], w * shrink, rtol=1e-6, atol=1e-7, err_msg=str(k))


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_fused_steps_with_accumulation_equal_plain_adamw_on_the_whole_batch(folder):
    """Three steps, each two microbatches of half the pairs, against optax.adamw on all the pairs
    at once (three epochs of one step each)."""
    model = load_score_model(folder)
    pairs = make_pairs(model)
    ref = load_score_model(folder)
    cfg = dataclasses_replace(BASE, batch_size=P // 2, grad_accum=2, epochs=3)
    finetune(model, pairs, cfg, jax.random.key(1), progress=False)

    T = 16
    ids = np.full((2, P, T), ref.tokenizer.pad_id, np.int32)
    mask = np.zeros((2, P, T), np.int32)
    for side, seqs in enumerate((pairs.ids_a, pairs.ids_b)):
        for i, s in enumerate(seqs):
            ids[side, i, : len(s)], mask[side, i, : len(s)] = s, 1
    graphdef, p = nnx.split(ref.net, nnx.Param)

    def loss(p):
        net = nnx.merge(graphdef, p)
        r_a, r_b = net(ids[0], mask[0])[:, 0], net(ids[1], mask[1])[:, 0]
        y = pairs.y_P
        return -(y * jax.nn.log_sigmoid(r_a - r_b) + (1 - y) * jax.nn.log_sigmoid(r_b - r_a)).mean()

    tx = optax.adamw(cfg.lr, weight_decay=cfg.weight_decay, mask=lambda t: jax.tree.map(lambda x: x.ndim >= 2, t))
    opt = tx.init(p)
    step = jax.jit(lambda p, o: (lambda g: tx.update(g, o, p))(jax.grad(loss)(p)))
    for _ in range(3):
        u, opt = step(p, opt)
        p = optax.apply_updates(p, u)
    got = params(model.net)
    for k, v in nnx.to_flat_state(p):
        np.testing.assert_allclose(got[k], np.asarray(v), rtol=2e-4, atol=2e-6, err_msg=str(k))


def test_top_k_trains_the_top_layers_norm_and_head_only(folder):
    model = load_score_model(folder)
    pairs = make_pairs(model)
    before = params(model.net)
    finetune(model, pairs, dataclasses_replace(BASE, mode="top_k", top_layers=1), jax.random.key(0), progress=False)
    after = params(model.net)
    for k, v in before.items():
        trained = k[0] == "head" or k[:3] == ("backbone", "layers", 1) or k[:2] == ("backbone", "norm")
        assert (not np.array_equal(after[k], v)) == trained, k


def test_lora_ensemble_is_k_separate_runs_and_moves_adapters_and_heads_only(folder):
    """K = 2 members with their own adapters, vmapped in one program, against two K = 1 runs that
    start from the same member draws and see the same batches; the base weights never move."""
    cfg = dataclasses_replace(BASE, mode="lora", lora_rank=2, ensemble_size=2)
    key = jax.random.key(3)
    model = load_score_model(folder)
    pairs = make_pairs(model)
    base = params(model.net)
    res, _ = finetune(model, pairs, cfg, key, progress=False)
    assert res.size == 2
    frozen = params(model.net, nnx.All(nnx.Param, nnx.Not(nnx.Any(nnx.LoRAParam, nnx.PathContains("head")))))
    assert frozen.keys() == {k for k in base if k[0] != "head"}
    for k, v in frozen.items():
        np.testing.assert_array_equal(v, base[k])
    for k in range(2):
        single = load_score_model(folder)
        finetune(single, pairs, dataclasses_replace(cfg, ensemble_size=1, max_steps=1), key, progress=False)  # adapters
        _, members0, _ = nnx.split(single.net, nnx.Any(nnx.LoRAParam, nnx.PathContains("head")), ...)
        start = init_members(members0, 2, jax.random.split(key, 3)[0], single.net.cfg.init_std)
        fresh = load_score_model(folder)
        from rm_theory.lm import add_lora

        add_lora(fresh, rank=2)
        nnx.update(fresh.net, jax.tree.map(lambda v, k=k: v[k], start))
        out, _ = finetune(fresh, pairs, dataclasses_replace(cfg, ensemble_size=1), key, progress=False)
        got = jax.tree.map(lambda v, k=k: np.asarray(v[k]), res.members_K)
        want = jax.tree.map(lambda v: np.asarray(v[0]), out.members_K)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
    scores = res.scores(pairs.ids_a[:3])
    assert scores.shape == (2, 3) and not np.allclose(scores[0], scores[1])
    # member 1 on its own, saved (adapters merged, head kept) and loaded back: the same scores
    from rm_theory.lm import save_score_model

    folder1 = save_score_model(res.member(1), folder.parent / "member1", overwrite=True)
    np.testing.assert_allclose(load_score_model(folder1).logits_ids(pairs.ids_a[:3])[:, 0], scores[1], atol=1e-5)


def test_a_run_stopped_after_a_checkpoint_resumes_to_the_same_bits(folder, tmp_path):
    cfg = dataclasses_replace(BASE, epochs=4, checkpoint_every=2)  # 2 steps an epoch, one chunk each
    pairs = make_pairs(load_score_model(folder))
    full = load_score_model(folder)
    _, hist_full = finetune(full, pairs, cfg, jax.random.key(5), progress=False)

    class Stop(Exception):
        pass

    def stop_after_two(step, row):
        if step >= 4:
            raise Stop

    stopped = load_score_model(folder)
    with pytest.raises(Stop):
        finetune(stopped, pairs, cfg, jax.random.key(5), checkpoint_dir=tmp_path, log_fn=stop_after_two, progress=False)
    resumed = load_score_model(folder)
    _, hist = finetune(resumed, pairs, cfg, jax.random.key(5), checkpoint_dir=tmp_path, progress=False)
    for k, v in params(full.net).items():
        np.testing.assert_array_equal(params(resumed.net)[k], v, err_msg=str(k))
    strip = lambda h: [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in h]
    assert strip(hist) == strip(hist_full)
    with pytest.raises(ValueError, match="another model, data, config or key"):
        finetune(load_score_model(folder), pairs, cfg, jax.random.key(6), checkpoint_dir=tmp_path, progress=False)


def test_bfloat16_compute_trains_float32_parameters_to_nearly_the_same_step(folder):
    """bf16 compute (accelerators): the parameters and the optimiser stay float32, and one step's
    loss is float32's to bf16 rounding."""
    cfg = dataclasses_replace(BASE, max_steps=1, batch_size=P)
    losses = []
    for dtype in (jnp.float32, jnp.bfloat16):
        model = load_score_model(folder, dtype=dtype)
        _, history = finetune(model, make_pairs(model), cfg, jax.random.key(0), progress=False)
        losses.append(history[0]["loss"])
        assert {v.dtype for v in params(model.net).values()} == {np.dtype("float32")}
    assert losses[1] == pytest.approx(losses[0], abs=0.05)


def test_member_draws_are_the_same_in_every_process():
    """K > 1 members draw their heads and adapters from keys that name each parameter: with a
    hash that Python salts per process, two runs of one seed would start apart."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import jax, jax.numpy as jnp, numpy as np\n"
        "from rm_theory.lm import init_members\n"
        "m = {'head': {'score': {'kernel': jnp.zeros((3, 1))}}, 'x': {'lora_a': jnp.zeros((2, 2))}}\n"
        "print(np.asarray(jax.tree.leaves(init_members(m, 2, jax.random.key(0), 0.02))[0]).ravel().tolist())\n"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outs[0] == outs[1] and float(outs[0].strip("[]\n").split(",")[0]) != 0.0


def test_k_heads_on_one_backbone_pass_equal_k_whole_passes(folder):
    """The shared-backbone path (one pass, K heads vmapped) computes what K separate forward passes
    of the K members compute; the training loop's vmap over members is the LoRA test's."""
    from rm_theory.lm import logits_program as member_logits  # jitted
    from rm_theory.lm.step import filters

    model = load_score_model(folder)
    member_f, shared_f = filters(FinetuneConfig(mode="head"), model.net.cfg.n_layers)
    graphdef, members0, shared, frozen = nnx.split(model.net, member_f, shared_f, ...)
    members = init_members(members0, 3, jax.random.key(0), 0.5)
    ids = np.asarray([x + [0] * (12 - len(x)) for x in make_pairs(model).ids_a], np.int32)[:, :12]
    mask = (np.arange(12)[None] < np.array([[min(len(x), 12)] for x in make_pairs(model).ids_a])).astype(np.int32)
    one = member_logits(graphdef, shared, frozen, members, ids, mask, None, True)
    each = member_logits(graphdef, shared, frozen, members, ids, mask, None, False)
    assert one.shape == (3, P, 1) and np.abs(np.asarray(one[0] - one[1])).max() > 1e-3
    np.testing.assert_allclose(one, each, rtol=1e-5, atol=1e-6)
