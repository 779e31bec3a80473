"""Target/loss, output/loss, initial loss (C1), parameter count (C7) and batch independence (C6)."""
import math

import numpy as np
import pytest

import keras
from keras import ops

import kerasrecipe as kr
from kerasrecipe.checks.introspect import output_activation, output_dense, resolve_loss


def model(d=8, units=3, act="softmax", loss="sparse_categorical_crossentropy", hidden=8, extra=None):
    layers = [keras.Input((d,)), keras.layers.Dense(hidden, activation="relu")]
    layers += list(extra or [])
    layers.append(keras.layers.Dense(units, activation=act))
    m = keras.Sequential(layers)
    m.compile("adam", loss)
    return m


def run(m, x, y, checks, **kw):
    return kr.preflight(m, x, y, checks=checks, verbose=0, time_budget=None, **kw)


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 8)).astype("float32")
    y = (np.arange(300) % 3).astype("int32")
    return x, y


def test_introspection_of_output_and_loss():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Activation("softmax")])
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    assert output_activation(m) == "softmax" and output_dense(m) is m.layers[0]
    info = resolve_loss(m)
    assert info.kind == "sparse_cce" and info.from_logits is False
    inp = keras.Input((4,))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(5)(inp))
    f = keras.Model(inp, out)
    f.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    assert output_activation(f) == "sigmoid" and resolve_loss(f).from_logits is True
    assert resolve_loss(keras.Sequential([keras.layers.Dense(1)])) is None  # not compiled


def test_targets_fit_the_loss(data):
    x, y = data
    assert run(model(), x, y, ["targets"])["targets"].status == "passed"
    onehot = keras.utils.to_categorical(y, 3)
    row = run(model(), x, onehot, ["targets"])["targets"]
    assert row.status == "failed" and row.tags == ["wrong_loss"]  # one-hot to a sparse loss
    row = run(model(loss="categorical_crossentropy"), x, y, ["targets"])["targets"]
    assert row.status == "failed" and row.tags == ["wrong_loss"]  # ids to a one-hot loss
    assert run(model(loss="categorical_crossentropy"), x, onehot, ["targets"])["targets"].status == "passed"
    row = run(model(), x, y + 2, ["targets"])["targets"]
    assert row.status == "failed" and row.tags == ["label_mismatch"] and "0..2" in row.issues[0].message
    row = run(model(), x, y + 0.5, ["targets"])["targets"]
    assert row.tags == ["label_mismatch"]
    row = run(model(units=1, act="sigmoid", loss="binary_crossentropy"), x, y, ["targets"])["targets"]
    assert row.tags == ["wrong_loss"]  # labels 0..2 with a binary loss
    yr = (x[:, 0] * 80 + 150).astype("float32")
    row = run(model(units=1, act="linear", loss="mse"), x, yr, ["targets"])["targets"]
    assert row.status == "warning" and row.tags == ["unscaled_target"]
    yr_std = (yr - yr.mean()) / yr.std()
    assert run(model(units=1, act="linear", loss="mse"), x, yr_std, ["targets"])["targets"].status == "passed"


@pytest.mark.parametrize("units,act,loss,tag", [
    (1, "softmax", "binary_crossentropy", "wrong_output_activation"),
    (3, "sigmoid", "sparse_categorical_crossentropy", "wrong_output_activation"),
    (3, "softmax", keras.losses.SparseCategoricalCrossentropy(from_logits=True), "wrong_loss"),
    (3, "linear", "sparse_categorical_crossentropy", "wrong_loss"),
    (3, "relu", "sparse_categorical_crossentropy", "wrong_output_activation"),
    (3, "softmax", "binary_crossentropy", "wrong_loss"),
])
def test_output_loss_mismatches_fire(data, units, act, loss, tag):
    x, y = data
    if units == 1:
        y = (y > 0).astype("float32")
    row = run(model(units=units, act=act, loss=loss), x, y, ["output_loss"])["output_loss"]
    assert row.status == "failed" and row.tags == [tag], row.summary


