"""Wrong output activation: softmax over one unit for a binary task (fix: sigmoid)."""
from ._common import adam, cancer, case, mlp

TAGS = ("wrong_output_activation", "stuck", "stuck_at_prior")
EPOCHS = 4


def build(fixed):
    (x, y), val = cancer()
    model = mlp(30, (32,), out=1, out_act="sigmoid" if fixed else "softmax")
    model.compile(adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
