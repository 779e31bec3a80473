"""Data checks: each fires on a broken case and stays quiet on a clean one."""
import numpy as np
import pytest

import keras
import kerasrecipe as kr
from kerasrecipe.checks.data import sequence_lengths


def mlp(d=8, c=3, act="softmax", loss="sparse_categorical_crossentropy"):
    m = keras.Sequential([keras.Input((d,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(c, activation=act)])
    m.compile("adam", loss)
    return m


def run(model, x, y=None, checks=None, **kw):
    return kr.preflight(model, x, y, checks=checks, verbose=0, time_budget=None, **kw)


@pytest.fixture
def clean():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5).astype("int32")
    return x, y


def test_finite_fires_on_nan_and_inf_and_is_quiet_on_clean(clean):
    x, y = clean
    r = run(mlp(), x, y, ["finite"])
    assert r["finite"].status == "passed"
    xb = x.copy()
    xb[3, 2] = np.nan
    xb[7, 0] = np.inf
    r = run(mlp(), xb, y, ["finite"])
    row = r["finite"]
    assert row.status == "failed" and row.tags == ["data_nan"]
    ev = row.evidence["nonfinite"]["train:x"]
    assert ev["nan"] == 1 and ev["inf"] == 1 and ev["first_rows"] == [3, 7]
    # NaN in validation targets is found too
    yv = np.array([0.0, np.nan, 1.0, 2.0], "float32")
    r = run(mlp(), x, y.astype("float32"), ["finite"], validation_data=(x[:4], yv))
    assert "validation:y" in r["finite"].evidence["nonfinite"]


def test_constant_features(clean):
    x, y = clean
    assert run(mlp(), x, y, ["constant_features"])["constant_features"].status == "passed"
    # a few constant columns (image borders, unused one-hot columns) are harmless: info only
    xc = x.copy()
    xc[:, 5] = 3.0
    row = run(mlp(), xc, y, ["constant_features"])["constant_features"]
    assert row.status == "passed" and row.evidence["constant"]["x"]["first"] == [5]
    assert [(i.tag, i.severity) for i in row.issues] == [("data_problem", "info")]
    # half constant is still info; most of the input constant (5 of 8) points at broken loading
    xc[:, 1:4] = 0.0
    assert run(mlp(), xc, y, ["constant_features"])["constant_features"].status == "passed"
    xc[:, 6] = -1.0
    row = run(mlp(), xc, y, ["constant_features"])["constant_features"]
    assert row.status == "warning" and row.evidence["constant"]["x"]["constant"] == 5
    row = run(mlp(), np.ones_like(x), y, ["constant_features"])["constant_features"]
    assert row.status == "failed"


def test_input_scale_fires_on_raw_features_and_sees_through_normalization(clean):
    x, y = clean
    assert run(mlp(), x, y, ["input_scale"])["input_scale"].status == "passed"
    raw = x * 300 + 1000
    row = run(mlp(), raw, y, ["input_scale"])["input_scale"]
    assert row.status == "failed" and row.tags == ["unnormalized_input"]
    assert "Normalization" in row.fix
    spread = x.copy()
    spread[:, 0] *= 1e-4
    spread[:, 1] *= 4
    assert run(mlp(), spread, y, ["input_scale"])["input_scale"].status == "warning"
    # the same raw data through an adapted Normalization layer is what the network sees: fine
    norm = keras.layers.Normalization()
    norm.adapt(raw)
    m = keras.Sequential([keras.Input((8,)), norm, keras.layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    row = run(m, raw, y, ["input_scale"])["input_scale"]
    assert row.status == "passed" and row.evidence["seen_through"] == ["Normalization"]


def test_duplicates_and_conflicting_labels(clean):
    x, y = clean
    row = run(mlp(), x, y, ["duplicates"])["duplicates"]
    assert row.status == "passed" and row.evidence["duplicates"] == 0
    xd = np.concatenate([x, x[:100]])
    yd = np.concatenate([y, (y[:100] + 1) % 3])
    row = run(mlp(), xd, yd, ["duplicates"])["duplicates"]
    assert row.evidence["duplicates"] == 100
    assert row.evidence["conflicting_label_groups"] == 100
    assert row.status == "warning"


def test_leakage_between_train_and_validation(clean):
    x, y = clean
    r = run(mlp(), x[:400], y[:400], ["leakage"], validation_data=(x[400:], y[400:]))
    assert r["leakage"].status == "passed"
    xv = np.concatenate([x[:60], x[400:500]])
    yv = np.concatenate([y[:60], y[400:500]])
    row = run(mlp(), x[:400], y[:400], ["leakage"], validation_data=(xv, yv))["leakage"]
    assert row.status == "failed" and row.tags == ["leakage"] and row.evidence["in_train"] == 60
    assert run(mlp(), x, y, ["leakage"])["leakage"].status == "skipped"


def test_class_balance(clean):
    x, y = clean
    yb = np.zeros(600, "int32")
    yb[:20] = 1
    yb[20:60] = 2
    row = run(mlp(), x, yb, ["class_balance"])["class_balance"]
    assert row.status == "warning" and "class_imbalance" in row.tags
    assert row.evidence["counts"] == [540, 20, 40] and row.evidence["imbalance_ratio"] == 27.0
    balanced = np.arange(600) % 3
    row = run(mlp(), x, balanced, ["class_balance"])["class_balance"]
    # B9 (fewer than 5,000 per class) is advice: the row passes, the note is an info issue
    assert row.status == "passed" and [i.severity for i in row.issues] == ["info"]
    rep = run(mlp(), x, balanced, ["class_balance"])
    assert rep.findings() == [] and rep.findings("info")[0].tag == "class_size"


def test_class_balance_weighs_classes_by_sample_weight(clean):
    x, _ = clean
    yb = np.zeros(600, "int32")
    yb[:20] = 1
    yb[20:60] = 2
    counts = np.bincount(yb)
    # class_weight = n / (C * count) given as per-sample weights: every class gets the same mass
    sw = (600 / (3 * counts))[yb].astype("float32")
    row = run(mlp(), x, yb, ["class_balance"], sample_weight=sw)["class_balance"]
    assert row.status == "passed", row.issues
    assert np.allclose(row.evidence["weighted_mass"], [200, 200, 200])
    assert row.evidence["imbalance_ratio"] == 27.0 and abs(row.evidence["weighted_imbalance_ratio"] - 1) < 1e-6
    assert {(i.tag, i.severity) for i in row.issues} >= {("class_imbalance", "info")}
    # weights that do not even the classes out leave the warning
    row = run(mlp(), x, yb, ["class_balance"], sample_weight=np.ones(600, "float32"))["class_balance"]
    assert row.status == "warning" and row.evidence["weighted_imbalance_ratio"] == 27.0


def test_shift_between_train_and_validation(clean):
    x, y = clean
    r = run(mlp(), x[:400], y[:400], ["shift"], validation_data=(x[400:], y[400:]))
    assert r["shift"].status == "passed"
    # validation not normalised like training: every feature shifted
    row = run(mlp(), x[:400], y[:400], ["shift"], validation_data=(x[400:] * 3 + 2, y[400:]))["shift"]
    assert row.status == "failed" and row.tags == ["distribution_shift"]
    # one feature shifted: a warning naming it
    xv = x[400:].copy()
    xv[:, 4] += 1.5
    row = run(mlp(), x[:400], y[:400], ["shift"], validation_data=(xv, y[400:]))["shift"]
    assert row.status == "warning" and 4 in row.evidence["x"]["top"]
    # class proportions
    yv = np.zeros(200, "int32")
    row = run(mlp(), x[:400], y[:400], ["shift"], validation_data=(x[400:], yv))["shift"]
    assert row.evidence["class_proportions"]["total_variation"] > 0.3 and row.status == "warning"


def test_padding_percentiles_for_integer_sequences():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 40, size=300)
    x = np.zeros((300, 200), "int32")
    for i, n in enumerate(lengths):
        x[i, :n] = rng.integers(1, 50, size=n)
    got, side = sequence_lengths(x)
    assert side == "post" and np.array_equal(got, lengths)
    pre = np.zeros_like(x)
    for i, n in enumerate(lengths):
        pre[i, 200 - n:] = x[i, :n]
    got, side = sequence_lengths(pre)
    assert side == "pre" and np.array_equal(got, lengths)
    m = keras.Sequential([keras.Input((200,), dtype="int32"), keras.layers.Embedding(50, 4),
                          keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy")
    y = (lengths > 20).astype("float32")
    row = run(m, x, y, ["padding"])["padding"]
    ev = row.evidence["x"]
    assert ev["p90"] == int(np.ceil(np.percentile(lengths, 90))) and ev["padded_length"] == 200
    assert [i.severity for i in row.issues] == ["info"]  # 200 >> p95: mostly padding
    # truncated: most sequences fill the whole length
    xt = x[:, :10]
    m2 = keras.Sequential([keras.Input((10,), dtype="int32"), keras.layers.Embedding(50, 4),
                           keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(1, activation="sigmoid")])
    m2.compile("adam", "binary_crossentropy")
    row = run(m2, xt, y, ["padding"])["padding"]
    assert row.status == "warning" and row.evidence["x"]["frac_full_length"] > 0.8
    # float inputs: not sequences
    assert run(mlp(), rng.standard_normal((50, 8)).astype("float32"), np.arange(50) % 3,
               ["padding"])["padding"].status == "skipped"


def test_integer_tabular_features_are_numbers_not_token_ids():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 1000, (300, 6))
    x[:, 4] = 7  # one constant integer column
    y = (x[:, 0] > 500).astype("int32")
    checks = ["input_scale", "constant_features", "padding", "shift"]
    r = run(mlp(d=6, c=2), x, y, checks, validation_data=(x[:60], y[:60]))
    assert r["input_scale"].status == "warning" and r["input_scale"].tags == ["unnormalized_input"]
    assert "Normalization" in r["input_scale"].fix
    assert r["constant_features"].evidence["constant"]["x"]["first"] == [4]
    assert r["shift"].status == "passed" and "x" in r["shift"].evidence
    assert r["padding"].status == "skipped" and "Embedding" in r["padding"].summary
    # the same integers into an Embedding are token ids: no per-feature statistics, padding applies
    e = keras.Sequential([keras.Input((6,), dtype="int32"), keras.layers.Embedding(1000, 4),
                          keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2, activation="softmax")])
    e.compile("adam", "sparse_categorical_crossentropy")
    r = run(e, x, y, checks, validation_data=(x[:60], y[:60]))
    assert r["input_scale"].status == "skipped" and "Embedding" in r["input_scale"].summary
    assert r["constant_features"].status == "skipped" and "x" not in r["shift"].evidence
    assert r["padding"].status != "skipped"


def test_integer_inputs_of_a_multi_input_model_are_told_apart_by_their_layers():
    rng = np.random.default_rng(0)
    tok, cnt = keras.Input((10,), dtype="int32", name="tok"), keras.Input((3,), name="cnt")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(tok))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([h, cnt]))
    f = keras.Model([tok, cnt], out)
    f.compile("adam", "binary_crossentropy")
    xs = {"tok": rng.integers(0, 50, (200, 10)).astype("int32"), "cnt": rng.integers(0, 500, (200, 3))}
    y = (xs["cnt"][:, 0] > 250).astype("float32")
    r = run(f, xs, y, ["input_scale", "padding"])
    assert r["input_scale"].status == "warning" and list(r["input_scale"].evidence) == ["x['cnt']"]
    assert list(r["padding"].evidence) == ["x['tok']"]


def test_class_counts_leave_out_the_loss_ignore_class(clean):
    x, y = clean
    y = y.copy()
    y[::5] = -1  # e.g. unlabelled or padding positions
    m = mlp()
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(ignore_class=-1))
    row = run(m, x, y, ["class_balance"])["class_balance"]
    counts = row.evidence["counts"]
    assert len(counts) == 3 and sum(counts) == int((y >= 0).sum())
    assert counts[0] == int((y == 0).sum())  # -1 is not clipped into class 0
    assert row.evidence["ignored"] == {"ignore_class": -1, "samples": int((y == -1).sum())}
    assert "ignore_class" in row.summary
