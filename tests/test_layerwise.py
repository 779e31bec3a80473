"""Layer-wise learning rates (D7): verified by inspecting each layer's update; fine-tune helper."""
import keras
import numpy as np
import pytest
from keras import ops

import kerasrecipe as kr
from kerasrecipe.backend_ops import weight_grads
from kerasrecipe.errors import ConfigError
from kerasrecipe.optimizers import get_learning_rates, layerwise, set_learning_rate


def _deep(n=3):
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(4, use_bias=False, name=f"d{i}") for i in range(n)])


def _effective_lrs(model, x, y):
    """Per layer: -(update) / gradient, from one SGD step (the rate each layer really got)."""
    before = [np.array(ops.convert_to_numpy(v)) for v in model.trainable_variables]
    _, grads = weight_grads(model, x, y)
    model.train_on_batch(x, y)
    after = [np.array(ops.convert_to_numpy(v)) for v in model.trainable_variables]
    out = {}
    for v, b, a, g in zip(model.trainable_variables, before, after, grads):
        mask = np.abs(g) > 1e-4
        out[v.path.split("/")[-2]] = float(np.median((b - a)[mask] / g[mask]))
    return out


def _xy():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 4)).astype("float32")


def test_geometric_rates_from_head_to_input_and_plateau_halving():
    model = _deep(3)
    opt = layerwise(model, keras.optimizers.SGD(0.1), decay=0.5)
    model.compile(opt, "mse")
    x, y = _xy()
    lrs = _effective_lrs(model, x, y)
    assert lrs["d2"] == pytest.approx(0.1, rel=1e-3)
    assert lrs["d1"] == pytest.approx(0.05, rel=1e-3)
    assert lrs["d0"] == pytest.approx(0.025, rel=1e-3)
    kr.optimizers.scale_learning_rate(model.optimizer, 0.5, model=model)  # what ReduceLROnPlateauAny does
    assert sorted(get_learning_rates(model.optimizer)) == pytest.approx([0.0125, 0.025, 0.05])
    lrs = _effective_lrs(model, x, y)
    assert [lrs["d0"], lrs["d1"], lrs["d2"]] == pytest.approx([0.0125, 0.025, 0.05], rel=1e-3)


def test_explicit_groups_with_a_schedule_and_save_load(tmp_path):
    model = _deep(3)
    sched = keras.optimizers.schedules.PiecewiseConstantDecay([1000], [0.2, 0.02])
    opt = layerwise(model, keras.optimizers.SGD(sched), groups={"d0": 0.1, "d[12]": 0.5})
    model.compile(opt, "mse")
    x, y = _xy()
    lrs = _effective_lrs(model, x, y)
    assert [lrs["d0"], lrs["d1"], lrs["d2"]] == pytest.approx([0.02, 0.1, 0.1], rel=1e-3)
    set_learning_rate(model.optimizer, 0.05, model=model)
    lrs = _effective_lrs(model, x, y)
    assert [lrs["d0"], lrs["d1"], lrs["d2"]] == pytest.approx([0.01, 0.05, 0.05], rel=1e-3)
    path = str(tmp_path / "m.keras")
    model.save(path)
    back = keras.models.load_model(path)
    assert sorted(get_learning_rates(back.optimizer)) == pytest.approx(sorted(get_learning_rates(model.optimizer)))
    with pytest.raises(ConfigError, match="matches no"):
        layerwise(model, keras.optimizers.SGD(0.1), groups={"nope": 0.1})


def test_clipping_template_keeps_one_global_norm():
    model = _deep(2)
    opt = layerwise(model, kr.optimizers.clip_global_norm(keras.optimizers.SGD(0.1), 0.5), decay=0.1)
    assert isinstance(opt, kr.optimizers.GlobalNormClipping) and isinstance(opt, keras.optimizers.MultiOptimizer)
    model.compile(opt, "mse")
    x, y = _xy()
    model.train_on_batch(x * 100, y)
    assert float(ops.convert_to_numpy(opt.last_global_norm)) > 0.5


def test_fine_tune_freezes_then_unfreezes_with_lower_rates():
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="b0"),
                                 keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(8, name="b1")],
                                name="backbone")
    model = keras.Sequential([keras.Input((4,)), backbone, keras.layers.Dense(2, name="head")])
    model.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    x, y = _xy()
    y = y[:, :2]
    bn = backbone.get_layer("bn")
    bn_stats = [np.array(ops.convert_to_numpy(v)) for v in (bn.moving_mean, bn.moving_variance)]
    b0 = np.array(ops.convert_to_numpy(backbone.get_layer("b0").kernel))
    head0 = np.array(ops.convert_to_numpy(model.get_layer("head").kernel))
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = (np.array(ops.convert_to_numpy(backbone.get_layer("b0").kernel)),
                           "mae" in logs)

    h1, h2 = kr.optimizers.fine_tune(model, backbone, x, y, head_epochs=1, epochs=1, backbone_factor=0.1,
                                     decay=0.5, callbacks=[Spy()], verbose=0, batch_size=16)
    np.testing.assert_array_equal(seen[0][0], b0)  # phase 1: backbone frozen
    assert not np.array_equal(seen[1][0], b0)     # phase 2: backbone trains
    assert seen[0][1] and seen[1][1]               # metrics kept
    assert not np.array_equal(ops.convert_to_numpy(model.get_layer("head").kernel), head0)
    for v, s in zip((bn.moving_mean, bn.moving_variance), bn_stats):
        np.testing.assert_array_equal(ops.convert_to_numpy(v), s)  # BatchNorm stayed in inference mode
    rates = sorted(get_learning_rates(model.optimizer))
    assert rates == pytest.approx([0.05 * 0.1 * 0.5, 0.05 * 0.1, 0.05])
    assert len(h1.history["loss"]) == 1 and len(h2.history["loss"]) == 1
