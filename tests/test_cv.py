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


# ---------------------------------------------------------------------------- audit fixes
def _toy_binary(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 4).astype("float32")
    y = (X[:, 0] + 0.5 * rng.randn(n) > 0).astype("int64")
    return X, y


def build_logit_binary():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(5e-2), keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def test_sample_weight_is_split_with_the_validation_part(tmp_path):
    X, y = _toy_binary()
    w = np.linspace(0.1, 3.0, len(X)).astype("float32")
    res = fit_recipe(build_logit_binary, X, y, config={**CFG, "epochs": 1}, fit_kwargs={"sample_weight": w},
                     run_dir=str(tmp_path))
    va = res.val_index
    assert len(va) and len(res.train_index) + len(va) == len(X)
    # the validation loss is weighted by the validation part's share of the weights
    weighted = res.model.evaluate(X[va], y[va], sample_weight=w[va], verbose=0, return_dict=True)["loss"]
    plain = res.model.evaluate(X[va], y[va], verbose=0, return_dict=True)["loss"]
    assert res.history["val_loss"][-1] == pytest.approx(weighted, rel=1e-4)
    assert abs(weighted - plain) > 1e-3
    with pytest.raises(ConfigError, match="sample_weight has 10 entries but x has 60"):
        fit_recipe(build_logit_binary, X, y, config=CFG, fit_kwargs={"sample_weight": w[:10]})
    with pytest.raises(ConfigError, match="validation_split"):
        fit_recipe(build_logit_binary, X, y, config=CFG, fit_kwargs={"validation_split": 0.3})


def test_validation_data_in_fit_kwargs_replaces_the_split(tmp_path):
    X, y = _toy_binary()
    vd = fit_recipe(build_logit_binary, X[:40], y[:40], config={**CFG, "epochs": 1},
                    fit_kwargs={"validation_data": (X[40:], y[40:])}, run_dir=str(tmp_path))
    assert len(vd.val_index) == 0 and len(vd.train_index) == 40 and "val_loss" in vd.history
    with pytest.raises(ConfigError, match="given twice"):
        fit_recipe(build_logit_binary, X, y, config=CFG, validation_data=(X, y),
                   fit_kwargs={"validation_data": (X, y)})


def test_cross_validate_weights_per_fold_and_scores_logits(tmp_path):
    from kerasrecipe.cv import CVResult

    X, y = _toy_binary()
    w = np.linspace(0.1, 3.0, len(X)).astype("float32")
    res = cross_validate(build_logit_binary, X, y, cv=2, config={**CFG, "epochs": 1},
                         fit_kwargs={"sample_weight": w}, run_dir=str(tmp_path), verbose=0)
    for k, f in enumerate(res.folds):  # each fold's validation loss carries its samples' weights
        ev = res.models[k].evaluate(X[f["val"]], y[f["val"]], sample_weight=w[f["val"]], verbose=0,
                                    return_dict=True)
        assert res.histories[k]["val_loss"][-1] == pytest.approx(ev["loss"], rel=1e-4)
    with pytest.raises(ConfigError, match="sample_weight has 10 entries"):
        cross_validate(build_logit_binary, X, y, cv=2, fit_kwargs={"sample_weight": w[:10]}, verbose=0)
    # the models output logits (their loss says so): the out-of-fold accuracy thresholds at 0
    assert res.task == "classification" and res.from_logits
    assert res.oof_score(y)["accuracy"] == pytest.approx(np.mean((res.oof[:, 0] > 0) == y))
    ens = res.ensemble
    assert ens.from_logits
    np.testing.assert_array_equal(ens.predict_labels(X[:8]), (ens.predict(X[:8])[:, 0] > 0.5).astype(int))
    # logits between 0 and 0.5 are positive predictions
    hand = CVResult(folds=[], histories=[], scores={}, oof=np.array([[0.2], [0.3], [-0.1], [0.4]]),
                    models=[], run_dirs=[], task="classification", from_logits=True)
    assert hand.oof_score(np.array([1, 1, 0, 1]))["accuracy"] == 1.0


def test_integer_regression_targets_take_the_task_from_the_loss(tmp_path):
    import warnings

    from kerasrecipe.cv import infer_task, model_task

    rng = np.random.RandomState(1)
    Xr = rng.randn(40, 5).astype("float32")
    yr = np.round(3 * Xr[:, 0] + 10).astype("int64")
    assert infer_task(yr) == "classification" and infer_task(yr, model=build_regressor()) == "regression"
    assert model_task(build_classifier()) == "classification"
    with warnings.catch_warnings():  # StratifiedKFold would warn about the tiny "classes"
        warnings.filterwarnings("error", message=".*least populated class.*")
        reg = cross_validate(build_regressor, Xr, yr, cv=2, config={**CFG, "epochs": 1},
                             run_dir=str(tmp_path), verbose=0)
    assert reg.task == "regression" and set(reg.oof_score(yr)) == {"mse", "r2"}


