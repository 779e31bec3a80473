"""LR range test (D2): bit-exact restore, sensible suggestion on digits, errors, plot, run log."""
import json
import math

import keras
import numpy as np
import pytest
from keras import ops

import kerasrecipe as kr
from kerasrecipe.errors import ConfigError, DivergenceError, NotCompiledError
from kerasrecipe.lr_finder import smooth, suggest_min_div10, suggest_steepest, suggest_valley


def _mlp(optimizer, bn=False):
    layers = [keras.Input((64,)), keras.layers.Dense(32, activation="relu")]
    if bn:
        layers += [keras.layers.BatchNormalization(), keras.layers.Dropout(0.2)]
    layers += [keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _state(model):
    return ([np.array(ops.convert_to_numpy(v.value)) for v in model.variables],
            [np.array(ops.convert_to_numpy(v.value)) for v in model.optimizer.variables])


def test_restores_model_and_optimizer_bit_exactly(digits):
    x, y = digits
    sched = kr.schedules.PlateauAware(keras.optimizers.schedules.CosineDecay(1e-3, 500), multiplier=0.5)
    model = _mlp(keras.optimizers.Adam(sched), bn=True)
    model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # optimizer has moments and a step count
    mv, ov = _state(model)
    res = kr.lr_find(model, x, y, num_steps=40, verbose=0)
    assert len(res.lrs) > 5
    mv2, ov2 = _state(model)
    assert len(mv) == len(mv2) and len(ov) == len(ov2)
    for a, b in zip(mv + ov, mv2 + ov2):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer._learning_rate is sched and sched.multiplier == 0.5
    # and the model still trains normally with its own schedule afterwards
    hist = model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)
    assert math.isfinite(hist.history["loss"][0])
    assert float(ops.convert_to_numpy(model.optimizer.iterations)) == 8


def test_suggestion_is_sensible_on_digits(digits, tmp_path):
    x, y = digits
    model = _mlp(keras.optimizers.Adam(3e-4))
    log = kr.RunLog(str(tmp_path))
    res = kr.lr_find(model, x, y, start_lr=1e-6, end_lr=10.0, num_steps=100, batch_size=64, beta=0.9, verbose=1,
                     runlog=log)
    assert min(res.smoothed) < 0.5 * res.smoothed[0]
    assert 1e-3 <= res.suggestion <= 0.2, res  # Adam on digits: the loss falls fastest around 1e-2
    assert set(res.suggestions) == {"steepest", "valley", "min_div10"}
    assert all(v is not None and 1e-6 <= v <= 10 for v in res.suggestions.values())
    # lrs grow geometrically from start_lr
    ratios = np.asarray(res.lrs[1:]) / np.asarray(res.lrs[:-1])
    np.testing.assert_allclose(ratios, (10.0 / 1e-6) ** (1 / 99), rtol=1e-9)
    assert res.lrs[0] == pytest.approx(1e-6)
    # the LR the optimizer really used was the swept one: the loss fell only once lr was large enough
    assert res.smoothed[len(res.smoothed) // 4] > 0.9 * res.smoothed[0]
    rec = log.last("lr_find")
    assert rec["suggestion"] == res.suggestion and len(rec["lrs"]) == len(res.lrs)
    json.dumps(res.to_dict())
    png = res.plot(str(tmp_path / "lr.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_multi_optimizer_sweep_keeps_group_ratios(digits):
    x, y = digits
    head, body = keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.01)
    multi = keras.optimizers.MultiOptimizer(keras.optimizers.OptimizerMap(head, {".*dense/.*": body}))
    model = _mlp(multi)
    res = kr.lr_find(model, x, y, start_lr=1e-4, end_lr=1.0, num_steps=20, verbose=0)
    assert res.lrs[0] == pytest.approx(1e-4) and len(res.lrs) == 20
    assert kr.optimizers.get_learning_rate(head) == pytest.approx(0.1)
    assert kr.optimizers.get_learning_rate(body) == pytest.approx(0.01)


def test_stops_when_the_loss_diverges(digits):
    x, _ = digits
    target = x @ np.linspace(-1, 1, 64).astype("float32")
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    res = kr.lr_find(model, x, target, start_lr=1e-4, end_lr=1e3, num_steps=40, verbose=0)
    assert res.stop_reason in ("diverged", "nan") and len(res.lrs) < 40
    assert res.smoothed[-1] > 4 * min(res.smoothed) or res.stop_reason == "nan"
    assert res.suggestion is not None and res.suggestion < res.lrs[-1]


def test_errors(digits):
    x, y = digits
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    with pytest.raises(NotCompiledError, match="compile"):
        kr.lr_find(model, x, y)
    model = _mlp(keras.optimizers.Adam())
    with pytest.raises(ConfigError, match="at least 20"):
        kr.lr_find(model, x, y, num_steps=5)
    with pytest.raises(ConfigError):
        kr.lr_find(model, x, y, start_lr=1.0, end_lr=1e-3)

    def five_batches():
        for i in range(5):
            yield x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    before = _state(model)
    with pytest.raises(ConfigError, match="ran out after 5 batches"):
        kr.lr_find(model, five_batches(), num_steps=30, verbose=0)
    for a, b in zip(before[0] + before[1], _state(model)[0] + _state(model)[1]):
        np.testing.assert_array_equal(a, b)  # restored on the error path too
    bad = x.copy()
    bad[:] = np.nan
    with pytest.raises(DivergenceError, match="very first step"):
        kr.lr_find(model, bad, y, num_steps=30, verbose=0)


def test_reiterable_dataset_is_cycled(digits):
    x, y = digits

    class Batches:  # re-iterable: a fresh iterator each pass
        def __iter__(self):
            for i in range(4):
                yield x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    model = _mlp(keras.optimizers.Adam())
    res = kr.lr_find(model, Batches(), num_steps=20, start_lr=1e-5, end_lr=1e-3, verbose=0)
    assert len(res.lrs) == 20 and res.stop_reason == "end"


def test_smoothing_and_suggestion_rules_on_a_synthetic_curve():
    lrs = np.logspace(-6, 1, 200)
    # loss: flat at 2, falls fastest around 1e-3, bottoms near 1e-1, then blows up
    t = np.log10(lrs)
    loss = 2 - 1.5 / (1 + np.exp(-(t + 3) * 3)) + np.where(t > -1, (t + 1) ** 2 * 4, 0)
    sm = smooth(loss, 0.0)
    np.testing.assert_allclose(sm, loss)
    sm98 = smooth([1.0] * 10, 0.98)
    np.testing.assert_allclose(sm98, 1.0)  # debiased: no bias towards 0 at the start
    steep = suggest_steepest(lrs, loss)
    assert 5e-4 < steep < 2e-3
    valley = suggest_valley(lrs, loss)
    assert 1e-4 < valley < 1e-2  # halfway along the falling stretch 1e-6 .. 1e-1
    assert suggest_min_div10(lrs, loss) == pytest.approx(lrs[np.argmin(loss)] / 10)
