"""The recipe's search space: which training hyperparameters to search and over which ranges.

Ranges come from the catalog (docs/RECIPES.md): the learning rate log-uniform (H2, D1), Adam or
SGD with momentum (D5), batch sizes 32..256 in powers of two (D6), weight decay log-uniform around
1e-4 (D10, H2), dropout up to 0.5 (E5) and the LR schedules of D3. Every range can be replaced
(`ranges=`), every parameter fixed (`fixed=`) or left out of the search (it then keeps the
`RecipeConfig` value).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from kerasrecipe.config import OPTIMIZERS, SCHEDULES, RecipeConfig, resolve_config
from kerasrecipe.errors import ConfigError, InputTypeError

#: The training hyperparameters the recipe knows, in the order they matter (D1: LR first).
PARAMS = ("lr", "optimizer", "batch_size", "weight_decay", "dropout", "schedule")

#: Search-list name -> name of the keras-tuner hyperparameter (= RecipeConfig field, except
#: dropout, which lives in ``RecipeConfig.extra["dropout"]`` because the architecture uses it).
HP_NAMES = {
    "lr": "learning_rate",
    "optimizer": "optimizer",
    "batch_size": "batch_size",
    "weight_decay": "weight_decay",
    "dropout": "dropout",
    "schedule": "schedule",
}
_ALIASES = {"learning_rate": "lr"}

#: The catalog's ranges. Floats: dict(min, max, sampling[, step]); choices: a tuple.
DEFAULT_RANGES: Dict[str, Any] = {
    "lr": {"min": 1e-5, "max": 1e-1, "sampling": "log"},          # H2, D5: log scale around 3e-4
    "optimizer": ("adam", "sgd"),                                   # D5: Adam or SGD+momentum 0.9
    "batch_size": (32, 64, 128, 256),                               # D6: powers of two, 32..256
    "weight_decay": {"min": 1e-6, "max": 1e-2, "sampling": "log"},  # D10: ~1e-4, log scale (H2)
    "dropout": {"min": 0.0, "max": 0.5, "step": 0.1},               # E5: up to 0.5
    "schedule": ("plateau", "cosine", "constant"),                  # D3
}

#: Defaults for parameters that are not RecipeConfig fields.
EXTRA_DEFAULTS = {"dropout": 0.0}

#: keras-tuner's samplings of a Float.
SAMPLINGS = ("linear", "log", "reverse_log")


def canonical(name: str) -> str:
    """'learning_rate' -> 'lr'; other names unchanged; unknown names raise ConfigError."""
    if not isinstance(name, str):
        raise InputTypeError(f"search parameter names must be strings, got {name!r}")
    name = _ALIASES.get(name, name)
    if name not in PARAMS:
        raise ConfigError(
            f"unknown search parameter {name!r}: expected some of {PARAMS} "
            "(architecture hyperparameters are declared in build_fn with hp.Int/hp.Choice/...)."
        )
    return name


def normalize_search(search: Iterable[str]) -> Tuple[str, ...]:
    """Validate a search list: non-empty, known names, no duplicates; returns canonical names."""
    if isinstance(search, str):
        search = (search,)
    try:
        names = [canonical(n) for n in search]
    except TypeError:
        raise InputTypeError(f"search must be a list of parameter names, got {search!r}") from None
    if not names:
        raise ConfigError(
            f"search=() is empty: name at least one of {PARAMS} to search, e.g. search=('lr',) "
            "(to train one fixed configuration, use model.fit with kerasrecipe.default())."
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"search lists a parameter twice: {list(search)}")
    return tuple(n for n in PARAMS if n in names)


def normalize_fixed(fixed: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    if fixed is None:
        return {}
    if not isinstance(fixed, Mapping):
        raise InputTypeError(f"fixed must be a dict of parameter -> value, got {type(fixed).__name__}")
    out = {canonical(k): v for k, v in fixed.items()}
    for k, v in out.items():
        _check_value(k, v)
    return out


def normalize_ranges(ranges: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """Merge user ranges over the catalog's and validate them."""
    out = dict(DEFAULT_RANGES)
    if ranges is None:
        return out
    if not isinstance(ranges, Mapping):
        raise InputTypeError(f"ranges must be a dict of parameter -> range, got {type(ranges).__name__}")
    for k, spec in ranges.items():
        k = canonical(k)
        if k in ("lr", "weight_decay", "dropout"):
            if isinstance(spec, (tuple, list)) and len(spec) == 2 and all(_is_number(v) for v in spec):
                spec = {"min": float(spec[0]), "max": float(spec[1]),
                        "sampling": "linear" if k == "dropout" else "log"}
            if not isinstance(spec, Mapping) or "min" not in spec or "max" not in spec:
                raise ConfigError(
                    f"ranges[{k!r}]={spec!r}: expected (min, max) or dict(min=, max=, sampling=)"
                )
            spec = dict(spec)
            # the learning rate and weight decay are log-uniform unless said otherwise (H2)
            spec.setdefault("sampling", "linear" if k == "dropout" else "log")
            lo, hi = spec["min"], spec["max"]
            if not (_is_number(lo) and _is_number(hi)) or not lo < hi:
                raise ConfigError(f"ranges[{k!r}]: expected min < max, got min={lo!r}, max={hi!r}")
            if spec["sampling"] not in SAMPLINGS:
                raise ConfigError(f"ranges[{k!r}]: sampling={spec['sampling']!r}, expected one of {SAMPLINGS}")
            if spec["sampling"] != "linear" and lo <= 0:
                raise ConfigError(
                    f"ranges[{k!r}]: a log-uniform range needs min > 0, got {lo!r} (for a range from 0, "
                    "pass sampling='linear')"
                )
            if k == "dropout" and not (0 <= lo and hi < 1):
                raise ConfigError(f"ranges['dropout']: expected 0 <= min < max < 1, got {lo}, {hi}")
        else:
            if isinstance(spec, (str, int)):
                spec = (spec,)
            spec = tuple(spec)
            if not spec:
                raise ConfigError(f"ranges[{k!r}] is empty: give at least one choice")
            for v in spec:
                _check_value(k, v)
        out[k] = spec
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_value(name: str, v: Any) -> None:
    """One value of a parameter, checked against what RecipeConfig accepts."""
    if name in ("lr", "weight_decay", "dropout"):
        ok = _is_number(v) and (v > 0 if name == "lr" else v >= 0) and (name != "dropout" or v < 1)
    elif name == "batch_size":
        ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
    elif name == "optimizer":
        ok = v in OPTIMIZERS
    else:  # schedule
        ok = v in SCHEDULES
    if not ok:
        expected = {
            "lr": "a number > 0", "weight_decay": "a number >= 0", "dropout": "a number in [0, 1)",
            "batch_size": "an integer > 0", "optimizer": f"one of {OPTIMIZERS}",
            "schedule": f"one of {SCHEDULES}",
        }[name]
        raise ConfigError(f"{name}={v!r} is invalid: expected {expected}")


