"""K-fold cross-validation with the recipe in every fold (tip B5), and `fit_recipe`, the one
function that trains a model "the recipe way" for the scikit-learn estimators, the ensembles
and distillation.

    import kerasrecipe as kr

    def build():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    res = kr.cv.cross_validate(build, X, y, cv=5, config=kr.RecipeConfig(epochs=30))
    print(res.summary())          # loss 0.12 ± 0.02 | accuracy 0.96 ± 0.01
    res.oof                       # out-of-fold predictions: every sample predicted once
    res.ensemble.predict(X_test)  # the 5 fold models, averaged (tip I1)

Stratified k-fold for classification, plain k-fold for regression and multi-label targets, the
group variants when `groups` is given. The early-stopping validation split of each fold is taken
from that fold's training part only; the fold being scored is never seen during its model's
training. Per-sample fit arguments (`fit_kwargs={"sample_weight": w}`) are split with the data.
"""
from __future__ import annotations

import inspect
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError, NotCompiledError
from kerasrecipe.seeding import preserve_global_state

TASKS = ("auto", "classification", "multilabel", "regression")
# model.fit arguments with one entry per sample: split with x and y (train / validation / folds)
PER_SAMPLE_FIT_KWARGS = ("sample_weight",)


# ---------------------------------------------------------------------------- data helpers
def _num_samples(x) -> int:
    import keras

    leaves = keras.tree.flatten(x)
    if not leaves:
        raise InputTypeError("x is empty: expected an array (or a dict/list of arrays) of samples")
    n = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in leaves}
    if len(n) != 1 or -1 in n:
        raise ConfigError(f"all inputs must have the same number of samples on axis 0, got {sorted(n)}")
    return n.pop()


def _take(x, idx):
    """x[idx] for an array or a (nested) dict/list/tuple of arrays."""
    import keras

    if x is None:
        return None
    return keras.tree.map_structure(lambda a: np.asarray(a)[idx], x)


def model_task(model) -> Optional[str]:
    """The task a compiled model is trained for, read from its loss (and its output width):
    'classification' (softmax/categorical losses, or a binary loss on one output unit),
    'multilabel' (a binary loss on several output units), 'regression' (squared/absolute/...
    errors); None when the loss does not tell (not compiled, several losses, a custom loss)."""
    from kerasrecipe.checks.introspect import REGRESSION_LOSSES, loss_name_task, output_units, resolve_loss

    loss = resolve_loss(model)
    if loss is None:
        return None
    kind = loss.kind
    if kind == "other":  # a loss the kinds do not know: its name's words
        task = loss_name_task(loss.name)
        if task == "classification":
            kind = "bce" if re.search(r"binary", loss.name, re.I) else "cce"
        elif task == "regression":
            kind = "regression"
    if kind in ("sparse_cce", "cce", "cce_focal", "cce_hinge"):
        return "classification"
    if kind in ("bce", "bce_focal", "hinge"):
        units = output_units(model)
        return "multilabel" if units is not None and units > 1 else "classification"
    if kind in REGRESSION_LOSSES:
        return "regression"
    return None


def loss_from_logits(model) -> bool:
    """True when the model's outputs are unbounded scores, not probabilities: its compiled loss takes
    logits (e.g. `BinaryCrossentropy(from_logits=True)`), or is a hinge loss (margins, classified by
    sign: through the sigmoid, p > 0.5 exactly when the margin is > 0)."""
    from kerasrecipe.checks.introspect import MARGIN_LOSSES, resolve_loss

    loss = resolve_loss(model)
    if loss is not None:
        return bool(loss.from_logits) or loss.kind in MARGIN_LOSSES
    return bool(getattr(getattr(model, "loss", None), "from_logits", False))


def infer_task(y, model=None) -> str:
    """The task of a model and its targets: from the model's loss when it tells (`model_task`),
    else from `y`: 'classification' for integer/binary labels or one-hot rows, 'multilabel' for
    multi-hot 0/1 rows, 'regression' otherwise."""
    if model is not None:
        task = model_task(model)
        if task is not None:
            return task
    from sklearn.utils.multiclass import type_of_target

    y = np.asarray(y)
    try:
        kind = type_of_target(y)
    except ValueError:
        return "regression"
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "multilabel-indicator" and y.ndim == 2:
        return "classification" if np.allclose(y.sum(axis=1), 1) else "multilabel"
    return "regression"


