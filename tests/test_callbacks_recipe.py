"""Unit tests of the recipe's parts: layer probes, checkpoints, batch-loss recovery, helpers."""
import json
import os

import numpy as np
import pytest

import keras
from kerasrecipe.backend_ops import weight_grads, weight_grads_fn
from kerasrecipe.callbacks import RecipeCheckpoint, RunLogger
from kerasrecipe.callbacks._context import RunContext, capture_fit_args, class_counts, describe_loss, monitor_mode
from kerasrecipe.errors import ConfigError
from kerasrecipe.probes import LayerProbe

L = keras.layers


def test_layer_probe_functional_with_branches_matches_a_manual_forward():
    inp = keras.Input((6,))
    a = L.Dense(4, activation="relu", name="a")(inp)
    b = L.Dense(3, activation="tanh", name="b")(inp)
    c = L.Concatenate(name="c")([a, b])
    out = L.Dense(2, activation="softmax", name="out")(c)
    model = keras.Model(inp, out)
    x = np.random.RandomState(0).rand(5, 6).astype("float32")
    probe = LayerProbe(model)
    names, outs = probe.outputs(x)
    assert names == ["a", "b", "c", "out"] and probe.note is None and probe.extractor is not None
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outs[1]),
                               keras.ops.convert_to_numpy(model.get_layer("b")(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outs[-1]), keras.ops.convert_to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)


def test_layer_probe_subclassed_uses_call_hooks_and_restores_layers():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.h = L.Dense(4, activation="relu")
            self.unused = L.Dense(3)
            self.o = L.Dense(2)

        def call(self, x):
            return self.o(self.h(x))

    model = Net()
    x = np.ones((3, 5), "float32")
    model(x)
    probe = LayerProbe(model)
    names, outs = probe.outputs(x)
    assert names == [model.h.name, model.o.name]  # the layer the forward pass never reaches is left out
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outs[1]), keras.ops.convert_to_numpy(model(x)), rtol=1e-6)
    assert "call" not in vars(model.h)  # hooks removed


def test_compiled_probe_fn_matches_eager_gradients():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.RandomState(0).rand(16, 4).astype("float32")
    y = np.arange(16) % 3
    probe = LayerProbe(model)
    loss, grads, acts = weight_grads_fn(model, extractor=probe.extractor)(x, y)
    loss2, grads2 = weight_grads(model, x, y)
    assert loss == pytest.approx(loss2, rel=1e-5)
    for g, g2 in zip(grads, grads2):
        np.testing.assert_allclose(g, g2, rtol=1e-4, atol=1e-6)
    assert len(acts) == 2


def test_checkpoint_never_saves_non_finite_and_keeps_best_k(tmp_path):
    model = keras.Sequential([keras.Input((2,)), L.Dense(1)])
    ctx = RunContext(run_dir=str(tmp_path / "run"))
    ck = RecipeCheckpoint(mode="best", keep_best=2, context=ctx)
    ck.set_model(model)
    ck.on_epoch_end(0, {"loss": float("nan"), "val_loss": float("nan")})
    ck.on_epoch_end(1, {"loss": 1.0, "val_loss": float("inf")})
    ck.on_epoch_end(2, {"loss": float("nan"), "val_loss": 0.1})  # diverged training, finite val: not saved
    assert ck.entries == []
    for e, v in [(3, 0.5), (4, 0.3), (5, 0.4), (6, 0.9)]:
        ck.on_epoch_end(e, {"loss": 1.0, "val_loss": v})
    files = sorted(f for f in os.listdir(ck.directory) if f.endswith(".h5"))
    assert files == ["epoch0005-val_loss0.3000.weights.h5", "epoch0006-val_loss0.4000.weights.h5"]
    index = json.load(open(os.path.join(ck.directory, "index.json")))
    assert index["best"]["file"] == "epoch0005-val_loss0.3000.weights.h5"
    model.set_weights([np.full((2, 1), np.nan, "float32"), np.zeros(1, "float32")])
    ck.on_epoch_end(7, {"loss": 1.0, "val_loss": 0.01})  # non-finite weights are never "best"
    assert ck.best["epoch"] == 4
    skipped = [r for r in ctx.runlog.of("event") if r["event"] == "checkpoint_skipped"]
    assert len(skipped) == 4
    with pytest.raises(ConfigError):
        RecipeCheckpoint(mode="sometimes", context=ctx)


