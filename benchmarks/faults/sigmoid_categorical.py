"""Wrong output activation: sigmoid outputs with categorical cross-entropy (fix: softmax)."""
import keras

from ._common import adam, case, digits, mlp

TAGS = ("wrong_output_activation", "wrong_loss")
EPOCHS = 4


def build(fixed):
    (x, y), (xv, yv) = digits()
    model = mlp(x.shape[1], (64,), out_act="softmax" if fixed else "sigmoid")
    model.compile(adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])
    return case(model, x, keras.utils.to_categorical(y, 10), (xv, keras.utils.to_categorical(yv, 10)))
