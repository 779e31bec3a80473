"""Wrong output activation: a ReLU output with binary cross-entropy (fix: sigmoid)."""
from ._common import adam, cancer, case, mlp

TAGS = ("wrong_output_activation", "nan", "wrong_loss")
EPOCHS = 4


def build(fixed):
    (x, y), val = cancer()
    model = mlp(30, (32,), out=1, out_act="sigmoid" if fixed else "relu")
    model.compile(adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
