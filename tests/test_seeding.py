"""seed_everything (A2): the same seed gives the same weights after fit, on every backend (CPU)."""
import numpy as np
import pytest

import keras

import kerasrecipe as kr
from kerasrecipe.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_determinism():
    yield
    b = keras.backend.backend()
    if b == "torch":
        import torch

        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    elif b == "tensorflow":
        from tensorflow.python.framework import config

        if hasattr(config, "disable_op_determinism"):
            config.disable_op_determinism()


def fit_once(seed, fit=True):
    kr.seed_everything(seed)
    rng = np.random.default_rng(5)  # the data are fixed; only the seeded randomness varies
    x = rng.standard_normal((128, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dropout(0.3), keras.layers.Dense(2, activation="softmax")])
    init = m.get_weights()
    if fit:
        m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=16, epochs=2, shuffle=True, verbose=0)
    return init, m.get_weights()


def test_same_seed_same_weights_different_seed_different_weights():
    a0, a = fit_once(7)
    keras.utils.clear_session()
    _, b = fit_once(7)
    keras.utils.clear_session()
    c0, _ = fit_once(8, fit=False)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))   # shuffling, dropout, init: all reproduced
    assert not all(np.array_equal(u, v) for u, v in zip(a0, a))  # training did change the weights
    assert not all(np.array_equal(u, v) for u, v in zip(a0, c0))  # another seed, other weights


def test_report_and_validation(backend):
    info = kr.seed_everything(3)
    assert info["seed"] == 3 and info["backend"] == backend and "keras.utils.set_random_seed" in info["actions"]
    import os

    assert os.environ["PYTHONHASHSEED"] == "3"
    if backend == "torch":
        import torch

        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        kr.seed_everything(3, deterministic=False)
        assert not torch.are_deterministic_algorithms_enabled()
    if backend == "jax":
        assert any("keys" in n for n in info["notes"])
    import random

    kr.seed_everything(11)
    a = (np.random.rand(), random.random())
    np.random.seed(11)
    random.seed(11)
    assert a == (np.random.rand(), random.random())
    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ConfigError):
            kr.seed_everything(bad)
