"""Recipe layers (tips E1-E6): the building blocks the recipe recommends, serializable.

- `ConvBNReLU`     E1 + E3: a 3x3 convolution, BatchNorm, ReLU; He initialisation, no conv bias
                   (BatchNorm's beta replaces it).
- `ResidualBlock`  E4: two ConvBNReLU-style convolutions with an identity shortcut (a 1x1
                   projection only when the shapes differ).
- `FactorizedConv` E3: an NxN convolution factorised into 1xN then Nx1 (fewer weights, same
                   receptive field).
- `Highway`        E6: y = T(x) * H(x) + (1 - T(x)) * x, with the transform gate's bias negative
                   so the layer starts close to the identity (carry) and deep stacks still train.

Every layer is registered with `keras.saving.register_keras_serializable(package="kerasrecipe")`
and implements `get_config()`, so a model using them saves to `.keras` and loads back on any
backend:

    import keras
    from kerasrecipe.layers import ConvBNReLU, ResidualBlock
    inputs = keras.Input((8, 8, 1))
    x = ConvBNReLU(16)(inputs)
    x = ResidualBlock(32, strides=2)(x)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
"""
from __future__ import annotations

import keras
from keras import ops

from kerasrecipe.errors import ConfigError

__all__ = ["ConvBNReLU", "ResidualBlock", "FactorizedConv", "Highway"]

_PACKAGE = "kerasrecipe"


def _he_or_glorot(activation) -> str:
    """E2: He (kaiming) for the ReLU family, Glorot (Xavier) for anything else."""
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
    name = (name or "linear").lower()
    relu_family = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish")
    return "he_normal" if name in relu_family else "glorot_uniform"


def _fresh(initializer):
    """A new initializer instance with the same config: an unseeded Keras initializer instance
    draws its seed once, so sharing one between sublayers would give them identical weights."""
    return keras.initializers.get(keras.initializers.serialize(initializer))


