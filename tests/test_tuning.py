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
    (dict(refine_decades=0), "refine_decades=0 is invalid"),
    (dict(refine_decades=-1), "refine_decades=-1 is invalid"),
    (dict(refine_decades="1"), "refine_decades='1' is invalid"),
    (dict(ranges={"weight_decay": {"min": 0.0, "max": 1e-2}}), "sampling='linear'"),
    (dict(fixed=dict(lr=1e-3, optimizer="adam", batch_size=32, weight_decay=0.0, dropout=0.0,
                     schedule="plateau")), "nothing is left to search"),
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


# ------------------------------------------------------------------ audit fixes
def test_objective_direction_from_the_metric_name():
    from kerasrecipe.tuning.tuner import objective_for

    minimised = ["val_loss", "loss", "val_out_loss", "val_mean_absolute_error", "val_mse",
                 "val_sparse_categorical_crossentropy", "val_false_negatives"]
    maximised = ["val_accuracy", "val_out_sparse_categorical_accuracy", "val_auc_1", "val_r2_score",
                 "val_f1_score", "val_fbeta_score", "val_cosine_similarity", "val_precision", "val_recall",
                 "val_binary_io_u", "val_mean_io_u", "val_precision_at_recall"]
    assert {n: objective_for(n).direction for n in minimised + maximised} == {
        **{n: "min" for n in minimised}, **{n: "max" for n in maximised}}
    for name in ("val_score", "val_mean", "val_sum"):
        with pytest.raises(ConfigError, match=r"keras_tuner.Objective\("):
            objective_for(name)
    obj = keras_tuner.Objective("val_score", "max")
    assert objective_for(obj) is obj


def test_split_and_subsample_keep_the_requested_fraction_with_many_labels():
    from kerasrecipe.tuning import validation_split

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype("float32")
    for y in (rng.integers(0, 1000, 200),                 # integer regression targets
              np.repeat(np.arange(100), 2).astype("int32")):  # 100 classes of 2
        (xt, yt), (xv, yv) = validation_split(x, y, 0.2, seed=0)
        assert (len(xt), len(xv)) == (160, 40)
        assert sorted(np.concatenate([yt, yv]).tolist()) == sorted(y.tolist())
        assert len(subsample_indices(y, 0.1, seed=0)) == 20
    # few classes: still stratified, and a rare class keeps one sample
    y = np.repeat(np.arange(4), [500, 200, 80, 20])
    assert np.bincount(y[subsample_indices(y, 0.01, seed=0)], minlength=4).tolist() == [4, 2, 1, 1]


def test_mismatched_lengths_are_a_clear_error(tmp_path):
    from kerasrecipe.tuning import subsample, validation_split

    x, y = _data(40)
    with pytest.raises(InputTypeError, match=r"same number of samples.*x: 30 rows.*y: 40 rows"):
        search(build, x[:30], y, directory=str(tmp_path), verbose=0)
    with pytest.raises(InputTypeError, match=r"validation_data: x: 10 rows.*validation_data: y: 12 rows"):
        search(build, x, y, validation_data=(x[:10], y[:12]), directory=str(tmp_path), verbose=0)
    with pytest.raises(InputTypeError, match=r"x\['b'\]: 20 rows"):
        validation_split({"a": x, "b": x[:20]}, y, 0.2)
    with pytest.raises(InputTypeError, match="same number of samples"):
        subsample([x, x], y[:39], 0.5)
    assert not any(p.name.startswith("trial_") for p in tmp_path.rglob("*")), "no trial may run"


