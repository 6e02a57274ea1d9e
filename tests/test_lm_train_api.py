"""The score model's API carries a training loop: `nnx.Optimizer(..., wrt=LORA_AND_HEAD)` moves only the
LoRA adapters and the head, and the forward pass is a pure function of the split state, so a
`jax.lax.scan` over steps equals a Python loop of the same steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from rm_theory.lm import LORA_AND_HEAD, add_lora, load_score_model, merge_lora
from tests.lm_tiny import texts, write_tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # one layer: these tests compile gradients, the costly part of the suite
    return write_tiny(tmp_path_factory.mktemp("llama"), "llama", num_key_value_heads=2, num_hidden_layers=1)


def batch(model, strings):
    ids, _ = model.encode(strings)
    T = 16
    ids_BxT = np.full((len(ids), T), model.tokenizer.pad_id, np.int32)
    mask_BxT = np.zeros((len(ids), T), np.int32)
    for i, x in enumerate(ids):
        ids_BxT[i, : len(x)], mask_BxT[i, : len(x)] = x, 1
    return jnp.asarray(ids_BxT), jnp.asarray(mask_BxT)


def bt_loss(net, chosen, rejected):
    """Bradley-Terry: -log sigmoid(r(chosen) - r(rejected))."""
    return -jax.nn.log_sigmoid(net(*chosen)[:, 0] - net(*rejected)[:, 0]).mean()


def test_optimiser_with_the_lora_filter_trains_adapters_and_head_only(folder):
    model = load_score_model(folder)
    add_lora(model, rank=2, alpha=4.0)
    net = model.net
    chosen, rejected = batch(model, texts(4, seed=1)), batch(model, texts(4, seed=2))
    frozen = nnx.All(nnx.Param, nnx.Not(LORA_AND_HEAD))
    base_before = jax.tree.map(np.asarray, nnx.state(net, frozen))
    train_before = jax.tree.map(np.asarray, nnx.state(net, LORA_AND_HEAD))
    opt = nnx.Optimizer(net, optax.adam(1e-2), wrt=LORA_AND_HEAD)

    @nnx.jit
    def step(net, opt):
        loss, grads = nnx.value_and_grad(bt_loss, argnums=nnx.DiffState(0, LORA_AND_HEAD))(net, chosen, rejected)
        opt.update(net, grads)
        return loss

    losses = [float(step(net, opt)) for _ in range(5)]
    assert losses[-1] < losses[0]
    jax.tree.map(np.testing.assert_array_equal, base_before, jax.tree.map(np.asarray, nnx.state(net, frozen)))
    moved = jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), train_before, nnx.state(net, LORA_AND_HEAD))
    assert all(jax.tree.leaves(moved))  # every adapter matrix and the head moved
    scores = model.score(texts())
    assert merge_lora(model) == 2  # q and v
    np.testing.assert_allclose(model.score(texts()), scores, atol=1e-5, rtol=0)


def test_scan_over_the_split_state_equals_a_python_loop_and_remat_changes_nothing(folder):
    """Three SGD steps on the LoRA and head parameters: scanned in one program with per-layer
    rematerialisation, and stepped from Python without it, to the same parameters and losses."""
    runs = []
    for remat in (True, False):
        model = load_score_model(folder, remat=remat)
        add_lora(model, rank=2, alpha=4.0)
        chosen, rejected = batch(model, texts(4, seed=1)), batch(model, texts(4, seed=2))
        graphdef, train, rest = nnx.split(model.net, LORA_AND_HEAD, ...)

        def sgd(train, _, graphdef=graphdef, rest=rest, chosen=chosen, rejected=rejected):
            loss, g = jax.value_and_grad(lambda t: bt_loss(nnx.merge(graphdef, t, rest), chosen, rejected))(train)
            return jax.tree.map(lambda p, d: p - 0.05 * d, train, g), loss

        jaxpr = str(jax.make_jaxpr(sgd)(train, None))
        assert ("remat" in jaxpr) == remat  # the layers are rematerialised, and only when asked
        if remat:
            runs.append(jax.jit(lambda t, sgd=sgd: jax.lax.scan(sgd, t, None, length=3))(train))
        else:
            step, losses = jax.jit(sgd), []
            for _ in range(3):
                train, loss = step(train, None)
                losses.append(loss)
            runs.append((train, jnp.stack(losses)))
    (scanned, scan_losses), (looped, loop_losses) = runs
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), scanned, looped)
    np.testing.assert_allclose(scan_losses, loop_losses, rtol=1e-6)
    assert scan_losses[2] < scan_losses[0]
