"""RecipeClassifier / RecipeRegressor in scikit-learn's machinery, on each backend."""
import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, make_classification
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kerasrecipe.config import RecipeConfig
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.sklearn import SKLEARN_CONFIG, RecipeClassifier, RecipeRegressor

FAST = {"epochs": 4, "batch_size": 32}


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(n_samples=160, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    return X.astype("float32"), y


@pytest.fixture(scope="module")
def reg_data():
    X, y = load_diabetes(return_X_y=True)
    return X[:150].astype("float32"), y[:150].astype("float32")


def small_clf(**kw):
    kw.setdefault("config", dict(FAST))
    kw.setdefault("model_kwargs", {"hidden": (8,)})
    return RecipeClassifier(**kw)


def built_model(X, y, units=8):
    """A user build function: compiled, softmax over y's one-hot columns."""
    import keras

    model = keras.Sequential([
        keras.Input((X.shape[1],)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(y.shape[1], activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(1e-2), "categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_predict_with_recipe(clf_data):
    X, y = clf_data
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = small_clf().fit(X, labels)
    assert list(clf.classes_) == ["ant", "bee", "cat"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    pred = clf.predict(X)
    assert set(pred) <= set(clf.classes_)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(1)])
    assert 0 <= clf.score(X, labels) <= 1
    # the recipe: an internal validation split from the data given to fit, stratified
    assert "val_loss" in clf.history_ and clf.epoch_ >= 1
    tr, va = clf.train_index_, clf.validation_index_
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(X)
    assert len(va) == round(RecipeConfig().validation_split * len(X))
    counts = np.bincount(y[va], minlength=3)
    assert counts.min() >= 9  # stratified: each class has ~1/3 of the 32 validation samples
    # the uncompiled default MLP was compiled from the config
    assert clf.model_.loss == "categorical_crossentropy"
    assert clf.recipe_config().tensorboard is False  # quiet defaults (SKLEARN_CONFIG)
    # the run directory was temporary
    assert clf.run_dir_ is None
    # a fitted estimator pickles and predicts the same
    clf2 = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(clf2.predict_proba(X), proba, rtol=1e-5, atol=1e-6)
    assert clf2.history_ == clf.history_
    np.testing.assert_array_equal(clf2.classes_, clf.classes_)
    # seeded per fit (A2): the same config gives the same model, another seed another one
    np.testing.assert_allclose(small_clf().fit(X, labels).predict_proba(X), proba, rtol=1e-4, atol=1e-5)
    other = small_clf(config={**FAST, "seed": 7}).fit(X, labels).predict_proba(X)
    assert not np.allclose(other, proba, atol=1e-4)


def test_cross_validate_never_validates_on_the_scored_fold_and_joblib(clf_data):
    X, y = clf_data
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    out = cross_validate(small_clf(), X, y, cv=cv, return_estimator=True, return_indices=True)
    # the same folds in two joblib worker processes: seeded per fit, so the same scores
    # (workers inherit KERAS_BACKEND from the environment: it must name this process's backend)
    import keras

    assert os.environ.get("KERAS_BACKEND") == keras.backend.backend()
    par = cross_val_score(small_clf(), X, y, cv=cv, n_jobs=2)
    np.testing.assert_allclose(par, out["test_score"], atol=0.02)
    assert len(out["test_score"]) == 3 and np.all(out["test_score"] >= 0)
    for est, tr, te in zip(out["estimator"], out["indices"]["train"], out["indices"]["test"]):
        val = tr[est.validation_index_]  # positions in the fold -> rows of X
        fit_rows = tr[est.train_index_]
        assert len(val) > 0
        assert len(np.intersect1d(val, te)) == 0
        assert len(np.intersect1d(fit_rows, te)) == 0
        assert len(np.intersect1d(val, fit_rows)) == 0
        assert set(val) | set(fit_rows) == set(tr)


def test_grid_and_random_search_reach_recipe_and_model_parameters(clf_data):
    from kerasrecipe.optimizers import get_learning_rate

    X, y = clf_data
    grid = GridSearchCV(
        small_clf(),
        {"config__learning_rate": [1e-2, 1e-3], "model_kwargs__hidden": [(6,)]},
        cv=2,
    ).fit(X, y)
    assert set(grid.best_params_) == {"config__learning_rate", "model_kwargs__hidden"}
    best = grid.best_estimator_
    assert best.model_.layers[1].units == 6
    lr0 = grid.best_params_["config__learning_rate"]
    assert lr0 / 4 <= get_learning_rate(best.model_.optimizer) <= lr0 * (1 + 1e-6)  # plateau halving may cut it
    assert best.config["epochs"] == FAST["epochs"]  # untouched recipe parameters kept

    rnd = RandomizedSearchCV(
        RecipeClassifier(model=built_model, config=dict(FAST)),
        {"config__batch_size": [16, 64], "model_kwargs__units": [4, 12]},
        n_iter=2, cv=2, random_state=0, refit=False,
    ).fit(X, y)
    assert len(rnd.cv_results_["mean_test_score"]) == 2
    assert np.all(np.isfinite(rnd.cv_results_["mean_test_score"]))
    assert {p["model_kwargs__units"] for p in rnd.cv_results_["params"]} <= {4, 12}


def test_unknown_search_parameter_is_a_clear_error():
    with pytest.raises(ConfigError, match="config__learning_rat"):
        small_clf().set_params(config__learning_rat=1e-3)
    with pytest.raises(ValueError, match="Invalid parameter"):
        small_clf().set_params(nonsense=1)


def test_pipeline_regressor_and_output_bias(reg_data):
    X, y = reg_data
    # lr ~ 0 and one epoch: the output bias stays at its initial value, the target mean (C2)
    reg = RecipeRegressor(config={"epochs": 1, "learning_rate": 1e-9, "validation_split": 0.2})
    pipe = make_pipeline(StandardScaler(), reg).fit(X, y)
    est = pipe[-1]
    assert est.output_bias_ == "applied"
    bias = np.asarray(est.model_.layers[-1].bias)
    fit_mean = y[est.train_index_].mean()
    assert bias[0] == pytest.approx(fit_mean, rel=1e-3)
    pred = pipe.predict(X)
    assert pred.shape == y.shape and np.all(np.isfinite(pred))
    # a real fit beats predicting the mean
    good = make_pipeline(StandardScaler(), RecipeRegressor(config={"epochs": 40, "learning_rate": 3e-2},
                                                            model_kwargs={"hidden": (16,)}))
    assert good.fit(X, y).score(X, y) > 0.3


def test_clone_keeps_every_parameter():
    clf = small_clf(fit_kwargs={"class_weight": {0: 1.0, 1: 2.0, 2: 1.0}}, output_bias=False, verbose=0)
    clf.set_params(config__learning_rate=1e-2, model_kwargs__hidden=(5,))
    c = clone(clf)
    assert c.get_params() == clf.get_params()
    assert c.fit_kwargs == {"class_weight": {0: 1.0, 1: 2.0, 2: 1.0}}  # Keras's own clone drops it
    assert c.config == {**FAST, "learning_rate": 1e-2}
    assert c.get_params()["config__learning_rate"] == 1e-2
    cfg = RecipeConfig(epochs=2, **SKLEARN_CONFIG)
    d = clone(RecipeClassifier(config=cfg).set_params(config__batch_size=8))
    assert isinstance(d.config, RecipeConfig) and d.config.batch_size == 8 and d.config.epochs == 2


def test_bad_inputs_raise_clear_errors(clf_data):
    X, y = clf_data
    with pytest.raises(InputTypeError, match="model must be"):
        RecipeClassifier(model=42, config=dict(FAST)).fit(X, y)
    with pytest.raises(ConfigError, match="config must be"):
        RecipeClassifier(config=[1, 2]).fit(X, y)
    with pytest.raises(ConfigError, match="unknown RecipeConfig field"):
        RecipeClassifier(config={"epoch": 3}).fit(X, y)
    with pytest.raises(ConfigError, match="output_bias"):
        small_clf(output_bias="yes").fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        small_clf().fit(X, np.zeros(len(X)))


# ---------------------------------------------------------------------------- audit fixes
ONE = {"epochs": 1, "batch_size": 32}


def test_sample_weight_in_fit_and_through_a_pipeline(clf_data):
    from sklearn.utils.validation import has_fit_parameter

    X, y = clf_data
    w = np.linspace(0.2, 2.0, len(X))
    assert has_fit_parameter(RecipeClassifier(), "sample_weight")
    assert has_fit_parameter(RecipeRegressor(), "sample_weight")
    import sklearn

    with sklearn.config_context(enable_metadata_routing=True):  # routed to fit, not to score
        routing = RecipeClassifier().set_fit_request(sample_weight=True).get_metadata_routing()
        assert routing.fit.requests == {"sample_weight": True}
        assert routing.score.requests == {"sample_weight": None}
    pipe = make_pipeline(StandardScaler(), small_clf(config=dict(ONE)))
    scores = cross_val_score(pipe, X, y, cv=2, params={"recipeclassifier__sample_weight": w})
    assert len(scores) == 2 and np.all(np.isfinite(scores))
    with pytest.raises(ValueError, match="sample_weight"):
        small_clf(config=dict(ONE)).fit(X, y, sample_weight=w[:10])
    with pytest.raises(ValueError, match="zero"):
        small_clf(config=dict(ONE)).fit(X, y, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="one class"):
        small_clf(config=dict(ONE)).fit(X, y, sample_weight=(y == 0).astype(float))


def test_user_validation_data_replaces_the_internal_split(clf_data):
    X, y = clf_data
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = small_clf(config=dict(ONE)).fit(X[:120], labels[:120], validation_data=(X[120:], labels[120:]))
    assert len(clf.validation_index_) == 0 and len(clf.train_index_) == 120
    assert "val_loss" in clf.history_
    with pytest.raises(ValueError, match="unknown categories"):
        small_clf(config=dict(ONE)).fit(X[:120], labels[:120], validation_data=(X[120:], ["dog"] * 40))


def test_fit_leaves_the_callers_random_streams_alone(reg_data):
    import random

    X, y = reg_data
    np.random.seed(123)
    random.seed(123)
    expected = (np.random.rand(3), random.random())
    np.random.seed(123)
    random.seed(123)
    RecipeRegressor(config=dict(ONE)).fit(X, y)  # seeds everything for itself...
    assert np.array_equal(np.random.rand(3), expected[0])  # ...and restores the caller's streams
    assert random.random() == expected[1]


def test_fit_leaves_no_determinism_switch_or_seed_behind(reg_data, monkeypatch):
    """seed_everything turns on process-wide switches (torch deterministic algorithms, TF op
    determinism, PYTHONHASHSEED, Keras's global seed); an estimator's fit puts them back."""
    import os
    import sys

    import keras
    from keras.src.backend.common import global_state

    X, y = reg_data
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nonexistent-kr")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.use_deterministic_algorithms(False)
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config
        tf_config.disable_op_determinism()
    keras.utils.set_random_seed(7)
    generator = global_state.get_global_attribute("global_seed_generator")
    RecipeRegressor(config=dict(ONE)).fit(X, y)
    assert "PYTHONHASHSEED" not in os.environ
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/nonexistent-kr"
    assert global_state.get_global_attribute("global_random_seed") == 7
    assert global_state.get_global_attribute("global_seed_generator") is generator
    if torch is not None:
        assert not torch.are_deterministic_algorithms_enabled()
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config
        assert not tf_config.is_op_determinism_enabled()


def _binary_sigmoid_model(X, y):
    import keras

    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy", metrics=["accuracy"])
    return model


def _sparse_logits_model(X, y):
    import keras

    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(y.shape[1])])
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_targets_follow_the_model_sigmoid_unit(clf_data):
    X, y = clf_data
    yb = np.where(y == 0, "no", "yes")
    clf = RecipeClassifier(model=_binary_sigmoid_model, config=dict(ONE)).fit(X, yb)
    assert clf.target_encoding_ == "binary" and clf.output_bias_ == "applied"
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(proba[:, 1], clf.model_.predict(X, verbose=0)[:, 0], rtol=1e-5)
    assert set(clf.predict(X)) <= {"no", "yes"}
    with pytest.raises(ConfigError, match="1 output unit.*3 classes"):
        RecipeClassifier(model=_binary_sigmoid_model, config=dict(ONE)).fit(X, y)


def test_targets_follow_the_model_sparse_loss_and_logits(clf_data):
    X, y = clf_data
    clf = RecipeClassifier(model=_sparse_logits_model, config=dict(ONE)).fit(X, y)
    assert clf.target_encoding_ == "sparse" and clf.from_logits_
    proba = clf.predict_proba(X)  # softmax of the logits
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert proba.min() >= 0
    np.testing.assert_array_equal(clf.predict(X), clf.model_.predict(X, verbose=0).argmax(1))
