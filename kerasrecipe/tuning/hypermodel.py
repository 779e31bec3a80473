"""RecipeHyperModel: your architecture (build_fn(hp)) plus the recipe's training hyperparameters."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional

import keras
import keras_tuner

from kerasrecipe.config import RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError
from kerasrecipe.tuning import space


def _from_config(config: RecipeConfig, steps_per_epoch: Optional[int] = None, epochs: Optional[int] = None):
    """The recipe's optimizer for a trial's config (`kerasrecipe.optimizers.from_config`).

    Schedules that need the length of training (cosine, one-cycle...) are laid over `epochs`
    epochs of `steps_per_epoch` steps; before the data is known (build) one step per epoch is
    assumed and `RecipeHyperModel.fit` recompiles with the real length."""
    from kerasrecipe import optimizers

    if epochs is not None:
        config = config.replace(epochs=int(epochs))
    if steps_per_epoch is None and needs_length(config):
        steps_per_epoch = 1
    return optimizers.from_config(config, steps_per_epoch=steps_per_epoch)


def needs_length(config: RecipeConfig) -> bool:
    """Whether the config's LR schedule depends on the number of steps (all but constant and plateau,
    and any warm-up)."""
    return config.schedule not in ("constant", "plateau") or bool(config.warmup_epochs)


def trial_callbacks(config: RecipeConfig) -> list:
    """The recipe's callbacks for one search trial, light enough to run hundreds of times:
    NaN stop (G2), early stopping on the monitored metric with the best weights restored (F2),
    and LR halving on plateau when the schedule is "plateau" (D3)."""
    from kerasrecipe.callbacks import ReduceLROnPlateauAny

    cbs = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(
            monitor=config.monitor,
            patience=config.early_stopping_patience,
            restore_best_weights=config.restore_best_weights,
        ),
    ]
    if config.schedule == "plateau":
        cbs.append(
            ReduceLROnPlateauAny(
                monitor=config.monitor,
                factor=config.plateau_factor,
                patience=config.plateau_patience,
                min_lr=config.min_lr,
            )
        )
    return cbs


def _arch_entries(arch_fixed) -> list:
    """[(name, value, conditions)] of the architecture hyperparameters to hold fixed."""
    recipe = set(space.HP_NAMES.values())
    if arch_fixed is None:
        return []
    if isinstance(arch_fixed, keras_tuner.HyperParameters):
        out = {}
        for p in arch_fixed.space:  # parents come before the hyperparameters they condition
            if (p.name not in recipe and not p.name.startswith("tuner/") and p.name not in out
                    and p.name in arch_fixed.values and arch_fixed.is_active(p)):
                out[p.name] = (p.name, arch_fixed.values[p.name], list(p.conditions))
        return list(out.values())
    if not isinstance(arch_fixed, Mapping):
        raise InputTypeError(
            f"arch_fixed must be a dict name -> value or a keras_tuner.HyperParameters, got {type(arch_fixed).__name__}"
        )
    clash = sorted(set(arch_fixed) & recipe)
    if clash:
        raise ConfigError(f"arch_fixed names {clash} are recipe parameters: use fixed= for them")
    return [(name, value, []) for name, value in arch_fixed.items()]


def _n_samples(x) -> Optional[int]:
    if isinstance(x, Mapping):
        x = next(iter(x.values()), None)
    elif isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else None


class RecipeHyperModel(keras_tuner.HyperModel):
    """A keras-tuner HyperModel: `build_fn(hp)` defines the architecture, the recipe adds the
    training hyperparameters with the catalog's ranges (tips D1, D5, D6, D10, E5, D3, H2).

    Each recipe parameter is searched (listed in `search`), fixed (`fixed={...}`) or left out (it
    keeps the `config` value); either way it is declared on `hp` (searched ones with their range,
    the others `hp.Fixed`), so every trial records its whole training configuration and
    `build_fn` can read `hp.get("dropout")`. The model is compiled with the recipe's optimizer
    (`kerasrecipe.optimizers.from_config`) and trained with the recipe's trial callbacks
    (early stopping with best weights, NaN stop, plateau halving).

    Args:
        build_fn: `build_fn(hp) -> keras.Model`. Compiled (its loss and metrics are kept, the
            optimizer is replaced by the recipe's) or not (then pass `loss`).
        config: base `RecipeConfig` (or dict); values of parameters not searched come from it.
        search: which of `("lr", "optimizer", "batch_size", "weight_decay", "dropout",
            "schedule")` to search (default: all that are not in `fixed`). "learning_rate" is
            accepted for "lr". A parameter both listed here and fixed is an error.
        fixed: dict parameter -> value, fixed for every trial.
        ranges: dict parameter -> range replacing the catalog's (`space.DEFAULT_RANGES`):
            `(min, max)` or `dict(min=, max=, sampling=, step=)` for lr, weight_decay (both
            log-uniform unless `sampling="linear"`) and dropout (linear), a list for choices.
        loss, metrics: used to compile when `build_fn` returns an uncompiled model (or to
            override its loss/metrics).
        epochs: epochs per trial (default `config.epochs`; early stopping ends most trials).
        callbacks: `callbacks(config) -> list` of Keras callbacks per trial (default:
            `trial_callbacks`). E.g. `lambda c: kerasrecipe.default(c, checkpoint="none")` for the
            full recipe.
        fit_verbose: verbosity of `model.fit` inside trials.
        arch_fixed: build_fn's own hyperparameters to hold fixed (declared `hp.Fixed` before
            build_fn runs): a dict name -> value, or a `keras_tuner.HyperParameters` (e.g. a
            trial's), whose active non-recipe values are held under their conditions
            (`hp.conditional_scope`). The search's LR stages use it to search the LR alone.

    Example:
        def build(hp):
            m = keras.Sequential([keras.Input((64,)),
                                  keras.layers.Dense(hp.Choice("units", [32, 64]), activation="relu"),
                                  keras.layers.Dropout(hp.get("dropout")),
                                  keras.layers.Dense(10, activation="softmax")])
            m.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return m
        hm = RecipeHyperModel(build, search=("lr", "batch_size"), fixed={"optimizer": "adam"})
        tuner = keras_tuner.RandomSearch(hm, objective="val_loss", max_trials=10)
    """

    def __init__(
        self,
        build_fn: Callable,
        *,
        config: Optional[RecipeConfig] = None,
        search: Optional[Iterable[str]] = None,
        fixed: Optional[Mapping[str, Any]] = None,
        ranges: Optional[Mapping[str, Any]] = None,
        loss=None,
        metrics=None,
        epochs: Optional[int] = None,
        callbacks: Optional[Callable] = None,
        fit_verbose: int = 0,
        arch_fixed: Optional[Mapping[str, Any]] = None,
        name: Optional[str] = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        if not callable(build_fn):
            raise InputTypeError(f"build_fn must be callable as build_fn(hp) -> keras.Model, got {build_fn!r}")
        self.build_fn = build_fn
        self.config = resolve_config(config)
        self.fixed = space.normalize_fixed(fixed)
        if search is None:  # the default: every recipe parameter that is not fixed
            search = tuple(p for p in space.PARAMS if p not in self.fixed)
            if not search:
                raise ConfigError(
                    f"fixed= fixes every recipe parameter {space.PARAMS}: nothing is left to search "
                    "(to train one fixed configuration, use model.fit with kerasrecipe.default())."
                )
        self.search = space.normalize_search(search)
        both = sorted(set(self.search) & set(self.fixed))
        if both:
            raise ConfigError(f"{both} are both searched and fixed: remove them from search or from fixed")
        self.ranges = space.normalize_ranges(ranges)
        self.loss = loss
        self.metrics = metrics
        if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0):
            raise ConfigError(f"epochs={epochs!r} is invalid: expected an integer > 0")
        self.epochs = epochs
        if callbacks is not None and not callable(callbacks):
            raise InputTypeError("callbacks must be a function config -> list of callbacks")
        self.callbacks = callbacks or trial_callbacks
        self.fit_verbose = fit_verbose
        self._arch_source = arch_fixed
        self._arch = _arch_entries(arch_fixed)
        self.arch_fixed = {name: value for name, value, _ in self._arch}
        self._build_args = dict(
            config=config, loss=loss, metrics=metrics, epochs=epochs, callbacks=callbacks,
            fit_verbose=fit_verbose,
        )

    # ------------------------------------------------------------------ space
    def derive(self, *, search=None, fixed=None, ranges=None, arch_fixed=None) -> "RecipeHyperModel":
        """A copy with another search list / fixed values / ranges (used by the search stages)."""
        return RecipeHyperModel(
            self.build_fn,
            search=self.search if search is None else search,
            fixed=self.fixed if fixed is None else fixed,
            ranges=self.ranges if ranges is None else ranges,
            arch_fixed=self._arch_source if arch_fixed is None else arch_fixed,
            **self._build_args,
        )

    def arch_defaults(self) -> keras_tuner.HyperParameters:
        """The hyperparameters of one build at the defaults (no training): build_fn's own ones
        with their default values and conditions (pass it as `arch_fixed=` to hold them)."""
        hp = keras_tuner.HyperParameters()
        self.declare(hp)
        self.build_fn(hp)
        keras.utils.clear_session(free_memory=False)
        return hp

    def declare(self, hp) -> dict:
        """Declare the recipe's training hyperparameters on `hp`; returns {name: value}."""
        base = space.base_values(self.config, self.fixed)
        values = {
            name: space.declare(hp, name, self.ranges[name], fixed=base[name], searched=name in self.search)
            for name in space.PARAMS
        }
        for name, value, conditions in self._arch:
            # under the conditions build_fn declares it with, so that build_fn's own hp.Choice(...)
            # finds this one (a second, unconditional entry would be sampled on its own)
            hp.merge([keras_tuner.engine.hyperparameters.Fixed(name, value, conditions=conditions)],
                     overwrite=False)
        return values

    def declare_hyperparameters(self, hp):
        self.declare(hp)

    def config_for(self, hp) -> RecipeConfig:
        """The RecipeConfig a trial trains with (recipe parameters applied, architecture values in
        `extra["hp"]`)."""
        self.declare(hp)
        return space.config_from_values(self.config, dict(hp.values))

    # ------------------------------------------------------------------ build / fit
    def build(self, hp):
        self.declare(hp)
        model = self.build_fn(hp)
        if not isinstance(model, keras.Model):
            raise InputTypeError(f"build_fn(hp) must return a keras.Model, got {type(model).__name__}")
        config = space.config_from_values(self.config, dict(hp.values))
        self._compile(model, config, epochs=self.epochs or config.epochs)
        return model

    def _compile(self, model, config, steps_per_epoch=None, epochs=None):
        kwargs = {}
        if getattr(model, "compiled", False) and hasattr(model, "_compile_config"):
            kwargs = dict(model._compile_config.config)
        if self.loss is not None:
            kwargs["loss"] = self.loss
        if self.metrics is not None:
            kwargs["metrics"] = self.metrics
        if kwargs.get("loss") is None:
            raise ConfigError(
                "build_fn returned a model without a loss: compile it in build_fn "
                "(model.compile(loss=..., metrics=[...]); the recipe replaces the optimizer) "
                "or pass loss= to RecipeHyperModel / search."
            )
        kwargs["optimizer"] = _from_config(config, steps_per_epoch, epochs)
        model.compile(**kwargs)

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        """Train one trial: batch size and epochs from the trial's config, the recipe's callbacks
        first, then those keras-tuner passes (its own bookkeeping)."""
        config = self.config_for(hp)
        kwargs.setdefault("batch_size", config.batch_size)
        if "tuner/epochs" in hp.values:  # Hyperband decides the epochs
            kwargs["epochs"] = int(hp.values["tuner/epochs"])
        else:
            kwargs.setdefault("epochs", self.epochs or config.epochs)
        kwargs.setdefault("verbose", self.fit_verbose)
        if needs_length(config):  # lay the schedule over this trial's real length
            x = args[0] if args else kwargs.get("x")
            n = _n_samples(x)
            if n:
                steps = -(-n // kwargs["batch_size"])
                self._compile(model, config, steps_per_epoch=steps, epochs=kwargs["epochs"])
        cbs = list(self.callbacks(config)) + list(callbacks or [])
        return model.fit(*args, callbacks=cbs, **kwargs)
