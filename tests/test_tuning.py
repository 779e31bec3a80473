"""kerasrecipe.tuning: recipe search space, coarse-to-fine stages, subsampling, k-fold, resume,
bad inputs. Tiny models and budgets; runs on every backend."""
import io
import json
import math
import os

import keras
import keras_tuner
import numpy as np
import pytest
from rich.console import Console

from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.tuning import (
    KFoldTuner,
    RecipeHyperModel,
    make_oracle,
    narrow_lr,
    search,
    subsample_indices,
    trial_callbacks,
)


def _data(n=150, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype("int32")
    centers = rng.normal(size=(classes, 8)) * 2
    x = (centers[y] + rng.normal(size=(n, 8))).astype("float32")
    return x, y


def build(hp):
    m = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu"),
        keras.layers.Dropout(hp.get("dropout")),
        keras.layers.Dense(3, activation="softmax"),
    ])
    # jit_compile=False: tiny models, where XLA compilation per trial would cost more than training
    m.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    return m


def quiet():
    return Console(file=io.StringIO(), width=200)


# ------------------------------------------------------------------ search space / hypermodel
def test_hypermodel_declares_recipe_space_fixed_and_omitted():
    hm = RecipeHyperModel(build, search=("lr", "batch_size", "weight_decay"), fixed={"optimizer": "sgd"})
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    space = {p.name: p for p in hp.space}
    lr = space["learning_rate"]
    assert isinstance(lr, keras_tuner.engine.hyperparameters.Float)
    assert (lr.min_value, lr.max_value, lr.sampling) == (1e-5, 1e-1, "log")
    assert list(space["batch_size"].values) == [32, 64, 128, 256]
    assert space["weight_decay"].sampling == "log"
    # fixed and omitted parameters are declared Fixed (the trial records its whole config)
    assert isinstance(space["optimizer"], keras_tuner.engine.hyperparameters.Fixed)
    assert hp.get("optimizer") == "sgd"
    assert hp.get("schedule") == "plateau" and hp.get("dropout") == 0.0
    assert "units" in space  # the architecture's own hyperparameter
    # compiled with the recipe's optimizer for the trial's config
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.momentum) == pytest.approx(0.9)
    cfg = hm.config_for(hp)
    assert cfg.optimizer == "sgd" and cfg.learning_rate == hp.get("learning_rate")
    assert cfg.extra["hp"] == {"units": 4}
    cbs = trial_callbacks(cfg)
    es = [c for c in cbs if isinstance(c, keras.callbacks.EarlyStopping)]
    assert es and es[0].monitor == "val_loss" and es[0].restore_best_weights


def test_hypermodel_fit_uses_trial_batch_size_and_recipe_callbacks():
    x, y = _data(64)
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["batch_steps"] = self.params["steps"]

    hm = RecipeHyperModel(build, search=("lr",), fixed={"batch_size": 16}, epochs=1,
                          callbacks=lambda cfg: trial_callbacks(cfg) + [Spy()])
    hp = keras_tuner.HyperParameters()
    model = hm.build(hp)
    hist = hm.fit(hp, model, x, y, validation_data=(x, y))
    assert seen["batch_steps"] == math.ceil(64 / 16)
    assert len(hist.history["val_loss"]) == 1


def test_cosine_schedule_spans_the_trial():
    from kerasrecipe.optimizers import get_learning_rate

    x, y = _data(64)
    hm = RecipeHyperModel(build, search=("lr",), fixed={"batch_size": 16, "schedule": "cosine"}, epochs=2)
    hp = keras_tuner.HyperParameters()
    hp.Fixed("learning_rate", 0.01)
    model = hm.build(hp)
    hm.fit(hp, model, x, y, validation_data=(x, y))
    # decayed over exactly the trial's 2 epochs x 4 steps: at the end it is near the floor
    assert get_learning_rate(model.optimizer) < 0.01 * 0.05


def test_uncompiled_model_needs_loss():
    def raw(hp):
        return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])

    with pytest.raises(ConfigError, match="loss"):
        RecipeHyperModel(raw, search=("lr",)).build(keras_tuner.HyperParameters())
    model = RecipeHyperModel(raw, search=("lr",), loss="mse").build(keras_tuner.HyperParameters())
    assert model.compiled