def test_dict_ranges_of_lr_and_weight_decay_are_log_uniform_by_default():
    hm = RecipeHyperModel(build, search=("lr", "weight_decay", "dropout"),
                          ranges={"lr": {"min": 1e-5, "max": 1e-1}, "weight_decay": {"min": 1e-6, "max": 1e-2},
                                  "dropout": {"min": 0.0, "max": 0.3}})
    hp = keras_tuner.HyperParameters()
    hm.declare(hp)
    sampling = {p.name: p.sampling for p in hp.space if hasattr(p, "sampling")}
    assert sampling == {"learning_rate": "log", "weight_decay": "log", "dropout": "linear"}
    linear = RecipeHyperModel(build, search=("weight_decay",),
                              ranges={"weight_decay": {"min": 0.0, "max": 1e-2, "sampling": "linear"}})
    assert linear.ranges["weight_decay"]["sampling"] == "linear"
    with pytest.raises(ConfigError, match="sampling='cubic'"):
        RecipeHyperModel(build, ranges={"lr": {"min": 1e-5, "max": 1e-1, "sampling": "cubic"}})


def test_a_fixed_parameter_leaves_the_default_search():
    hm = RecipeHyperModel(build, fixed={"optimizer": "sgd", "lr": 0.01})
    assert hm.search == ("batch_size", "weight_decay", "dropout", "schedule")
    hp = keras_tuner.HyperParameters()
    hm.declare(hp)
    assert (hp.get("optimizer"), hp.get("learning_rate")) == ("sgd", 0.01)
    with pytest.raises(ConfigError, match=r"\['optimizer'\] are both searched and fixed"):
        RecipeHyperModel(build, search=("lr", "optimizer"), fixed={"optimizer": "sgd"})


def test_narrow_lr_stays_inside_the_searched_range():
    bounds = {"min": 1e-4, "max": 1e-2}
    r = narrow_lr(1e-2, 1.0, bounds)  # best at the top: half a decade, below it
    assert (r["min"], r["max"]) == pytest.approx((1e-2 / math.sqrt(10), 1e-2))
    r = narrow_lr(1e-3, 4.0, bounds)  # wider than the bounds: the bounds
    assert (r["min"], r["max"]) == pytest.approx((1e-4, 1e-2))
    r = narrow_lr(1.0, 1.0, bounds)   # outside (e.g. the config's LR): the decade nearest to it
    assert (r["min"], r["max"]) == pytest.approx((1e-3, 1e-2))
    with pytest.raises(ConfigError, match="refine_decades"):
        narrow_lr(1e-3, 0)


def _trial_rows():
    return [
        {"stage": "lr", "trial": "0", "score": 0.5, "status": "COMPLETED"},
        {"stage": "lr", "trial": "1", "score": None, "status": "FAILED"},
        {"stage": "rest", "trial": "0", "score": 0.9, "status": "COMPLETED"},
        {"stage": "rest", "trial": "1", "score": 0.1, "status": "COMPLETED"},
    ]


def test_trials_table_is_best_first():
    from kerasrecipe.tuning.search import SearchResult, trials_table

    # failed trial last; max_rows keeps the best ones
    table = trials_table(_trial_rows(), keras_tuner.Objective("val_score", "max"))
    assert list(table.columns[2].cells) == ["0.9", "0.5", "0.1", ""]
    res = SearchResult(best_config=None, best_hyperparameters={}, best_score=0.1, objective="val_score",
                       model=None, trials=_trial_rows(), directory="", csv_path="", direction="min")
    assert list(res.table().columns[2].cells) == ["0.1", "0.5", "0.9", ""]
    assert list(res.table(max_rows=2).columns[2].cells) == ["0.1", "0.5"]


SEED_WITH_A_DEEP_TRIAL = 1  # its first trials: deep with u2=3, not deep


def _conditional_build(hp):
    """deep=True adds a layer of u2 units; the metric scores the architecture: deep and wide best."""
    layers = [keras.Input((8,)), keras.layers.Dense(4, activation="relu")]
    score = 1.0
    deep = hp.Boolean("deep")
    with hp.conditional_scope("deep", [True]):
        if deep:
            u2 = hp.Choice("u2", [2, 3, 5])
            layers.append(keras.layers.Dense(u2, activation="relu"))
            score = 1.0 / u2
    layers.append(keras.layers.Dense(3, activation="softmax"))
    m = keras.Sequential(layers)

    def arch_score(y_true, y_pred):
        return keras.ops.mean(y_pred) * 0.0 + score

    m.compile(loss="sparse_categorical_crossentropy", metrics=[arch_score], jit_compile=False)
    return m


