"""Wrong loss for the task: mean squared error on a 10-class softmax (fix: categorical cross-entropy)."""
import keras

from ._common import adam, case, digits, mlp

TAGS = ("wrong_loss", "slow_convergence")
EPOCHS = 4


def build(fixed):
    (x, y), (xv, yv) = digits()
    model = mlp(x.shape[1], (64,))
    model.compile(adam(1e-3), "categorical_crossentropy" if fixed else "mse", metrics=["accuracy"])
    return case(model, x, keras.utils.to_categorical(y, 10), (xv, keras.utils.to_categorical(yv, 10)))
