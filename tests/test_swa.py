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