def to_probabilities(p, *, task: str, from_logits: bool) -> np.ndarray:
    """Model outputs as probabilities: logits go through softmax (classification, several
    columns) or the sigmoid (one column, or multi-label); probabilities are returned as they are."""
    p = np.asarray(p, dtype=np.float64)
    if not from_logits or task not in ("classification", "multilabel"):
        return p
    if task == "classification" and p.ndim >= 2 and p.shape[-1] > 1:
        e = np.exp(p - p.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-p))


def class_labels(y) -> np.ndarray:
    """Integer-like class labels from labels or one-hot/probability rows (for stratification and
    scoring); binary labels -1/1 (hinge losses) become 0/1, as the predictions' labels are."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 2:
        y = y[:, 0]
    if y.dtype.kind in "iuf" and y.size and np.isin(y, (-1, 1)).all() and (y == -1).any():
        return (y > 0).astype(np.int64)
    return y


def split_validation(y, fraction: float, *, stratify=None, seed=None, n=None):
    """(train_index, val_index) of a shuffled (stratified when possible) hold-out split.

    `stratify`: class labels to stratify on, or None. Falls back to a plain shuffled split when
    a class has fewer than 2 members or the validation part is smaller than the class count.
    Returns an empty validation index when `fraction` is 0 or round(fraction * n) leaves no
    sample on one side.
    """
    n = int(n if n is not None else len(y))
    all_idx = np.arange(n)
    n_val = int(round(fraction * n))
    if fraction <= 0 or n_val < 1 or n - n_val < 1:
        return all_idx, all_idx[:0]
    rng = np.random.RandomState(seed if seed is not None else 0)
    if stratify is not None:
        from sklearn.model_selection import StratifiedShuffleSplit

        labels = np.asarray(stratify)
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts):
            sss = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=rng)
            tr, va = next(sss.split(np.zeros(n), labels))
            return np.sort(tr), np.sort(va)
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def optimizer_from_config(config: RecipeConfig, n_train: int):
    """The config's optimizer (engineer L's `kerasrecipe.optimizers.from_config`), with the
    steps per epoch a schedule needs; for build functions that leave the model uncompiled."""
    import math

    from kerasrecipe.optimizers import from_config

    return from_config(config, steps_per_epoch=max(1, math.ceil(n_train / config.batch_size)))


def recipe_callbacks(config: RecipeConfig, run_dir: Optional[str]):
    """`kerasrecipe.default(config, run_dir=...)` (engineer R's recipe)."""
    from kerasrecipe.recipe import default

    return list(default(config, run_dir=run_dir))


def check_build_fn(build_fn, what: str = "build_fn", per: str = "fold"):
    """A build function must be a callable returning a fresh compiled model; a model instance
    would be trained again and again (the same object each time)."""
    import keras

    if isinstance(build_fn, keras.Model) or not callable(build_fn):
        raise InputTypeError(
            f"{what} must be a function returning a fresh compiled model (one per {per}), "
            f"got {type(build_fn).__name__}"
            + ("; wrap the model's construction in a function: lambda: make_model()"
               if isinstance(build_fn, keras.Model) else "")
        )


def _split_fit_kwargs(fit_kwargs, n: int):
    """(per-sample fit arguments, checked to have n entries, the other fit arguments)."""
    import keras

    per_sample, rest = {}, {}
    for k, v in dict(fit_kwargs or {}).items():
        if k not in PER_SAMPLE_FIT_KWARGS:
            rest[k] = v
            continue
        if v is None:
            continue
        if not isinstance(v, dict):  # a dict holds one array per output of a multi-output model
            v = np.asarray(v)
        for leaf in keras.tree.flatten(v):
            leaf = np.asarray(leaf)
            if leaf.ndim == 0 or len(leaf) != n:
                raise ConfigError(
                    f"{k} has {len(leaf) if leaf.ndim else 'no'} entries but x has {n} samples: "
                    f"expected one {k} per sample (shape ({n},))"
                )
            if not np.issubdtype(leaf.dtype, np.number) or not np.all(np.isfinite(leaf)):
                raise ConfigError(f"{k} must hold finite numbers, got dtype {leaf.dtype} / NaN or inf")
        per_sample[k] = v
    return per_sample, rest


# ---------------------------------------------------------------------------- one fit
@dataclass
class FitResult:
    """What `fit_recipe` returns."""

    model: Any
    history: Dict[str, List[float]]
    run_dir: Optional[str]
    train_index: np.ndarray  # indices into the given x used for the gradient steps
    val_index: np.ndarray  # indices into the given x used for early stopping (may be empty)
    seed: Optional[int]
    output_bias: Optional[str]  # None, or why/what: "applied" / the reason it was skipped


def _history_dict(history) -> Dict[str, List[float]]:
    h = getattr(history, "history", history) or {}
    return {k: [float(v) for v in vals] for k, vals in h.items()}


def fit_recipe(
    build,
    x,
    y,
    *,
    config=None,
    validation_data=None,
    stratify="auto",
    seed: Optional[int] = None,
    run_dir: Optional[str] = None,
    verbose: int = 0,
    callbacks=None,
    output_bias="auto",
    compile_defaults=None,
    fit_kwargs: Optional[dict] = None,
    encode_y: Optional[Callable] = None,
) -> FitResult:
    """Train one model with the recipe; the building block of CV, ensembles and the estimators.

    Order: seed everything (`kerasrecipe.seed_everything`, tip A2/I6) → build the model →
    take a shuffled, stratified validation split from `x` (B2) unless `validation_data` is
    given → compile the model from `config` if the build function left it uncompiled and
    `compile_defaults` gives a loss → set the output bias from the training targets (C2) → fit
    with `kerasrecipe.default(config, run_dir=run_dir)` callbacks (early stopping with best
    weights restored, plateau LR halving, run log...).

    The fit is reproducible (same seed, same model), yet leaves the process as it found it
    (`seeding.preserve_global_state`): Python's `random`, NumPy's and torch's generators, Keras's
    global seed, the backend's determinism switches and the environment variables
    `seed_everything` sets are restored after the fit, so a loop drawing random numbers between
    fits does not repeat its draws and later code does not run in deterministic mode.

    Args:
      build: a zero-argument callable returning a Keras model, or a model (trained as is).
      x, y: training data (arrays, or dicts/lists of arrays for multi-input/-output models).
      config: RecipeConfig, dict of overrides, or None; epochs, batch_size, validation_split
        and seed come from it.
      validation_data: (x_val, y_val) or (x_val, y_val, sample_weight_val) to use instead of an
        internal split (also accepted inside `fit_kwargs`, as Keras's `fit` takes it).
      stratify: "auto" (stratify when `y` are class labels or one-hot rows), None, or an array
        of class labels aligned with `x`.
      seed: overrides `config.seed` for this fit.
      run_dir: the run directory for `default()`; None lets `default()` name one.
      callbacks: extra callbacks, after the recipe's.
      output_bias: "auto" (set it when the model ends in a Dense layer with a bias; otherwise
        skip), True (set it or raise), False.
      compile_defaults: {"loss": ..., "metrics": [...]} used when the model is not compiled, or
        a function `compile_defaults(model)` returning that dict.
      fit_kwargs: extra `model.fit` arguments (override epochs/batch_size from the config).
        `sample_weight` (one weight per sample) is split with `x` and `y`: the validation
        part's weights weight the validation loss (the third element of validation_data).
        `validation_split` is refused: the split is `config.validation_split`.
      encode_y: a function `encode_y(model, y)` returning the targets in the form the built and
        compiled model expects (used by the estimators: integer labels for a sparse loss, a 0/1
        column for one sigmoid unit); applied to `y` and to validation_data's targets.
    """
    import keras

    cfg = resolve_config(config) if not isinstance(config, RecipeConfig) else config
    seed = cfg.seed if seed is None else seed
    n = _num_samples(x)
    per_sample, fit_kwargs = _split_fit_kwargs(fit_kwargs, n)
    if "validation_data" in fit_kwargs:
        given = fit_kwargs.pop("validation_data")
        if validation_data is not None and given is not None:
            raise ConfigError("validation_data is given twice (as an argument and in fit_kwargs): give it once")
        validation_data = given if given is not None else validation_data
    if fit_kwargs.get("validation_split"):
        raise ConfigError(
            "validation_split in the fit arguments: the recipe takes its own shuffled, stratified "
            "validation split; set it in the config instead (config validation_split=..., 0 for "
            "none) or pass validation_data=(x_val, y_val)"
        )
    fit_kwargs.pop("validation_split", None)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise InputTypeError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), "
                f"got {type(validation_data).__name__}"
                + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else "")
            )
        validation_data = tuple(validation_data)

    with preserve_global_state():
        if seed is not None:
            from kerasrecipe import seed_everything

            seed_everything(int(seed))

        if isinstance(build, keras.Model):
            model = build
        elif callable(build):
            model = build()
        else:
            raise InputTypeError(
                f"build must be a Keras model or a function returning one, got {type(build).__name__}"
            )
        if not isinstance(model, keras.Model):
            raise InputTypeError(
                f"the build function returned {type(model).__name__}, expected a keras.Model"
            )
        if validation_data is not None:
            train_idx, val_idx = np.arange(n), np.arange(0)
        else:
            if isinstance(stratify, str) and stratify == "auto":
                ys = keras.tree.flatten(y)
                labels = class_labels(ys[0]) if len(ys) == 1 and infer_task(ys[0]) == "classification" else None
            else:
                labels = None if stratify is None else np.asarray(stratify)
            train_idx, val_idx = split_validation(None, cfg.validation_split, stratify=labels, seed=seed, n=n)

        if not model.compiled or model.loss is None or model.optimizer is None:
            defaults = compile_defaults(model) if callable(compile_defaults) else compile_defaults
            if not defaults:
                raise NotCompiledError(
                    "the model is not compiled: compile it in the build function "
                    "(model.compile(optimizer, loss, metrics)) before training"
                )
            model.compile(optimizer=optimizer_from_config(cfg, len(train_idx)), **defaults)

        if encode_y is not None:
            y = encode_y(model, y)
            if validation_data is not None:
                validation_data = (validation_data[0], encode_y(model, validation_data[1])) + validation_data[2:]
        if len(val_idx):
            x_tr, y_tr = _take(x, train_idx), _take(y, train_idx)
            validation_data = (_take(x, val_idx), _take(y, val_idx))
            if "sample_weight" in per_sample:
                validation_data += (_take(per_sample["sample_weight"], val_idx),)
            per_sample = {k: _take(v, train_idx) for k, v in per_sample.items()}
        else:  # no internal split: every sample takes gradient steps
            x_tr, y_tr = x, y

        bias_status = None
        if output_bias:
            bias_status = _set_output_bias(model, y_tr, strict=output_bias is True)

        recipe_cbs = recipe_callbacks(cfg, run_dir)
        cbs = recipe_cbs + list(callbacks or [])
        kwargs = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=verbose, shuffle=True)
        kwargs.update(fit_kwargs)
        kwargs.update(per_sample)
        history = model.fit(x_tr, y_tr, validation_data=validation_data, callbacks=cbs, **kwargs)
    from kerasrecipe.recipe import find_run_dir

    used_run_dir = find_run_dir(recipe_cbs)  # after fit: default() may rename it at the end
    return FitResult(
        model=model,
        history=_history_dict(history),
        run_dir=used_run_dir,
        train_index=train_idx,
        val_index=val_idx,
        seed=seed,
        output_bias=bias_status,
    )


