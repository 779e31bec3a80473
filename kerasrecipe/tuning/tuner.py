"""RecipeTuner: a keras-tuner Tuner that times its trials, saves atomically and resumes cleanly.

- Every trial reports, besides the objective, its training time: `fit_seconds`, `epochs_run`,
  `n_train`, `first_epoch_seconds` and `epoch_seconds` (median of the later epochs) — what
  `search` needs to extrapolate the full-data training time (H5).
- Oracle and trial files are written atomically (kerasrecipe.io), so a kill mid-write never
  leaves a torn `oracle.json`; the tuner state is saved when the search begins, so a search
  killed during its very first trial also resumes (keras-tuner alone restarts it from scratch).
- Works with any of keras-tuner's oracles; `make_oracle("random"|"bayesian"|"hyperband", ...)`.
- Hyperband's "tuner/epochs" is honoured; promoted trials train from scratch (no weight
  carry-over), which keeps trials independent of each other's files (distributed, k-fold).
"""
from __future__ import annotations

import gc
import json
import math
import os
import statistics
import time
from typing import Optional

import keras
import keras_tuner
from keras_tuner.src.distribute import utils as dist_utils

from kerasrecipe.errors import ConfigError
from kerasrecipe.io import atomic_write_text
from kerasrecipe.metric_direction import metric_direction

TUNERS = ("random", "bayesian", "hyperband")