def declare(hp, name: str, spec: Any, *, fixed: Any = None, searched: bool = True):
    """Declare one recipe hyperparameter on `hp` and return its value.

    Searched parameters get their range; the others are declared `hp.Fixed` so every trial
    records its full training configuration (and build_fn can read e.g. ``hp.get("dropout")``).
    """
    hp_name = HP_NAMES[name]
    if not searched:
        return hp.Fixed(hp_name, fixed)
    if isinstance(spec, Mapping):
        kw = {"sampling": spec.get("sampling", "linear")}
        if spec.get("step") is not None:
            kw["step"] = spec["step"]
        return hp.Float(hp_name, min_value=float(spec["min"]), max_value=float(spec["max"]), **kw)
    if len(spec) == 1:
        return hp.Fixed(hp_name, spec[0])
    return hp.Choice(hp_name, list(spec), ordered=name == "batch_size")


def narrow_lr(best_lr: float, decades: float = 1.0, bounds: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Stage 3 (H1): a log-uniform range `decades` wide centred on the best rate,
    [best / 10**(decades/2), best * 10**(decades/2)], cut to `bounds` (the searched LR range,
    dict(min=, max=)) when given. A best rate outside the bounds gets the `decades` inside them
    nearest to it, so the range never leaves the bounds nor shrinks to a point."""
    if not _is_number(best_lr) or best_lr <= 0:
        raise ConfigError(f"cannot narrow around learning rate {best_lr!r}: expected a number > 0")
    check_decades(decades)
    f = 10.0 ** (decades / 2.0)
    lo, hi = best_lr / f, best_lr * f
    if bounds is not None:
        bmin, bmax = float(bounds["min"]), float(bounds["max"])
        if best_lr > bmax:
            lo, hi = max(bmin, bmax / f ** 2), bmax
        elif best_lr < bmin:
            lo, hi = bmin, min(bmax, bmin * f ** 2)
        else:
            lo, hi = max(lo, bmin), min(hi, bmax)
    return {"min": lo, "max": hi, "sampling": "log"}


def check_decades(decades) -> None:
    """ConfigError unless `decades` (the width of the refine stage's LR range) is a number > 0."""
    if not _is_number(decades) or decades <= 0:
        raise ConfigError(
            f"refine_decades={decades!r} is invalid: expected a number of decades > 0 (1: the refine "
            "stage searches best/sqrt(10)..best*sqrt(10))"
        )


def base_values(config: RecipeConfig, fixed: Mapping[str, Any]) -> Dict[str, Any]:
    """Value of every recipe parameter when it is not searched: `fixed`, else the config's."""
    out = {}
    for name in PARAMS:
        if name in fixed:
            out[name] = fixed[name]
        elif name == "lr":
            out[name] = config.learning_rate
        elif name == "dropout":
            out[name] = config.extra.get("dropout", EXTRA_DEFAULTS["dropout"])
        else:
            out[name] = getattr(config, HP_NAMES[name])
    return out


def config_from_values(config: Optional[RecipeConfig], values: Mapping[str, Any]) -> RecipeConfig:
    """A RecipeConfig with the recipe hyperparameters of a trial (keras-tuner hp names or search
    names) applied; dropout goes to ``extra["dropout"]``; architecture values to
    ``extra["hp"]``."""
    config = resolve_config(config)
    overrides, extra = {}, dict(config.extra)
    arch = {}
    rev = {v: k for k, v in HP_NAMES.items()}
    for key, v in values.items():
        name = rev.get(key, key if key in PARAMS else None)
        if name is None:
            if not key.startswith("tuner/"):
                arch[key] = v
            continue
        if name == "dropout":
            extra["dropout"] = float(v)
        elif name == "batch_size":
            overrides["batch_size"] = int(v)
        elif name in ("lr", "weight_decay"):
            overrides[HP_NAMES[name]] = float(v)
        else:
            overrides[HP_NAMES[name]] = v
    if arch:
        extra["hp"] = {**extra.get("hp", {}), **arch}
    overrides["extra"] = extra
    return config.replace(**overrides)
