"""preflight end to end: clean bundled data passes, inputs of every kind, report, strict, run log."""
import io
import json

import numpy as np
import pytest

import keras

import kerasrecipe as kr
from kerasrecipe.checks import DEFAULT_TIME_BUDGET, PreflightReport
from kerasrecipe.errors import ConfigError, InputTypeError, PreflightError

STEPS = {"baseline_steps": 40, "overfit_steps": 300}




def mlp(d, units, act, loss, lr=1e-2):
    m = keras.Sequential([keras.Input((d,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dense(units, activation=act)])
    m.compile(keras.optimizers.Adam(lr), loss)
    return m


def split(x, y, frac=0.8, seed=0):
    idx = np.random.default_rng(seed).permutation(len(x))
    k = int(len(x) * frac)
    return x[idx[:k]], y[idx[:k]], x[idx[k:]], y[idx[k:]]


def standardise(tr, va):
    mu, sd = tr.mean(0), tr.std(0) + 1e-8
    return ((tr - mu) / sd).astype("float32"), ((va - mu) / sd).astype("float32")


def assert_clean(report):
    assert report.ok, str(report)
    assert report.failed == []
    assert {f.severity for f in report.findings()} <= {"warning"}


def test_clean_digits_has_no_failed_row(digits):
    x, y = digits
    xt, yt, xv, yv = split(x, y)
    m = mlp(64, 10, "softmax", "sparse_categorical_crossentropy")
    r = kr.preflight(m, xt, yt, validation_data=(xv, yv), verbose=0, options=STEPS, time_budget=None)
    assert_clean(r)
    for name in ("finite", "input_scale", "leakage", "targets", "shift", "output_loss", "initial_loss",
                 "batch_independence", "zero_baseline", "overfit_batch"):
        assert r[name].status == "passed", (name, r[name].summary)


def test_clean_breast_cancer_has_no_failed_row():
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    xt, yt, xv, yv = split(d.data, d.target.astype("float32"))
    xt, xv = standardise(xt, xv)
    m = mlp(30, 1, "sigmoid", "binary_crossentropy")
    r = kr.preflight(m, xt, yt, validation_data=(xv, yv), verbose=0, options=STEPS, time_budget=None)
    assert_clean(r)
    assert r["initial_loss"].evidence["expected_uniform"] == pytest.approx(np.log(2))
    # the same data unscaled: the input-scale check fails and says how to fix it (B3)
    raw = kr.preflight(mlp(30, 1, "sigmoid", "binary_crossentropy"), d.data, d.target, checks=["input_scale"],
                       verbose=0)
    assert raw["input_scale"].status == "warning" and raw["input_scale"].tags == ["unnormalized_input"]
    assert "Normalization" in raw["input_scale"].fix


def test_clean_diabetes_has_no_failed_row():
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    xt, yt, xv, yv = split(d.data, d.target)
    xt, xv = standardise(xt, xv)
    mu, sd = yt.mean(), yt.std()
    yt, yv = ((yt - mu) / sd).astype("float32"), ((yv - mu) / sd).astype("float32")
    m = mlp(10, 1, "linear", "mse")
    r = kr.preflight(m, xt, yt, validation_data=(xv, yv), verbose=0, options=STEPS, time_budget=None)
    assert_clean(r)
    assert r["initial_loss"].evidence["expected_prior"] == pytest.approx(float(np.var(yt)), rel=0.2)
    assert r["class_balance"].status == "skipped"


def test_pydataset_is_read_as_a_bounded_sample(digits):
    x, y = digits

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.reads = []

        def __len__(self):
            return len(x) // 32

        def __getitem__(self, i):
            self.reads.append(i)
            return x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

    ds = Batches()
    m = mlp(64, 10, "softmax", "sparse_categorical_crossentropy")
    r = kr.preflight(m, ds, checks=["finite", "class_balance", "targets", "initial_loss"], verbose=0,
                     max_samples=320)
    s = r.sample["train"]
    assert s["source"] == "PyDataset" and s["samples_read"] == 320 and s["bounded"]
    assert s["n_total"] == len(ds) * 32
    assert len(set(ds.reads)) <= 11 and max(ds.reads) > len(ds) // 2  # spread over the dataset, bounded
    assert r.ok and r["initial_loss"].status == "passed"


def test_tf_data_dataset(digits, backend):
    if backend != "tensorflow":
        pytest.skip("tf.data input is for the TensorFlow backend")
    import tensorflow as tf

    x, y = digits
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    xv = x.copy()
    xv[5, 3] = np.nan
    m = mlp(64, 10, "softmax", "sparse_categorical_crossentropy")
    r = kr.preflight(m, ds, validation_data=tf.data.Dataset.from_tensor_slices((xv, y)).batch(64),
                     checks=["finite", "targets", "leakage"], verbose=0, max_samples=640)
    assert r.sample["train"]["source"] == "tf.data" and r.sample["train"]["samples_read"] == 640
    assert r["finite"].status == "failed"          # the NaN in validation is found
    assert r["leakage"].status == "failed"         # validation == training here


def test_report_serialises_prints_and_goes_into_the_run_log(digits, tmp_path):
    x, y = digits
    xb = x.copy()
    xb[0, 0] = np.nan
    log = kr.RunLog(str(tmp_path))
    from rich.console import Console

    buf = io.StringIO()
    m = mlp(64, 10, "softmax", "sparse_categorical_crossentropy")
    r = kr.preflight(m, xb, y, checks="data", verbose=1, runlog=log, console=Console(file=buf, width=160))
    out = buf.getvalue()
    assert "kerasrecipe preflight" in out and "NaN / Inf" in out and "failed" in out
    d = json.loads(r.to_json())
    assert d["counts"]["failed"] == 1 and d["rows"][0]["name"] == "finite"
    again = PreflightReport.from_dict(d)
    assert [row.status for row in again] == [row.status for row in r]
    assert [f.tag for f in again.findings()] == [f.tag for f in r.findings()]
    rec = kr.RunLog.load(str(tmp_path)).last("preflight")
    assert rec is not None and rec["counts"]["failed"] == 1
    f = r.findings()[0]
    assert isinstance(f, kr.Finding) and f.tag == "data_nan" and f.severity == "error" and f.fixes
    assert f.rule == "preflight.finite" and f.tips == ["B1", "G2"]


def test_strict_raises_listing_the_failures(digits):
    x, y = digits
    m = mlp(64, 3, "softmax", "sparse_categorical_crossentropy")  # labels 0..9 for 3 units
    with pytest.raises(PreflightError) as e:
        kr.preflight(m, x, y, checks=["targets", "finite"], strict=True, verbose=0)
    assert "targets" in str(e.value) and [r.name for r in e.value.failures] == ["targets"]
    ok = kr.preflight(mlp(64, 10, "softmax", "sparse_categorical_crossentropy"), x, y, checks=["targets"],
                      strict=True, verbose=0)
    assert ok.ok


def test_default_budget_accounting_for_a_small_model(digits):
    x, y = digits
    r = kr.preflight(mlp(64, 10, "softmax", "sparse_categorical_crossentropy"), x[:600], y[:600], verbose=0)
    b = r.budget()
    assert r.time_budget == DEFAULT_TIME_BUDGET <= 60
    # every check that ran started within the budget; every one left out says it was the budget
    assert b["started_late"] == [], b
    for row in r:
        if row.started_at is None and row.name != "capacity":
            assert row.reason.startswith("time budget"), (row.name, row.reason)
    assert set(b["per_check"]) == set(kr.checks.CHECK_NAMES)
    assert b["checks_seconds"] <= b["elapsed"] + 1e-3
    # the data and model checks are bounded by the sample, never by the budget
    assert all(r[n].status != "skipped" or "time budget" not in (r[n].reason or "")
               for n in ("finite", "input_scale", "targets", "initial_loss", "batch_independence"))


def test_bad_arguments_raise_clear_errors(digits):
    x, y = digits
    m = mlp(64, 10, "softmax", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="unknown preflight check"):
        kr.preflight(m, x, y, checks=["nope"], verbose=0)
    with pytest.raises(ConfigError, match="time_budget"):
        kr.preflight(m, x, y, time_budget=0, verbose=0)
    with pytest.raises(InputTypeError):
        kr.preflight("not a model", x, y, verbose=0)
    with pytest.raises(ConfigError, match="same number of samples"):
        kr.preflight(m, x, y[:10], verbose=0)
    with pytest.raises(ConfigError, match="unknown preflight option"):
        kr.preflight(m, x, y, options={"steps": 3}, verbose=0)


def test_multi_input_model_dict_inputs():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((200, 3)).astype("float32")
    b = rng.standard_normal((200, 2)).astype("float32") * 50  # unnormalised second input
    y = (a[:, 0] + b[:, 0] / 50 > 0).astype("float32")
    ia, ib = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([ia, ib]))
    m = keras.Model({"a": ia, "b": ib}, keras.layers.Dense(1, activation="sigmoid")(h))
    m.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    r = kr.preflight(m, {"a": a, "b": b}, y, checks=["finite", "input_scale", "duplicates", "initial_loss",
                     "batch_independence", "overfit_batch"], verbose=0, time_budget=None,
                     options={"overfit_steps": 200})
    assert r["input_scale"].status == "warning" and "x['b']" in r["input_scale"].summary
    assert "x['a']" not in " ".join(i.message for i in r["input_scale"].issues)
    assert r["batch_independence"].status == "skipped" and "multi-input" in r["batch_independence"].reason
    assert r["initial_loss"].status != "skipped" and r["initial_loss"].evidence["measured"] > 0
    assert r["overfit_batch"].status in ("passed", "warning"), r["overfit_batch"].summary
