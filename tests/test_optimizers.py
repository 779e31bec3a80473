"""get/set learning rate, ReduceLROnPlateauAny, clipping optimizer, presets."""
import math

import keras
import numpy as np
import pytest
from keras import ops

import kerasrecipe as kr
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.optimizers import get_learning_rate, get_learning_rates, set_learning_rate
from kerasrecipe.schedules import PlateauAware


def _mean_pred_loss(y_true, y_pred):
    # d loss / d w = 1 for a bias-free Dense(1) on inputs of ones: each SGD step moves w by -lr.
    return ops.mean(y_pred)


def _linear_model(optimizer, units=1):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(units, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=optimizer, loss=_mean_pred_loss)
    return model


# ----------------------------------------------------------------------------- get / set
def test_get_set_float_lr():
    opt = keras.optimizers.Adam(1e-3)
    assert get_learning_rate(opt) == pytest.approx(1e-3)
    set_learning_rate(opt, 5e-4)
    assert get_learning_rate(opt) == pytest.approx(5e-4)
    assert float(ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(5e-4)


def test_get_set_schedule_wraps_in_plateau_aware():
    sched = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=10, decay_rate=0.5)
    opt = keras.optimizers.SGD(sched)
    assert get_learning_rate(opt) == pytest.approx(1e-2)
    opt.iterations.assign(10)
    assert get_learning_rate(opt) == pytest.approx(5e-3)
    set_learning_rate(opt, 1e-3)  # Keras's own setter raises TypeError here
    assert isinstance(opt._learning_rate, PlateauAware)
    assert opt._learning_rate.schedule is sched
    assert get_learning_rate(opt) == pytest.approx(1e-3, rel=1e-5)
    opt.iterations.assign(20)  # the schedule keeps its shape at the lower level
    assert get_learning_rate(opt) == pytest.approx(5e-4, rel=1e-5)


def test_get_set_multi_optimizer_keeps_ratios():
    a, b = keras.optimizers.SGD(0.1), keras.optimizers.Adam(0.01)
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(a, {"x/.*": b}))
    with pytest.raises(AttributeError):
        multi.learning_rate  # noqa: B018 - Keras's own accessor fails
    assert get_learning_rate(multi) == pytest.approx(0.1)
    assert sorted(get_learning_rates(multi)) == pytest.approx([0.01, 0.1])
    set_learning_rate(multi, 0.05)
    assert get_learning_rate(a) == pytest.approx(0.05)
    assert get_learning_rate(b) == pytest.approx(0.005)


def test_set_learning_rate_errors():
    opt = keras.optimizers.Adam(1e-3)
    for bad in (-1.0, float("nan"), "0.1", True):
        with pytest.raises(ConfigError):
            set_learning_rate(opt, bad)
    with pytest.raises(InputTypeError):
        get_learning_rate(None)
    with pytest.raises(InputTypeError):
        set_learning_rate(keras.optimizers.SGD(lambda: 0.1), 0.01)


def test_plateau_aware_serialization_round_trip():
    sched = PlateauAware(keras.optimizers.schedules.CosineDecay(1e-3, 100), multiplier=0.25)
    cfg = keras.saving.serialize_keras_object(sched)
    back = keras.saving.deserialize_keras_object(cfg)
    assert isinstance(back, PlateauAware) and back.multiplier == 0.25
    for step in (0, 37, 100):
        assert float(back(step)) == pytest.approx(float(sched(step)), rel=1e-6)
        assert float(back(step)) == pytest.approx(0.25 * 1e-3 * 0.5 * (1 + math.cos(math.pi * step / 100)), rel=1e-5)


# ----------------------------------------------------------------------------- ReduceLROnPlateauAny
@pytest.mark.parametrize("kind", ["float", "schedule"])
def test_plateau_halving_applies_inside_fit(kind):
    # mode="max" on a falling loss: never an improvement, so with patience=1 the rate halves at the end
    # of epochs 1, 2, ... One step per epoch; w moves by -lr each step.
    lr = 0.1 if kind == "float" else keras.optimizers.schedules.PiecewiseConstantDecay([1000], [0.1, 0.01])
    model = _linear_model(keras.optimizers.SGD(lr))
    cb = kr.callbacks.ReduceLROnPlateauAny(monitor="loss", mode="max", patience=1, min_lr=0.0)
    x = np.ones((8, 1), "float32")
    hist = model.fit(x, np.zeros((8, 1), "float32"), batch_size=8, epochs=4, verbose=0, callbacks=[cb])
    w = float(ops.convert_to_numpy(model.layers[0].kernel)[0, 0])
    assert w == pytest.approx(-(0.1 + 0.1 + 0.05 + 0.025), rel=1e-5)
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025, 0.0125], rel=1e-5)
    assert [r[0] for r in cb.reductions] == [1, 2, 3]


def test_plateau_multi_optimizer_and_min_lr():
    inp = keras.Input((1,))
    out = keras.layers.Add()([
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="head")(inp),
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="body")(inp),
    ])
    model = keras.Model(inp, out)
    head, body = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.01)
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(head, {"body/.*": body}))
    model.compile(multi, loss=_mean_pred_loss)
    cb = kr.callbacks.ReduceLROnPlateauAny(monitor="loss", mode="max", patience=1, min_lr=0.004)
    x = np.ones((4, 1), "float32")
    hist = model.fit(x, np.zeros((4, 1), "float32"), batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    w_head = float(ops.convert_to_numpy(model.get_layer("head").kernel)[0, 0])
    w_body = float(ops.convert_to_numpy(model.get_layer("body").kernel)[0, 0])
    assert w_head == pytest.approx(-(0.1 + 0.1 + 0.05), rel=1e-5)
    assert w_body == pytest.approx(-(0.01 + 0.01 + 0.005), rel=1e-5)
    assert get_learning_rate(body) == pytest.approx(0.004)  # floored at min_lr
    assert "learning_rate_" + head.name in hist.history


def test_plateau_missing_monitor_warns_and_runlog(tmp_path):
    log = kr.RunLog(str(tmp_path))
    model = _linear_model(keras.optimizers.SGD(0.1))
    x = np.ones((4, 1), "float32")
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[kr.callbacks.ReduceLROnPlateauAny()])
    cb = kr.callbacks.ReduceLROnPlateauAny(monitor="loss", mode="max", patience=1, runlog=log)
    model.fit(x, x, epochs=2, verbose=0, callbacks=[cb])
    ev = log.of("event")
    assert len(ev) == 1 and ev[0]["event"] == "lr_reduced" and ev[0]["new_lr"] == pytest.approx(ev[0]["old_lr"] / 2)
    with pytest.raises(ConfigError):
        kr.callbacks.ReduceLROnPlateauAny(factor=1.5)
