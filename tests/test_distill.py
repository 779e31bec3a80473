"""kerasrecipe.distill (tip I3): a student learns an ensemble's soft targets."""
import numpy as np
import pytest

from kerasrecipe.distill import distill
from kerasrecipe.ensemble import Ensemble
from kerasrecipe.errors import ConfigError
from kerasrecipe.sklearn import SKLEARN_CONFIG

QUIET = {**SKLEARN_CONFIG, "batch_size": 64}


def mlp(units, n_out=10, activation="softmax"):
    import keras

    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation="relu"),
                          keras.layers.Dense(n_out, activation=activation)])
    m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype("float32") / 16.0, d.target.astype("int32")
    ens = Ensemble.from_seeds(lambda: mlp(32), X[:1024], y[:1024], seeds=2,
                              config={**QUIET, "epochs": 5}, validation_data=(X[1024:1280], y[1024:1280]),
                              run_dir=str(tmp_path_factory.mktemp("teacher")))
    return ens, X, y


@pytest.mark.parametrize("student_activation", ["softmax", None])
def test_student_agrees_with_ensemble(teacher, tmp_path, student_activation):
    import keras

    ens, X, y = teacher
    keras.utils.set_random_seed(1)
    untrained = mlp(8, activation=student_activation)
    p0 = untrained.predict(X[1300:], verbose=0)
    base = np.mean(p0.argmax(1) == ens.predict(X[1300:]).argmax(1))
    res = distill(ens, untrained, X[:1024], temperature=3.0, config={**QUIET, "epochs": 10},
                  validation_data=(X[1300:], y[1300:]), run_dir=str(tmp_path / "run"))
    assert res.student is untrained and res.temperature == 3.0 and res.task == "classification"
    assert res.agreement > 0.8 and res.val_agreement > 0.75
    assert res.val_agreement > base + 0.4
    assert res.student_accuracy > 0.7 and res.teacher_accuracy > 0.8
    assert "loss" in res.history and "val_loss" in res.history
    # the teacher is untouched, the student is an ordinary Keras model
    assert untrained.output_shape == (None, 10)


def test_hard_labels_mix_and_regression(teacher, tmp_path):
    import keras

    ens, X, y = teacher
    res = distill(ens, lambda: mlp(8), X[:640], y=y[:640], alpha=0.5, temperature=2.0,
                  config={**QUIET, "epochs": 2}, run_dir=str(tmp_path / "a"))
    assert {"soft_loss", "hard_loss"} <= set(res.history)
    assert res.student_accuracy is not None and 0 <= res.agreement <= 1

    rng = np.random.RandomState(0)
    Xr = rng.randn(320, 64).astype("float32")
    reg_teacher = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])
    reg_teacher.compile("adam", "mse")
    student = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1)])
    r = distill(Ensemble([reg_teacher]), student, Xr, config={**QUIET, "epochs": 60, "learning_rate": 3e-2},
                run_dir=str(tmp_path / "r"))
    assert r.task == "regression" and r.agreement > 0.9  # R² of the student against the teacher


def test_bad_arguments(teacher):
    ens, X, _ = teacher
    with pytest.raises(ConfigError, match="temperature"):
        distill(ens, mlp(4), X[:10], temperature=0)
    with pytest.raises(ConfigError, match="pass y"):
        distill(ens, mlp(4), X[:10], alpha=0.3)
    with pytest.raises(ConfigError, match="student outputs shape"):
        distill(ens, mlp(4, n_out=3), X[:10])


def test_multilabel_teacher_is_distilled_label_by_label(tmp_path):
    import keras

    rng = np.random.RandomState(0)
    X = rng.randn(128, 64).astype("float32")
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((64,)), keras.layers.Dense(3, activation="sigmoid")])
    teacher.compile("adam", "binary_crossentropy")
    student = keras.Sequential([keras.Input((64,)), keras.layers.Dense(3)])  # logits
    res = distill(Ensemble([teacher]), student, X, y=(teacher.predict(X, verbose=0) > 0.5).astype("float32"),
                  temperature=2.0, config={**QUIET, "epochs": 1}, run_dir=str(tmp_path))
    assert res.task == "multilabel" and 0 <= res.agreement <= 1
    assert res.teacher_accuracy == 1.0  # per-label accuracy of the teacher on its own labels
    assert {"loss", "val_loss"} <= set(res.history)