def test_oof_score_r2_per_output_and_multilabel_scores():
    from sklearn.metrics import hamming_loss, r2_score

    from kerasrecipe.cv import CVResult, infer_task

    rng = np.random.RandomState(0)
    y = np.stack([rng.randn(50), 100 * rng.randn(50)], axis=1)  # two outputs, very different scales
    p = y + np.stack([0.9 * rng.randn(50), 10 * rng.randn(50)], axis=1)
    res = CVResult(folds=[], histories=[], scores={}, oof=p, models=[], run_dirs=[], task="regression")
    s = res.oof_score(y)
    assert s["r2"] == pytest.approx(r2_score(y, p))  # per column, then averaged
    assert s["mse"] == pytest.approx(np.mean((p - y) ** 2))

    ym = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert infer_task(ym) == "multilabel"
    logits = np.array([[2.0, -1.0, 0.3], [-2.0, 0.2, -0.1], [1.0, 1.0, -3.0], [-1.0, -1.0, -0.2]])
    ml = CVResult(folds=[], histories=[], scores={}, oof=logits, models=[], run_dirs=[], task="multilabel",
                  from_logits=True)
    pred = (logits > 0).astype(int)
    assert ml.oof_score(ym) == pytest.approx({"subset_accuracy": 0.75, "hamming_loss": hamming_loss(ym, pred)})


def test_multilabel_cross_validation(tmp_path):
    import keras

    from kerasrecipe.cv import model_task

    def build():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
        model.compile(keras.optimizers.Adam(5e-2), "binary_crossentropy")
        return model

    assert model_task(build()) == "multilabel"
    rng = np.random.RandomState(0)
    X = rng.randn(48, 4).astype("float32")
    Y = (X[:, :3] > 0).astype("float32")
    Y[:, 2] = 1 - Y[:, 0]  # a label that is often on with others: rows are multi-hot
    res = cross_validate(build, X, Y, cv=2, config={**CFG, "epochs": 1}, run_dir=str(tmp_path), verbose=0)
    assert res.task == "multilabel" and res.oof.shape == (48, 3)
    assert set(res.oof_score(Y)) == {"subset_accuracy", "hamming_loss"}
    assert res.ensemble.task == "multilabel" and res.ensemble.predict_labels(X[:5]).shape == (5, 3)


def test_hinge_margins_are_classified_by_sign(tmp_path):
    """A hinge loss's outputs are margins (labels -1/1, or 0/1 which Keras maps to -1/1): classified
    by their sign, with the labels -1/1 read as 0/1 (they were thresholded as probabilities at 0.5,
    and -1 labels never matched a 0/1 prediction: ~60% accuracy for a 96% model)."""
    import keras
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from kerasrecipe.sklearn import RecipeClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    y_pm = np.where(y > 0, 1, -1)

    def build(**_):
        model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(1e-2), "hinge")
        return model

    cfg = {**CFG, "epochs": 5}
    for labels in (y_pm, y):
        res = cross_validate(build, X, labels, cv=3, config=cfg, run_dir=str(tmp_path), verbose=0)
        assert res.task == "classification" and res.from_logits  # scores, not probabilities
        margins = res.oof.reshape(-1)
        want = float(np.mean((margins > 0) == (y > 0)))
        assert want > 0.9
        assert res.oof_score(labels)["accuracy"] == pytest.approx(want)
    clf = RecipeClassifier(build, config=cfg).fit(X, y_pm)
    proba = clf.predict_proba(X[:50])
    assert np.all((proba >= 0) & (proba <= 1)) and np.allclose(proba.sum(axis=1), 1)
    assert set(np.unique(clf.predict(X))) <= {-1, 1} and clf.score(X, y_pm) > 0.9


def test_one_rule_reads_a_loss_task_everywhere():
    """Cross-validation / the estimators (`model_task`) and the recipe's run log (`describe_loss`)
    read a loss's task with one rule (`introspect.loss_name_task`): known names, then words."""
    import keras

    from kerasrecipe.callbacks._context import describe_loss
    from kerasrecipe.checks.introspect import loss_name_task
    from kerasrecipe.cv import model_task

    def my_focal_crossentropy(y_true, y_pred):
        return keras.losses.categorical_crossentropy(y_true, y_pred)

    def weighted_mse(y_true, y_pred):
        return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    def my_kl_divergence(y_true, y_pred):
        return keras.losses.kl_divergence(y_true, y_pred)

    def mystery(y_true, y_pred):
        return keras.ops.mean(y_pred, axis=-1)

    cases = [("hinge", "classification"), ("categorical_hinge", "classification"),
             (my_focal_crossentropy, "classification"), (my_kl_divergence, "classification"),
             ("huber", "regression"), (weighted_mse, "regression"), (mystery, None)]
    for loss, want in cases:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile("sgd", loss)
        name = loss if isinstance(loss, str) else loss.__name__
        assert loss_name_task(name) == want, name
        assert describe_loss(model)["task"] == (want or "unknown"), name
        assert (model_task(model) is None) == (want is None), name
        if want == "regression":
            assert model_task(model) == "regression", name
