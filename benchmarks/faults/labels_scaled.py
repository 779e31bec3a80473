"""Labels scaled wrongly: binary labels as {-1, +1} with binary cross-entropy (fix: {0, 1})."""
from ._common import adam, cancer, case, mlp

TAGS = ("label_mismatch",)
EPOCHS = 4


def build(fixed):
    (x, y), (xv, yv) = cancer()
    if not fixed:
        y, yv = 2 * y - 1, 2 * yv - 1
    model = mlp(30, (32,), out=1, out_act="sigmoid")
    model.compile(adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    return case(model, x, y, (xv, yv))
