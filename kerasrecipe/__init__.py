"""kerasrecipe: the recipe for training neural networks, for Keras 3.

    import kerasrecipe as kr
    kr.preflight(model, x, y)
    lr = kr.lr_find(model, x, y).suggestion
    model.fit(x, y, validation_split=0.2, callbacks=kr.default())

Submodules are imported lazily, so `import kerasrecipe` stays cheap and a part that needs an
optional package fails only when it is used.
"""
import importlib

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "RecipeConfig": ("kerasrecipe.config", "RecipeConfig"),
    "default": ("kerasrecipe.recipe", "default"),
    "RunLog": ("kerasrecipe.runlog", "RunLog"),
    "Finding": ("kerasrecipe.diagnose.finding", "Finding"),
    "diagnose_run": ("kerasrecipe.diagnose", "diagnose_run"),
    "print_findings": ("kerasrecipe.diagnose", "print_findings"),
    "preflight": ("kerasrecipe.checks", "preflight"),
    "PreflightReport": ("kerasrecipe.checks", "PreflightReport"),
    "set_output_bias": ("kerasrecipe.init", "set_output_bias"),
    "seed_everything": ("kerasrecipe.seeding", "seed_everything"),
    "lr_find": ("kerasrecipe.lr_finder", "lr_find"),
    "KerasRecipeError": ("kerasrecipe.errors", "KerasRecipeError"),
    "ConfigError": ("kerasrecipe.errors", "ConfigError"),
    "PreflightError": ("kerasrecipe.errors", "PreflightError"),
    # submodules
    "kernels": ("kerasrecipe.kernels", None),
    "schedules": ("kerasrecipe.schedules", None),
    "optimizers": ("kerasrecipe.optimizers", None),
    "layers": ("kerasrecipe.layers", None),
    "init": ("kerasrecipe.init", None),
    "callbacks": ("kerasrecipe.callbacks", None),
    "checks": ("kerasrecipe.checks", None),
    "diagnose": ("kerasrecipe.diagnose", None),
    "ensemble": ("kerasrecipe.ensemble", None),
    "sklearn": ("kerasrecipe.sklearn", None),
    "cv": ("kerasrecipe.cv", None),
    "distill": ("kerasrecipe.distill", None),
    "Ensemble": ("kerasrecipe.ensemble", "Ensemble"),
    "RecipeClassifier": ("kerasrecipe.sklearn", "RecipeClassifier"),
    "RecipeRegressor": ("kerasrecipe.sklearn", "RecipeRegressor"),
    "tuning": ("kerasrecipe.tuning", None),
    "report": ("kerasrecipe.report", None),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'kerasrecipe' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__():
    return __all__
