"""Recipe layers (E1-E6): shapes, initialisation defaults, and save/load round trips."""
import numpy as np
import pytest

import keras

from kerasrecipe.errors import ConfigError
from kerasrecipe.layers import ConvBNReLU, FactorizedConv, Highway, ResidualBlock


def _image_model():
    inputs = keras.Input((8, 8, 1))
    x = ConvBNReLU(8, name="stem")(inputs)
    x = ResidualBlock(8, name="res_identity")(x)
    x = ResidualBlock(16, strides=2, name="res_project")(x)
    x = FactorizedConv(16, n=3, name="factorized")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = Highway(name="highway")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 8, 8, 1)).astype("float32")
    model = _image_model()
    # move every weight (BN moving statistics, gate biases...) off its initial value, so the
    # comparison shows all of them were saved and restored
    for v in model.weights:
        v.assign(keras.ops.convert_to_numpy(v) + rng.uniform(0.1, 0.5, size=v.shape).astype("float32"))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for name, cls in [("stem", ConvBNReLU), ("res_identity", ResidualBlock), ("factorized", FactorizedConv), ("highway", Highway)]:
        assert type(loaded.get_layer(name)) is cls
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=False)),
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        rtol=1e-5, atol=1e-5,
    )
    assert loaded.get_layer("res_project").has_projection
    assert not loaded.get_layer("res_identity").has_projection


@pytest.mark.parametrize(
    "layer",
    [
        ConvBNReLU(4, kernel_size=5, strides=2, padding="valid", activation="tanh", momentum=0.9),
        ResidualBlock(4, strides=2, zero_init_residual=True, projection="always"),
        FactorizedConv(4, n=5, intermediate_activation=True, batch_norm=False, kernel_regularizer="l2"),
        Highway(activation="tanh", transform_bias=-3.0),
    ],
    ids=lambda l: type(l).__name__,
)
def test_get_config_from_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    # through the registry too, as model loading does it
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config


def test_conv_bn_relu_defaults_3x3_he_no_bias():
    layer = ConvBNReLU(16)
    out = layer(np.ones((2, 8, 8, 3), "float32"))
    assert tuple(out.shape) == (2, 8, 8, 16)
    assert tuple(layer.conv.kernel.shape) == (3, 3, 3, 16)
    assert not layer.conv.use_bias  # BatchNorm's beta is the bias
    assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)
    assert float(np.min(keras.ops.convert_to_numpy(out))) >= 0.0  # ReLU
    # non-ReLU activation -> Glorot (E2)
    assert isinstance(ConvBNReLU(4, activation="tanh").kernel_initializer, keras.initializers.GlorotUniform)


def test_he_init_has_the_he_variance():
    layer = ConvBNReLU(64)
    layer.build((None, 8, 8, 32))
    w = keras.ops.convert_to_numpy(layer.conv.kernel)
    fan_in = 3 * 3 * 32
    # He normal: truncated normal with std sqrt(2/fan_in) (the truncation shrinks it by ~12%)
    assert 0.8 * np.sqrt(2 / fan_in) < w.std() < 1.05 * np.sqrt(2 / fan_in)


def test_residual_identity_block_starts_as_identity_with_zero_init():
    x = np.abs(np.random.default_rng(1).normal(size=(2, 6, 6, 8))).astype("float32")
    block = ResidualBlock(8, zero_init_residual=True)
    out = keras.ops.convert_to_numpy(block(x, training=False))
    assert not block.has_projection
    np.testing.assert_allclose(out, x, atol=1e-6)  # relu(0 + x) == x for x >= 0


def test_residual_projection_when_shapes_differ():
    x = np.ones((2, 8, 8, 8), "float32")
    block = ResidualBlock(16, strides=2)
    assert tuple(block(x).shape) == (2, 4, 4, 16)
    assert block.has_projection
    assert tuple(block.shortcut_conv.kernel.shape) == (1, 1, 8, 16)
    with pytest.raises(ConfigError, match="projection='auto'"):
        ResidualBlock(16, projection="never")(x)


def test_factorized_conv_kernels_are_1xn_then_nx1():
    layer = FactorizedConv(8, n=5)
    out = layer(np.ones((2, 8, 8, 4), "float32"))
    assert tuple(out.shape) == (2, 8, 8, 8)
    assert tuple(layer.conv_1xn.kernel.shape) == (1, 5, 4, 8)
    assert tuple(layer.conv_nx1.kernel.shape) == (5, 1, 8, 8)
    # fewer weights than a 5x5 conv with the same channels
    n_weights = sum(int(np.prod(w.shape)) for w in (layer.conv_1xn.kernel, layer.conv_nx1.kernel))
    assert n_weights < 5 * 5 * 4 * 8 + 5 * 5 * 8 * 8
    assert tuple(FactorizedConv(8, n=3, strides=2)(np.ones((1, 8, 8, 4), "float32")).shape) == (1, 4, 4, 8)


def test_highway_gate_bias_negative_and_starts_near_carry():
    x = np.random.default_rng(2).normal(size=(64, 32)).astype("float32")
    layer = Highway(transform_bias=-3.0)
    out = keras.ops.convert_to_numpy(layer(x))
    assert out.shape == x.shape
    gate_bias = keras.ops.convert_to_numpy(layer.gate_bias)
    np.testing.assert_allclose(gate_bias, -3.0)
    # with T ~ sigmoid(-3) ~ 0.05 the output is mostly the input (carry)
    assert np.corrcoef(out.ravel(), x.ravel())[0, 1] > 0.8
    assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)


def test_unshared_initializers_give_distinct_weights():
    block = ResidualBlock(8)
    block.build((None, 6, 6, 8))
    w1 = keras.ops.convert_to_numpy(block.conv1.conv.kernel)
    w2 = keras.ops.convert_to_numpy(block.conv2.kernel)
    assert not np.allclose(w1, w2)


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="negative"):
        Highway(transform_bias=1.0)
    with pytest.raises(ConfigError, match="filters"):
        ConvBNReLU(0)
    with pytest.raises(ConfigError, match="padding"):
        FactorizedConv(4, padding="causal")
    with pytest.raises(ConfigError, match="4-D image"):
        ConvBNReLU(4)(np.ones((2, 8, 3), "float32"))
    with pytest.raises(ConfigError):
        ResidualBlock(4, kernel_size=(3, 0))
    assert issubclass(ConfigError, ValueError)