def test_batch_losses_recovered_from_running_mean_with_partial_last_batch(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.RandomState(0).rand(100, 3).astype("float32")
    y = x.sum(1, keepdims=True)
    model = keras.Sequential([keras.Input((3,)), L.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    logger = RunLogger(run_dir=str(tmp_path / "run"))

    class Truth(keras.callbacks.Callback):  # each batch's own loss, for comparison
        def on_train_batch_begin(self, batch, logs=None):
            xb, yb = x[batch * 32:(batch + 1) * 32], y[batch * 32:(batch + 1) * 32]
            self.losses.append(float(np.mean((keras.ops.convert_to_numpy(self.model(xb)) - yb) ** 2)))

    truth = Truth()
    truth.losses = []
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, callbacks=[logger, truth], verbose=0)
    got = [r["loss"] for r in logger.runlog.of("batch")]
    assert len(got) == 4
    np.testing.assert_allclose(got, truth.losses, rtol=2e-3)
    assert logger.runlog.meta["num_samples"] == 100 and logger.runlog.meta["task"] == "regression"


def test_batch_losses_from_a_dataset_leave_the_unknown_last_batch_out(tmp_path):
    """A PyDataset does not tell its sample count: every batch but the epoch's last (size unknown,
    here 4 of 32) is recovered exactly; the last gets loss None instead of a wrong value."""
    keras.utils.set_random_seed(0)
    x = np.random.RandomState(0).rand(100, 3).astype("float32")
    y = x.sum(1, keepdims=True)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    model = keras.Sequential([keras.Input((3,)), L.Dense(1)])
    model.compile(keras.optimizers.SGD(0.0), "mse")  # fixed weights: each batch's own loss is known
    truth = [float(np.mean((keras.ops.convert_to_numpy(model(x[i * 32:(i + 1) * 32])) - y[i * 32:(i + 1) * 32]) ** 2))
             for i in range(4)]
    logger = RunLogger(run_dir=str(tmp_path / "run"))
    model.fit(Batches(), epochs=2, shuffle=False, callbacks=[logger], verbose=0)
    got = [r["loss"] for r in logger.runlog.of("batch")]
    assert len(got) == 8 and got[3] is None and got[7] is None
    np.testing.assert_allclose(got[:3] + got[4:7], truth[:3] * 2, rtol=2e-3)


def test_probe_interval_adapts_without_letting_a_slow_warm_up_probe_end_probing():
    """Probes take <= overhead_budget of the training time, measured from their cost; while fewer
    than three costs are known (the first probes may still compile), they stay at most an epoch
    apart (a 5 s first probe at 10 ms steps once pushed the next one 25000 steps away)."""
    from kerasrecipe.callbacks import HealthMonitor

    mon = HealthMonitor(overhead_budget=0.02)
    mon.context.fit_info["steps_per_epoch"] = 40
    mon._step_time = 0.01
    for costs, want in (([5.0], 40), ([5.0, 4.0], 40), ([5.0, 4.0, 0.02], 100), ([5.0, 0.002, 0.002], 10)):
        mon._probe_costs = list(costs)
        mon._schedule_next(1000)
        assert mon._next_probe == 1000 + want, (costs, mon._next_probe)


def test_helpers():
    assert monitor_mode("val_loss") == "min" and monitor_mode("val_accuracy") == "max"
    # the tuner's rule: suffixes, numbered duplicates, custom names as losses
    assert [monitor_mode(n) for n in ("val_auc_1", "val__my_acc", "val_accumulated_loss", "val_r2_score",
                                      "val_score")] == ["max", "max", "min", "max", "min"]
    assert capture_fit_args(object()) is None
    assert class_counts(np.array([0, 2, 2]), 4) == [1, 0, 2, 0]
    assert class_counts(np.eye(3)[[0, 1, 1]], 3) == [1, 2, 0]
    assert class_counts(np.array([0.5, 1.2]), None) is None
    m = keras.Sequential([keras.Input((2,)), L.Dense(1, activation="sigmoid")])
    m.compile("adam", keras.losses.BinaryCrossentropy(from_logits=False))
    assert describe_loss(m) == {"loss": "binary_crossentropy", "task": "classification", "num_classes": 2,
                                "from_logits": False}
    m.compile("adam", "mse")
    assert describe_loss(m)["task"] == "regression"


def test_default_callbacks_keep_keras_async_batch_end_dispatch(tmp_path):
    """No recipe callback may force Keras to wait for the device after every step (issue 7)."""
    from keras.src import backend as kbackend
    from keras.src.utils.python_utils import is_default

    import kerasrecipe

    cbs = kerasrecipe.default(run_dir=str(tmp_path / "run"), tensorboard=True)
    for cb in cbs:
        assert getattr(cb, "async_safe", False) or (
            is_default(cb.on_train_batch_end) and is_default(cb.on_batch_end)), type(cb).__name__
    assert keras.callbacks.CallbackList(cbs)._async_train is bool(kbackend.IS_THREAD_SAFE)


def test_run_logger_orders_out_of_order_batch_ends(tmp_path):
    model = keras.Sequential([keras.Input((3,)), L.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    logger = RunLogger()
    logger.set_model(model)
    ctx = logger.context
    ctx.fit_info = {"num_samples": 100, "batch_size": 32, "has_validation": False}
    ctx.resolve_monitor(False)  # as on_train_begin does: no validation data, monitor 'loss'
    own = [1.0, 2.0, 3.0, 0.5]  # each batch's own loss; batch sizes 32, 32, 32, 4
    sizes = [32, 32, 32, 4]
    means, total, seen = [], 0.0, 0
    for lo, n in zip(own, sizes):
        total, seen = total + lo * n, seen + n
        means.append(total / seen)
    logger.on_epoch_begin(0)
    logger.on_train_batch_begin(0)
    for b in (1, 0, 3):  # the order Keras's callback thread may run them in
        logger.on_train_batch_end(b, {"loss": means[b]})
    logger.on_train_batch_begin(1)
    assert [r["step"] - ctx.epoch_start_step for r in logger.runlog.of("batch")] == [0, 1]  # contiguous only
    logger.on_train_batch_end(2, {"loss": means[2]})
    logger.on_epoch_end(0, {"loss": means[-1]})
    got = logger.runlog.of("batch")
    assert [r["step"] - ctx.epoch_start_step for r in got] == [0, 1, 2, 3]
    np.testing.assert_allclose([r["loss"] for r in got], own, rtol=1e-9)
    assert ctx.batch_loss[0] == ctx.epoch_start_step + 3


def test_nan_guard_notes_on_batch_end_acts_on_next_begin_and_restores_at_epoch_end():
    from kerasrecipe.callbacks import NaNGuard

    model = keras.Sequential([keras.Input((2,)), L.Dense(1)])
    model.compile("sgd", "mse")
    guard = NaNGuard()
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    good = model.get_weights()
    model.set_weights([np.full((2, 1), np.nan, "float32"), np.zeros(1, "float32")])
    guard.on_train_batch_end(2, {"loss": 0.5})
    guard.on_train_batch_end(3, {"loss": float("nan")})  # only noted (this may run on Keras's thread)
    assert guard.tripped is None and not model.stop_training
    guard.on_train_batch_begin(4)
    assert guard.tripped is not None and model.stop_training
    assert guard.tripped["where"] == "weights" and guard.tripped["layer"] == model.layers[0].name
    assert not np.all(np.isfinite(model.get_weights()[0]))  # step 4 still runs: restored at epoch end
    guard.on_epoch_end(0, {"loss": float("nan")})
    for w, g in zip(model.get_weights(), good):
        np.testing.assert_array_equal(w, g)
    assert len([e for e in guard.runlog.of("event") if e["event"] == "nan"]) == 1
