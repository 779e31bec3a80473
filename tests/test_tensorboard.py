"""EpochTensorBoard (A6): Keras's TensorBoard event files, written without TensorFlow."""
import os
import subprocess
import sys

import numpy as np
import pytest

import keras
from kerasrecipe.callbacks.tensorboard import EpochTensorBoard, histogram_buckets
from kerasrecipe.errors import ConfigError

pytest.importorskip("tensorboard")
L = keras.layers


def _events(path):
    """{tag: [(step, value)]} of a TensorBoard run directory (scalars as floats, histograms as arrays)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(path, size_guidance={"tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        out[tag] = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
    return out


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def _model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((3,)), L.Dense(8, activation="relu"), L.Dense(1)])
    m.compile(keras.optimizers.SGD(0.01), "mse", metrics=["mae"])
    return m


def test_epoch_tensorboard_writes_evaluation_scalars_at_epoch_end(tmp_path):
    """Inside fit, the per-validation scalars are written at epoch end (not within the epoch's
    steps), with the same names and steps as Keras's; evaluate() outside fit writes at once."""
    x, y = _data()
    model = _model()
    tb = EpochTensorBoard(str(tmp_path / "tb"))
    seen = []
    orig = tb._write_pending_eval

    def spy():
        seen.append(tb._pending_eval is not None)
        orig()

    tb._write_pending_eval = spy
    hist = model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=16, verbose=0, callbacks=[tb])
    assert seen[:3] == [True, True, True]          # one pending validation write per epoch, done at epoch end
    model.evaluate(x, y, verbose=0, callbacks=[tb])   # outside fit: written at once
    val = _events(str(tmp_path / "tb" / "validation"))
    assert [s for s, _ in val["evaluation_loss_vs_iterations"]] == [4, 8, 12, 12]
    assert [s for s, _ in val["epoch_loss"]] == [0, 1, 2]
    np.testing.assert_allclose([float(v) for _, v in val["epoch_loss"]], hist.history["val_loss"], rtol=1e-6)
    train = _events(str(tmp_path / "tb" / "train"))
    assert set(train) == {"epoch_loss", "epoch_mae", "epoch_learning_rate"}
    np.testing.assert_allclose([float(v) for _, v in train["epoch_mae"]], hist.history["mae"], rtol=1e-6)
    np.testing.assert_allclose([float(v) for _, v in train["epoch_learning_rate"]], [0.01] * 3, rtol=1e-6)


def test_histograms_every_histogram_freq_epochs_count_every_weight(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0,   # histograms after epochs 0 and 2 (the last)
              callbacks=[EpochTensorBoard(str(tmp_path / "tb"), histogram_freq=2)])
    train = _events(str(tmp_path / "tb" / "train"))
    for w in model.weights:
        rows = train[f"{w.path}/histogram"]
        assert [s for s, _ in rows] == [0, 2]
        last = rows[-1][1]
        assert last.shape == (30, 3) and last[:, 2].sum() == np.prod(w.shape)
    kernel = model.layers[0].kernel
    np.testing.assert_allclose(train[f"{kernel.path}/histogram"][-1][1],
                               histogram_buckets(keras.ops.convert_to_numpy(kernel.value)))


@pytest.mark.parametrize("case", ["normal", "constant", "empty", "two_values", "wide"])
def test_histogram_buckets_are_tensorboards(case):
    """Same buckets as tensorboard's own histogram_pb (TF2's layout), counted in O(n)."""
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb
    from tensorboard.util import tensor_util

    rng = np.random.default_rng(1)
    data = {"normal": rng.normal(size=1000), "constant": np.full(17, 3.5), "empty": np.zeros(0),
            "two_values": np.array([0.0, 1.0] * 5), "wide": rng.normal(size=500) * 1e30}[case].astype("float32")
    want = tensor_util.make_ndarray(histogram_pb("t", data).value[0].tensor)
    np.testing.assert_array_equal(histogram_buckets(data), want)


def test_histogram_buckets_leave_out_non_finite_values():
    data = np.array([np.nan, 1.0, np.inf, 2.0, -np.inf, 3.0], dtype="float32")
    b = histogram_buckets(data)
    assert b[:, 2].sum() == 3 and b[0, 0] == 1.0 and b[-1, 1] == 3.0


def test_records_of_finished_epochs_survive_a_crash(tmp_path):
    x, y = _data()

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        _model().fit(x, y, validation_data=(x, y), epochs=5, batch_size=16, verbose=0,
                     callbacks=[EpochTensorBoard(str(tmp_path / "tb")), Crash()])
    assert [s for s, _ in _events(str(tmp_path / "tb" / "train"))["epoch_loss"]] == [0, 1]


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="update_freq.*keras.callbacks.TensorBoard"):
        EpochTensorBoard(str(tmp_path), update_freq="batch")
    with pytest.raises(ConfigError, match="histogram_freq"):
        EpochTensorBoard(str(tmp_path), histogram_freq=-1)


def test_same_files_as_keras_tensorboard(tmp_path, backend):
    """Side by side in one fit, Keras's TensorBoard (through TensorFlow) and ours write the same
    tags, steps and values (scalars; weight histograms: same buckets)."""
    if backend != "tensorflow":
        pytest.skip("compared on the TensorFlow backend (Keras's callback imports TensorFlow)")
    x, y = _data()
    model = _model()
    model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=16, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "keras"), histogram_freq=1, write_graph=False,
                                                     profile_batch=0),
                         EpochTensorBoard(str(tmp_path / "ours"), histogram_freq=1)])
    for sub in ("train", "validation"):
        theirs, ours = _events(str(tmp_path / "keras" / sub)), _events(str(tmp_path / "ours" / sub))
        assert set(ours) == set(theirs), sub
        for tag in theirs:
            assert [s for s, _ in ours[tag]] == [s for s, _ in theirs[tag]], tag
            for (_, a), (_, b) in zip(ours[tag], theirs[tag]):
                assert a.dtype == b.dtype and a.shape == b.shape, tag
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=tag)


def test_no_tensorflow_import_on_torch_and_jax(tmp_path, backend):
    """On PyTorch and JAX the recipe's TensorBoard files are written without importing TensorFlow
    (its import and its spinning thread pools cost the training steps)."""
    if backend == "tensorflow":
        pytest.skip("TensorFlow is the backend here")
    code = (
        "import sys, numpy as np, keras\n"
        "import kerasrecipe as kr\n"
        "x = np.random.default_rng(0).normal(size=(64, 3)).astype('float32'); y = x[:, :1] * 2\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]); m.compile('sgd', 'mse')\n"
        "cbs = kr.default(run_dir=sys.argv[1], tensorboard=True, monitor_health=False)\n"
        "assert any(isinstance(c, kr.callbacks.EpochTensorBoard) for c in cbs)\n"
        "m.fit(x, y, validation_split=0.25, epochs=2, verbose=0, callbacks=cbs)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    run_dir = str(tmp_path / "run")
    r = subprocess.run([sys.executable, "-c", code, run_dir], env=dict(os.environ, KERAS_BACKEND=backend),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-1] == "False"
    assert set(_events(os.path.join(run_dir, "tensorboard", "train"))) >= {"epoch_loss", "epoch_learning_rate"}