def test_narrow_lr_is_one_decade_centred():
    r = narrow_lr(1e-3)
    assert r["max"] / r["min"] == pytest.approx(10.0)
    assert math.sqrt(r["max"] * r["min"]) == pytest.approx(1e-3)
    assert r["sampling"] == "log"


# ------------------------------------------------------------------ bad inputs
BAD_INPUTS = [
    (dict(search=()), "empty"),
    (dict(search=("lr", "momentum_of_doom")), "unknown search parameter"),
    (dict(tuner="grid"), "unknown tuner"),
    (dict(subsample=0), r"subsample=0 is invalid.*\(0, 1\]"),
    (dict(subsample=1.5), r"\(0, 1\]"),
    (dict(subsample=-0.1), r"\(0, 1\]"),
    (dict(stages=()), "stages=.* is empty"),
    (dict(stages=("lr", "warmup")), "unknown stage"),
    (dict(stages=("refine",)), "needs an earlier stage"),
    (dict(max_trials=0), "max_trials"),
    (dict(max_trials=(2, 2)), "3 stages"),
    (dict(cv=3, validation_data=(np.zeros((4, 8)), np.zeros(4))), "cv="),
    (dict(fixed={"lr": 0.1}, search=("lr",)), "both searched and fixed"),
    (dict(ranges={"lr": (0.0, 1.0)}), "log-uniform range needs min > 0"),
    (dict(fixed={"optimizer": "adagrad-ish"}), "optimizer"),
]


def test_bad_inputs_raise_clear_errors(tmp_path):
    x, y = _data(40)
    for kwargs, match in BAD_INPUTS:
        with pytest.raises(ConfigError, match=match):
            search(build, x, y, directory=str(tmp_path), verbose=0, **kwargs)
    assert not any(p.name.startswith("trial_") for p in tmp_path.rglob("*")), "no trial may run"


def test_non_array_input_to_subsample_is_a_type_error(tmp_path):
    with pytest.raises(InputTypeError, match="array"):
        search(build, iter([1, 2]), np.zeros(3), subsample=0.5, directory=str(tmp_path), verbose=0)


# ------------------------------------------------------------------ subsampling (B7)
def test_subsample_is_stratified_and_reproducible():
    y = np.repeat(np.arange(4), [500, 200, 80, 20]).astype("int32")
    idx = subsample_indices(y, 0.1, seed=3)
    counts = np.bincount(y[idx], minlength=4)
    assert counts.tolist() == [50, 20, 8, 2]  # the same share of every class
    assert len(set(idx.tolist())) == len(idx)
    assert np.array_equal(idx, subsample_indices(y, 0.1, seed=3))  # reproducible
    assert not np.array_equal(idx, subsample_indices(y, 0.1, seed=4))
    # one-hot targets stratify the same way
    onehot = np.eye(4, dtype="float32")[y]
    assert np.array_equal(idx, subsample_indices(onehot, 0.1, seed=3))
    # a class subset keeps only those labels, the same share of each
    sub = subsample_indices(y, 0.5, classes=[1, 3], seed=0)
    assert np.bincount(y[sub], minlength=4).tolist() == [0, 100, 0, 10]
    assert len(np.unique(y[subsample_indices(y, None, classes=2, seed=0)])) == 2
    # regression targets: uniform sample of the right size
    r = subsample_indices(np.linspace(0, 1, 1000, dtype="float32"), 0.25, seed=0)
    assert len(r) == 250
    with pytest.raises(ConfigError, match="do not occur"):
        subsample_indices(y, 0.5, classes=[7])


