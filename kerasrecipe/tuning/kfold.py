"""KFoldTuner: the trial score is the mean over k folds (tip B5) — keras-tuner has no such thing
for Keras models (keras-team/keras-tuner#139, open since 2019)."""
from __future__ import annotations

import os
import statistics
from typing import Optional

import numpy as np

from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.io import atomic_write_json
from kerasrecipe.tuning import data as data_mod
from kerasrecipe.tuning.tuner import RecipeTuner


class KFoldTuner(RecipeTuner):
    """A keras-tuner tuner whose trial score is the mean of the objective over k folds.

    Each trial trains k fresh models, fold i validated on the i-th held-out part (stratified for
    classification labels, plain k-fold otherwise, shuffled with `seed`). The trial reports the
    mean as the objective, `<objective>_std`, and `<objective>_fold<i>` per fold (so they reach a
    distributed chief too); the per-fold scores are also kept in `tuner.fold_scores[trial_id]`
    and in `<trial dir>/folds.json`. The score of a fold is the best value of the objective over
    its epochs (keras-tuner's convention; early stopping restores those weights).

    Args:
        hypermodel: a `RecipeHyperModel` or any keras-tuner HyperModel.
        oracle: any keras-tuner oracle (`kerasrecipe.tuning.make_oracle`).
        cv: number of folds (>= 2) or a scikit-learn splitter (`split(X, y)`).
        stratify: None (auto: stratified when y holds class labels), True or False.
        seed: shuffling seed of the folds (reproducible splits).
        **kwargs: RecipeTuner / keras-tuner Tuner arguments (directory, project_name, ...).

    Example:
        tuner = KFoldTuner(RecipeHyperModel(build, search=("lr",)),
                           oracle=make_oracle("random", objective="val_loss", max_trials=10), cv=5)
        tuner.search(x, y, epochs=20)
        tuner.fold_scores[tuner.oracle.get_best_trials()[0].trial_id]
    """

    def __init__(self, hypermodel, *, oracle, cv=5, stratify: Optional[bool] = None, seed: int = 0, **kwargs):
        if isinstance(cv, bool) or not (isinstance(cv, int) or hasattr(cv, "split")):
            raise InputTypeError(f"cv must be a number of folds or a scikit-learn splitter, got {cv!r}")
        if isinstance(cv, int) and cv < 2:
            raise ConfigError(f"cv={cv} is invalid: k-fold needs at least 2 folds (5 is the common choice, B5)")
        self.cv = cv
        self.stratify = stratify
        self.seed = seed
        self.fold_scores = {}
        super().__init__(hypermodel, oracle=oracle, **kwargs)

    def folds(self, x, y):
        """List of (train_idx, val_idx) for the data; the same on every call (seeded)."""
        n = data_mod.n_samples(x)
        if self.cv is not None and not isinstance(self.cv, int):
            X = np.zeros((n, 1))
            return [(np.asarray(a), np.asarray(b)) for a, b in self.cv.split(X, data_mod.labels_of(y))]
        from sklearn.model_selection import KFold, StratifiedKFold

        labels = data_mod.labels_of(y) if self.stratify is not False else None
        if self.stratify is True and labels is None:
            raise ConfigError("stratify=True needs class labels (integer labels or one-hot rows) in y")
        if n < self.cv:
            raise ConfigError(f"cv={self.cv} folds need at least {self.cv} samples, got {n}")
        if labels is not None:
            counts = np.bincount(np.unique(labels, return_inverse=True)[1])
            if counts.min() >= self.cv:
                splitter = StratifiedKFold(self.cv, shuffle=True, random_state=self.seed)
                return list(splitter.split(np.zeros((n, 1)), labels))
            if self.stratify is True:
                raise ConfigError(
                    f"stratified {self.cv}-fold needs every class at least {self.cv} times; the rarest "
                    f"has {counts.min()}: use fewer folds or stratify=False"
                )
        splitter = KFold(self.cv, shuffle=True, random_state=self.seed)
        return list(splitter.split(np.zeros((n, 1))))

    def run_trial(self, trial, x, y=None, validation_data=None, callbacks=(), **fit_kwargs):
        if validation_data is not None:
            raise ConfigError(
                "KFoldTuner validates on the held-out fold: do not pass validation_data "
                "(hold out a test set before the search instead; B5)"
            )
        if y is None:
            raise ConfigError("KFoldTuner needs y: k-fold splits (x, y) arrays")
        name = self.oracle.objective.name
        scores, timings = [], []
        for train_idx, val_idx in self.folds(x, y):
            xt, yt = data_mod.take(x, train_idx), data_mod.take(y, train_idx)
            xv, yv = data_mod.take(x, val_idx), data_mod.take(y, val_idx)
            score, timing, _ = self._fit_once(trial, xt, yt, (xv, yv), callbacks, **fit_kwargs)
            scores.append(score)
            timings.append(timing)
        self.fold_scores[trial.trial_id] = list(scores)
        atomic_write_json(
            os.path.join(self.get_trial_dir(trial.trial_id), "folds.json"),
            {"objective": name, "scores": scores, "mean": statistics.fmean(scores)},
        )
        result = {
            name: float(statistics.fmean(scores)),
            f"{name}_std": float(statistics.pstdev(scores)),
            **{f"{name}_fold{i}": float(s) for i, s in enumerate(scores)},
            "folds": float(len(scores)),
        }
        # timing per model (one fold), summed fit time for the whole trial
        result.update(timings[0])
        result["fit_seconds"] = float(sum(t["fit_seconds"] for t in timings))
        result["epoch_seconds"] = float(statistics.median(t["epoch_seconds"] for t in timings))
        return result
