"""The shared core: RecipeConfig, atomic io, RunLog, Finding, gradient probes."""
import json
import math
import os

import numpy as np
import pytest

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError
from kerasrecipe.io import atomic_write_json, read_jsonl, append_jsonl
from kerasrecipe.runlog import RunLog
from kerasrecipe.diagnose.finding import Finding, sort_findings


def test_config_json_round_trip(tmp_path):
    c = RecipeConfig(learning_rate=1e-3, schedule="cosine", multistep_milestones=(3, 7), extra={"k": 1})
    text = c.to_json(str(tmp_path / "c.json"))
    assert RecipeConfig.from_json(text) == c
    assert RecipeConfig.from_json(str(tmp_path / "c.json")) == c


@pytest.mark.parametrize(
    "field,value",
    [("learning_rate", 0.0), ("learning_rate", -1.0), ("learning_rate", float("nan")),
     ("plateau_patience", -1), ("early_stopping_patience", -2), ("schedule", "cosinus"),
     ("optimizer", "adagrad9"), ("plateau_factor", 1.5), ("batch_size", 0), ("clipnorm", 0.0),
     ("checkpoint", "sometimes"), ("multistep_milestones", (5, 3)), ("validation_split", 1.0)],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        RecipeConfig(**{field: value})


def test_config_replace_and_resolve():
    c = resolve_config(None, learning_rate=0.01)
    assert c.learning_rate == 0.01
    assert resolve_config({"seed": 3}).seed == 3
    with pytest.raises(ConfigError, match="unknown"):
        c.replace(learing_rate=1.0)
    with pytest.raises(ConfigError):
        resolve_config(42)
    assert "adam" in c.short_name() and "lr1e-02" in c.short_name()


def test_atomic_json_keeps_old_copy_on_failure(tmp_path):
    p = tmp_path / "a.json"
    atomic_write_json(str(p), {"a": 1})

    class Boom:
        def to_dict(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write_json(str(p), {"b": Boom()})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


def test_jsonl_skips_torn_line(tmp_path):
    p = str(tmp_path / "x.jsonl")
    append_jsonl(p, [{"a": 1}, {"a": np.float32(2.5)}])
    with open(p, "a") as f:
        f.write('{"a": 3')  # torn by a crash
    assert read_jsonl(p) == [{"a": 1}, {"a": 2.5}]


def test_runlog_records_and_reload(tmp_path):
    log = RunLog(str(tmp_path))
    log.log("meta", loss="mse", num_classes=None)
    for e in range(3):
        log.log("epoch", epoch=e, step=10 * (e + 1), logs={"loss": 1.0 / (e + 1)}, lr=0.1)
    log.log("layer", epoch=0, step=5, layer="d1", act={"mean": 0.0})
    again = RunLog.load(str(tmp_path))
    assert again.epoch_series("loss") == pytest.approx([1.0, 0.5, 1 / 3])
    assert math.isnan(again.epoch_series("val_loss")[0]) and not again.has_metric("val_loss")
    assert again.meta["loss"] == "mse" and again.layer_names() == ["d1"]
    with pytest.raises(ConfigError):
        RunLog.load(str(tmp_path / "nope"))


def test_runlog_buffered_records_survive_a_crash_and_resume_drops_redone_steps(tmp_path):
    import subprocess
    import sys

    code = ("from kerasrecipe.runlog import RunLog\n"
            f"log = RunLog({str(tmp_path)!r})\n"
            "log.log('batch', epoch=0, step=0, loss=1.0)\n"
            "log.log('batch', epoch=0, step=1, loss=0.9, flush=False)\n"  # buffered, then a crash
            "raise RuntimeError('crash')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "crash" in out.stderr
    log = RunLog.load(str(tmp_path))
    assert [r["step"] for r in log.of("batch")] == [0, 1]  # written when the interpreter exited
    log = RunLog(str(tmp_path), log.records)
    log.log("event", step=1, event="note")
    assert log.discard_after(0) == 1  # per-step records after step 0 go, events stay
    assert [r["step"] for r in RunLog.load(str(tmp_path)).of("batch")] == [0]
    assert [r["step"] for r in log.of("batch")] == [0] and log.of("event")


def test_finding_order_and_validation():
    a = Finding("x", "info", "i", epoch=0)
    b = Finding("y", "error", "e", epoch=5)
    c = Finding("z", "warning", "w", epoch=1)
    assert [f.rule for f in sort_findings([a, b, c])] == ["y", "z", "x"]
    assert Finding.from_dict(b.to_dict()) == b and b.tag == "y"
    with pytest.raises(ValueError):
        Finding("x", "fatal", "s")


def _tiny_model():
    import keras

    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(2)])
    m.compile("sgd", keras.losses.MeanSquaredError())
    return m


def test_weight_grads_match_finite_differences():
    import keras

    from kerasrecipe.backend_ops import weight_grads

    m = _tiny_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3)).astype("float32")
    y = rng.normal(size=(5, 2)).astype("float32")
    loss, grads = weight_grads(m, x, y)
    assert [g.shape for g in grads] == [tuple(v.shape) for v in m.trainable_variables]
    v = m.trainable_variables[0]
    w0 = np.array(v.numpy(), dtype="float64")
    h = 1e-3
    w = w0.copy()
    w[0, 0] += h
    v.assign(w.astype("float32"))
    lp = float(np.mean((keras.ops.convert_to_numpy(m(x)) - y) ** 2))
    w[0, 0] -= 2 * h
    v.assign(w.astype("float32"))
    lm = float(np.mean((keras.ops.convert_to_numpy(m(x)) - y) ** 2))
    v.assign(w0.astype("float32"))
    assert grads[0][0, 0] == pytest.approx((lp - lm) / (2 * h), rel=2e-2, abs=1e-4)
    assert loss == pytest.approx(float(np.mean((keras.ops.convert_to_numpy(m(x)) - y) ** 2)), rel=1e-5)


def _two_head_model(as_dict):
    import keras

    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu")(inp)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    m = keras.Model(inp, {"cls": cls, "reg": reg} if as_dict else [cls, reg])
    if as_dict:
        m.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5})
    else:
        m.compile("adam", loss=["sparse_categorical_crossentropy", "mse"])
    return m


@pytest.mark.parametrize("case", ["binary_flat_labels", "dict_outputs", "list_outputs"])
def test_probe_loss_is_the_loss_fit_minimises(case):
    """The probes' loss is Keras's compiled loss: (n,) labels against (n, 1) sigmoid outputs,
    dict and list losses of two-head models with loss weights; equal to evaluate's loss, through
    the eager and the compiled probe, and evaluate's per-output loss metrics are left alone."""
    import keras

    from kerasrecipe.backend_ops import weight_grads, weight_grads_fn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    if case == "binary_flat_labels":
        m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
        m.compile("adam", "binary_crossentropy")
        y = (x[:, 0] > 0).astype("float32")
    else:
        m = _two_head_model(case == "dict_outputs")
        cls, reg = rng.integers(0, 3, 32), x[:, :1] * 2
        y = {"cls": cls, "reg": reg} if case == "dict_outputs" else [cls, reg]
    want = m.evaluate(x, y, verbose=0, return_dict=True)
    loss, grads = weight_grads(m, x, y)
    assert loss == pytest.approx(want["loss"], rel=1e-5)
    assert all(np.isfinite(g).all() for g in grads) and sum(float(np.abs(g).sum()) for g in grads) > 0
    fn = weight_grads_fn(m)
    for _ in range(2):
        assert fn(x, y)[0] == pytest.approx(want["loss"], rel=1e-5)
    assert m.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(want, rel=1e-5)