# ------------------------------------------------------------------ stages (H1) + retraining (H5)
def test_stage_ordering_subsample_and_retraining(tmp_path):
    x, y = _data(200)
    out = Console(file=io.StringIO(), width=250)
    res = search(build, x, y, stages=("lr", "rest", "refine"), max_trials=(2, 2, 1), epochs=2,
                 subsample=0.5, directory=str(tmp_path), project_name="p", console=out, verbose=1, seed=1)
    rows = res.trials
    assert [r["stage"] for r in rows] == ["lr"] * 2 + ["rest"] * 2 + ["refine"]
    by = {s: [r for r in rows if r["stage"] == s] for s in ("lr", "rest", "refine")}
    # stage 1: the LR alone; everything else (architecture included) at its default
    assert len({r["learning_rate"] for r in by["lr"]}) == 2
    for r in by["lr"]:
        assert (r["optimizer"], r["batch_size"], r["schedule"], r["units"]) == ("adam", 32, "plateau", 4)
    # stage 2: every trial uses stage 1's best learning rate
    lr_scores = [r["score"] for r in by["lr"]]
    best_lr = by["lr"][int(np.argmin(lr_scores))]["learning_rate"]
    assert res.stages["lr"]["best"]["learning_rate"] == best_lr
    assert all(r["learning_rate"] == best_lr for r in by["rest"])
    # stage 3: the LR in the decade around the best so far, the rest fixed at that trial's values
    so_far = by["lr"] + by["rest"]
    best_row = so_far[int(np.argmin([r["score"] for r in so_far]))]
    lo, hi = res.stages["refine"]["lr_range"]
    assert lo == pytest.approx(best_row["learning_rate"] / math.sqrt(10))
    assert hi == pytest.approx(best_row["learning_rate"] * math.sqrt(10))
    for r in by["refine"]:
        assert lo <= r["learning_rate"] <= hi
        for k in ("optimizer", "batch_size", "weight_decay", "dropout", "schedule", "units"):
            assert r[k] == best_row[k]
    # the result: best config = best trial overall; trial names carry parameters and score (A4)
    best_overall = min(rows, key=lambda r: r["score"])
    assert res.best_score == pytest.approx(best_overall["score"])
    assert res.best_config.learning_rate == best_overall["learning_rate"]
    assert res.best_config.extra["hp"]["units"] == best_overall["units"]
    assert f"lr{best_overall['learning_rate']:.1e}" in best_overall["name"]
    assert f"val_loss{best_overall['score']:.4f}" in best_overall["name"]
    # CSV of all trials and the best config in the directory
    with open(res.csv_path) as f:
        assert len(f.read().strip().splitlines()) == 1 + 5
    assert os.path.exists(os.path.join(res.directory, "best_config.json"))
    # subsample used for the search, full data for the retraining, estimate printed before
    assert all(r["n_train"] == 80 for r in rows)  # half of the 160 training rows (200 - 20% val)
    text = out.file.getvalue()
    assert "search on 80 of 160" in text
    assert text.index("estimated") < text.index("retrained in")
    assert res.estimated_seconds is not None and res.estimated_seconds > 0
    assert isinstance(res.model, keras.Model) and res.model.predict(x[:5], verbose=0).shape == (5, 3)
    assert res.history is not None


# ------------------------------------------------------------------ k-fold (B5)
class _FoldProbe(keras_tuner.HyperModel):
    """fit() reports val_loss = sum of the validation inputs, so fold scores are known."""

    def build(self, hp):
        hp.Float("a", 0.0, 1.0)
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, **kw):
        h = keras.callbacks.History()
        s = float(validation_data[0].sum())
        h.history = {"val_loss": [s + 1.0, s, s + 2.0]}  # best epoch = s
        return h


def test_kfold_tuner_averages_fold_scores(tmp_path):
    from sklearn.model_selection import StratifiedKFold

    x = np.arange(60, dtype="float32").reshape(-1, 1) ** 2
    y = np.tile(np.arange(3), 20).astype("int32")
    tuner = KFoldTuner(_FoldProbe(), oracle=make_oracle("random", objective="val_loss", max_trials=2, seed=1),
                       cv=4, seed=7, directory=str(tmp_path), project_name="kf")
    tuner.search(x, y)
    expected = [float(x[va].sum()) for _, va in StratifiedKFold(4, shuffle=True, random_state=7).split(x, y)]
    assert sum(expected) == pytest.approx(float(x.sum()))  # each sample validated exactly once
    for trial in tuner.oracle.trials.values():
        assert tuner.fold_scores[trial.trial_id] == pytest.approx(expected)
        assert trial.score == pytest.approx(np.mean(expected))
        assert trial.metrics.get_last_value("val_loss_std") == pytest.approx(np.std(expected))
        assert [trial.metrics.get_last_value(f"val_loss_fold{i}") for i in range(4)] == pytest.approx(expected)
        with open(os.path.join(tuner.get_trial_dir(trial.trial_id), "folds.json")) as f:
            assert json.load(f)["scores"] == pytest.approx(expected)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        KFoldTuner(_FoldProbe(), oracle=make_oracle("random", objective="val_loss", max_trials=1), cv=1,
                   directory=str(tmp_path), project_name="kf1")