def test_refine_holds_the_best_architecture_and_stays_in_the_lr_range(tmp_path):
    x, y = _data(40)
    res = search(_conditional_build, x, y, stages=("all", "refine"), max_trials=(2, 1), epochs=1,
                 search=("lr",), fixed={"batch_size": 32}, ranges={"lr": (1e-3, 1e-2)}, refine_decades=2.0,
                 objective=keras_tuner.Objective("val_arch_score", "min"), retrain=False,
                 directory=str(tmp_path), verbose=0, seed=SEED_WITH_A_DEEP_TRIAL)
    first = [r for r in res.trials if r["stage"] == "all"]
    best = min(first, key=lambda r: r["score"])
    assert best["deep"] is True, "the seed's first trials should include a deep one"
    (refine,) = [r for r in res.trials if r["stage"] == "refine"]
    # the conditional hyperparameter (inactive at the defaults) is held at the best trial's value
    assert (refine["deep"], refine["u2"]) == (True, best["u2"])
    # the refine range: two decades around the best, cut to the searched range (one decade wide)
    assert res.stages["refine"]["lr_range"] == pytest.approx((1e-3, 1e-2))
    assert 1e-3 <= refine["learning_rate"] <= 1e-2


def test_misnamed_objective_fails_before_any_trial_with_its_cause(tmp_path):
    def no_metrics(hp):
        m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
        m.compile(loss="sparse_categorical_crossentropy", jit_compile=False)
        return m

    x, y = _data(40)
    with pytest.raises(ConfigError, match=r"'val_accuracy' is none of the metrics the model logs \['loss', "
                                             r"'val_loss'\]"):
        search(no_metrics, x, y, objective="val_accuracy", directory=str(tmp_path), verbose=0)
    assert not any(p.name.startswith("trial_") for p in tmp_path.rglob("*")), "no trial may run"
    # with custom callbacks (they may add metrics) the first trial stops the search, with the cause
    with pytest.raises(ConfigError, match="not among the trained metrics"):
        search(no_metrics, x, y, objective="val_accuracy", stages=("lr",), max_trials=3, epochs=1,
               callbacks=trial_callbacks, directory=str(tmp_path), project_name="cb", verbose=0)
    assert len([p for p in (tmp_path / "cb").rglob("trial.json")]) <= 1


def test_no_completed_trial_error_carries_the_cause(tmp_path):
    def broken(hp):
        if hp.get("learning_rate") != 1e-5:  # the defaults build; a sampled learning rate does not
            raise ValueError("boom: this architecture cannot be built")
        return build(hp)

    x, y = _data(40)
    with pytest.raises(ConfigError, match="no trial completed.*ValueError: boom: this architecture"):
        search(broken, x, y, stages=("lr",), max_trials=1, epochs=1, retrain=False, directory=str(tmp_path),
               verbose=0)


def test_retrained_model_is_reused_only_for_the_same_data(tmp_path):
    import warnings

    x, y = _data(40)
    kw = dict(stages=("lr",), search=("lr",), max_trials=1, epochs=1, directory=str(tmp_path), project_name="re",
              seed=0)
    first = search(build, x, y, console=quiet(), **kw)
    out = quiet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = search(build, x, y, console=out, **kw)
    assert "loaded, not retrained" in out.file.getvalue()
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert again.retrain_seconds is None
    np.testing.assert_allclose(again.model.predict(x[:4], verbose=0), first.model.predict(x[:4], verbose=0),
                               rtol=1e-5, atol=1e-6)
    # other data of the same size: retrained, not the stale model
    out = quiet()
    other = search(build, x[::-1].copy(), y, console=out, **kw)
    assert "loaded, not retrained" not in out.file.getvalue()
    assert other.retrain_seconds is not None