class _AtomicOracleMixin:
    """Write oracle.json and trial.json through a temporary file and a rename."""

    def save(self):
        atomic_write_text(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        atomic_write_text(path, json.dumps(trial.get_state()))


class RandomSearchOracle(_AtomicOracleMixin, keras_tuner.oracles.RandomSearchOracle):
    """keras-tuner's random search (H2), saving atomically."""


class BayesianOptimizationOracle(_AtomicOracleMixin, keras_tuner.oracles.BayesianOptimizationOracle):
    """keras-tuner's Gaussian-process Bayesian optimisation (H3), saving atomically."""


class HyperbandOracle(_AtomicOracleMixin, keras_tuner.oracles.HyperbandOracle):
    """keras-tuner's Hyperband, saving atomically."""


def make_oracle(tuner: str, *, objective, max_trials: Optional[int] = None, seed: Optional[int] = None,
                max_epochs: Optional[int] = None, **kwargs):
    """An oracle by name: "random" (default, H2), "bayesian" (H3) or "hyperband".

    Hyperband's budget is `max_epochs` (its brackets decide the number of trials), not
    `max_trials`."""
    if tuner == "random":
        return RandomSearchOracle(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
    if tuner == "bayesian":
        return BayesianOptimizationOracle(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
    if tuner == "hyperband":
        return HyperbandOracle(objective=objective, max_epochs=max_epochs or 10, seed=seed, **kwargs)
    raise ConfigError(f"unknown tuner {tuner!r}: expected one of {TUNERS}")


def objective_for(objective) -> keras_tuner.Objective:
    """A keras_tuner.Objective from a name ("val_loss", "val_accuracy"...) or an Objective.

    The direction comes from the name (`metric_direction`): accuracy, AUC, precision/recall,
    F-scores, R², IoU, cosine similarity... are maximised; losses and errors minimised. Anything
    else is a ConfigError: pass `keras_tuner.Objective(name, direction)`."""
    if isinstance(objective, keras_tuner.Objective):
        return objective
    if not isinstance(objective, str) or not objective:
        raise ConfigError(f"objective must be a metric name or a keras_tuner.Objective, got {objective!r}")
    direction = metric_direction(objective)
    if direction is None:
        raise ConfigError(
            f"cannot tell whether objective {objective!r} should be minimised or maximised: pass "
            f"keras_tuner.Objective({objective!r}, direction='min' or 'max')"
        )
    return keras_tuner.Objective(objective, direction)


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch (the first one includes tracing/compilation)."""

    def __init__(self):
        super().__init__()
        self.times = []
        self._t = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._t is not None:
            self.times.append(time.perf_counter() - self._t)

    def __deepcopy__(self, memo):
        return EpochTimer()


def timing_metrics(timer: EpochTimer, n_train: Optional[int], fit_seconds: float) -> dict:
    t = timer.times
    later = t[1:] or t
    return {
        "fit_seconds": float(fit_seconds),
        "epochs_run": float(len(t)),
        "n_train": float(n_train or 0),
        "first_epoch_seconds": float(t[0]) if t else 0.0,
        "epoch_seconds": float(statistics.median(later)) if later else 0.0,
    }


#: Score of a trial whose objective was never finite (diverged at once): a bad result, not a
#: failure — keras-tuner would mark it invalid and stop the whole search after 3 in a row,
#: although a too-high learning rate is exactly what a search is meant to find out.
DIVERGED_SCORE = 1e9


class ObjectiveError(ConfigError, keras_tuner.errors.FatalValueError):
    """The objective is not among the metrics a trial logged. Every trial would fail the same way,
    so it stops the search at once (keras-tuner fails the trials one by one, each with a
    traceback, and then only says that none completed)."""


def best_of_history(history, objective: keras_tuner.Objective) -> float:
    """The best finite value of the objective over the epochs of a History (keras-tuner's
    convention), or +-DIVERGED_SCORE when no epoch had a finite value."""
    values = history.history.get(objective.name)
    if not values:
        raise ObjectiveError(
            f"objective {objective.name!r} is not among the trained metrics {sorted(history.history)}: "
            "compile the metric, give validation data, or choose another objective"
        )
    finite = [float(v) for v in values if math.isfinite(float(v))]
    if not finite:
        return DIVERGED_SCORE if objective.direction == "min" else -DIVERGED_SCORE
    return float(min(finite) if objective.direction == "min" else max(finite))


class RecipeTuner(keras_tuner.Tuner):
    """A keras-tuner Tuner for the recipe. Use it like `keras_tuner.RandomSearch`, with any oracle:

        tuner = RecipeTuner(hypermodel, oracle=make_oracle("random", objective="val_loss", max_trials=20),
                            directory="tuning", project_name="digits")
        tuner.search(x, y, validation_data=(xv, yv))

    Args:
        hypermodel: a `RecipeHyperModel` (or any keras-tuner HyperModel).
        oracle: a keras-tuner Oracle (`make_oracle` gives the atomic-saving ones).
        stage: a label stored with the tuner (e.g. "lr"); informational.
        reporter: optional callable(trial) called after each trial ended (progress lines).
        directory, project_name, overwrite, tuner_id: as in keras-tuner. `overwrite=False`
            (the default) resumes a project found in the directory.
    """

    def __init__(self, hypermodel, *, oracle, stage: Optional[str] = None, reporter=None, **kwargs):
        self.stage = stage
        self.reporter = reporter
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    # --------------------------------------------------------------- persistence
    def save(self):
        if not self._is_worker():
            self.oracle.save()
        atomic_write_text(self._get_tuner_fname(), json.dumps(self.get_state()))

    def on_search_begin(self):
        # keras-tuner writes the tuner file only after a trial ends; without it a search killed in
        # its first trial would not reload the oracle and would start over.
        self.save()

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.reporter is not None and not self._is_worker():
            self.reporter(self.oracle.get_trial(trial.trial_id))

    # --------------------------------------------------------------- one trial
    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        gc.collect()  # once per trial (keras-tuner collects twice per model built: ~1 s each)

    def _try_build(self, hp):
        keras.utils.clear_session(free_memory=False)
        model = self._build_hypermodel(hp)
        if not isinstance(model, keras.Model):
            raise keras_tuner.errors.FatalTypeError(
                f"build_fn / HyperModel.build must return a keras.Model, got {type(model).__name__}"
            )
        if self.max_model_size and model.count_params() > self.max_model_size:
            raise keras_tuner.errors.FailedTrialError(
                f"oversized model: {model.count_params()} parameters > max_model_size={self.max_model_size}"
            )
        return model

    def _fit_once(self, trial, x, y, validation_data=None, callbacks=(), **fit_kwargs):
        """Build, fit and time one model; returns (objective value, timing metrics, history)."""
        hp = trial.hyperparameters
        model = self._try_build(hp)
        timer = EpochTimer()
        cbs = self._deepcopy_callbacks(list(callbacks)) + [timer]
        t0 = time.perf_counter()
        history = self.hypermodel.fit(hp, model, x, y, validation_data=validation_data, callbacks=cbs, **fit_kwargs)
        seconds = time.perf_counter() - t0
        if not isinstance(history, keras.callbacks.History):
            raise ConfigError("HyperModel.fit must return the History of model.fit")
        from kerasrecipe.tuning.hypermodel import _n_samples

        return best_of_history(history, self.oracle.objective), timing_metrics(timer, _n_samples(x), seconds), history

    def run_trial(self, trial, x, y=None, validation_data=None, callbacks=(), **fit_kwargs):
        score, timing, _ = self._fit_once(trial, x, y, validation_data, callbacks, **fit_kwargs)
        return {self.oracle.objective.name: score, **timing}

    def save_model(self, trial_id, model, step=0):
        """Trial models are not kept (the best configuration is retrained on the full data)."""

    def load_model(self, trial):
        raise NotImplementedError(
            "RecipeTuner does not keep trial models: rebuild the best one with "
            "tuner.hypermodel.build(tuner.get_best_hyperparameters()[0]) and train it, or use "
            "kerasrecipe.tuning.search, which retrains it on the full data."
        )

    def is_chief(self) -> bool:
        return dist_utils.is_chief_oracle()