def test_output_loss_quiet_on_good_pairs_and_squashing_regression(data):
    x, y = data
    assert run(model(), x, y, ["output_loss"])["output_loss"].status == "passed"
    logits = model(act="linear", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert run(logits, x, y, ["output_loss"])["output_loss"].status == "passed"
    yr = x[:, 0] * 5 + 3
    row = run(model(units=1, act="sigmoid", loss="mse"), x, yr, ["output_loss"])["output_loss"]
    assert row.status == "failed" and row.tags == ["wrong_output_activation"]
    row = run(model(units=1, act="relu", loss="mse"), x, x[:, 0], ["output_loss"])["output_loss"]
    assert row.tags == ["wrong_output_activation"]  # relu output, negative targets
    yp = 1 / (1 + np.exp(-x[:, 0]))
    assert run(model(units=1, act="sigmoid", loss="mse"), x, yp, ["output_loss"])["output_loss"].status == "passed"


def test_initial_loss_matches_the_prior_and_fires_when_far_off(data):
    x, y = data
    row = run(model(), x, y, ["initial_loss"])["initial_loss"]
    assert row.status == "passed"
    assert abs(row.evidence["expected_uniform"] - math.log(3)) < 1e-9
    assert abs(row.evidence["measured"] - math.log(3)) < 0.5
    # huge inputs: overconfident random logits at init
    row = run(model(), x * 200, y, ["initial_loss"])["initial_loss"]
    assert row.status == "failed" and row.tags == ["initial_loss"] and row.evidence["ratio"] > 5
    # binary balanced: log 2
    yb = (np.arange(300) % 2).astype("float32")
    row = run(model(units=1, act="sigmoid", loss="binary_crossentropy"), x, yb, ["initial_loss"])["initial_loss"]
    assert abs(row.evidence["expected_uniform"] - math.log(2)) < 1e-9 and row.status == "passed"
    # regression: var(y) with the bias at the mean, mean(y^2) with a zero bias
    yr = (x[:, 0] + 0.5 * x[:, 1]).astype("float32")
    row = run(model(units=1, act="linear", loss="mse"), x, yr, ["initial_loss"])["initial_loss"]
    assert abs(row.evidence["expected_prior"] - float(np.var(yr[:300]))) < 1e-6
    assert row.status != "failed"


def _linear_head(units, act, loss, kernel):
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation=act)])
    m.compile("adam", loss)
    m.layers[0].set_weights([kernel.astype("float32"), np.zeros(units, "float32")])
    return m


def test_initial_loss_warns_on_excess_nats_not_on_the_ratio_alone(data):
    x, y = data
    # binary head, logit std 2.5: 1.5x+ of log 2 but well under 1 nat of excess: ordinary, quiet
    yb = (np.arange(300) % 2).astype("float32")
    m = _linear_head(1, "sigmoid", "binary_crossentropy", np.full((8, 1), 2.5 / np.sqrt(8)))
    row = run(m, x, yb, ["initial_loss"])["initial_loss"]
    assert row.evidence["ratio"] > 1.5 and 0 < row.evidence["excess_nats"] < 1.0, row.evidence
    assert row.status == "passed", row.issues
    # 3 classes, logit std ~3: more than 1 nat above log 3, under 5x: a warning
    k = np.random.default_rng(0).standard_normal((8, 3)) * 3 / np.sqrt(8)
    row = run(_linear_head(3, "softmax", "sparse_categorical_crossentropy", k), x, y, ["initial_loss"])["initial_loss"]
    assert 1.5 < row.evidence["ratio"] < 5 and row.evidence["excess_nats"] > 1.0, row.evidence
    assert row.status == "warning" and row.tags == ["initial_loss"]


def test_initial_loss_equals_prior_entropy_after_set_output_bias(data):
    x, _ = data
    y = np.zeros(300, "int32")
    y[:30] = 1
    y[30:45] = 2
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(3, activation="softmax", kernel_initializer="zeros")])
    m.compile("adam", "sparse_categorical_crossentropy")
    row = run(m, x, y, ["initial_loss"])["initial_loss"]
    assert abs(row.evidence["measured"] - math.log(3)) < 1e-4  # zero kernel, zero bias: uniform
    assert "set_output_bias" in (row.fix or "")  # imbalanced: advice to initialise the bias (C2)
    kr.init.set_output_bias(m, y)
    row = run(m, x, y, ["initial_loss"])["initial_loss"]
    p = np.bincount(y) / len(y)
    assert row.evidence["reference"] == "prior"
    assert abs(row.evidence["measured"] - float(-(p * np.log(p)).sum())) < 1e-4


