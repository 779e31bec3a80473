"""kerasrecipe.ensemble.Ensemble (tips I1, I2, I6) on each backend."""
import json
import os
import zipfile

import numpy as np
import pytest

from kerasrecipe.ensemble import Ensemble
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.sklearn import SKLEARN_CONFIG


def tiny_mlp(n_in=64, n_out=10, units=16, activation="softmax", loss="sparse_categorical_crossentropy"):
    import keras

    model = keras.Sequential([
        keras.Input((n_in,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(n_out, activation=activation),
    ])
    model.compile(keras.optimizers.Adam(1e-2), loss, metrics=["accuracy"] if "crossentropy" in loss else [])
    return model


@pytest.fixture(scope="module")
def digits_split():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype("float32") / 16.0, d.target.astype("int32")
    rng = np.random.RandomState(0)
    idx = rng.permutation(len(X))
    tr, va, te = idx[:640], idx[640:896], idx[896:]  # whole batches of 64: fewer JAX retraces
    return X[tr], y[tr], X[va], y[va], X[te], y[te]


@pytest.fixture(scope="module")
def seed_ensembles(digits_split, tmp_path_factory):
    """Two 5-seed ensembles of tiny, briefly trained MLPs (different base seeds)."""
    X, y, Xv, yv, _, _ = digits_split
    out = []
    for base in (0, 100):
        ens = Ensemble.from_seeds(
            lambda: tiny_mlp(units=12), X, y, seeds=[base + i for i in range(5)],
            config={**SKLEARN_CONFIG, "epochs": 3, "batch_size": 64},
            validation_data=(Xv, yv), run_dir=str(tmp_path_factory.mktemp(f"seeds{base}")),
        )
        out.append(ens)
    return out


def test_seed_ensemble_beats_its_best_member(seed_ensembles, digits_split):
    *_, Xt, yt = digits_split
    gains = []
    for ens in seed_ensembles:
        assert len(ens) == 5 and ens.seeds[0] in (0, 100) and len(ens.histories) == 5
        assert ens.task == "classification"
        member_acc = [np.mean(m.predict(Xt, verbose=0).argmax(1) == yt) for m in ens.models]
        assert len(set(np.round(member_acc, 6))) > 1  # different seeds, different models (I6)
        ens_acc = np.mean(ens.predict_labels(Xt) == yt)
        gains.append(ens_acc - max(member_acc))
        # evaluate() works like a Keras model's and agrees with predict_labels
        ev = ens.evaluate(Xt, yt, return_dict=True)
        assert ev["accuracy"] == pytest.approx(ens_acc, abs=1e-6)
        member_loss = [-np.mean(np.log(m.predict(Xt, verbose=0)[np.arange(len(yt)), yt])) for m in ens.models]
        assert ev["loss"] == pytest.approx(-np.mean(np.log(ens.predict(Xt)[np.arange(len(yt)), yt])), rel=1e-4)
        assert ev["loss"] < np.mean(member_loss)
    assert np.mean(gains) >= 0.0


def test_weighted_blend_and_vote(seed_ensembles, digits_split):
    import keras

    _, _, Xv, yv, Xt, yt = digits_split
    good = seed_ensembles[0].models[:3]
    keras.utils.set_random_seed(3)
    untrained = tiny_mlp(units=12)  # a useless member: the blend must learn to ignore it
    ens = Ensemble(good + [untrained], method="mean")
    mean_loss = ens.evaluate(Xv, yv, return_dict=True)["loss"]
    w = ens.fit_weights(Xv, yv)
    assert ens.method == "weighted" and w.shape == (4,)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-9)
    assert w[3] < 0.05
    assert ens.evaluate(Xv, yv, return_dict=True)["loss"] <= mean_loss + 1e-6
    P = ens.predict_members(Xt)
    np.testing.assert_allclose(ens.predict(Xt), np.tensordot(w, P, axes=1), atol=1e-9)

    vote = Ensemble(good, method="vote")
    frac = vote.predict(Xt)
    assert frac.shape == (len(Xt), 10)
    np.testing.assert_allclose(frac.sum(1), 1)
    assert set(np.unique(frac * 3).round(6)) <= {0, 1, 2, 3}
    labels = np.stack([m.predict(Xt, verbose=0).argmax(1) for m in good])
    majority = vote.predict_labels(Xt)
    agree = (labels == majority).sum(0)
    assert np.all(agree >= 1)
    assert np.all(agree[(labels[0] == labels[1]) | (labels[0] == labels[2])] >= 2)


def test_combine_rules_on_hand_made_predictions():
    ens = Ensemble([tiny_mlp(n_in=2, n_out=3), tiny_mlp(n_in=2, n_out=3), tiny_mlp(n_in=2, n_out=3)])
    P = np.array([
        [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]],
        [[0.5, 0.4, 0.1], [0.1, 0.8, 0.1]],
        [[0.1, 0.8, 0.1], [0.3, 0.6, 0.1]],
    ])
    np.testing.assert_allclose(ens.combine(P), P.mean(0))
    ens.method = "vote"
    np.testing.assert_allclose(ens.combine(P), [[2 / 3, 1 / 3, 0], [0, 2 / 3, 1 / 3]])
    ens.method, ens.weights = "weighted", np.array([0.5, 0.5, 0.0])
    np.testing.assert_allclose(ens.combine(P), P[:2].mean(0))
    # a single sigmoid column: vote on p > 0.5, share voting for the positive class
    sig = [tiny_mlp(n_in=2, n_out=1, activation="sigmoid", loss="binary_crossentropy") for _ in range(3)]
    b = Ensemble(sig, method="vote")
    Pb = np.array([[[0.9], [0.2]], [[0.6], [0.4]], [[0.1], [0.7]]])
    np.testing.assert_allclose(b.combine(Pb), [[2 / 3], [1 / 3]])
    # regression members: the mean; a vote is refused
    regs = [tiny_mlp(n_in=2, n_out=1, activation=None, loss="mse") for _ in range(2)]
    assert Ensemble(regs).task == "regression"
    with pytest.raises(ConfigError, match="vote"):
        Ensemble(regs, method="vote")


