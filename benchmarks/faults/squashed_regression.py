"""Wrong output activation: a sigmoid output for a regression target in [1, 5] (fix: linear output)."""
from ._common import adam, case, diabetes, mlp

TAGS = ("wrong_output_activation", "stuck", "underfitting")
EPOCHS = 6


def build(fixed):
    (x, y), (xv, yv) = diabetes()
    lo, hi = y.min(), y.max()
    t, tv = 1 + 4 * (y - lo) / (hi - lo), 1 + 4 * (yv - lo) / (hi - lo)   # a 1..5 rating
    model = mlp(10, (32,), out=1, out_act=None if fixed else "sigmoid")
    model.compile(adam(1e-3), "mse")
    return case(model, x, t, (xv, tv))
