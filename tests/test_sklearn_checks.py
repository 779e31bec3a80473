"""scikit-learn's estimator checks on RecipeClassifier / RecipeRegressor.

Runs on the torch backend only: the checks fit a fresh model a few hundred times, and a fresh
Keras model costs a compile on every fit (about twice as much CPU time per fit under JAX and
TensorFlow as under torch here). The estimator code has no backend-specific path; the
integration tests in test_sklearn.py run on all three backends.
"""
import os

import pytest

if os.environ.get("KERAS_BACKEND", "jax") != "torch":
    pytest.skip("estimator checks run on the torch backend only (see module docstring)",
                allow_module_level=True)

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from kerasrecipe.sklearn import RecipeClassifier, RecipeRegressor  # noqa: E402

# Each entry: the check scikit-learn runs, and why it cannot pass. Keras's own wrapper keeps a
# similar list (keras/src/wrappers/sklearn_test.py).
_SW = ("minibatch SGD: a sample of weight k is not k copies of it (shuffled batches, the shuffled "
       "validation split), as for scikit-learn's own SGD and MLP estimators")
EXPECTED_FAILED_CHECKS = {
    "RecipeClassifier": {"check_sample_weight_equivalence_on_dense_data": _SW},
    "RecipeRegressor": {"check_sample_weight_equivalence_on_dense_data": _SW},
}

TINY = {"epochs": 2, "batch_size": 32}


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Overrides conftest's per-test clear_session (about 2 s a test on this machine, over a
    hundred checks): every fit seeds itself, which is all these checks need."""
    yield


@parametrize_with_checks(
    [
        RecipeClassifier(config=dict(TINY), model_kwargs={"hidden": (8,)}),
        RecipeRegressor(config=dict(TINY), model_kwargs={"hidden": (8,)}),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