@pytest.mark.parametrize("fmt", ["dir", "zip"])
def test_save_load_round_trip(seed_ensembles, digits_split, tmp_path, fmt):
    *_, Xt, yt = digits_split
    ens = Ensemble(seed_ensembles[1].models[:3], method="weighted", weights=[0.2, 0.3, 0.5])
    path = str(tmp_path / ("ens.zip" if fmt == "zip" else "ens"))
    ens.save(path)
    ens.save(path)  # overwrite in place, atomically
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]  # no temporary leftovers
    names = zipfile.ZipFile(path).namelist() if fmt == "zip" else os.listdir(path)
    assert sorted(names) == ["manifest.json", "member-000.keras", "member-001.keras", "member-002.keras"]
    back = Ensemble.load(path)
    assert back.method == "weighted" and back.weights.tolist() == pytest.approx([0.2, 0.3, 0.5])
    np.testing.assert_array_equal(back.predict(Xt), ens.predict(Xt))
    assert back.evaluate(Xt, yt, return_dict=True) == pytest.approx(ens.evaluate(Xt, yt, return_dict=True))
    with pytest.raises(ConfigError, match="overwrite"):
        ens.save(path, overwrite=False)


def test_from_snapshots(seed_ensembles, digits_split, tmp_path):
    *_, Xt, _ = digits_split
    models = seed_ensembles[0].models[:3]
    for i, m in enumerate(models):
        m.save(str(tmp_path / f"snapshot-{i:02d}.keras"))
    (tmp_path / "notes.txt").write_text("not a snapshot")
    ens = Ensemble.from_snapshots(str(tmp_path))
    assert [os.path.basename(p) for p in ens.paths] == ["snapshot-00.keras", "snapshot-01.keras", "snapshot-02.keras"]
    np.testing.assert_allclose(
        ens.predict(Xt), np.mean([m.predict(Xt, verbose=0) for m in models], axis=0), rtol=1e-5, atol=1e-6
    )
    last2 = Ensemble.from_snapshots(str(tmp_path), last=2)
    assert len(last2) == 2
    listed = Ensemble.from_snapshots([str(tmp_path / "snapshot-01.keras")])
    assert len(listed) == 1
    with pytest.raises(ConfigError, match="no files matching"):
        Ensemble.from_snapshots(str(tmp_path), pattern="swa-*.keras")
    with pytest.raises(ConfigError, match="not found"):
        Ensemble.from_snapshots([str(tmp_path / "missing.keras")])


