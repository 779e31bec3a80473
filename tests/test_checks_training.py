"""Checks that train a clone: zero-input baseline (C3), overfit one batch (C4), capacity (C5).
The user's model and optimizer must come out untouched."""
import numpy as np
import pytest

import keras

import kerasrecipe as kr




@keras.saving.register_keras_serializable("kr_test")
class Blind(keras.layers.Layer):
    """A bug: the inputs never reach the rest of the network."""

    def call(self, x):
        return x * 0.0


def build(blind=False, lr=1e-2, dropout=False):
    layers = [keras.Input((8,))]
    if blind:
        layers.append(Blind())
    layers.append(keras.layers.Dense(32, activation="relu"))
    if dropout:
        layers.append(keras.layers.Dropout(0.5))
    layers.append(keras.layers.Dense(3, activation="softmax"))
    m = keras.Sequential(layers)
    m.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return m


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    return x, y


OPTS = {"baseline_steps": 60, "overfit_steps": 300}


def run(m, x, y, checks, **kw):
    return kr.preflight(m, x, y, checks=checks, verbose=0, time_budget=None, options=OPTS, **kw)


def test_clean_model_passes_and_is_untouched(data):
    x, y = data
    m = build(dropout=True)
    before = [w.copy() for w in m.get_weights()]
    opt = m.optimizer
    r = run(m, x, y, ["zero_baseline", "overfit_batch"])
    assert r["zero_baseline"].status == "passed", r["zero_baseline"].summary
    assert r["zero_baseline"].evidence["real_loss"] < r["zero_baseline"].evidence["zero_input_loss"]
    ov = r["overfit_batch"]
    assert ov.status == "passed", ov.summary
    assert ov.evidence["reached_at"] <= 300 and ov.evidence["accuracy"] == 1.0
    # the user's model, weights and optimizer are untouched
    assert m.optimizer is opt and int(keras.ops.convert_to_numpy(opt.iterations)) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    assert not opt.built or all(float(np.abs(keras.ops.convert_to_numpy(v)).sum()) == 0
                                for v in opt.variables if "iteration" not in v.path and "learning_rate" not in v.path)
    assert abs(float(keras.ops.convert_to_numpy(opt.learning_rate)) - 1e-2) < 1e-9
    assert m.layers[1].rate == 0.5  # dropout switched off only in the clone


def test_blind_model_fails_zero_baseline_and_overfit(data):
    x, y = data
    r = run(build(blind=True), x, y, ["zero_baseline", "overfit_batch"])
    zb = r["zero_baseline"]
    assert zb.status == "failed" and zb.tags == ["no_better_than_baseline"], zb.summary
    ov = r["overfit_batch"]
    assert ov.status == "failed" and ov.tags == ["cannot_overfit"], ov.summary
    tags = {f.tag for f in r.findings()}
    assert {"no_better_than_baseline", "cannot_overfit"} <= tags


def test_shuffled_labels_are_no_better_than_baseline(data):
    x, y = data
    yp = np.random.default_rng(0).permutation(y)
    zb = run(build(), x, yp, ["zero_baseline"])["zero_baseline"]
    assert zb.status in ("failed", "warning") and zb.tags == ["no_better_than_baseline"], zb.summary


def test_too_few_baseline_steps_are_inconclusive_not_a_failure(data):
    # the same shuffled labels, but too few steps for any model to learn: info, not a finding
    x, y = data
    yp = np.random.default_rng(0).permutation(y)
    r = kr.preflight(build(), x, yp, checks=["zero_baseline"], verbose=0, time_budget=None,
                     options={"baseline_steps": 5})
    zb = r["zero_baseline"]
    assert zb.status == "passed" and zb.evidence["conclusive"] is False, zb.summary
    assert [(i.tag, i.severity) for i in zb.issues] == [("no_better_than_baseline", "info")]
    assert "inconclusive" in zb.issues[0].message and r.findings() == []


def test_overfit_stopped_while_still_falling_is_inconclusive(data):
    x, y = data
    r = kr.preflight(build(lr=3e-3), x, y, checks=["overfit_batch"], verbose=0, time_budget=None,
                     options={"overfit_steps": 24})
    ov = r["overfit_batch"]
    assert ov.evidence["reached_at"] is None and ov.evidence["recent_relative_drop"] >= 0.05, ov.evidence
    assert ov.status == "passed" and [(i.tag, i.severity) for i in ov.issues] == [("cannot_overfit", "info")]


def test_too_high_learning_rate_cannot_overfit(data):
    x, y = data
    m = build()
    m.compile(keras.optimizers.SGD(50.0), "sparse_categorical_crossentropy")
    ov = run(m, x, y, ["overfit_batch"])["overfit_batch"]
    assert ov.status == "failed" and ov.tags == ["cannot_overfit"], ov.summary


def test_capacity_is_optional_and_compares_a_wider_clone(data):
    x, y = data
    m = build(lr=3e-3)
    r = kr.preflight(m, x, y, checks=["capacity"], verbose=0, time_budget=None, options={"capacity_steps": 40})
    cap = r["capacity"]
    assert cap.status in ("passed", "warning") and cap.evidence["steps"] == 40
    assert cap.evidence["wide_params"] > cap.evidence["base_params"]
    assert cap.evidence["widened_layers"] == [m.layers[0].name]


def test_uncompiled_model_skips_training_checks_with_a_reason(data):
    x, y = data
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    r = run(m, x, y, ["zero_baseline", "overfit_batch", "initial_loss"])
    for name in ("zero_baseline", "overfit_batch", "initial_loss"):
        assert r[name].status == "skipped" and "compile" in r[name].reason


def test_budget_skips_training_checks_and_says_so(data):
    x, y = data
    r = kr.preflight(build(), x, y, verbose=0, time_budget=0.5)
    assert r["capacity"].status == "skipped" and "optional" in r["capacity"].reason  # not in checks="all"
    b = r.budget()
    assert b["time_budget"] == 0.5
    assert {"zero_baseline", "overfit_batch"} <= set(b["budget_limited"])
    for name in ("zero_baseline", "overfit_batch"):
        assert r[name].status == "skipped" and r[name].reason.startswith("time budget")
    assert abs(b["left"] - (0.5 - b["budget_used"])) < 1e-3 and b["budget_used"] <= b["elapsed"]
    assert b["checks_seconds"] <= b["elapsed"] + 1e-3


def test_overfit_accuracy_is_measured_like_the_loss_with_batchnorm():
    rng = np.random.default_rng(3)
    x = (4 + 3 * rng.standard_normal((400, 8))).astype("float32")  # far from the BN moving stats' init
    y = (x[:, 0] > 4).astype("int32") + (x[:, 1] > 4).astype("int32")
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32), keras.layers.BatchNormalization(),
                          keras.layers.Activation("relu"), keras.layers.Dense(3, activation="softmax")])
    m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    row = run(m, x, y, ["overfit_batch"])["overfit_batch"]
    assert row.status == "passed" and row.evidence["reached_at"] is not None, row.summary
    # loss <= 0.05 on the batch: every sample is right in the mode the loss was measured in
    assert row.evidence["accuracy"] == 1.0, row.summary
    assert "training" in row.evidence["accuracy_mode"]
