"""kerasrecipe's Keras callbacks, one per module. Imported lazily: `kerasrecipe.callbacks.X`."""
import importlib

# public name -> module (under kerasrecipe.callbacks). Add a line when you add a callback.
_EXPORTS = {
    "ReduceLROnPlateauAny": "plateau",
    "OneCycleMomentum": "momentum",
    "SwitchOptimizer": "swap",
    "SWA": "swa",
    "SnapshotSaver": "snapshot",
    "RunLogger": "run_logger",
    "HealthMonitor": "health",
    "NaNGuard": "nan_guard",
    "RecipeCheckpoint": "checkpoint",
    "RecipeBackup": "checkpoint",
    "RecipeEarlyStopping": "early_stopping",
    "DiagnosisCallback": "diagnosis",
    "EpochTensorBoard": "tensorboard",
}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kerasrecipe.callbacks' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kerasrecipe.callbacks.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(_EXPORTS)
