"""kerasrecipe.cv.cross_validate (tip B5): folds, out-of-fold predictions, no leakage."""
import json
import os

import numpy as np
import pytest

from kerasrecipe.cv import cross_validate, fit_recipe, split_validation
from kerasrecipe.errors import ConfigError, InputTypeError, NotCompiledError
from kerasrecipe.sklearn import SKLEARN_CONFIG

CFG = {**SKLEARN_CONFIG, "epochs": 3, "batch_size": 32}  # the recipe without the costly probes


def build_classifier():
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_regressor():
    import keras

    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-2), "mse", metrics=["mae"])
    return model


def test_classification_folds_oof_and_no_leakage(digits, tmp_path):
    X, y = digits
    X, y = X[:300], y[:300]
    res = cross_validate(build_classifier, X, y, cv=3, config=CFG, run_dir=str(tmp_path), verbose=0)
    n = len(X)
    assert res.task == "classification" and res.n_folds == 3
    # every sample is scored exactly once, by the model that never saw it
    tests = np.concatenate([f["test"] for f in res.folds])
    assert sorted(tests) == list(range(n))
    for k, f in enumerate(res.folds):
        tr, va, te = set(f["train"]), set(f["val"]), set(f["test"])
        assert va and not (tr & te) and not (va & te) and not (tr & va)
        assert len(tr | va | te) == n  # the fold's training part = gradient steps + validation
        # stratified: each class keeps its share in the scored fold (30 samples per class here)
        counts = np.bincount(y[f["test"]], minlength=10)
        share = np.bincount(y, minlength=10) / n
        assert np.all(np.abs(counts - share * len(te)) <= 1.5)
        np.testing.assert_allclose(
            res.oof[f["test"]], res.models[k].predict(X[f["test"]], verbose=0), rtol=1e-5, atol=1e-6
        )
    assert res.oof.shape == (n, 10) and np.all(np.isfinite(res.oof))
    np.testing.assert_allclose(res.oof.sum(1), 1, atol=1e-4)
    # per-fold scores and their summary
    assert set(res.scores) >= {"loss", "accuracy"}
    assert res.mean["accuracy"] == pytest.approx(np.mean(res.scores["accuracy"]))
    assert res.std["loss"] == pytest.approx(np.std(res.scores["loss"]))
    assert "accuracy" in res.summary() and "±" in res.summary()
    assert res.mean["accuracy"] > 0.5  # 3 epochs of a small MLP on digits learn something
    oof_acc = res.oof_score(y)["accuracy"]
    assert oof_acc == pytest.approx(np.mean(res.oof.argmax(1) == y))
    assert len(res.histories) == 3 and all("val_loss" in h for h in res.histories)
    # a run directory per fold, and the summary
    assert [os.path.dirname(d) for d in res.run_dirs] == [str(tmp_path)] * 3
    assert all(os.path.exists(os.path.join(d, "config.json")) for d in res.run_dirs)
    with open(tmp_path / "cv.json") as f:
        summary = json.load(f)
    assert summary["n_folds"] == 3 and summary["oof_score"]["accuracy"] == pytest.approx(oof_acc)
    # the fold ensemble averages the fold models (probabilities)
    ens = res.ensemble
    assert len(ens) == 3 and ens.task == "classification"
    np.testing.assert_allclose(
        ens.predict(X[:5]), np.mean([m.predict(X[:5], verbose=0) for m in res.models], axis=0), atol=1e-6
    )
    png = res.plot(str(tmp_path / "folds.png"))
    assert os.path.getsize(png) > 1000


def test_regression_with_groups_keeps_groups_apart(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.randn(120, 5).astype("float32")
    y = (X @ rng.randn(5) + 0.1 * rng.randn(120)).astype("float32")
    groups = np.repeat(np.arange(12), 10)
    res = cross_validate(build_regressor, X, y, cv=3, groups=groups, config=CFG, run_dir=str(tmp_path),
                         verbose=0)
    assert res.task == "regression"
    for f in res.folds:
        fit_groups = set(groups[f["train"]]) | set(groups[f["val"]])
        assert not fit_groups & set(groups[f["test"]])
    assert res.oof.shape == (120, 1) and np.all(np.isfinite(res.oof))
    assert set(res.oof_score(y)) == {"mse", "r2"}
    assert set(res.scores) == {"loss", "mae"}


def test_split_validation_is_stratified_and_handles_tiny_data():
    y = np.array([0] * 50 + [1] * 10)
    tr, va = split_validation(None, 0.2, stratify=y, seed=0, n=60)
    assert len(va) == 12 and np.bincount(y[va]).tolist() == [10, 2]
    assert not set(tr) & set(va) and len(tr) + len(va) == 60
    tr, va = split_validation(None, 0.2, n=2)  # 0.4 samples: no validation split at all
    assert len(va) == 0 and len(tr) == 2


def test_bad_arguments_raise_clear_errors(digits):
    from sklearn.model_selection import ShuffleSplit

    X, y = digits
    X, y = X[:60], y[:60]
    with pytest.raises(ConfigError, match="cv=1"):
        cross_validate(build_classifier, X, y, cv=1, verbose=0)
    with pytest.raises(ConfigError, match="more than one test fold"):
        cross_validate(build_classifier, X, y, cv=ShuffleSplit(3, test_size=0.5, random_state=0), verbose=0)
    with pytest.raises(InputTypeError, match="build_fn"):
        cross_validate(build_classifier(), X, y, verbose=0)
    with pytest.raises(ConfigError, match="groups"):
        cross_validate(build_classifier, X, y, groups=[1, 2], verbose=0)
    with pytest.raises(ConfigError, match="task"):
        cross_validate(build_classifier, X, y, task="ranking", verbose=0)
    with pytest.raises(ConfigError, match="samples"):
        cross_validate(build_classifier, X, y[:10], verbose=0)

    def uncompiled():
        import keras

        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])

    with pytest.raises(NotCompiledError, match="compile"):
        fit_recipe(uncompiled, X, y, config=CFG)