def _set_output_bias(model, y, *, strict: bool) -> str:
    """Tip C2 through `kerasrecipe.init.set_output_bias`; in "auto" mode a model the function
    cannot handle (it raises ConfigError: no final Dense layer with a bias) is left as built."""
    from kerasrecipe.init import set_output_bias

    ys = __import__("keras").tree.flatten(y)
    if len(ys) != 1:
        if strict:
            raise ConfigError("output_bias=True needs a single-output model")
        return "skipped: several outputs"
    try:
        set_output_bias(model, ys[0])
    except ConfigError as e:
        if strict:
            raise
        return f"skipped: {e}"
    return "applied"


# ---------------------------------------------------------------------------- cross-validation
@dataclass
class CVResult:
    """What `cross_validate` returns.

    Attributes:
      folds: per fold, a dict of index arrays into X: "train" (gradient steps), "val" (early
        stopping; a subset of the fold's training part), "test" (scored).
      histories: per fold, the Keras history dict.
      scores: metric name -> array of per-fold test scores (from `model.evaluate`).
      oof: out-of-fold predictions, aligned with X; each sample predicted once, by the model
        that did not see it (what the fold model's `predict` returns: logits when
        `from_logits`).
      models: the fold models (None entries when `keep_models=False`).
      run_dirs: the run directory of each fold.
      task: "classification", "multilabel" or "regression".
      from_logits: the models' loss takes logits (read from the compiled loss), so `oof` holds
        logits; `oof_score` and `ensemble` turn them into probabilities.
    """

    folds: List[Dict[str, np.ndarray]]
    histories: List[Dict[str, List[float]]]
    scores: Dict[str, np.ndarray]
    oof: np.ndarray
    models: List[Any]
    run_dirs: List[Optional[str]]
    task: str
    run_root: Optional[str] = None
    method: str = "mean"
    from_logits: bool = False
    _ensemble: Any = field(default=None, repr=False)

    @property
    def mean(self) -> Dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.scores.items()}

    @property
    def std(self) -> Dict[str, float]:
        return {k: float(np.std(v)) for k, v in self.scores.items()}

    @property
    def n_folds(self) -> int:
        return len(self.folds)

    @property
    def ensemble(self):
        """The fold models as an `Ensemble` (probability averaging / mean; tip I1)."""
        if self._ensemble is None:
            from kerasrecipe.ensemble import Ensemble

            self._ensemble = Ensemble.from_folds(self, method=self.method, task=self.task,
                                                 from_logits=self.from_logits)
        return self._ensemble

    def summary(self) -> str:
        """'loss 0.123 ± 0.010 | accuracy 0.951 ± 0.008' over the folds."""
        return " | ".join(f"{k} {self.mean[k]:.4g} ± {self.std[k]:.2g}" for k in self.scores)

    def oof_score(self, y) -> Dict[str, float]:
        """Scores of the out-of-fold predictions as a whole, with scikit-learn's definitions:
        classification: accuracy (argmax, or p > 0.5 for one sigmoid column; logits are turned
        into probabilities first, hinge margins classified by sign, labels -1/1 read as 0/1); multilabel: subset_accuracy (every label right) and
        hamming_loss (share of wrong labels, each label thresholded at p = 0.5); regression: mse
        and r2 (`sklearn.metrics.r2_score`: per output column, then averaged). Samples without an
        out-of-fold prediction (NaN rows: a splitter that leaves some out) are skipped."""
        from sklearn import metrics

        from kerasrecipe.ensemble import _labels_from_predictions

        y = np.asarray(y)
        p = np.asarray(self.oof, dtype=np.float64)
        if len(y) != len(p):
            raise ConfigError(f"y has {len(y)} samples but the out-of-fold predictions {len(p)}")
        keep = np.all(np.isfinite(p.reshape(len(p), -1)), axis=1)
        y, p = y[keep], p[keep]
        if self.task in ("classification", "multilabel"):
            p = to_probabilities(p, task=self.task, from_logits=self.from_logits)
            pred = _labels_from_predictions(p, multilabel=self.task == "multilabel")
            if self.task == "multilabel":
                yt = (y.reshape(pred.shape) > 0.5).astype(np.int64)  # 0/1 (or -1/1 for hinge) labels
                return {"subset_accuracy": float(metrics.accuracy_score(yt, pred)),
                        "hamming_loss": float(metrics.hamming_loss(yt, pred))}
            return {"accuracy": float(np.mean(pred == class_labels(y)))}
        p = p.reshape(y.shape) if p.size == y.size else p
        y2, p2 = y.reshape(len(y), -1), p.reshape(len(p), -1)
        return {"mse": float(metrics.mean_squared_error(y2, p2)),
                "r2": float(metrics.r2_score(y2, p2)) if len(y2) >= 2 else float("nan")}

    def to_dict(self) -> dict:
        return {
            "n_folds": self.n_folds,
            "task": self.task,
            "from_logits": self.from_logits,
            "scores": {k: [float(s) for s in v] for k, v in self.scores.items()},
            "mean": self.mean,
            "std": self.std,
            "summary": self.summary(),
            "fold_sizes": [{k: int(len(v)) for k, v in f.items()} for f in self.folds],
            "run_dirs": list(self.run_dirs),
            "histories": self.histories,
        }

    def plot(self, path: str, metric: str = "loss") -> str:
        """Training and validation curves of every fold in one PNG (Agg); returns `path`."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for k, h in enumerate(self.histories):
            if metric in h:
                (line,) = ax.plot(h[metric], label=f"fold {k} {metric}")
                if "val_" + metric in h:
                    ax.plot(h["val_" + metric], "--", color=line.get_color(), label=f"fold {k} val_{metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{self.n_folds}-fold CV: {self.summary()}", fontsize=8)
        ax.legend(fontsize=6)
        from kerasrecipe.io import atomic_write_bytes, figure_png

        try:
            data = figure_png(fig, dpi=100)
        finally:
            plt.close(fig)
        atomic_write_bytes(path, data)
        return path


def make_splitter(cv, *, task: str, groups=None, shuffle: bool = True, seed=None):
    """The scikit-learn splitter for `cv` (an int, or a splitter object passed through)."""
    from sklearn import model_selection as ms

    if hasattr(cv, "split"):
        return cv
    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ConfigError(f"cv={cv!r} is invalid: expected an integer >= 2 or a scikit-learn splitter")
    cv = int(cv)
    rs = seed if shuffle else None
    if groups is not None:
        if task == "classification":
            return ms.StratifiedGroupKFold(n_splits=cv, shuffle=shuffle, random_state=rs)
        if "shuffle" in inspect.signature(ms.GroupKFold).parameters:
            return ms.GroupKFold(n_splits=cv, shuffle=shuffle, random_state=rs)
        return ms.GroupKFold(n_splits=cv)  # pragma: no cover (scikit-learn < 1.6)
    if task == "classification":
        return ms.StratifiedKFold(n_splits=cv, shuffle=shuffle, random_state=rs)
    return ms.KFold(n_splits=cv, shuffle=shuffle, random_state=rs)


def _call_build(build_fn, k: int):
    try:
        params = inspect.signature(build_fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "fold" in params:
        return build_fn(fold=k)
    return build_fn()


def cross_validate(
    build_fn: Callable,
    X,
    y,
    *,
    cv=5,
    config=None,
    groups=None,
    task: str = "auto",
    shuffle: bool = True,
    run_dir: Optional[str] = None,
    verbose: int = 1,
    callbacks=None,
    output_bias="auto",
    method: str = "mean",
    keep_models: bool = True,
    fit_kwargs: Optional[dict] = None,
    predict_batch_size: Optional[int] = None,
) -> CVResult:
    """K-fold cross-validation with the recipe in every fold (tip B5).

    Args:
      build_fn: returns a fresh compiled Keras model; called once per fold after seeding
        (it may take a `fold` keyword argument).
      X, y: all the training data (keep the test set out: it never takes part in CV).
      cv: number of folds (stratified k-fold for classification, k-fold for regression and
        multilabel, StratifiedGroupKFold/GroupKFold with `groups`), or any scikit-learn splitter.
      config: RecipeConfig / dict of overrides / None. Fold k is seeded with `config.seed + k`.
      groups: group labels: no group is split between a fold's training and test parts.
      task: "auto" (from the compiled loss of a model built once, under the seed, to look at
        it: categorical losses and a binary loss on one unit -> "classification", a binary loss
        on several units -> "multilabel", squared/absolute errors -> "regression"; from y when
        the loss does not tell), "classification", "multilabel" or "regression".
      run_dir: root directory; fold k runs in `run_dir/fold-k`. None: `config.run_root/
        cv-<name>-<time>`. The summary goes to `cv.json` in the root.
      verbose: 0 silent; 1 a progress bar across folds (rich) and the summary; 2 also Keras's
        per-epoch lines.
      method: how `result.ensemble` combines the fold models ("mean", "vote", "weighted").
      keep_models: keep the fold models (needed for `result.ensemble`).
      fit_kwargs: extra `model.fit` arguments for every fold. `sample_weight` (one per sample of
        X) is split with the folds (and with each fold's validation split); the fold scores
        and `oof_score` are unweighted, as in scikit-learn's `cross_validate`.
    Returns:
      CVResult with per-fold histories and scores (mean ± std), out-of-fold predictions,
      the fold models and their ensemble.
    """
    import keras

    cfg = resolve_config(config) if not isinstance(config, RecipeConfig) else config
    if task not in TASKS:
        raise ConfigError(f"task={task!r} is invalid: expected one of {TASKS}")
    check_build_fn(build_fn, "build_fn", "fold")
    n = _num_samples(X)
    ys = keras.tree.flatten(y)
    if len(ys) != 1:
        raise ConfigError("cross_validate supports single-output models (one y array)")
    y_arr = np.asarray(ys[0])
    if len(y_arr) != n:
        raise ConfigError(f"X has {n} samples but y has {len(y_arr)}")
    per_sample, _ = _split_fit_kwargs(fit_kwargs, n)  # checked here, split per fold below
    if task == "auto":
        with preserve_global_state():  # a model to read the loss from, built as fold 0's will be
            if cfg.seed is not None:
                from kerasrecipe import seed_everything

                seed_everything(int(cfg.seed))
            probe = _call_build(build_fn, 0)
        task = infer_task(y_arr, model=probe if isinstance(probe, keras.Model) else None)
        del probe
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise ConfigError(f"groups has {len(groups)} entries, expected one per sample ({n})")
    splitter = make_splitter(cv, task=task, groups=groups, shuffle=shuffle, seed=cfg.seed)
    strat = class_labels(y_arr) if task == "classification" else None
    split_y = strat if strat is not None else np.zeros(n)
    splits = list(splitter.split(np.zeros((n, 1)), split_y, groups))
    if len(splits) < 2:
        raise ConfigError(f"the splitter produced {len(splits)} fold(s); cross-validation needs at least 2")
    counts = np.zeros(n, dtype=int)
    for _, te in splits:
        counts[te] += 1
    if counts.max() > 1:
        raise ConfigError(
            "the splitter puts some samples in more than one test fold; out-of-fold predictions "
            "need disjoint test folds (use KFold-like splitters, not ShuffleSplit)"
        )

    if run_dir is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = os.path.join(cfg.run_root, f"cv-{cfg.short_name()}-{stamp}")
    os.makedirs(run_dir, exist_ok=True)

    folds, histories, models, run_dirs = [], [], [], []
    scores: Dict[str, List[float]] = {}
    oof = None
    from_logits = False
    progress = _fold_progress(len(splits)) if verbose else None
    try:
        if progress is not None:
            progress.start()
            task_id = progress.add_task("cross-validation", total=len(splits))
        for k, (tr, te) in enumerate(splits):
            if progress is not None:
                progress.update(task_id, description=f"fold {k + 1}/{len(splits)}")
            fold_seed = None if cfg.seed is None else cfg.seed + k
            x_tr, y_tr = _take(X, tr), y_arr[tr]
            fold_kwargs = {**(fit_kwargs or {}), **{k: _take(v, tr) for k, v in per_sample.items()}}
            res = fit_recipe(
                lambda k=k: _call_build(build_fn, k),
                x_tr,
                y_tr,
                config=cfg,
                stratify=strat[tr] if strat is not None else None,
                seed=fold_seed,
                run_dir=os.path.join(run_dir, f"fold-{k}"),
                verbose=2 if verbose >= 2 else 0,
                callbacks=callbacks,
                output_bias=output_bias,
                fit_kwargs=fold_kwargs,
            )
            model = res.model
            if k == 0:
                from_logits = loss_from_logits(model)
            x_te = _take(X, te)
            pred = np.asarray(model.predict(x_te, batch_size=predict_batch_size, verbose=0))
            if oof is None:
                oof = np.full((n,) + pred.shape[1:], np.nan, dtype=np.float64)
            oof[te] = pred
            ev = model.evaluate(x_te, y_arr[te], verbose=0, return_dict=True)
            for name, v in ev.items():
                scores.setdefault(name, []).append(float(np.asarray(v)))
            folds.append({"train": tr[res.train_index], "val": tr[res.val_index], "test": te})
            histories.append(res.history)
            models.append(model if keep_models else None)
            run_dirs.append(res.run_dir)
            if progress is not None:
                shown = ", ".join(f"{k2}={v[-1]:.4g}" for k2, v in scores.items())
                progress.update(task_id, advance=1, description=f"fold {k + 1}/{len(splits)}: {shown}")
    finally:
        if progress is not None:
            progress.stop()

    result = CVResult(
        folds=folds,
        histories=histories,
        scores={k: np.asarray(v) for k, v in scores.items()},
        oof=oof,
        models=models,
        run_dirs=run_dirs,
        task=task,
        run_root=run_dir,
        method=method,
        from_logits=from_logits,
    )
    from kerasrecipe.io import atomic_write_json

    summary = result.to_dict()
    summary["oof_score"] = result.oof_score(y_arr) if counts.min() == 1 else None
    atomic_write_json(os.path.join(run_dir, "cv.json"), summary)
    if verbose:
        from rich.console import Console

        Console().print(f"[bold]{len(splits)}-fold CV[/bold]: {result.summary()}  ({run_dir})")
    return result


def _fold_progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
