"""Unnormalised features: raw breast-cancer measurements (0.001..4000) (fix: z-score, B3)."""
from ._common import adam, cancer, case, mlp

TAGS = ("unnormalized_input", "saturation", "oscillating_loss", "lr_too_high", "dead_relu")
EPOCHS = 4


def build(fixed):
    (x, y), val = cancer(normalized=fixed)
    model = mlp(30, (32, 32), out=1, out_act="sigmoid")
    model.compile(adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    return case(model, x, y, val)
