"""Unscaled regression target: raw diabetes progression (25..346) with MSE (fix: standardise y)."""
from ._common import adam, case, diabetes, mlp

TAGS = ("unscaled_target", "exploding_gradients", "slow_convergence", "lr_too_low")
EPOCHS = 6


def build(fixed):
    (x, y), (xv, yv) = diabetes()
    if fixed:
        mu, sd = y.mean(), y.std()
        y, yv = (y - mu) / sd, (yv - mu) / sd
    model = mlp(10, (32,), out=1, out_act=None)
    model.compile(adam(1e-3), "mse")
    return case(model, x, y, (xv, yv))
