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

Stratified k-fold for classification, plain k-fold for regression, the group variants when
`groups` is given. The early-stopping validation split of each fold is taken from that fold's
training part only; the fold being scored is never seen during its model's training.
"""
from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError, NotCompiledError

TASKS = ("auto", "classification", "regression")


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


def infer_task(y) -> str:
    """'classification' for integer/binary labels or one-hot rows, 'regression' otherwise."""
    from sklearn.utils.multiclass import type_of_target

    y = np.asarray(y)
    try:
        kind = type_of_target(y)
    except ValueError:
        return "regression"
    if kind in ("binary", "multiclass"):
        return "classification"
    if kind == "multilabel-indicator" and y.ndim == 2 and np.allclose(y.sum(axis=1), 1):
        return "classification"
    return "regression"


def class_labels(y) -> np.ndarray:
    """Integer-like class labels from labels or one-hot/probability rows (for stratification)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim == 2:
        y = y[:, 0]
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
    compile_defaults: Optional[dict] = None,
    fit_kwargs: Optional[dict] = None,
) -> FitResult:
    """Train one model with the recipe; the building block of CV, ensembles and the estimators.

    Order: seed everything (`kerasrecipe.seed_everything`, tip A2/I6) → build the model →
    compile it from `config` if the build function left it uncompiled and `compile_defaults`
    gives a loss → take a shuffled, stratified validation split from `x` (B2) unless
    `validation_data` is given → set the output bias from the training targets (C2) → fit with
    `kerasrecipe.default(config, run_dir=run_dir)` callbacks (early stopping with best weights
    restored, plateau LR halving, run log...).

    Args:
      build: a zero-argument callable returning a Keras model, or a model (trained as is).
      x, y: training data (arrays, or dicts/lists of arrays for multi-input/-output models).
      config: RecipeConfig, dict of overrides, or None; epochs, batch_size, validation_split
        and seed come from it.
      validation_data: (x_val, y_val) to use instead of an internal split.
      stratify: "auto" (stratify when `y` are class labels or one-hot rows), None, or an array
        of class labels aligned with `x`.
      seed: overrides `config.seed` for this fit.
      run_dir: the run directory for `default()`; None lets `default()` name one.
      callbacks: extra callbacks, after the recipe's.
      output_bias: "auto" (set it when the model ends in a Dense layer with a bias; otherwise
        skip), True (set it or raise), False.
      compile_defaults: {"loss": ..., "metrics": [...]} used when the model is not compiled.
      fit_kwargs: extra `model.fit` arguments (override epochs/batch_size from the config).
    """
    import keras

    cfg = resolve_config(config) if not isinstance(config, RecipeConfig) else config
    seed = cfg.seed if seed is None else seed
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
    n = _num_samples(x)
    if validation_data is not None:
        train_idx, val_idx = np.arange(n), np.arange(0)
        x_tr, y_tr = x, y
    else:
        if isinstance(stratify, str) and stratify == "auto":
            ys = keras.tree.flatten(y)
            labels = class_labels(ys[0]) if len(ys) == 1 and infer_task(ys[0]) == "classification" else None
        else:
            labels = None if stratify is None else np.asarray(stratify)
        train_idx, val_idx = split_validation(None, cfg.validation_split, stratify=labels, seed=seed, n=n)
        x_tr, y_tr = _take(x, train_idx), _take(y, train_idx)
        if len(val_idx):
            validation_data = (_take(x, val_idx), _take(y, val_idx))

    if not model.compiled or model.loss is None or model.optimizer is None:
        if not compile_defaults:
            raise NotCompiledError(
                "the model is not compiled: compile it in the build function "
                "(model.compile(optimizer, loss, metrics)) before training"
            )
        model.compile(optimizer=optimizer_from_config(cfg, len(train_idx)), **compile_defaults)

    bias_status = None
    if output_bias:
        bias_status = _set_output_bias(model, y_tr, strict=output_bias is True)

    recipe_cbs = recipe_callbacks(cfg, run_dir)
    cbs = recipe_cbs + list(callbacks or [])
    kwargs = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, verbose=verbose, shuffle=True)
    kwargs.update(fit_kwargs or {})
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
        that did not see it.
      models: the fold models (None entries when `keep_models=False`).
      run_dirs: the run directory of each fold.
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

            self._ensemble = Ensemble.from_folds(self, method=self.method)
        return self._ensemble

    def summary(self) -> str:
        """'loss 0.123 ± 0.010 | accuracy 0.951 ± 0.008' over the folds."""
        return " | ".join(f"{k} {self.mean[k]:.4g} ± {self.std[k]:.2g}" for k in self.scores)

    def oof_score(self, y) -> Dict[str, float]:
        """Scores of the out-of-fold predictions as a whole (accuracy / MSE, R²)."""
        y = np.asarray(y)
        p = np.asarray(self.oof)
        if self.task == "classification":
            from kerasrecipe.ensemble import _labels_from_predictions

            return {"accuracy": float(np.mean(_labels_from_predictions(p) == class_labels(y)))}
        p = p.reshape(y.shape) if p.size == y.size else p
        mse = float(np.mean((p - y) ** 2))
        var = float(np.var(y))
        return {"mse": mse, "r2": 1.0 - mse / var if var > 0 else float("nan")}

    def to_dict(self) -> dict:
        return {
            "n_folds": self.n_folds,
            "task": self.task,
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
      cv: number of folds (stratified k-fold for classification, k-fold for regression,
        StratifiedGroupKFold/GroupKFold with `groups`), or any scikit-learn splitter.
      config: RecipeConfig / dict of overrides / None. Fold k is seeded with `config.seed + k`.
      groups: group labels: no group is split between a fold's training and test parts.
      task: "auto" (from y), "classification" or "regression".
      run_dir: root directory; fold k runs in `run_dir/fold-k`. None: `config.run_root/
        cv-<name>-<time>`. The summary goes to `cv.json` in the root.
      verbose: 0 silent; 1 a progress bar across folds (rich) and the summary; 2 also Keras's
        per-epoch lines.
      method: how `result.ensemble` combines the fold models ("mean", "vote", "weighted").
      keep_models: keep the fold models (needed for `result.ensemble`).
    Returns:
      CVResult with per-fold histories and scores (mean ± std), out-of-fold predictions,
      the fold models and their ensemble.
    """
    import keras

    cfg = resolve_config(config) if not isinstance(config, RecipeConfig) else config
    if task not in TASKS:
        raise ConfigError(f"task={task!r} is invalid: expected one of {TASKS}")
    if not callable(build_fn) or isinstance(build_fn, keras.Model):
        raise InputTypeError(
            "build_fn must be a function returning a fresh compiled model (one per fold), "
            f"got {type(build_fn).__name__}"
        )
    n = _num_samples(X)
    ys = keras.tree.flatten(y)
    if len(ys) != 1:
        raise ConfigError("cross_validate supports single-output models (one y array)")
    y_arr = np.asarray(ys[0])
    if len(y_arr) != n:
        raise ConfigError(f"X has {n} samples but y has {len(y_arr)}")
    if task == "auto":
        task = infer_task(y_arr)
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
                fit_kwargs=fit_kwargs,
            )
            model = res.model
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