def test_search_with_cv_scores_trials_by_fold_mean(tmp_path):
    x, y = _data(90)
    res = search(build, x, y, stages=("lr",), max_trials=1, cv=2, epochs=1, retrain=False,
                 directory=str(tmp_path), verbose=0)
    (row,) = res.trials
    assert row["score"] == pytest.approx((row["val_loss_fold0"] + row["val_loss_fold1"]) / 2)
    assert row["n_train"] == 45


def test_a_diverged_trial_is_a_bad_score_not_a_failure():
    from kerasrecipe.tuning.tuner import DIVERGED_SCORE, best_of_history

    h = keras.callbacks.History()
    h.history = {"val_loss": [float("nan")], "val_accuracy": [float("nan")]}
    assert best_of_history(h, keras_tuner.Objective("val_loss", "min")) == DIVERGED_SCORE
    assert best_of_history(h, keras_tuner.Objective("val_accuracy", "max")) == -DIVERGED_SCORE
    h.history = {"val_loss": [0.5, 0.3, float("nan")]}
    assert best_of_history(h, keras_tuner.Objective("val_loss", "min")) == 0.3
    with pytest.raises(ConfigError, match="not among the trained metrics"):
        best_of_history(h, keras_tuner.Objective("val_auc", "max"))


# ------------------------------------------------------------------ other tuners (H2, H3)
@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband(tmp_path, kind):
    x, y = _data(80)
    res = search(build, x, y, stages=("all",), search=("lr",), tuner=kind, max_trials=2,
                 epochs=2 if kind == "hyperband" else 1,
                 retrain=False, directory=str(tmp_path), verbose=0)
    assert len(res.trials) >= 2
    assert all(r["status"] == "COMPLETED" for r in res.trials)
    assert res.best_score == pytest.approx(min(r["score"] for r in res.trials))


# ------------------------------------------------------------------ resume
class _Crash(BaseException):
    """Not an Exception: keras-tuner cannot swallow it as a failed trial, like a kill."""


def test_resume_after_a_crash_loses_no_trial_and_runs_none_twice(tmp_path):
    x, y = _data(80)
    fits = []
    crash = {"at": 2}

    class Record(keras.callbacks.Callback):
        def __init__(self, cfg):
            super().__init__()
            self.key = (cfg.learning_rate, cfg.optimizer, cfg.batch_size, cfg.weight_decay, cfg.schedule)

        def on_train_begin(self, logs=None):
            fits.append(self.key)

        def on_epoch_end(self, epoch, logs=None):
            if len(fits) == crash["at"]:
                raise _Crash()  # dies in the middle of the 2nd trial

    kw = dict(stages=("lr", "rest"), max_trials=(2, 1), epochs=1, retrain=False, directory=str(tmp_path),
              project_name="r", verbose=0, callbacks=lambda cfg: trial_callbacks(cfg) + [Record(cfg)])
    with pytest.raises(_Crash):
        search(build, x, y, **kw)
    assert len(fits) == 2
    first, crashed = fits
    crash["at"] = -1
    res = search(build, x, y, **kw)
    # resumed: the crashed trial ran again (once), the finished one did not; 3 + 2 trials in all
    assert fits[2] == crashed
    assert fits.count(first) == 1 and fits.count(crashed) == 2
    assert len(fits) == 2 + 2
    assert len(res.trials) == 3 and all(r["status"] == "COMPLETED" for r in res.trials)
    assert len({r["learning_rate"] for r in res.trials if r["stage"] == "lr"}) == 2
    # a third run finds everything done: no trial runs again
    n = len(fits)
    again = search(build, x, y, **kw)
    assert len(fits) == n
    assert [r["name"] for r in again.trials] == [r["name"] for r in res.trials]
