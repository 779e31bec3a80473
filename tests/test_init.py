"""set_output_bias (C2): the untrained model predicts the prior."""
import numpy as np
import pytest

import keras

import kerasrecipe as kr
from kerasrecipe.errors import ConfigError
from kerasrecipe.init import set_output_bias


def predict(m, x):
    return keras.ops.convert_to_numpy(m(x, training=False))


def zero_kernel_model(units, act, loss, activation_layer=False):
    last = keras.layers.Dense(units, activation=None if activation_layer else act, kernel_initializer="zeros")
    layers = [keras.Input((4,)), keras.layers.Dense(6, activation="relu"), last]
    if activation_layer:
        layers.append(keras.layers.Activation(act))
    m = keras.Sequential(layers)
    m.compile("adam", loss)
    return m


X = np.random.default_rng(0).standard_normal((20, 4)).astype("float32")


def test_softmax_bias_is_log_priors_even_behind_an_activation_layer():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    m = zero_kernel_model(3, "softmax", "sparse_categorical_crossentropy", activation_layer=True)
    b = set_output_bias(m, y)
    np.testing.assert_allclose(b, np.log([0.7, 0.2, 0.1]), rtol=1e-6)
    np.testing.assert_allclose(predict(m, X), np.tile([0.7, 0.2, 0.1], (20, 1)), atol=1e-5)
    # one-hot targets give the same priors
    b2 = set_output_bias(m, keras.utils.to_categorical(y, 3))
    np.testing.assert_allclose(b2, b, rtol=1e-6)


def test_softmax_bias_leaves_out_the_loss_ignore_class():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10 + [-1] * 50)  # -1: padding the loss skips
    m = zero_kernel_model(3, "softmax", keras.losses.SparseCategoricalCrossentropy(ignore_class=-1))
    np.testing.assert_allclose(set_output_bias(m, y), np.log([0.7, 0.2, 0.1]), rtol=1e-6)


def test_sigmoid_bias_is_the_prior_logit():
    y = np.array([1] * 10 + [0] * 100, "float32")  # 1:10 -> p = 1/11
    m = zero_kernel_model(1, "sigmoid", "binary_crossentropy")
    set_output_bias(m, y)
    np.testing.assert_allclose(predict(m, X), np.full((20, 1), 1 / 11), atol=1e-5)


def test_kind_inferred_from_a_logits_loss():
    y = np.array([0] * 3 + [1] * 1)
    m = zero_kernel_model(2, "linear", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    b = set_output_bias(m, y)
    np.testing.assert_allclose(b, np.log([0.75, 0.25]), rtol=1e-6)
    m = zero_kernel_model(1, "linear", keras.losses.BinaryCrossentropy(from_logits=True))
    b = set_output_bias(m, np.array([1, 0, 0, 0], "float32"))
    np.testing.assert_allclose(b, [np.log(0.25 / 0.75)], rtol=1e-6)


def test_regression_bias_is_the_target_mean():
    y = np.random.default_rng(1).normal(150, 40, size=(300, 2)).astype("float32")
    m = zero_kernel_model(2, "linear", "mse")
    set_output_bias(m, y)
    np.testing.assert_allclose(predict(m, X), np.tile(y.mean(0), (20, 1)), rtol=1e-5)


def test_clear_errors():
    @keras.saving.register_keras_serializable("kr_test")
    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), Scale()])
    m.compile("adam", "mse")
    with pytest.raises(ConfigError, match="Dense layer"):
        set_output_bias(m, np.zeros((5, 3)))
    nobias = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, use_bias=False, activation="softmax")])
    nobias.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="no bias"):
        set_output_bias(nobias, np.array([0, 1, 2]))
    m = zero_kernel_model(3, "softmax", "sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="3 units"):
        set_output_bias(m, np.array([0, 1, 5]))
    with pytest.raises(ConfigError, match="kind"):
        set_output_bias(m, np.array([0, 1, 2]), kind="poisson")
    sig = zero_kernel_model(1, "sigmoid", "mse")
    with pytest.raises(ConfigError, match="linear output"):
        set_output_bias(sig, np.array([0.2, 0.5]), kind="regression")
    assert kr.init.set_output_bias is set_output_bias
