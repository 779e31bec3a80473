"""`seed_everything` (tip A2): one seed for Python, NumPy, Keras and the backend.

Two runs with the same seed give the same weights, on the CPU, on every backend (tested).
"""
from __future__ import annotations

import os
import random

import numpy as np

from kerasrecipe.errors import ConfigError


def seed_everything(seed: int, *, deterministic: bool = True) -> dict:
    """Seed every random number generator a Keras program uses, and make the backend deterministic.

    What it does:
      * `PYTHONHASHSEED` (inherited by subprocesses; the running interpreter's hash seed is fixed
        at start-up), Python's `random`, NumPy's global generator;
      * `keras.utils.set_random_seed(seed)`: Keras's global SeedGenerator (initialisers, dropout,
        `keras.random` without a seed), and `tf.random.set_seed` (tf.data shuffling) when
        TensorFlow is installed, `torch.manual_seed` on the torch backend;
      * with `deterministic=True`, the backend's determinism switches:
        TensorFlow: `tf.config.experimental.enable_op_determinism()`;
        PyTorch: `torch.use_deterministic_algorithms(True, warn_only=True)`,
        `torch.backends.cudnn.deterministic = True`, `cudnn.benchmark = False`,
        `CUBLAS_WORKSPACE_CONFIG=:4096:8`, and all CUDA generators seeded;
        JAX: nothing to switch: JAX randomness is explicit keys, which Keras derives from the seed
        above; on GPU, XLA's `--xla_gpu_deterministic_ops=true` is added to `XLA_FLAGS` (it only
        takes effect if JAX has not initialised its GPU backend yet).
      With `deterministic=False` the switches are turned off again (faster kernels may be picked).

    Args:
        seed: an integer >= 0.
        deterministic: also turn on the backend's deterministic-algorithm switches.

    Returns:
        A dict describing what was set: {"seed", "deterministic", "backend", "actions", "notes"}.

    Example:
        >>> kr.seed_everything(42)
        >>> model = build_model(); model.fit(x, y, epochs=2)   # same weights on every rerun
    """
    import keras

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(deterministic, bool):
        raise ConfigError(f"deterministic must be True or False, got {deterministic!r}")
    seed = int(seed)
    b = keras.backend.backend()
    actions, notes = [], []

    os.environ["PYTHONHASHSEED"] = str(seed)
    actions.append("PYTHONHASHSEED")
    notes.append("PYTHONHASHSEED affects subprocesses; this interpreter's str hashing was fixed when it started")
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    actions += ["random.seed", "numpy.random.seed", "keras.utils.set_random_seed"]

    if b == "tensorflow":
        from tensorflow.python.framework import config as tf_config  # enable/disable live here

        if deterministic:
            tf_config.enable_op_determinism()
            actions.append("tf.config.experimental.enable_op_determinism")
        elif hasattr(tf_config, "disable_op_determinism"):
            tf_config.disable_op_determinism()
            actions.append("tf op determinism disabled")
    elif b == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
            actions.append("torch.cuda.manual_seed_all")
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            actions += ["torch.use_deterministic_algorithms(True, warn_only=True)",
                        "cudnn.deterministic=True", "cudnn.benchmark=False", "CUBLAS_WORKSPACE_CONFIG"]
        else:
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.deterministic = False
            actions.append("torch deterministic algorithms off")
    elif b == "jax":
        notes.append("JAX needs no switch: its randomness is explicit keys, derived by Keras from the seed")
        if deterministic:
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_gpu_deterministic_ops" not in flags:
                os.environ["XLA_FLAGS"] = (flags + " --xla_gpu_deterministic_ops=true").strip()
                actions.append("XLA_FLAGS += --xla_gpu_deterministic_ops=true")
                notes.append("XLA_FLAGS only applies if JAX's GPU backend was not initialised yet")
    global _LAST_SEED
    _LAST_SEED = seed
    return {"seed": seed, "deterministic": deterministic, "backend": b, "actions": actions, "notes": notes}


_LAST_SEED = None


def last_seed():
    """The seed of this process's last `seed_everything` call, or None: what a run log can honestly
    record as its seed (a RecipeConfig's `seed` is applied only by the APIs that seed: the
    estimators, cross-validation, ensembles, the demo)."""
    return _LAST_SEED