def test_params_against_samples(data):
    x, y = data
    row = run(model(), x, y, ["params"])["params"]
    assert row.status == "passed" and row.evidence["params"] == 8 * 8 + 8 + 8 * 3 + 3
    big = model(hidden=512, extra=[keras.layers.Dense(512, activation="relu")])
    row = run(big, x[:100], y[:100], ["params"])["params"]
    assert row.status == "warning" and row.tags == ["overfitting"] and row.evidence["params_per_sample"] > 100
    # the same size, already regularised (dropout, L2): the warning's remedy is in place, advice only
    reg = model(hidden=512, extra=[keras.layers.Dropout(0.5), keras.layers.Dense(
        512, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-4))])
    row = run(reg, x[:100], y[:100], ["params"])["params"]
    assert row.status == "passed" and [(i.tag, i.severity) for i in row.issues] == [("overfitting", "info")]
    assert any(r.startswith("Dropout") for r in row.evidence["regularisation"])


@keras.saving.register_keras_serializable("kr_test")
class MixBatch(keras.layers.Layer):
    """A batch-mixing bug: subtracts the batch mean."""

    def call(self, x):
        return x - ops.mean(x, axis=0, keepdims=True)


def test_batch_independence(data):
    x, y = data
    row = run(model(), x, y, ["batch_independence"])["batch_independence"]
    assert row.status == "passed" and row.evidence["mode"] == "inference"
    bad = model(extra=[MixBatch()])
    row = run(bad, x, y, ["batch_independence"])["batch_independence"]
    assert row.status == "failed" and row.tags == ["batch_mixing"] and row.evidence["relative_leak"] > 1e-3
    # BatchNorm mixes samples only in training mode: in inference mode it passes, and says why
    bn = model(extra=[keras.layers.BatchNormalization()])
    row = run(bn, x, y, ["batch_independence"])["batch_independence"]
    assert row.status == "passed" and row.evidence["has_batchnorm"]
    assert "BatchNormalization in training mode" in row.evidence["note"]


def test_ignore_class_labels_are_not_out_of_range(data):
    x, y = data
    y = y.copy()
    y[::4] = -1
    m = model()
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(ignore_class=-1))
    r = run(m, x, y, ["targets", "initial_loss"])
    row = r["targets"]
    assert row.status == "passed" and row.issues == [], row.summary
    assert row.evidence["ignored"] == {"ignore_class": -1, "samples": 75} and "ignore_class" in row.summary
    assert r["initial_loss"].evidence["expected_prior"] == pytest.approx(math.log(3))
    # without ignore_class, -1 is a bad label
    assert run(model(), x, y, ["targets"])["targets"].tags == ["label_mismatch"]
    # labels other than the ignored one are still checked
    y[1] = 5
    assert run(m, x, y, ["targets"])["targets"].tags == ["label_mismatch"]


def test_integer_features_get_the_batch_check_and_an_initial_loss_cause():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (300, 8))  # small counts: numeric features, not token ids
    y = (np.arange(300) % 3).astype("int32")
    row = run(model(), x, y, ["batch_independence"])["batch_independence"]
    assert row.status == "passed" and "independent" in row.summary
    # far from normalised integers: the initial loss row names the cause
    x = rng.integers(0, 1000, (300, 8))
    r = run(model(units=1, act="sigmoid", loss="binary_crossentropy"), x, (x[:, 0] > 500).astype("float32"),
            ["initial_loss", "batch_independence"])
    issue = r["initial_loss"].issues[0]
    assert "not normalised" in issue.message and "Normalization" in issue.fix
    assert r["batch_independence"].tags != ["no_better_than_baseline"]  # a saturated output is not "blind"
