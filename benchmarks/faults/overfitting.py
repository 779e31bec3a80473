"""Overfitting: a 2x512 MLP on 120 training images (fix: dropout 0.5 + L2 1e-4, E5/D10)."""
import keras

from ._common import case, digits

TAGS = ("overfitting",)
EPOCHS = 40


def build(fixed):
    (x, y), val = digits()
    x, y = x[:120], y[:120]
    reg = keras.regularizers.l2(1e-4) if fixed else None
    layers = [keras.Input((x.shape[1],))]
    for _ in range(2):
        layers.append(keras.layers.Dense(512, activation="relu", kernel_regularizer=reg))
        if fixed:
            layers.append(keras.layers.Dropout(0.5))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val, batch_size=16)