def test_bad_inputs_raise_clear_errors(tmp_path):
    a = tiny_mlp(n_in=4, n_out=3)
    with pytest.raises(ConfigError, match="empty"):
        Ensemble([])
    with pytest.raises(ConfigError, match="same output shape"):
        Ensemble([a, tiny_mlp(n_in=4, n_out=2)])
    with pytest.raises(ConfigError, match="method='median' is unknown"):
        Ensemble([a], method="median")
    with pytest.raises(InputTypeError, match="list"):
        Ensemble(a)
    with pytest.raises(InputTypeError, match=r"models\[1\]"):
        Ensemble([a, "not a model".split()])
    with pytest.raises(ConfigError, match="2 weights for 1 models"):
        Ensemble([a], method="weighted", weights=[0.5, 0.5])
    with pytest.raises(ConfigError, match="non-negative"):
        Ensemble([a, tiny_mlp(n_in=4, n_out=3)], method="weighted", weights=[-1, 2])
    x = np.zeros((2, 4), "float32")
    with pytest.raises(ConfigError, match="fit_weights"):
        Ensemble([a], method="weighted").predict(x)
    with pytest.raises(ConfigError, match="no ensemble"):
        Ensemble.load(str(tmp_path / "nothing"))
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError, match="manifest"):
        Ensemble.load(str(tmp_path / "d"))
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not a kerasrecipe ensemble"):
        Ensemble.load(str(tmp_path / "d"))


# ---------------------------------------------------------------------------- audit fixes
def test_from_seeds_refuses_a_model_instance():
    x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    with pytest.raises(InputTypeError, match="build_fn must be a function returning a fresh compiled model"):
        Ensemble.from_seeds(tiny_mlp(n_in=4, n_out=3), x, y, seeds=2)


def _multilabel_member(seed, from_logits=False):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=None if from_logits else "sigmoid")])
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=from_logits))
    return model


def test_multilabel_members_are_combined_label_by_label():
    members = [_multilabel_member(s) for s in range(3)]
    ens = Ensemble(members)
    assert ens.task == "multilabel" and not ens.from_logits
    rng = np.random.RandomState(0)
    x = rng.randn(40, 4).astype("float32")
    P = ens.predict_members(x)
    np.testing.assert_allclose(ens.predict(x), P.mean(0), atol=1e-9)
    labels = ens.predict_labels(x)
    assert labels.shape == (40, 3) and set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (P.mean(0) > 0.5).astype(int))
    # vote: per label, the share of members predicting it
    ens.method = "vote"
    np.testing.assert_allclose(ens.combine(P), np.mean(P > 0.5, axis=0))
    # blending weights minimise the binary log loss of each label (not a softmax log loss)
    Y = (rng.rand(40, 3) > 0.5).astype("float32")
    w = ens.fit_weights(x, Y)
    q = np.clip(np.tensordot(w, P, axes=1), 1e-12, 1 - 1e-12)
    bce = -np.mean(Y * np.log(q) + (1 - Y) * np.log(1 - q))
    assert ens.blend_loss_ == pytest.approx(bce, rel=1e-6)
    # logits members: a sigmoid on each label, not a softmax over the labels
    logit_members = [_multilabel_member(s, from_logits=True) for s in range(2)]
    lens = Ensemble(logit_members)
    assert lens.from_logits and lens.task == "multilabel"
    z = np.stack([m.predict(x, verbose=0) for m in logit_members])
    np.testing.assert_allclose(lens.predict(x), np.mean(1 / (1 + np.exp(-z)), axis=0), rtol=1e-5, atol=1e-6)
