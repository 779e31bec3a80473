"""A layer that mixes samples across the batch: centring by the batch mean, also at inference
(fix: per-sample normalisation, LayerNormalization)."""
import keras

from ._common import adam, case, digits


class BatchCenter(keras.layers.Layer):
    """x - mean over the batch: each sample's output depends on the other samples (a bug)."""

    def call(self, x):
        return x - keras.ops.mean(x, axis=0, keepdims=True)


def build(fixed):
    (x, y), val = digits()
    model = keras.Sequential([
        keras.Input((x.shape[1],)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.LayerNormalization() if fixed else BatchCenter(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)


TAGS = ("batch_mixing",)
EPOCHS = 3
