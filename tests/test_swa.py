"""SWA (I4) and snapshot saving at warm-restart cycle ends (I2)."""
import json
import os

import keras
import numpy as np
import pytest
from keras import ops

import kerasrecipe as kr


class Spy(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = [np.array(ops.convert_to_numpy(v.value)) for v in self.model.trainable_variables]


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 5)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")


def test_swa_weights_are_the_arithmetic_mean_of_the_snapshots():
    x, y = _data()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    spy, swa = Spy(), kr.callbacks.SWA(start_epoch=2, freq=2)
    model.fit(x, y, epochs=7, batch_size=16, verbose=0, callbacks=[swa, spy])
    assert swa.averaged_epochs == [2, 4, 6] and swa.n_averaged == 3
    for i, v in enumerate(model.trainable_variables):
        want = np.mean([spy.weights[e][i].astype("float64") for e in (2, 4, 6)], axis=0)
        np.testing.assert_allclose(ops.convert_to_numpy(v), want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(ops.convert_to_numpy(model.trainable_variables[0]), spy.weights[6][0])


def test_swa_recomputes_batchnorm_statistics():
    x, y = _data()
    x = x * 3 + 2
    model = keras.Sequential([keras.Input((5,)), keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    swa = kr.callbacks.SWA(start_epoch=0, bn_data=x, bn_batch_size=16)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[swa])
    bn = model.layers[0]
    batches = [x[i:i + 16] for i in range(0, 64, 16)]
    np.testing.assert_allclose(ops.convert_to_numpy(bn.moving_mean), np.mean([b.mean(0) for b in batches], 0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(bn.moving_variance), np.mean([b.var(0) for b in batches], 0),
                               rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99  # restored
    with pytest.warns(UserWarning, match="bn_data"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[kr.callbacks.SWA(start_epoch=0)])


def test_batchnorm_inside_a_custom_layer_is_found_by_swa_and_stays_frozen_on_unfreeze():
    """A BatchNormalization a custom layer holds as an attribute (ConvBNReLU's) is every bit a
    BatchNormalization: SWA recomputes its statistics, `unfreeze` keeps it frozen."""
    from kerasrecipe.layers import ConvBNReLU
    from kerasrecipe.optimizers import freeze, unfreeze

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(32, 6, 6, 1)) * 3 + 2).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    block = ConvBNReLU(3)
    model = keras.Sequential([keras.Input((6, 6, 1)), block, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    swa = kr.callbacks.SWA(start_epoch=0, bn_data=x, bn_batch_size=16)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[swa])
    bn = block.bn if hasattr(block, "bn") else next(l for l in block._layers if isinstance(l, keras.layers.BatchNormalization))
    conv = next(l for l in block._layers if isinstance(l, keras.layers.Conv2D))
    pre = [np.asarray(ops.convert_to_numpy(conv(x[i:i + 16]))).reshape(-1, 3) for i in (0, 16)]
    np.testing.assert_allclose(ops.convert_to_numpy(bn.moving_mean), np.mean([p.mean(0) for p in pre], 0),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ops.convert_to_numpy(bn.moving_variance), np.mean([p.var(0) for p in pre], 0),
                               rtol=1e-3, atol=1e-4)
    freeze(model)
    unfreeze(model)
    assert block.trainable and conv.trainable and not bn.trainable


def test_snapshots_at_cycle_ends(tmp_path):
    x, y = _data()
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    spy = Spy()
    saver = kr.callbacks.SnapshotSaver(str(tmp_path / "snaps"), cycle_epochs=1, mult=2.0)
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[saver, spy])
    files = sorted(f for f in os.listdir(tmp_path / "snaps") if f.endswith(".keras"))
    assert files == ["snapshot-01.keras", "snapshot-02.keras"]
    with open(tmp_path / "snaps" / "snapshots.json") as f:
        index = json.load(f)["snapshots"]
    assert [s["epoch"] for s in index] == [0, 2] and "loss" in index[0]["logs"]
    snap = keras.models.load_model(str(tmp_path / "snaps" / "snapshot-02.keras"))
    for v, w in zip(snap.trainable_variables, spy.weights[2]):
        np.testing.assert_array_equal(ops.convert_to_numpy(v), w)
