"""Dead ReLUs: a hidden layer initialised with bias -10 never fires (fix: zero bias)."""
import keras

from ._common import adam, case, digits

TAGS = ("dead_relu",)
EPOCHS = 4


def build(fixed):
    (x, y), val = digits()
    model = keras.Sequential([
        keras.Input((x.shape[1],)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu", bias_initializer=keras.initializers.Constant(0.0 if fixed else -10.0)),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
