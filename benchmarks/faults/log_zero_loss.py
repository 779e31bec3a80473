"""log(0) in a custom loss: binary cross-entropy written without clipping (fix: clip p to
[1e-7, 1 - 1e-7])."""
import keras

from ._common import cancer, case, mlp

TAGS = ("nan",)
EPOCHS = 3


def _bce(clip):
    def custom_bce(y_true, y_pred):
        y_true = keras.ops.cast(keras.ops.reshape(y_true, (-1, 1)), y_pred.dtype)
        p = keras.ops.clip(y_pred, 1e-7, 1 - 1e-7) if clip else y_pred
        return -keras.ops.mean(y_true * keras.ops.log(p) + (1 - y_true) * keras.ops.log(1 - p))

    return custom_bce


def build(fixed):
    (x, y), val = cancer()
    model = mlp(30, (64, 64), out=1, out_act="sigmoid")
    model.compile(keras.optimizers.Adam(1e-2), _bce(fixed), metrics=["accuracy"])
    return case(model, x, y, val)
