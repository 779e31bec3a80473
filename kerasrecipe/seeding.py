"""`seed_everything` (tip A2): one seed for Python, NumPy, Keras and the backend.

Two runs with the same seed give the same weights, on the CPU, on every backend (tested).
"""
from __future__ import annotations

import contextlib
import os
import random
import sys

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


# Environment variables `seed_everything` sets (process-wide, inherited by subprocesses).
_SEEDING_ENV = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG", "XLA_FLAGS")


@contextlib.contextmanager
def preserve_global_state():
    """Run a block that calls `seed_everything` without leaving its process-wide effects behind.

    Put back afterwards as they were: Python's `random`, NumPy's global generator, the environment
    variables it sets (PYTHONHASHSEED, CUBLAS_WORKSPACE_CONFIG, XLA_FLAGS), Keras's global seed and
    SeedGenerator; with torch imported: its CPU generator (and the CUDA ones once CUDA is
    initialised), `use_deterministic_algorithms` (and warn_only), cudnn's deterministic and benchmark
    flags; with TensorFlow imported: op determinism and the global seed. So code that draws random
    numbers between fits does not see the same draws again, and a scikit-learn fit does not leave
    the caller's later torch/TF code in deterministic mode (slower kernels; torch raises for ops
    without a deterministic implementation unless warn_only).
    """
    restores = [_python_numpy_state(), _env_state(), _keras_state(), _torch_state(), _tf_state()]
    try:
        yield
    finally:
        for restore in reversed(restores):
            restore()


def _python_numpy_state():
    py, npy = random.getstate(), np.random.get_state()

    def restore():
        random.setstate(py)
        np.random.set_state(npy)
    return restore


def _env_state():
    saved = {k: os.environ.get(k) for k in _SEEDING_ENV}

    def restore():
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return restore


def _keras_state():
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
    except ImportError:  # pragma: no cover (another Keras layout)
        return lambda: None
    keys = (rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR)
    saved = {k: global_state.get_global_attribute(k) for k in keys}

    def restore():
        for k, v in saved.items():
            global_state.set_global_attribute(k, v)
    return restore


def _torch_state():
    torch = sys.modules.get("torch")
    if torch is None:
        return lambda: None
    rng = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    det = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)

    def restore():
        torch.set_rng_state(rng)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    return restore


def _tf_state():
    """TensorFlow's op determinism and global seed (TF may first be imported inside the block:
    Keras's set_random_seed seeds TF whenever it is installed; then its defaults come back)."""
    det, seed, rng = False, None, None
    if "tensorflow" in sys.modules:
        from tensorflow.python.eager import context
        from tensorflow.python.framework import config as tf_config

        det = tf_config.is_op_determinism_enabled()
        seed = context.global_seed()
        rng = getattr(context.context(), "_rng", None)
        rng = rng.getstate() if rng is not None else None

    def restore():
        if "tensorflow" not in sys.modules:
            return
        from tensorflow.python.eager import context
        from tensorflow.python.framework import config as tf_config
        from tensorflow.python.framework import random_seed

        if tf_config.is_op_determinism_enabled() != det:
            (tf_config.enable_op_determinism if det else tf_config.disable_op_determinism)()
        random_seed.set_seed(seed)
        if rng is not None and getattr(context.context(), "_rng", None) is not None:
            context.context()._rng.setstate(rng)
    return restore
