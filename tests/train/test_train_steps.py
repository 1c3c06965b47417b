"""Unit tests of the train/eval steps, the optimizers and schedules (PyTorch parity), and checkpoints."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from train_helpers import load_config_module

from jaxconv.train import checkpoint, optim, steps
from jaxconv.train import state as state_lib


class TinyDropoutNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(10)(x)


def _setup(batch=8, seed=0):
    model, tx = TinyDropoutNet(), optax.sgd(0.1, momentum=0.9)
    state = state_lib.create(model, tx, seed, (1, 3, 3))
    rng = np.random.default_rng(seed)
    data = {
        "image": rng.normal(size=(batch, 1, 3, 3)).astype(np.float32),
        "label": rng.integers(0, 10, batch).astype(np.int32),
    }
    return model, tx, state, data


def test_cross_entropy_of_log_softmax_is_nll():
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 10)) * 3
    labels = jnp.arange(5)
    log_probs = jax.nn.log_softmax(logits)
    nll = -log_probs[jnp.arange(5), labels]
    np.testing.assert_allclose(steps.cross_entropy(log_probs, labels), nll, rtol=1e-6)
    np.testing.assert_allclose(steps.cross_entropy(logits, labels), nll, rtol=1e-6)


def test_train_step_is_deterministic_and_dropout_changes_with_step():
    model, tx, state, data = _setup()
    step = jax.jit(functools.partial(steps.train_step, apply_fn=model.apply, tx=tx))
    a, ma = step(state, data)
    b, mb = step(state, data)
    assert float(ma["loss"]) == float(mb["loss"])
    jax.tree.map(np.testing.assert_array_equal, a.params, b.params)
    _, mc = step(state.replace(step=state.step + 1), data)  # same params, next step's dropout masks
    assert float(mc["loss"]) != float(ma["loss"])


def test_split_batch_with_axis_name_equals_whole_batch():
    """The pmap code path (per-device slices + pmean), run under vmap on one device."""
    model, tx, state, data = _setup(batch=8)
    whole, m_whole = jax.jit(functools.partial(steps.train_step, apply_fn=model.apply, tx=tx))(state, data)
    split = jax.tree.map(lambda x: x.reshape(2, 4, *x.shape[1:]), data)
    per_device = jax.vmap(
        functools.partial(steps.train_step, apply_fn=model.apply, tx=tx, axis_name="d"),
        in_axes=(None, 0),
        axis_name="d",
    )
    parts, m_parts = jax.jit(per_device)(state, split)
    np.testing.assert_allclose(m_parts["loss"], [m_whole["loss"]] * 2, rtol=1e-6)
    assert list(m_parts["correct"]) == [int(m_whole["correct"])] * 2
    jax.tree.map(
        lambda p, w: np.testing.assert_allclose(p[0], w, rtol=1e-5, atol=1e-7), parts.params, whole.params
    )


@pytest.mark.parametrize("microbatches", [2, 4])
def test_microbatched_step_equals_whole_batch(microbatches):
    """Same loss, accuracy and update as one pass over the batch, dropout masks included."""
    model, tx, state, data = _setup(batch=8)
    whole, m_whole = jax.jit(functools.partial(steps.train_step, apply_fn=model.apply, tx=tx))(state, data)
    step = functools.partial(steps.train_step, apply_fn=model.apply, tx=tx, microbatches=microbatches)
    micro, m_micro = jax.jit(step)(state, data)
    np.testing.assert_allclose(m_micro["loss"], m_whole["loss"], rtol=1e-6)
    assert int(m_micro["correct"]) == int(m_whole["correct"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), micro.params, whole.params)
    # Under pmap's code path too (per-device slices of 4, each in 2 microbatches of 2).
    split = jax.tree.map(lambda x: x.reshape(2, 4, *x.shape[1:]), data)
    per_device = jax.vmap(functools.partial(step, microbatches=2, axis_name="d"), in_axes=(None, 0), axis_name="d")
    parts, m_parts = jax.jit(per_device)(state, split)
    np.testing.assert_allclose(m_parts["loss"], [m_whole["loss"]] * 2, rtol=1e-6)
    jax.tree.map(lambda p, w: np.testing.assert_allclose(p[0], w, rtol=1e-5, atol=1e-7), parts.params, whole.params)


def test_accumulate_sums_values_aux_and_grads_over_strided_microbatches():
    w = jnp.array([0.5, -2.0])
    x = np.arange(12.0).reshape(6, 2)

    def loss_fn(w, micro):
        y = micro["x"] @ w
        # Each microbatch's first example: 0, 1, 2 when microbatch i holds examples i, i + 3.
        return jnp.sum(y**2), {"n": micro["x"].shape[0] * jnp.ones(()), "first": micro["x"][0, 0]}

    (value, aux), grad = jax.jit(lambda w, b: steps.accumulate(loss_fn, w, b, 3))(w, {"x": jnp.asarray(x)})
    np.testing.assert_allclose(value, np.sum((x @ np.array([0.5, -2.0])) ** 2), rtol=1e-6)
    np.testing.assert_allclose(grad, 2 * x.T @ (x @ np.array([0.5, -2.0])), rtol=1e-6)
    assert float(aux["n"]) == 6
    assert float(aux["first"]) == x[0, 0] + x[1, 0] + x[2, 0]


MIB = 2**20


@pytest.mark.parametrize("batch, size, backend, example_bytes, expected", [
    (128, None, "cpu", 147456, 4),      # mnist_net: microbatches of 32 (4.5 MiB)
    (64, None, "cpu", 147456, 2),
    (256, None, "cpu", 23040, 2),       # convnet at 256: two of 128
    (128, None, "cpu", 23040, 1),       # ... whole at 128
    (256, None, "cpu", 13824, 1),       # lenet5: whole
    (128, None, "cpu", 4 * MIB, 8),     # huge activations: microbatches of 16, no smaller
    (97, None, "cpu", 147456, 97 // 97),  # no divisor of at least 16 below the budget: whole
    (100, None, "cpu", 147456, 4),      # 25 per microbatch
    (128, None, "cpu", None, 1),        # unknown activations: whole
    (256, None, "gpu", 147456, 1), (256, None, "tpu", 147456, 1),
    (128, 32, "gpu", None, 4), (128, 128, "cpu", 147456, 1),
])
def test_num_microbatches(batch, size, backend, example_bytes, expected):
    assert steps.num_microbatches(batch, size, backend, example_bytes) == expected


def test_largest_activation_bytes_of_a_flax_model():
    model, _, state, _ = _setup()
    assert steps.largest_activation_bytes(model.apply, state.params, (1, 3, 3)) == 16 * 4  # Dense(16) output
    assert steps.largest_activation_bytes(lambda *a, **k: None, state.params, (1, 3, 3)) is None


@pytest.mark.parametrize("size", [3, 0, 256])
def test_num_microbatches_rejects_a_size_that_does_not_divide_the_batch(size):
    with pytest.raises(ValueError, match=f"microbatch_size={size} must divide the per-device batch of 128"):
        steps.num_microbatches(128, size)


def test_nonfinite_step_leaves_state_and_is_recorded():
    model, tx, state, data = _setup()
    step = jax.jit(functools.partial(steps.train_step, apply_fn=model.apply, tx=tx))
    bad = {**data, "image": np.full_like(data["image"], np.nan)}
    s1, _ = step(state, data)
    s2, m2 = step(s1, bad)
    assert np.isnan(float(m2["loss"]))
    jax.tree.map(np.testing.assert_array_equal, s2.params, s1.params)
    jax.tree.map(np.testing.assert_array_equal, s2.opt_state, s1.opt_state)
    assert int(s2.step) == 2 and int(s2.nonfinite_step) == 1 and int(s2.skipped_steps) == 1
    s3, _ = step(s2, data)
    assert int(s3.nonfinite_step) == 1 and int(s3.skipped_steps) == 1
    assert not np.array_equal(jax.tree.leaves(s3.params)[0], jax.tree.leaves(s2.params)[0])


@pytest.mark.parametrize("microbatches", [2, 4])
def test_microbatched_eval_step_equals_whole_batch(microbatches):
    model, _, state, data = _setup(batch=8)
    padded = {**data, "mask": np.array([True] * 6 + [False] * 2)}
    whole = jax.jit(functools.partial(steps.eval_step, apply_fn=model.apply))(state.params, padded)
    micro = jax.jit(functools.partial(steps.eval_step, apply_fn=model.apply, microbatches=microbatches))(
        state.params, padded)
    assert float(micro["count"]) == float(whole["count"]) == 6
    assert float(micro["correct"]) == float(whole["correct"])
    np.testing.assert_allclose(micro["loss_sum"], whole["loss_sum"], rtol=1e-6)


def test_apply_in_microbatches_keeps_example_order():
    x = jnp.arange(24.0).reshape(12, 2)
    out = steps.apply_in_microbatches(lambda xi: {"double": 2 * xi, "first": xi[:, 0]}, x, 3)
    np.testing.assert_array_equal(out["double"], 2 * x)
    np.testing.assert_array_equal(out["first"], x[:, 0])


def test_eval_step_counts_only_masked_examples():
    model, _, state, data = _setup(batch=8)
    mask = np.array([True] * 5 + [False] * 3)
    padded = {**data, "mask": mask}
    counts = jax.jit(functools.partial(steps.eval_step, apply_fn=model.apply))(state.params, padded)
    logits = model.apply({"params": state.params}, data["image"][:5])
    expected_loss = steps.cross_entropy(logits, data["label"][:5]).sum()
    assert float(counts["count"]) == 5
    np.testing.assert_allclose(counts["loss_sum"], expected_loss, rtol=1e-6)
    assert float(counts["correct"]) == float(np.sum(np.argmax(logits, -1) == data["label"][:5]))


def _config(**overrides) -> ml_collections.ConfigDict:
    config = load_config_module("default").get_config()
    for k, v in overrides.items():
        config[k] = v
    return config


def test_step_schedule_is_torch_steplr_per_epoch():
    schedule = optim.create_schedule(
        _config(schedule="step", learning_rate=1.0, step_gamma=0.7), steps_per_epoch=10
    )
    for epoch in range(4):
        for s in (epoch * 10, epoch * 10 + 9):
            assert float(schedule(s)) == pytest.approx(0.7**epoch, rel=1e-6)


def test_onecycle_schedule_matches_torch():
    torch = pytest.importorskip("torch")
    config = _config(schedule="onecycle", learning_rate=0.01, num_epochs=2, warmup_epochs=0.6)
    schedule = optim.create_schedule(config, steps_per_epoch=50)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.01, total_steps=100, pct_start=0.3, anneal_strategy="cos", cycle_momentum=False
    )
    for s in range(100):
        assert float(schedule(s)) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-4, abs=1e-9), s
        opt.step()
        sched.step()


@pytest.mark.parametrize(
    "overrides, make_torch",
    [
        (
            {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9},
            lambda t, p: t.optim.SGD(p, lr=0.01, momentum=0.9),
        ),
        (
            {
                "optimizer": "sgd",
                "learning_rate": 0.01,
                "momentum": 0.9,
                "nesterov": True,
                "weight_decay": 0.1,
            },
            lambda t, p: t.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1),
        ),
        ({"optimizer": "adam", "learning_rate": 0.01}, lambda t, p: t.optim.Adam(p, lr=0.01)),
        (
            {"optimizer": "adamw", "learning_rate": 0.01, "weight_decay": 0.1},
            lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1),
        ),
        ({"optimizer": "adadelta", "learning_rate": 1.0}, lambda t, p: t.optim.Adadelta(p, lr=1.0)),
    ],
    ids=["sgd", "sgd-nesterov-l2", "adam", "adamw", "adadelta"],
)
def test_optimizer_matches_torch(overrides, make_torch):
    torch = pytest.importorskip("torch")
    tx = optim.create_optimizer(
        _config(schedule="constant", **overrides), optax.constant_schedule(overrides["learning_rate"])
    )
    target = np.linspace(-1, 1, 6).astype(np.float32)
    w = jnp.zeros(6)
    opt_state = tx.init(w)
    tw = torch.nn.Parameter(torch.zeros(6))
    topt = make_torch(torch, [tw])
    loss = lambda w: jnp.sum((w - target) ** 2 * jnp.arange(1, 7))  # noqa: E731
    for _ in range(10):
        updates, opt_state = tx.update(jax.grad(loss)(w), opt_state, w)
        w = optax.apply_updates(w, updates)
        topt.zero_grad()
        ((tw - torch.from_numpy(target)) ** 2 * torch.arange(1, 7)).sum().backward()
        topt.step()
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_checkpoint_roundtrip_keeps_state_and_meta(tmp_path):
    model, tx, state, data = _setup()
    state, _ = jax.jit(functools.partial(steps.train_step, apply_fn=model.apply, tx=tx))(state, data)
    ckpts = checkpoint.Checkpoints(str(tmp_path / "ckpt"), keep=2)
    ckpts.save(1, state, {"epoch": 0, "step_in_epoch": 1, "global_step": 1, "steps_per_epoch": 5})
    ckpts.close()
    template = state_lib.create(model, tx, 123, (1, 3, 3))
    restored, meta = checkpoint.Checkpoints(str(tmp_path / "ckpt"), read_only=True).restore(template)
    assert meta["step_in_epoch"] == 1
    jax.tree.map(np.testing.assert_array_equal, restored, jax.device_get(state))
    assert type(restored) is type(state)


def test_per_example_dropout_keeps_nn_dropout_semantics():
    x = jnp.ones((64, 3, 8, 8))
    layer = nn.Dropout(0.25)
    ids = jnp.arange(64)
    with nn.intercept_methods(steps._per_example_dropout(ids)):
        y = layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
        same = layer.apply({}, x, deterministic=True)
    values = np.unique(np.asarray(y))
    np.testing.assert_allclose(values, [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float(jnp.mean(y == 0)) - 0.25) < 0.02
    np.testing.assert_array_equal(same, x)
    # An example's mask depends on its id only, not on its batch-mates.
    with nn.intercept_methods(steps._per_example_dropout(ids[32:])):
        half = layer.apply({}, x[32:], deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
    np.testing.assert_array_equal(half, y[32:])


def test_dropout_run_resumed_from_checkpoint_is_bit_identical(tmp_path):
    model, tx, state, _ = _setup()
    step = jax.jit(functools.partial(steps.train_step, apply_fn=model.apply, tx=tx))
    rng = np.random.default_rng(1)
    batches = [
        {
            "image": rng.normal(size=(8, 1, 3, 3)).astype(np.float32),
            "label": rng.integers(0, 10, 8).astype(np.int32),
        }
        for _ in range(4)
    ]
    straight, losses = state, []
    for b in batches:
        straight, m = step(straight, b)
        losses.append(float(m["loss"]))

    first = state
    for b in batches[:2]:
        first, _ = step(first, b)
    ckpts = checkpoint.Checkpoints(str(tmp_path), keep=1)
    ckpts.save(2, first, {"global_step": 2})
    ckpts.close()
    resumed, _ = checkpoint.Checkpoints(str(tmp_path), read_only=True).restore(
        state_lib.create(model, tx, 99, (1, 3, 3))
    )
    resumed_losses = []
    for b in batches[2:]:
        resumed, m = step(resumed, b)
        resumed_losses.append(float(m["loss"]))
    assert resumed_losses == losses[2:]
    jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)



def test_per_example_dropout_takes_negative_broadcast_dims():
    x = jnp.ones((8, 4, 3, 3))
    ids = jnp.arange(8)
    key = {"dropout": jax.random.PRNGKey(0)}
    with nn.intercept_methods(steps._per_example_dropout(ids)):
        a = nn.Dropout(0.5, broadcast_dims=(-1,)).apply({}, x, deterministic=False, rngs=key)
        b = nn.Dropout(0.5, broadcast_dims=(3,)).apply({}, x, deterministic=False, rngs=key)
        with pytest.raises(ValueError, match="batch on axis 0"):
            nn.Dropout(0.5, broadcast_dims=(-4,)).apply({}, x, deterministic=False, rngs=key)
    np.testing.assert_array_equal(a, b)
    assert (np.asarray(a) == np.asarray(a)[..., :1]).all()
