"""Shared test set-up. The whole suite runs once per backend: KERAS_BACKEND=tensorflow|torch|jax."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

if os.environ["KERAS_BACKEND"] == "torch":
    # The suite's models are tiny: one intra-op thread is several times faster per step on a
    # 2-core machine than torch's default pool (measured by the preflight tests), and results
    # do not depend on it.
    import torch  # noqa: E402

    torch.set_num_threads(1)


def pytest_report_header(config):
    return f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    import keras

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def backend():
    import keras

    return keras.backend.backend()


@pytest.fixture(scope="session")
def digits():
    """Bundled digits (1797 x 64, 10 classes), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype("float32") / 16.0, d.target.astype("int32")


def has_cuda():
    try:
        from kerasrecipe import kernels

        return bool(kernels.info().get("gpu_visible"))
    except Exception:
        return False
