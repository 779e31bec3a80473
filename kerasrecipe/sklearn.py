"""scikit-learn estimators with the recipe in every fit (tips B2, B5, C2, A2, F2).

`RecipeClassifier` and `RecipeRegressor` extend Keras's own `keras.wrappers.SKLearnClassifier`
/ `SKLearnRegressor`. Each `fit`:

1. seeds everything (`kerasrecipe.seed_everything(seed)`, A2) so a fit is reproducible, and
   puts the caller's Python `random`, NumPy and torch CPU random states back afterwards;
2. builds the model (`model(X=X, y=y, **model_kwargs)`, or the small MLP `mlp` when
   `model=None`) and compiles it from the recipe config when the build function did not;
3. takes a shuffled, stratified validation split (`config.validation_split`, B2) from the data
   given to `fit` (in cross-validation: the training folds only, never the scored fold), with
   its share of `sample_weight`; or uses `fit(..., validation_data=(X_val, y_val))`;
4. sets the output bias from the training targets (log priors / target mean, C2);
5. trains with `kerasrecipe.default(config)` callbacks: early stopping with the best weights
   restored (F2), LR halving on plateaus (D3), the run log.

The classifier gives the model the targets its output and loss expect: one-hot rows for a
softmax over the classes, integer labels for a sparse loss (`sparse_categorical_crossentropy`),
a 0/1 column for one sigmoid unit (two classes, `binary_crossentropy`); `predict_proba` turns
logits into probabilities when the loss says `from_logits=True`.

Quiet by default: `verbose=0`, and the run directory of each fit is a temporary directory
removed after the fit unless `run_dir` is given (each fit then gets `run_dir/fit-...`). When
`config` is None or a dict, the estimators start from `SKLEARN_CONFIG`, which turns off what
costs time but is rarely read inside a grid search (health probes, live diagnosis,
TensorBoard, checkpoint files, backups); pass a `RecipeConfig` to get the full recipe.

Grid search reaches recipe and model parameters with the `config__` and `model_kwargs__`
prefixes:

    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    import kerasrecipe as kr

    clf = kr.sklearn.RecipeClassifier(config={"epochs": 30})      # default MLP
    cross_val_score(make_pipeline(StandardScaler(), clf), X, y, cv=5)
    GridSearchCV(clf, {"config__learning_rate": [1e-3, 3e-4],
                       "model_kwargs__hidden": [(32,), (64, 64)]}, cv=3).fit(X, y)
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import fields

import numpy as np
from keras.wrappers import SKLearnClassifier, SKLearnRegressor
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

try:  # scikit-learn's descriptor behind every estimator's set_fit_request (a private module)
    from sklearn.utils._metadata_requests import RequestMethod
except ImportError:  # pragma: no cover - a scikit-learn that moved it: Keras's own method stays
    RequestMethod = None

from kerasrecipe.config import RecipeConfig
from kerasrecipe.errors import ConfigError, InputTypeError

# The estimators' starting config: the recipe's training parts, without the per-fit costs a
# grid search does not read (documented in docs/RECIPES.md).
SKLEARN_CONFIG = dict(
    monitor_health=False,
    diagnose=False,
    live_findings=False,
    tensorboard=False,
    checkpoint="none",
    backup=False,
)
_CONFIG_FIELDS = None


def _config_fields():
    global _CONFIG_FIELDS
    if _CONFIG_FIELDS is None:
        _CONFIG_FIELDS = tuple(f.name for f in fields(RecipeConfig))
    return _CONFIG_FIELDS


def mlp(X, y, *, task="classification", hidden=(64,), activation="relu", dropout=0.0,
        output_activation=None):
    """The default model of the estimators: a small multilayer perceptron, uncompiled (the
    estimator compiles it from its recipe config: optimizer, learning rate, clipping).

    Args:
      X, y: the training data as the estimator passes it (for classifiers, y is one-hot).
      task: "classification" (softmax over y's columns) or "regression" (linear outputs).
      hidden: units of each hidden layer.
      activation: hidden activation.
      dropout: dropout rate after each hidden layer (0 = none).
      output_activation: overrides the output activation.
    """
    import keras

    n_out = 1 if np.ndim(y) == 1 else int(np.shape(y)[1])
    if isinstance(hidden, (int, np.integer)):
        hidden = (int(hidden),)
    inp = keras.Input(shape=(int(np.shape(X)[1]),))
    h = inp
    for units in hidden:
        h = keras.layers.Dense(int(units), activation=activation)(h)
        if dropout:
            h = keras.layers.Dropout(float(dropout))(h)
    if output_activation is None:
        output_activation = "softmax" if task == "classification" else None
    out = keras.layers.Dense(n_out, activation=output_activation)(h)
    return keras.Model(inp, out, name="recipe_mlp")


class _RecipeMixin:
    """The recipe part shared by RecipeClassifier and RecipeRegressor."""

    _task = None  # "classification" | "regression"
    _compile_defaults = None
    # scikit-learn's metadata routing: `est.set_fit_request(sample_weight=True)` (Keras's wrapper
    # defines a set_fit_request that records the request for `score` instead of `fit`)
    if RequestMethod is not None:
        set_fit_request = RequestMethod("fit", ["sample_weight"])

    def __init__(
        self,
        model=None,
        *,
        config=None,
        model_kwargs=None,
        fit_kwargs=None,
        callbacks=None,
        output_bias="auto",
        run_dir=None,
        verbose=0,
        warm_start=False,
    ):
        self.model = model
        self.config = config
        self.model_kwargs = model_kwargs
        self.fit_kwargs = fit_kwargs
        self.callbacks = callbacks
        self.output_bias = output_bias
        self.run_dir = run_dir
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ params
    def get_params(self, deep=True):
        params = BaseEstimator.get_params(self, deep=deep)
        if deep:  # nested names for searches; values of the wrong type are reported by fit
            if isinstance(self.model_kwargs, dict):
                for k, v in self.model_kwargs.items():
                    params[f"model_kwargs__{k}"] = v
            cfg = self.config
            items = cfg.to_dict().items() if isinstance(cfg, RecipeConfig) else (
                cfg.items() if isinstance(cfg, dict) else ())
            for k, v in items:
                params[f"config__{k}"] = v
        return params

    def set_params(self, **params):
        model_kw, config_kw, rest = {}, {}, {}
        for k, v in params.items():
            if k.startswith("model_kwargs__"):
                model_kw[k[len("model_kwargs__"):]] = v
            elif k.startswith("config__"):
                config_kw[k[len("config__"):]] = v
            else:
                rest[k] = v
        if rest:
            BaseEstimator.set_params(self, **rest)
        if model_kw:
            base = self.model_kwargs if isinstance(self.model_kwargs, dict) else {}
            self.model_kwargs = {**base, **model_kw}
        if config_kw:
            unknown = sorted(set(config_kw) - set(_config_fields()))
            if unknown:
                raise ConfigError(
                    f"unknown recipe parameter(s) {['config__' + u for u in unknown]}; "
                    f"known: config__<field> for the RecipeConfig fields {list(_config_fields())}"
                )
            if isinstance(self.config, RecipeConfig):
                self.config = self.config.replace(**config_kw)
            else:
                base = self.config if isinstance(self.config, dict) else {}
                self.config = {**base, **config_kw}
        return self

    def __sklearn_clone__(self):
        # Keras's wrapper rebuilds from three arguments only (it drops fit_kwargs); use
        # scikit-learn's own clone of every constructor parameter instead.
        return BaseEstimator.__sklearn_clone__(self)

    def recipe_config(self) -> RecipeConfig:
        """The RecipeConfig one fit uses: SKLEARN_CONFIG updated by `config` (None or dict), or
        `config` itself when it is a RecipeConfig."""
        cfg = self.config
        if isinstance(cfg, RecipeConfig):
            return cfg
        if cfg is None or isinstance(cfg, dict):
            unknown = sorted(set(cfg or {}) - set(_config_fields()))
            if unknown:
                raise ConfigError(f"unknown RecipeConfig field(s) {unknown} in config={cfg!r}")
            return RecipeConfig(**{**SKLEARN_CONFIG, **(cfg or {})})
        raise ConfigError(f"config must be None, a dict or a RecipeConfig, got {type(cfg).__name__}")

    # ------------------------------------------------------------------ model
    def _get_model(self, X, y):
        import keras

        kwargs = dict(self.model_kwargs or {})
        if self.model is None:
            return mlp(X, y, task=self._task, **kwargs)
        if isinstance(self.model, keras.Model):
            model = keras.models.clone_model(self.model)
            if self.model.compiled:
                model.compile_from_config(self.model.get_compile_config())
            return model
        if callable(self.model):
            return self.model(X=X, y=y, **kwargs)
        raise InputTypeError(
            f"model must be None, a keras.Model or a function model(X, y, **model_kwargs) "
            f"returning one, got {type(self.model).__name__}"
        )

    def _fit_run_dir(self):
        if self.run_dir is None:
            return tempfile.mkdtemp(prefix="kerasrecipe-sk-"), True
        name = f"fit-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return os.path.join(os.fspath(self.run_dir), name), False

    def _fit_arguments(self, X, labels, sample_weight, kwargs):
        """The model.fit arguments of one fit: `fit_kwargs` updated by fit's keyword arguments,
        `sample_weight` checked (one finite, non-negative weight per sample, not all zero; for a
        classifier, two classes left with weight) and user `validation_data` checked and
        encoded like the training data."""
        if self.fit_kwargs is not None and not isinstance(self.fit_kwargs, dict):
            raise ConfigError(f"fit_kwargs must be None or a dict, got {type(self.fit_kwargs).__name__}")
        kwargs = {**(self.fit_kwargs or {}), **kwargs}
        if kwargs.get("sample_weight") is not None:
            if sample_weight is not None:
                raise ConfigError("sample_weight is given twice (fit argument and fit_kwargs): give it once")
            sample_weight = kwargs["sample_weight"]
        kwargs.pop("sample_weight", None)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32, ensure_non_negative=True)
            if not np.any(sample_weight > 0):
                raise ValueError("sample_weight must contain at least one non-zero weight: "
                                 "all sample weights are zero")
            if labels is not None and len(np.unique(labels[sample_weight > 0])) < 2:
                raise ValueError("sample_weight leaves only one class with non-zero weight: a classifier "
                                 "needs samples of at least two classes")
            kwargs["sample_weight"] = sample_weight
        val = kwargs.get("validation_data")
        if val is not None:
            if not isinstance(val, (tuple, list)) or len(val) not in (2, 3):
                raise InputTypeError("validation_data must be a tuple (X_val, y_val) or "
                                     "(X_val, y_val, sample_weight_val)")
            Xv = validate_data(self, val[0], reset=False)
            yv = self._process_target(np.asarray(val[1]), reset=False)
            rest = tuple(val[2:])
            if rest and rest[0] is not None:
                rest = (_check_sample_weight(rest[0], Xv, dtype=np.float32, ensure_non_negative=True),)
            kwargs["validation_data"] = (Xv, yv) + rest
        return kwargs

    def _recipe_fit(self, X, y_enc, stratify, sample_weight, kwargs):
        from kerasrecipe.cv import fit_recipe

        if self.output_bias not in ("auto", True, False):
            raise ConfigError(f"output_bias={self.output_bias!r}: expected 'auto', True or False")
        cfg = self.recipe_config()
        kwargs = self._fit_arguments(X, stratify, sample_weight, kwargs)
        warm = bool(self.warm_start) and hasattr(self, "model_")
        build = self.model_ if warm else (lambda: self._get_model(X, y_enc))
        run_dir, temporary = self._fit_run_dir()
        try:
            res = fit_recipe(
                build,
                X,
                y_enc,
                config=cfg,
                stratify=stratify,
                run_dir=run_dir,
                verbose=self.verbose,
                callbacks=self.callbacks,
                output_bias=False if warm else self.output_bias,
                compile_defaults=self._compile_defaults,
                fit_kwargs=kwargs,
                encode_y=self._encode_for_model,
            )
        finally:
            if temporary:
                shutil.rmtree(run_dir, ignore_errors=True)
        self.model_ = res.model
        self.history_ = res.history
        self.validation_index_ = res.val_index
        self.train_index_ = res.train_index
        self.run_dir_ = None if temporary else res.run_dir
        self.output_bias_ = res.output_bias
        return self

    def _encode_for_model(self, model, y_enc):
        """The targets in the form the built model expects (the regressor's as they are)."""
        return y_enc

    @property
    def epoch_(self):
        """Number of epochs the last fit ran."""
        h = getattr(self, "history_", None) or {}
        return len(next(iter(h.values()), []))

    def _predict_raw(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.asarray(self.model_.predict(X, verbose=0))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = True  # seeded per fit, but GPU kernels may still differ
        return tags


class RecipeClassifier(_RecipeMixin, SKLearnClassifier):
    """A scikit-learn classifier training a Keras model with the recipe.

    Args:
      model: None (the default `mlp`), a function `model(X, y, **model_kwargs)` returning a
        Keras model (y is given one-hot, so `y.shape[1]` is the number of classes), or a Keras
        model (cloned for each fit). Its output is a softmax over the classes (trained on one-hot
        rows, or on integer labels when the loss is `sparse_categorical_crossentropy`), or, for
        two classes, one sigmoid unit (trained on a 0/1 column); logits work too when the loss
        says `from_logits=True`. If the model is not compiled, it is compiled with the config's
        optimizer and learning rate, accuracy, and categorical cross-entropy (binary
        cross-entropy for one output unit).
      config: None / dict of RecipeConfig fields (on top of `SKLEARN_CONFIG`) / RecipeConfig.
        epochs, batch_size, validation_split, seed, early_stopping_patience, ... come from it.
        Grid-searchable as `config__<field>`.
      model_kwargs: keyword arguments for `model` (grid-searchable as `model_kwargs__<name>`).
      fit_kwargs: extra `model.fit` arguments (e.g. class_weight). `fit(X, y, sample_weight=w)`
        weights the samples (the validation split gets its share of the weights), and
        `fit(X, y, validation_data=(X_val, y_val))` replaces the internal validation split (in a
        Pipeline, X_val does not go through the earlier steps: transform it yourself).
      callbacks: extra Keras callbacks, added after the recipe's.
      output_bias: "auto" (set the final Dense bias to the log class priors when there is
        one), True (set it or raise), False.
      run_dir: None (each fit runs in a temporary directory, removed afterwards) or a folder
        that keeps every fit's run directory.
      verbose: Keras's fit verbosity (0 = silent).
      warm_start: continue training the fitted model on the next `fit`.

    Attributes:
      model_, history_ (dict), classes_, validation_index_ / train_index_ (positions in the X
      given to fit), run_dir_, output_bias_, target_encoding_ ("onehot", "sparse" or "binary":
      the targets the model was trained on), from_logits_.

    Example:
      >>> from sklearn.model_selection import cross_val_score
      >>> clf = RecipeClassifier(config={"epochs": 20}, model_kwargs={"hidden": (32,)})
      >>> cross_val_score(clf, X, y, cv=5).mean()
    """

    _task = "classification"

    @staticmethod
    def _compile_defaults(model):
        from kerasrecipe.checks.introspect import output_units

        loss = "binary_crossentropy" if output_units(model) == 1 else "categorical_crossentropy"
        return {"loss": loss, "metrics": ["accuracy"]}

    def fit(self, X, y, sample_weight=None, **kwargs):
        """Fit with the recipe. `sample_weight`: one weight per sample (None: all 1); other
        keyword arguments go to `model.fit` (`validation_data=(X_val, y_val)` replaces the
        internal validation split). Returns self."""
        X, y = validate_data(self, X, y)
        y_enc = self._process_target(y, reset=True)
        return self._recipe_fit(X, y_enc, np.asarray(y), sample_weight, kwargs)

    def _encode_for_model(self, model, y_onehot):
        """One-hot rows (as Keras's wrapper encodes them) turned into what `model` expects."""
        from kerasrecipe.checks.introspect import output_units, resolve_loss
        from kerasrecipe.cv import loss_from_logits

        n_classes = len(self.classes_)
        units = output_units(model)
        loss = resolve_loss(model)
        sparse = loss is not None and loss.kind == "sparse_cce"
        fix = (f"end the model in Dense({n_classes}, activation='softmax') (categorical or sparse "
               "categorical cross-entropy)" + (", or in Dense(1, activation='sigmoid') with "
                                               "binary_crossentropy" if n_classes == 2 else ""))
        if units == 1 and n_classes == 2 and not sparse:
            encoding = "binary"
        elif units is None or units == n_classes:
            encoding = "sparse" if sparse else "onehot"
        else:
            raise ConfigError(f"the model has {units} output unit(s) but y has {n_classes} classes "
                              f"{list(self.classes_)[:10]}: {fix}")
        self.target_encoding_ = encoding
        self.from_logits_ = loss_from_logits(model)
        y_onehot = np.asarray(y_onehot)
        if encoding == "binary":
            return y_onehot[:, 1:2].astype("float32")
        if encoding == "sparse":
            return y_onehot.argmax(axis=1).astype("int32")
        return y_onehot

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in `classes_` order."""
        from kerasrecipe.cv import to_probabilities

        p = self._predict_raw(X)
        p = to_probabilities(p.reshape(len(p), -1), task="classification",
                             from_logits=getattr(self, "from_logits_", False))
        if getattr(self, "target_encoding_", "onehot") == "binary":
            return np.concatenate([1.0 - p, p], axis=1)
        return p

    def predict(self, X):
        """The most probable class of each sample."""
        proba = self.predict_proba(X)  # checks fitted first
        return self.classes_[np.argmax(proba, axis=1)]

    def decision_function(self, X):
        """scikit-learn's convention: for two classes the log-odds of `classes_[1]` (shape
        (n,)); otherwise the log-probabilities, shape (n, n_classes)."""
        p = np.clip(self.predict_proba(X), 1e-7, 1.0)
        logp = np.log(p)
        if logp.shape[1] == 2:
            return logp[:, 1] - logp[:, 0]
        return logp


class RecipeRegressor(_RecipeMixin, SKLearnRegressor):
    """A scikit-learn regressor training a Keras model with the recipe.

    Same arguments as `RecipeClassifier`; the default model is `mlp` with linear outputs, an
    uncompiled model is compiled with mean squared error, and the output bias is set to the
    target mean (C2).

    Example:
      >>> from sklearn.pipeline import make_pipeline
      >>> from sklearn.preprocessing import StandardScaler
      >>> reg = make_pipeline(StandardScaler(), RecipeRegressor(config={"epochs": 50}))
      >>> reg.fit(X, y).score(X_test, y_test)   # R²
    """

    _task = "regression"
    _compile_defaults = {"loss": "mean_squared_error"}

    def fit(self, X, y, sample_weight=None, **kwargs):
        """Fit with the recipe. `sample_weight`: one weight per sample (None: all 1); other
        keyword arguments go to `model.fit` (`validation_data=(X_val, y_val)` replaces the
        internal validation split). Returns self."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
        y_enc = self._process_target(y, reset=True)
        return self._recipe_fit(X, y_enc, None, sample_weight, kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # y of shape (n, k): k linear outputs
        return tags

    def predict(self, X):
        """Predicted targets, shaped like the y given to fit."""
        return self._reverse_process_target(self._predict_raw(X).astype(np.float64))  # sklearn: float64