def _positive_int(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{layer}: {name}={value!r} is invalid: expected an integer > 0.")
    return value


def _pair(layer, name, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    value = tuple(value)
    if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value):
        raise ConfigError(f"{layer}: {name}={value!r} is invalid: expected an int or a pair of ints > 0.")
    return value


def _padding(layer, padding):
    if padding not in ("same", "valid"):
        raise ConfigError(f"{layer}: padding={padding!r} is invalid: expected 'same' or 'valid'.")
    return padding


def _check_rank4(layer, input_shape):
    if len(input_shape) != 4:
        raise ConfigError(
            f"{layer} expects 4-D image input (batch, height, width, channels), got shape "
            f"{tuple(input_shape)}. Add a channel axis, e.g. x[..., None], or reshape."
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ConvBNReLU(keras.layers.Layer):
    """Conv2D -> BatchNormalization -> activation (tips E1, E2, E3).

    Args:
        filters: number of output channels (powers of two, E3).
        kernel_size: int or pair; 3 by default (E3: two 3x3 replace a 5x5).
        strides: int or pair, default 1.
        padding: "same" (default) or "valid".
        activation: activation after BatchNorm, "relu" by default (E1); None for linear.
        kernel_initializer: default "he_normal" for ReLU-like activations, "glorot_uniform"
            otherwise (E2).
        kernel_regularizer: optional regularizer on the convolution kernel (e.g. L2 1e-4, D10).
        momentum, epsilon: BatchNormalization arguments.
        bias_initializer: initializer of BatchNorm's beta (the layer's only bias), "zeros".

    Example:
        >>> x = keras.random.normal((2, 8, 8, 3))
        >>> ConvBNReLU(16)(x).shape
        (2, 8, 8, 16)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        padding="same",
        activation="relu",
        kernel_initializer=None,
        kernel_regularizer=None,
        bias_initializer="zeros",
        momentum=0.99,
        epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _positive_int("ConvBNReLU", "filters", filters)
        self.kernel_size = _pair("ConvBNReLU", "kernel_size", kernel_size)
        self.strides = _pair("ConvBNReLU", "strides", strides)
        self.padding = _padding("ConvBNReLU", padding)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or _he_or_glorot(activation))
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.conv = keras.layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=False,  # BatchNorm's beta is the bias
            kernel_initializer=_fresh(self.kernel_initializer),
            kernel_regularizer=self.kernel_regularizer,
            name="conv",
        )
        self.bn = keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, beta_initializer=self.bias_initializer, name="bn"
        )

    def build(self, input_shape):
        _check_rank4("ConvBNReLU", input_shape)
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return self.activation(self.bn(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "momentum": self.momentum,
                "epsilon": self.epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """A basic residual block (tip E4): conv-BN-ReLU, conv-BN, + shortcut, ReLU.

    The shortcut is the identity when the input already has `filters` channels and `strides`
    is 1; otherwise a 1x1 convolution + BatchNorm projects it (He et al., 2016, option B).

    Args:
        filters: output channels.
        kernel_size: int or pair, 3 by default (E3).
        strides: stride of the first convolution (2 halves the spatial size).
        activation: "relu" by default (E1).
        kernel_initializer: default He normal for ReLU-like activations (E2).
        kernel_regularizer: optional regularizer on every convolution kernel.
        zero_init_residual: start the second BatchNorm's gamma at 0, so the block starts as the
            identity (Goyal et al., 2017); False by default.
        projection: "auto" (default: only when shapes differ), "always" or "never" ("never"
            raises when the shapes differ).

    Example:
        >>> x = keras.random.normal((2, 8, 8, 16))
        >>> ResidualBlock(16)(x).shape      # identity shortcut
        (2, 8, 8, 16)
        >>> ResidualBlock(32, strides=2)(x).shape   # projection shortcut
        (2, 4, 4, 32)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        activation="relu",
        kernel_initializer=None,
        kernel_regularizer=None,
        zero_init_residual=False,
        projection="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _positive_int("ResidualBlock", "filters", filters)
        self.kernel_size = _pair("ResidualBlock", "kernel_size", kernel_size)
        self.strides = _pair("ResidualBlock", "strides", strides)
        if projection not in ("auto", "always", "never"):
            raise ConfigError(
                f"ResidualBlock: projection={projection!r} is invalid: expected 'auto', 'always' or 'never'."
            )
        self.projection = projection
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or _he_or_glorot(activation))
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.zero_init_residual = bool(zero_init_residual)
        self.conv1 = ConvBNReLU(
            self.filters, self.kernel_size, strides=self.strides, activation=activation, name="conv1",
            kernel_initializer=_fresh(self.kernel_initializer), kernel_regularizer=self.kernel_regularizer,
        )
        self.conv2 = keras.layers.Conv2D(
            self.filters, self.kernel_size, padding="same", use_bias=False, name="conv2",
            kernel_initializer=_fresh(self.kernel_initializer), kernel_regularizer=self.kernel_regularizer,
        )
        self.bn2 = keras.layers.BatchNormalization(
            gamma_initializer="zeros" if self.zero_init_residual else "ones", name="bn2"
        )
        self.shortcut_conv = None
        self.shortcut_bn = None

    def _needs_projection(self, input_shape):
        differs = input_shape[-1] != self.filters or self.strides != (1, 1)
        if self.projection == "never" and differs:
            raise ConfigError(
                f"ResidualBlock(projection='never'): the input has {input_shape[-1]} channels and "
                f"strides={self.strides}, but an identity shortcut needs {self.filters} channels and "
                "strides 1. Use projection='auto'."
            )
        return self.projection == "always" or differs

    def build(self, input_shape):
        _check_rank4("ResidualBlock", input_shape)
        self.conv1.build(input_shape)
        mid = self.conv1.compute_output_shape(input_shape)
        self.conv2.build(mid)
        self.bn2.build(mid)
        if self._needs_projection(input_shape):
            self.shortcut_conv = keras.layers.Conv2D(
                self.filters,
                1,
                strides=self.strides,
                use_bias=False,
                kernel_initializer=_fresh(self.kernel_initializer),
                kernel_regularizer=self.kernel_regularizer,
                name="shortcut_conv",
            )
            self.shortcut_bn = keras.layers.BatchNormalization(name="shortcut_bn")
            self.shortcut_conv.build(input_shape)
            self.shortcut_bn.build(self.shortcut_conv.compute_output_shape(input_shape))

    @property
    def has_projection(self) -> bool:
        """True when the shortcut is a 1x1 projection rather than the identity (after build)."""
        return self.shortcut_conv is not None

    def call(self, inputs, training=None):
        h = self.conv1(inputs, training=training)
        h = self.bn2(self.conv2(h), training=training)
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
        return self.activation(h + shortcut)

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "zero_init_residual": self.zero_init_residual,
                "projection": self.projection,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FactorizedConv(keras.layers.Layer):
    """An NxN convolution factorised as 1xN then Nx1 (tip E3), then BatchNorm and activation.

    Same receptive field as an NxN convolution with 2N instead of N^2 weights per channel pair
    (Szegedy et al., 2016, "Rethinking the Inception architecture").

    Args:
        filters: output channels.
        n: the kernel length N (3 by default; 7 is Inception's choice on 17x17 grids).
        strides: int or pair; the row stride applies to the Nx1 step, the column stride to 1xN.
        padding: "same" (default) or "valid".
        activation: applied after BatchNorm, "relu" by default (E1); None for linear.
        intermediate_activation: also apply the activation between the two convolutions
            (False by default, as in a plain factorised kernel).
        batch_norm: add BatchNormalization before the activation (True; E1).
        kernel_initializer: default He normal for ReLU-like activations (E2).
        kernel_regularizer: optional regularizer on both kernels.

    Example:
        >>> x = keras.random.normal((2, 8, 8, 4))
        >>> FactorizedConv(16, n=5)(x).shape
        (2, 8, 8, 16)
    """

    def __init__(
        self,
        filters,
        n=3,
        strides=1,
        padding="same",
        activation="relu",
        intermediate_activation=False,
        batch_norm=True,
        kernel_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = _positive_int("FactorizedConv", "filters", filters)
        self.n = _positive_int("FactorizedConv", "n", n)
        self.strides = _pair("FactorizedConv", "strides", strides)
        self.padding = _padding("FactorizedConv", padding)
        self.activation = keras.activations.get(activation)
        self.intermediate_activation = bool(intermediate_activation)
        self.batch_norm = bool(batch_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or _he_or_glorot(activation))
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.conv_1xn = keras.layers.Conv2D(
            self.filters, (1, self.n), strides=(1, self.strides[1]), padding=self.padding, use_bias=False,
            kernel_initializer=_fresh(self.kernel_initializer), kernel_regularizer=self.kernel_regularizer,
            name="conv_1xn",
        )
        self.conv_nx1 = keras.layers.Conv2D(
            self.filters, (self.n, 1), strides=(self.strides[0], 1), padding=self.padding,
            use_bias=not self.batch_norm,
            kernel_initializer=_fresh(self.kernel_initializer), kernel_regularizer=self.kernel_regularizer,
            name="conv_nx1",
        )
        self.bn = keras.layers.BatchNormalization(name="bn") if self.batch_norm else None

    def build(self, input_shape):
        _check_rank4("FactorizedConv", input_shape)
        self.conv_1xn.build(input_shape)
        mid = self.conv_1xn.compute_output_shape(input_shape)
        self.conv_nx1.build(mid)
        if self.bn is not None:
            self.bn.build(self.conv_nx1.compute_output_shape(mid))

    def call(self, inputs, training=None):
        h = self.conv_1xn(inputs)
        if self.intermediate_activation:
            h = self.activation(h)
        h = self.conv_nx1(h)
        if self.bn is not None:
            h = self.bn(h, training=training)
        return self.activation(h)

    def compute_output_shape(self, input_shape):
        return self.conv_nx1.compute_output_shape(self.conv_1xn.compute_output_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "n": self.n,
                "strides": self.strides,
                "padding": self.padding,
                "activation": keras.activations.serialize(self.activation),
                "intermediate_activation": self.intermediate_activation,
                "batch_norm": self.batch_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Highway(keras.layers.Layer):
    """Highway layer (tip E6): y = T(x) * H(x) + (1 - T(x)) * x  (Srivastava et al., 2015).

    H is a dense transform with `activation`; T = sigmoid(x W_T + b_T) is the transform gate
    (sigmoid only as a gate, E1). b_T starts negative (`transform_bias`, -2 by default, the
    paper suggests -1 to -3) so the layer first carries its input through, and deep stacks
    train like shallow ones. The output has the input's width, so it replaces a same-size
    Dense layer.

    Args:
        activation: of the transform H, "relu" by default (E1).
        transform_bias: initial value of the gate bias; must be < 0 (E6).
        kernel_initializer: of H; He normal for ReLU-like activations, else Glorot (E2).
        gate_initializer: of the gate's kernel, "glorot_uniform" (E2).
        kernel_regularizer: optional regularizer on both kernels.

    Example:
        >>> x = keras.random.normal((4, 32))
        >>> Highway()(x).shape
        (4, 32)
    """

    def __init__(
        self,
        activation="relu",
        transform_bias=-2.0,
        kernel_initializer=None,
        gate_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        try:
            transform_bias = float(transform_bias)
        except (TypeError, ValueError):
            raise ConfigError(f"Highway: transform_bias={transform_bias!r} is not a number.") from None
        if not transform_bias < 0:
            raise ConfigError(
                f"Highway: transform_bias={transform_bias!r} is invalid: expected a negative number "
                "(-1 to -3, E6) so the layer starts by carrying its input through."
            )
        self.transform_bias = transform_bias
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer or _he_or_glorot(activation))
        self.gate_initializer = keras.initializers.get(gate_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.units = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ConfigError(
                f"Highway needs inputs with a known last dimension, got shape {tuple(input_shape)}."
            )
        self.units = int(input_shape[-1])
        d = self.units
        self.kernel = self.add_weight(
            name="kernel", shape=(d, d), initializer=_fresh(self.kernel_initializer), regularizer=self.kernel_regularizer
        )
        self.bias = self.add_weight(name="bias", shape=(d,), initializer="zeros")
        self.gate_kernel = self.add_weight(
            name="gate_kernel", shape=(d, d), initializer=_fresh(self.gate_initializer), regularizer=self.kernel_regularizer
        )
        self.gate_bias = self.add_weight(
            name="gate_bias", shape=(d,), initializer=keras.initializers.Constant(self.transform_bias)
        )

    def call(self, inputs):
        h = self.activation(ops.add(ops.matmul(inputs, self.kernel), self.bias))
        t = ops.sigmoid(ops.add(ops.matmul(inputs, self.gate_kernel), self.gate_bias))
        return ops.add(ops.multiply(t, h), ops.multiply(ops.subtract(1.0, t), inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "activation": keras.activations.serialize(self.activation),
                "transform_bias": self.transform_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "gate_initializer": keras.initializers.serialize(self.gate_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
